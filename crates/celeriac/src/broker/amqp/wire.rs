//! A kombu message as AMQP carries it, and back.
//!
//! kombu's pyamqp transport publishes a message as `basic_publish` with the
//! body bytes as they are (the JSON of `[args, kwargs, embed]`, no base64),
//! the task headers as AMQP `application_headers`, and `content_type`,
//! `content_encoding`, `delivery_mode`, `priority`, `correlation_id` and
//! `reply_to` as AMQP properties. The worker reads the kombu envelope the
//! Redis transport stores, so a delivery is turned into that envelope here
//! (body base64, `delivery_info` from the delivery), and an envelope into
//! the AMQP message on the way out.

use base64::Engine as _;
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use lapin::BasicProperties;
use serde_json::{Map, Number, Value};

use crate::protocol::{DeliveryInfo, Envelope, Properties};
use crate::{Error, Result};

/// A message ready for `basic_publish`.
#[derive(Debug, Clone)]
pub(crate) struct AmqpMessage {
    /// AMQP properties, task headers included.
    pub(crate) properties: BasicProperties,
    /// The body bytes, as the producer serialized them.
    pub(crate) body: Vec<u8>,
}

/// An AMQP short string (at most 255 bytes), or a typed error naming `what`.
pub(crate) fn short(what: &'static str, text: &str) -> Result<ShortString> {
    ShortString::try_new(text).map_err(|e| Error::broker(what, e.to_string()))
}

/// The AMQP message for a stored kombu envelope (as the worker and the
/// producer build them).
///
/// # Errors
/// When `payload` is not an envelope, its body is not valid base64, or a
/// property is longer than AMQP allows.
pub(crate) fn from_envelope(payload: &[u8]) -> Result<AmqpMessage> {
    let envelope = Envelope::from_slice(payload)?;
    let body = if envelope.properties.body_encoding == "base64" {
        base64::engine::general_purpose::STANDARD
            .decode(envelope.body.as_bytes())
            .map_err(|e| crate::protocol::ProtocolError::Base64(e.to_string()))?
    } else {
        envelope.body.into_bytes()
    };
    let p = &envelope.properties;
    let mut properties = BasicProperties::default()
        .with_content_type(short("content type", &envelope.content_type)?)
        .with_content_encoding(short("content encoding", &envelope.content_encoding)?)
        .with_headers(table(&envelope.headers))
        .with_delivery_mode(p.delivery_mode);
    if let Some(priority) = p.priority {
        properties = properties.with_priority(priority);
    }
    if let Some(id) = &p.correlation_id {
        properties = properties.with_correlation_id(short("correlation id", id)?);
    }
    if let Some(reply_to) = &p.reply_to {
        properties = properties.with_reply_to(short("reply_to", reply_to)?);
    }
    Ok(AmqpMessage { properties, body })
}

/// The kombu envelope for a delivered AMQP message, as the Redis transport
/// would have stored it: what the worker decodes.
pub(crate) fn to_envelope(
    properties: &BasicProperties,
    body: &[u8],
    exchange: &str,
    routing_key: &str,
    tag: &str,
) -> Vec<u8> {
    let headers = properties
        .headers()
        .as_ref()
        .map(json_map)
        .unwrap_or_default();
    let text = |s: &Option<ShortString>| s.as_ref().map(|s| s.as_str().to_owned());
    let envelope = Envelope {
        body: base64::engine::general_purpose::STANDARD.encode(body),
        content_encoding: text(properties.content_encoding()).unwrap_or_else(|| "utf-8".into()),
        content_type: text(properties.content_type()).unwrap_or_else(|| "application/json".into()),
        headers,
        properties: Properties {
            correlation_id: text(properties.correlation_id()),
            reply_to: text(properties.reply_to()),
            delivery_mode: properties.delivery_mode().unwrap_or(2),
            delivery_info: DeliveryInfo {
                exchange: exchange.to_owned(),
                routing_key: routing_key.to_owned(),
                extra: Map::new(),
            },
            priority: *properties.priority(),
            body_encoding: "base64".into(),
            delivery_tag: tag.to_owned(),
            extra: Map::new(),
        },
    };
    envelope.to_vec()
}

/// JSON → AMQP field table, typed as py-amqp writes Python values (`S`
/// strings, `I`/`l` integers, `d` floats, `t` booleans, `V` None, `A`
/// lists, `F` dicts).
pub(crate) fn table(map: &Map<String, Value>) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in map {
        // A key over 255 bytes cannot travel in AMQP; kombu cannot send one either.
        if let Ok(key) = ShortString::try_new(key.as_str()) {
            table.insert(key, value_of(value));
        }
    }
    table
}

