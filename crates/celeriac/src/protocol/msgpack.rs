//! MessagePack bodies (kombu's `msgpack` serializer,
//! `application/x-msgpack`), read into the JSON values tasks take.
//!
//! kombu packs with `packb(s, use_bin_type=True)`, so Python `str` arrives
//! as a msgpack str and `bytes` as bin. A value becomes what kombu's own
//! JSON serializer would have sent for the same Python object, so a task
//! sees the same arguments whichever serializer the caller chose:
//!
//! - bin → `{"__type__": "bytes", "__value__": text}` when it is UTF-8,
//!   else `{"__type__": "base64", "__value__": base64}` (kombu's
//!   `kombu.utils.json` markers);
//! - map keys that are integers, booleans, nil or floats → their JSON text,
//!   as `json.dumps` writes a dict's non-string keys;
//! - NaN and ±Infinity, and extension types, are refused (JSON has no such
//!   values), with the reason.

use base64::Engine as _;
use rmpv::Value as Pack;
use serde_json::{Map, Number, Value};

use super::ProtocolError;

/// Nesting deeper than this is refused (serde_json's own limit).
const MAX_DEPTH: usize = 128;

/// Read one MessagePack value from `bytes` as JSON.
pub(super) fn to_json(bytes: &[u8]) -> Result<Value, ProtocolError> {
    let mut reader = bytes;
    let value = rmpv::decode::read_value_with_max_depth(&mut reader, MAX_DEPTH)
        .map_err(|e| ProtocolError::Body(format!("msgpack: {e}")))?;
    if !reader.is_empty() {
        return Err(ProtocolError::Body(format!(
            "msgpack: {} bytes after the body",
            reader.len()
        )));
    }
    convert(value)
}

fn convert(value: Pack) -> Result<Value, ProtocolError> {
    Ok(match value {
        Pack::Nil => Value::Null,
        Pack::Boolean(b) => Value::Bool(b),
        Pack::Integer(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(u)) => Value::from(u),
            (None, None) => return Err(ProtocolError::Body(format!("msgpack integer {n}"))),
        },
        Pack::F32(f) => finite(f64::from(f))?,
        Pack::F64(f) => finite(f)?,
        Pack::String(s) => match s.into_str() {
            Some(text) => Value::String(text),
            None => return Err(ProtocolError::Body("msgpack string is not UTF-8".into())),
        },
        Pack::Binary(bytes) => bytes_marker(bytes),
        Pack::Array(items) => {
            Value::Array(items.into_iter().map(convert).collect::<Result<_, _>>()?)
        }
        Pack::Map(pairs) => {
            let mut map = Map::new();
            for (key, value) in pairs {
                map.insert(key_text(key)?, convert(value)?);
            }
            Value::Object(map)
        }
        Pack::Ext(kind, _) => {
            return Err(ProtocolError::Body(format!(
                "msgpack extension type {kind} has no JSON equivalent"
            )))
        }
    })
}

fn finite(f: f64) -> Result<Value, ProtocolError> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or(ProtocolError::NonFinite)
}

/// kombu's JSON marker for Python `bytes`.
fn bytes_marker(bytes: Vec<u8>) -> Value {
    let (kind, text) = match String::from_utf8(bytes) {
        Ok(text) => ("bytes", text),
        Err(e) => (
            "base64",
            base64::engine::general_purpose::STANDARD.encode(e.as_bytes()),
        ),
    };
    let mut map = Map::new();
    map.insert("__type__".into(), kind.into());
    map.insert("__value__".into(), text.into());
    Value::Object(map)
}

/// A map key as `json.dumps` writes it.
fn key_text(key: Pack) -> Result<String, ProtocolError> {
    Ok(match key {
        Pack::String(s) => match s.into_str() {
            Some(text) => text,
            None => return Err(ProtocolError::Body("msgpack map key is not UTF-8".into())),
        },
        Pack::Nil => "null".into(),
        Pack::Boolean(b) => b.to_string(),
        Pack::Integer(n) => n.to_string(),
        key @ (Pack::F32(_) | Pack::F64(_)) => convert(key)?.to_string(),
        other => {
            return Err(ProtocolError::Body(format!(
                "msgpack map key {other} cannot be a JSON object key"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pack(value: &Pack) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, value).expect("encode");
        out
    }

    #[test]
    fn reads_what_kombu_packs() {
        let body = Pack::Array(vec![
            Pack::Array(vec![
                Pack::from(2),
                Pack::from(-3),
                Pack::from(1.5),
                Pack::from("é"),
            ]),
            Pack::Map(vec![
                (Pack::from("b"), Pack::Binary(b"hi".to_vec())),
                (Pack::from(7), Pack::Binary(vec![0xff])),
                (Pack::from(u64::MAX), Pack::Nil),
            ]),
            Pack::Map(vec![(Pack::from("chain"), Pack::Nil)]),
        ]);
        let value = to_json(&pack(&body)).expect("converts");
        assert_eq!(
            value,
            json!([
                [2, -3, 1.5, "é"],
                {"b": {"__type__": "bytes", "__value__": "hi"},
                 "7": {"__type__": "base64", "__value__": "/w=="},
                 "18446744073709551615": null},
                {"chain": null}
            ])
        );
    }

    #[test]
    fn refuses_what_json_cannot_hold() {
        let nan = Pack::Array(vec![Pack::Array(vec![Pack::F64(f64::NAN)])]);
        assert!(matches!(
            to_json(&pack(&nan)),
            Err(ProtocolError::NonFinite)
        ));
        let inf = Pack::Array(vec![Pack::F32(f32::INFINITY)]);
        assert!(matches!(
            to_json(&pack(&inf)),
            Err(ProtocolError::NonFinite)
        ));
        let ext = Pack::Ext(5, vec![1]);
        assert!(to_json(&pack(&ext)).is_err());
        let mut trailing = pack(&Pack::Nil);
        trailing.push(0xc0);
        assert!(to_json(&trailing).is_err());
        assert!(
            to_json(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err(),
            "truncated array"
        );
        let mut deep = vec![0x91u8; 1000];
        deep.push(0xc0);
        assert!(to_json(&deep).is_err(), "nesting is bounded");
    }
}
