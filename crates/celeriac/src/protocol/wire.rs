//! The worker's one-pass reading of a task message.
//!
//! A worker reads every message it takes, so this path builds nothing it
//! does not need: the envelope's keys are matched as borrowed strings, the
//! headers are read straight into [`TaskHeaders`] during the same pass (no
//! raw copy read twice), the transport properties other than the priority
//! and body encoding are skipped, and the body's `[args, kwargs, embed]` is
//! read element by element instead of through a `Value` tree.
//!
//! Errors keep the kinds [`TaskMessage::from_slice`] gives: the visitors
//! note which part failed, since serde's error alone cannot say.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::headers_de::{Text, V2Headers};
use super::message::{kind_of, Embed, TaskHeaders};
use super::ProtocolError;

/// The parts of a kombu envelope a worker reads.
pub(super) struct Wire<'a> {
    /// The encoded body.
    pub(super) body: Cow<'a, str>,
    /// `content-type`, when present.
    pub(super) content_type: Option<Cow<'a, str>>,
    /// The headers; `None` for a protocol v1 message (no `task` header).
    pub(super) headers: Option<TaskHeaders>,
    /// `properties.priority`.
    pub(super) priority: Option<u8>,
    /// `properties.body_encoding`.
    pub(super) body_encoding: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct WireProperties<'a> {
    #[serde(default, deserialize_with = "lenient_priority")]
    priority: Option<u8>,
    #[serde(default, borrow)]
    body_encoding: Option<Cow<'a, str>>,
}

/// Read the envelope in `bytes`.
pub(super) fn read_envelope(bytes: &[u8]) -> Result<Wire<'_>, ProtocolError> {
    let in_headers = Cell::new(false);
    let read = read_all(
        bytes,
        EnvelopeVisitor {
            in_headers: &in_headers,
        },
    );
    read.map_err(|e| match in_headers.get() {
        true => ProtocolError::Headers(e.to_string()),
        false => ProtocolError::Envelope(e.to_string()),
    })
}

struct EnvelopeVisitor<'f> {
    /// Set while the headers are read, so their errors are named as such.
    in_headers: &'f Cell<bool>,
}