fn value_of(value: &Value) -> AMQPValue {
    match value {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                match i32::try_from(i) {
                    Ok(small) => AMQPValue::LongInt(small),
                    Err(_) => AMQPValue::LongLongInt(i),
                }
            } else if let Some(u) = n.as_u64() {
                // Above i64::MAX: AMQP has no unsigned 64-bit field RabbitMQ reads.
                AMQPValue::Double(u as f64)
            } else {
                AMQPValue::Double(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_bytes().to_vec())),
        Value::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items.iter().map(value_of).collect::<Vec<_>>(),
        )),
        Value::Object(map) => AMQPValue::FieldTable(table(map)),
    }
}

/// AMQP field table → JSON object (what kombu hands Celery as `headers`).
pub(crate) fn json_map(table: &FieldTable) -> Map<String, Value> {
    table
        .inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), json_of(v)))
        .collect()
}

fn json_of(value: &AMQPValue) -> Value {
    let float = |f: f64| Number::from_f64(f).map_or(Value::Null, Value::Number);
    match value {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(i) => Value::from(*i),
        AMQPValue::ShortShortUInt(i) => Value::from(*i),
        AMQPValue::ShortInt(i) => Value::from(*i),
        AMQPValue::ShortUInt(i) => Value::from(*i),
        AMQPValue::LongInt(i) => Value::from(*i),
        AMQPValue::LongUInt(i) => Value::from(*i),
        AMQPValue::LongLongInt(i) => Value::from(*i),
        AMQPValue::Float(f) => float(f64::from(*f)),
        AMQPValue::Double(f) => float(*f),
        AMQPValue::DecimalValue(d) => float(f64::from(d.value) / 10f64.powi(i32::from(d.scale))),
        AMQPValue::ShortString(s) => Value::String(s.as_str().to_owned()),
        AMQPValue::LongString(s) => {
            Value::String(String::from_utf8_lossy(s.as_bytes()).into_owned())
        }
        AMQPValue::FieldArray(items) => {
            Value::Array(items.as_slice().iter().map(json_of).collect())
        }
        AMQPValue::Timestamp(t) => Value::from(*t),
        AMQPValue::FieldTable(t) => Value::Object(json_map(t)),
        AMQPValue::ByteArray(b) => {
            Value::String(String::from_utf8_lossy(b.as_slice()).into_owned())
        }
        AMQPValue::Void => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn headers_survive_the_round_trip_as_py_amqp_types() {
        let headers = json!({
            "lang": "py", "task": "tasks.add", "id": "abc", "retries": 0,
            "eta": null, "timelimit": [null, 30], "big": 5_000_000_000_i64,
            "ignore_result": false, "stamps": {}, "f": 1.5
        });
        let Value::Object(map) = headers.clone() else {
            panic!("object")
        };
        let table = table(&map);
        assert!(matches!(
            table.inner().get("retries"),
            Some(AMQPValue::LongInt(0))
        ));
        assert!(matches!(
            table.inner().get("big"),
            Some(AMQPValue::LongLongInt(5_000_000_000))
        ));
        assert!(matches!(table.inner().get("eta"), Some(AMQPValue::Void)));
        assert_eq!(Value::Object(json_map(&table)), headers);
    }

    #[test]
    fn an_envelope_becomes_amqp_properties_and_raw_body_and_back() {
        let body = br#"[[2, 3], {}, {"callbacks": null}]"#;
        let mut headers = Map::new();
        headers.insert("task".into(), json!("tasks.add"));
        headers.insert("id".into(), json!("id-1"));
        let envelope = Envelope::new(
            body,
            headers,
            Properties::for_task("id-1", "celery", Some(7)),
        );
        let message = from_envelope(&envelope.to_vec()).expect("converts");
        assert_eq!(message.body, body);
        assert_eq!(*message.properties.priority(), Some(7));
        assert_eq!(
            message
                .properties
                .correlation_id()
                .as_ref()
                .map(|s| s.as_str()),
            Some("id-1")
        );
        let back = to_envelope(
            &message.properties,
            &message.body,
            "celery",
            "celery",
            "1.5",
        );
        let back = Envelope::from_slice(&back).expect("envelope");
        assert_eq!(back.decoded_body().expect("body"), body);
        assert_eq!(back.headers, envelope.headers);
        assert_eq!(back.properties.delivery_tag, "1.5");
        assert_eq!(back.properties.delivery_info.routing_key, "celery");
        assert_eq!(back.properties.priority, Some(7));
    }

    #[test]
    fn refuses_what_amqp_cannot_carry() {
        assert!(from_envelope(b"not json").is_err());
        let long = "x".repeat(300);
        let envelope = Envelope::new(
            b"[]",
            Map::new(),
            Properties::for_task(&long, "celery", None),
        );
        assert!(from_envelope(&envelope.to_vec()).is_err());
    }
}
