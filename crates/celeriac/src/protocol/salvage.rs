//! Who a message that cannot be decoded was for.
//!
//! When [`super::TaskMessage::decode`] refuses a message, its caller may
//! still be waiting on the task id. This second, lenient reading looks only
//! for the id and task name: `headers.id` and `headers.task` when they are
//! strings, else `properties.correlation_id` (kombu sets it to the task id,
//! in protocol v1 too). Everything else is skipped unread, whatever its
//! type, and what was seen before a syntax error is kept, so a message
//! whose body or tail is broken still names its task. It is the slow path:
//! it runs only for refused messages.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

/// The task a message was for, read from a message that could not be
/// decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageIdentity {
    /// The task id (`headers.id`, or `properties.correlation_id`).
    pub id: String,
    /// The task name (`headers.task`), when readable.
    pub task: Option<String>,
}

#[derive(Default)]
struct Seen {
    id: Option<String>,
    task: Option<String>,
    correlation_id: Option<String>,
}

/// The id (and name) of the task in `bytes`, if they can be read at all.
pub fn identify(bytes: &[u8]) -> Option<MessageIdentity> {
    let seen = RefCell::new(Seen::default());
    let visitor = EnvelopeIds { seen: &seen };
    // Errors are expected here: the message was refused. What was read
    // before one is kept in `seen`.
    let _ = match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::Deserializer::from_str(text).deserialize_map(visitor),
        Err(_) => serde_json::Deserializer::from_slice(bytes).deserialize_map(visitor),
    };
    let seen = seen.into_inner();
    let id = seen
        .id
        .or(seen.correlation_id)
        .filter(|id| !id.is_empty())?;
    Some(MessageIdentity {
        id,
        task: seen.task,
    })
}

struct EnvelopeIds<'s> {
    seen: &'s RefCell<Seen>,
}

impl<'de> Visitor<'de> for EnvelopeIds<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a kombu envelope")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<KeyName>()? {
            match key.0.as_deref() {
                Some("headers") => map.next_value_seed(Fields {
                    seen: self.seen,
                    headers: true,
                })?,
                Some("properties") => map.next_value_seed(Fields {
                    seen: self.seen,
                    headers: false,
                })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Reads `id`/`task` (headers) or `correlation_id` (properties) from a map,
/// and anything else without complaint.
struct Fields<'s> {
    seen: &'s RefCell<Seen>,
    headers: bool,
}

impl<'de> de::DeserializeSeed<'de> for Fields<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Fields<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<KeyName>()? {
            let slot = match (self.headers, key.0.as_deref()) {
                (true, Some("id")) => Some(0),
                (true, Some("task")) => Some(1),
                (false, Some("correlation_id")) => Some(2),
                _ => None,
            };
            let Some(slot) = slot else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let text = map.next_value::<Lenient>()?.0;
            let mut seen = self.seen.borrow_mut();
            match slot {
                0 => seen.id = text,
                1 => seen.task = text,
                _ => seen.correlation_id = text,
            }
        }
        Ok(())
    }

    // Not a map (e.g. `"headers": null`): nothing to read.
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

/// A map key as text (`None` only if it cannot be read as one).
struct KeyName(Option<String>);

impl<'de> Deserialize<'de> for KeyName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(KeyName(Some(String::deserialize(deserializer)?)))
    }
}

/// A string, or `None` for a value of any other type.
struct Lenient(Option<String>);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(Lenient(match value {
            serde_json::Value::String(s) => Some(s),
            _ => None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_of(text: &[u8]) -> Option<(String, Option<String>)> {
        identify(text).map(|m| (m.id, m.task))
    }

    #[test]
    fn reads_the_id_from_messages_decode_refuses() {
        let whole = (String::from("i1"), Some(String::from("t")));
        for text in [
            // Body not base64, wrong header types, bad priority.
            &br#"{"body": "%%%", "headers": {"id": "i1", "task": "t", "eta": 5}, "properties": {"priority": "high"}}"#[..],
            // Broken after the headers.
            br#"{"headers": {"task": "t", "id": "i1"}, "body": "abc"#,
            br#"{"headers": {"task": "t", "id": "i1", "x": [1, {"y": NaN}]}, "body": ""}"#,
            b"{\"headers\": {\"task\": \"t\", \"id\": \"i1\"}, \"body\": \"\xff\"}",
        ] {
            assert_eq!(id_of(text), Some(whole.clone()), "{}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn falls_back_to_the_correlation_id() {
        let v1 = br#"{"body": "e30=", "headers": {}, "properties": {"correlation_id": "c9"}}"#;
        assert_eq!(id_of(v1), Some(("c9".into(), None)));
        let typed =
            br#"{"headers": {"id": 5, "task": ["x"]}, "properties": {"correlation_id": "c9"}}"#;
        assert_eq!(id_of(typed), Some(("c9".into(), None)));
    }

    #[test]
    fn gives_up_when_no_id_is_readable() {
        for text in [
            &b"not json"[..],
            b"[1, 2]",
            br#"{"headers": null, "properties": 4}"#,
            br#"{"headers": {"id": ""}}"#,
            br#"{"body": "x", "headers": {"id""#,
        ] {
            assert_eq!(id_of(text), None, "{}", String::from_utf8_lossy(text));
        }
    }
}