impl<'de> Visitor<'de> for EnvelopeVisitor<'_> {
    type Value = Wire<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a kombu message envelope (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Wire<'de>, A::Error> {
        let mut body = None;
        let mut content_type = None;
        let mut headers = None;
        let mut properties: Option<WireProperties<'de>> = None;
        while let Some(Text(key)) = map.next_key()? {
            match key.as_ref() {
                "body" => once(&mut body, "body", map.next_value::<Text<'de>>()?.0)?,
                "content-type" => once(
                    &mut content_type,
                    "content-type",
                    map.next_value::<Option<Text<'de>>>()?.map(|t| t.0),
                )?,
                "headers" => {
                    self.in_headers.set(true);
                    let read = map.next_value::<Option<V2Headers>>()?;
                    self.in_headers.set(false);
                    once(&mut headers, "headers", read.and_then(|h| h.0))?
                }
                "properties" => once(&mut properties, "properties", map.next_value()?)?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let body = body.ok_or_else(|| de::Error::missing_field("body"))?;
        let properties = properties.ok_or_else(|| de::Error::missing_field("properties"))?;
        Ok(Wire {
            body,
            content_type: content_type.flatten(),
            headers: headers.flatten(),
            priority: properties.priority,
            body_encoding: properties.body_encoding,
        })
    }
}

/// Read a priority as kombu's Redis transport does: an integer is clamped
/// into range (`priority=300` is the highest, `-1` the lowest), anything
/// else means the default. A Python worker runs such messages, so we do.
pub(super) fn lenient_priority<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    struct PriorityVisitor;
    impl<'de> Visitor<'de> for PriorityVisitor {
        type Value = Option<u8>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a priority")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<u8>, E> {
            Ok(Some(u8::try_from(v).unwrap_or(u8::MAX)))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<u8>, E> {
            Ok(Some(v.clamp(0, 255) as u8))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<u8>, E> {
            // Python's int(5.7) is 5; NaN cannot reach here from JSON.
            Ok(Some(v.clamp(0.0, 255.0) as u8))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<u8>, E> {
            Ok(v.trim().parse::<i64>().ok().map(|n| n.clamp(0, 255) as u8))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Option<u8>, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<u8>, E> {
            Ok(None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<u8>, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<u8>, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    }
    d.deserialize_any(PriorityVisitor)
}

/// Fill `slot` with the value of key `name`, refusing a second one.
fn once<T, E: de::Error>(slot: &mut Option<T>, name: &'static str, value: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(name));
    }
    *slot = Some(value);
    Ok(())
}

/// Parse all of `bytes` as one JSON value with `visitor`.
///
/// The whole input's UTF-8 is checked first, in one fast pass, so that the
/// parser can read it as `&str` and skip its own check of every string
/// (half of its work on a task message); input that is not UTF-8 is read
/// as bytes, which finds and names the bad byte.
fn read_all<'de, V: Visitor<'de>>(bytes: &'de [u8], visitor: V) -> serde_json::Result<V::Value> {
    match std::str::from_utf8(bytes) {
        Ok(text) => read_to_end(serde_json::de::StrRead::new(text), visitor),
        Err(_) => read_to_end(serde_json::de::SliceRead::new(bytes), visitor),
    }
}

/// Parse one JSON value from `input` with `visitor` (objects and arrays go
/// to its `visit_map`/`visit_seq`), and refuse anything after it.
fn read_to_end<'de, R, V>(input: R, visitor: V) -> serde_json::Result<V::Value>
where
    R: serde_json::de::Read<'de>,
    V: Visitor<'de>,
{
    let mut de = serde_json::Deserializer::new(input);
    let value = de.deserialize_any(visitor)?;
    de.end()?;
    Ok(value)
}

/// A decoded body: positional arguments, keyword arguments, links.
pub(super) type Body = (Vec<Value>, Map<String, Value>, Embed);

/// Read the body `[args, kwargs, embed]`; `null` or a missing element
/// means empty.
pub(super) fn read_body(body: &[u8]) -> Result<Body, ProtocolError> {
    let failure = Cell::new(None);
    let read = read_all(body, BodyVisitor { failure: &failure });
    read.map_err(|e| {
        if failure.get().is_none() && super::codec::has_non_finite(body) {
            return ProtocolError::NonFinite;
        }
        body_error(failure.take(), e)
    })
}

/// Read the body `[args, kwargs, embed]` from a value already parsed
/// (a msgpack body), with the same rules and errors as [`read_body`].
pub(super) fn body_from_value(body: Value) -> Result<Body, ProtocolError> {
    let failure = Cell::new(None);
    let read = body.deserialize_any(BodyVisitor { failure: &failure });
    read.map_err(|e| body_error(failure.take(), e))
}

fn body_error(failure: Option<BodyFailure>, e: serde_json::Error) -> ProtocolError {
    ProtocolError::Body(match failure {
        Some(BodyFailure::NotAnArray) => "expected the array [args, kwargs, embed]".into(),
        Some(BodyFailure::Length(n)) => {
            format!("expected 3 elements [args, kwargs, embed], found {n}")
        }
        Some(BodyFailure::Args(kind)) => format!("args must be an array, found {kind}"),
        Some(BodyFailure::Kwargs(kind)) => format!("kwargs must be an object, found {kind}"),
        Some(BodyFailure::Embed) => format!("embed: {e}"),
        None => e.to_string(),
    })
}

/// What was wrong with a body, in the words `from_slice` uses.
#[derive(Clone, Copy)]
enum BodyFailure {
    NotAnArray,
    Length(usize),
    Args(&'static str),
    Kwargs(&'static str),
    Embed,
}

struct BodyVisitor<'f> {
    failure: &'f Cell<Option<BodyFailure>>,
}

impl BodyVisitor<'_> {
    fn fail<T, E: de::Error>(&self, why: BodyFailure) -> Result<T, E> {
        self.failure.set(Some(why));
        Err(E::custom("malformed body"))
    }
}

impl<'de> Visitor<'de> for BodyVisitor<'_> {
    type Value = Body;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the array [args, kwargs, embed]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Body, A::Error> {
        let args = match seq.next_element::<Value>()? {
            None => return self.fail(BodyFailure::Length(0)),
            Some(Value::Array(list)) => list,
            Some(Value::Null) => Vec::new(),
            Some(other) => return self.fail(BodyFailure::Args(kind_of(&other))),
        };
        let kwargs = match seq.next_element::<Value>()? {
            Some(Value::Object(map)) => map,
            Some(Value::Null) | None => Map::new(),
            Some(other) => return self.fail(BodyFailure::Kwargs(kind_of(&other))),
        };
        self.failure.set(Some(BodyFailure::Embed));
        let embed = seq.next_element::<Option<Embed>>()?.flatten();
        self.failure.set(None);
        let mut count = 3;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            count += 1;
        }
        if count > 3 {
            return self.fail(BodyFailure::Length(count));
        }
        Ok((args, kwargs, embed.unwrap_or_default()))
    }

    // Anything but an array.
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Body, A::Error> {
        self.fail(BodyFailure::NotAnArray)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Body, E> {
        self.fail(BodyFailure::NotAnArray)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Body, E> {
        self.fail(BodyFailure::NotAnArray)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Body, E> {
        self.fail(BodyFailure::NotAnArray)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Body, E> {
        self.fail(BodyFailure::NotAnArray)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Body, E> {
        self.fail(BodyFailure::NotAnArray)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Body, E> {
        self.fail(BodyFailure::NotAnArray)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_error(text: &str) -> String {
        match read_body(text.as_bytes()) {
            Err(ProtocolError::Body(why)) => why,
            other => panic!("{text}: expected a body error, got {other:?}"),
        }
    }

    #[test]
    fn reads_bodies_with_missing_and_null_parts() {
        let (args, kwargs, embed) =
            read_body(br#"[[1, "a"], {"k": 2}, {"chain": [1]}]"#).expect("body");
        assert_eq!(args, vec![Value::from(1), Value::from("a")]);
        assert_eq!(kwargs.get("k"), Some(&Value::from(2)));
        assert_eq!(embed.chain, Some(serde_json::json!([1])));
        let (args, kwargs, embed) = read_body(b"[null, null, null]").expect("nulls");
        assert!(args.is_empty() && kwargs.is_empty() && embed == Embed::default());
        let (args, kwargs, _) = read_body(b"[[7]]").expect("args only");
        assert_eq!((args.len(), kwargs.len()), (1, 0));
    }

    #[test]
    fn names_what_is_wrong_with_a_body() {
        assert_eq!(body_error("{}"), "expected the array [args, kwargs, embed]");
        assert_eq!(
            body_error("null"),
            "expected the array [args, kwargs, embed]"
        );
        assert_eq!(
            body_error("[]"),
            "expected 3 elements [args, kwargs, embed], found 0"
        );
        assert_eq!(
            body_error("[[], {}, {}, 4, 5]"),
            "expected 3 elements [args, kwargs, embed], found 5"
        );
        assert_eq!(
            body_error("[1, {}, {}]"),
            "args must be an array, found a number"
        );
        assert_eq!(
            body_error("[[], [], {}]"),
            "kwargs must be an object, found an array"
        );
        assert!(body_error("[[], {}, 5]").starts_with("embed: invalid type"));
        assert!(body_error("[[], {}").contains("EOF"));
        assert!(body_error("[[], {}, {}] trailing").contains("trailing"));
    }

    #[test]
    fn envelope_errors_name_the_part_that_failed() {
        let headers_wrong = br#"{"body": "", "headers": {"task": "t", "id": 5}, "properties": {}}"#;
        assert!(matches!(
            read_envelope(headers_wrong),
            Err(ProtocolError::Headers(_))
        ));
        let properties_wrong = br#"{"body": "", "headers": {"task": "t", "id": "i"}, "properties": {"body_encoding": 5}}"#;
        assert!(matches!(
            read_envelope(properties_wrong),
            Err(ProtocolError::Envelope(_))
        ));
        let twice = br#"{"body": "", "body": "", "properties": {}}"#;
        match read_envelope(twice) {
            Err(ProtocolError::Envelope(why)) => {
                assert!(why.contains("duplicate field `body`"), "{why}")
            }
            _ => panic!("a repeated body is refused"),
        }
        match read_envelope(br#"{"properties": {}}"#) {
            Err(ProtocolError::Envelope(why)) => {
                assert!(why.contains("missing field `body`"), "{why}")
            }
            _ => panic!("a missing body is refused"),
        }
    }

    #[test]
    fn priorities_are_read_as_kombu_reads_them() {
        for (sent, read) in [
            ("300", Some(255)),
            ("-1", Some(0)),
            ("5.7", Some(5)),
            ("\"7\"", Some(7)),
            ("\"high\"", None),
            ("null", None),
            ("[1]", None),
            ("{\"a\": 1}", None),
            ("true", None),
        ] {
            let raw = format!(r#"{{"body": "", "properties": {{"priority": {sent}}}}}"#);
            let wire = read_envelope(raw.as_bytes()).expect(sent);
            assert_eq!(wire.priority, read, "{sent}");
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused_with_where() {
        let raw = b"{\"body\": \"\xff\", \"properties\": {}}";
        match read_envelope(raw) {
            Err(ProtocolError::Envelope(why)) => assert!(why.contains("column"), "{why}"),
            _ => panic!("invalid UTF-8 is refused"),
        }
        assert!(matches!(
            read_body(b"[[\"\xfe\"]]"),
            Err(ProtocolError::Body(_))
        ));
    }

    #[test]
    fn reads_an_envelope_borrowing_its_strings() {
        let raw = br#"{"body": "W10=", "content-type": "application/json", "x": [1, {"y": null}],
            "headers": {"task": "t", "id": "i"}, "properties": {"priority": 6, "body_encoding": "base64"}}"#;
        let wire = read_envelope(raw).expect("envelope");
        assert!(matches!(wire.body, Cow::Borrowed("W10=")));
        assert_eq!(wire.content_type.as_deref(), Some("application/json"));
        assert_eq!(wire.headers.map(|h| h.task), Some("t".to_owned()));
        assert_eq!(
            (wire.priority, wire.body_encoding.as_deref()),
            (Some(6), Some("base64"))
        );
        let v1 = read_envelope(br#"{"body": "", "headers": {"lang": "py"}, "properties": {}}"#)
            .expect("v1");
        assert!(v1.headers.is_none());
    }
}
