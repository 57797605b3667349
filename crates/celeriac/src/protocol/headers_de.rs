//! Reading [`TaskHeaders`] in one pass.
//!
//! Derived with `#[serde(flatten)]` for the headers we do not model, serde
//! would first buffer every header into its generic `Content` tree and then
//! read the struct out of it: two passes and an allocation per key, for
//! every message a worker takes. This visitor reads each known key straight
//! into its field and keeps only the unknown ones in `extra`.
//!
//! It accepts what the derived reader accepted: `null` for `retries`,
//! `timelimit` and `ignore_result` means the default; a missing `task` or
//! `id` is an error naming the field; a later duplicate key wins.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::message::TaskHeaders;

impl<'de> Deserialize<'de> for TaskHeaders {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let read = deserializer.deserialize_map(HeadersVisitor)?;
        read.complete().map_err(de::Error::missing_field)
    }
}

/// Headers as a queue holds them: `None` when there is no `task` header,
/// i.e. a protocol v1 message (or not a task at all).
pub(crate) struct V2Headers(pub(crate) Option<TaskHeaders>);

impl<'de> Deserialize<'de> for V2Headers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let read = deserializer.deserialize_map(HeadersVisitor)?;
        if read.task.is_none() {
            return Ok(V2Headers(None));
        }
        read.complete()
            .map(Some)
            .map(V2Headers)
            .map_err(de::Error::missing_field)
    }
}

/// What the visitor read; `task` and `id` are checked by the caller.
struct ReadHeaders {
    headers: TaskHeaders,
    task: Option<String>,
    id: Option<String>,
}

impl ReadHeaders {
    /// The headers, or the name of the required field that is missing.
    fn complete(self) -> Result<TaskHeaders, &'static str> {
        let mut h = self.headers;
        h.task = self.task.ok_or("task")?;
        h.id = self.id.ok_or("id")?;
        Ok(h)
    }
}

struct HeadersVisitor;

/// A string (a map key, say), borrowed from the input when it has no
/// escapes (serde's own `Cow<str>` always copies).
pub(super) struct Text<'de>(pub(super) std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(v.into()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(v.to_owned().into()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(v.into()))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// A header value that may be `null`, read as the type's default.
fn or_default<'de, A, T>(map: &mut A) -> Result<T, A::Error>
where
    A: MapAccess<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(map.next_value::<Option<T>>()?.unwrap_or_default())
}

impl<'de> Visitor<'de> for HeadersVisitor {
    type Value = ReadHeaders;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of Celery task headers")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ReadHeaders, A::Error> {
        let mut h = TaskHeaders::new("", "");
        h.lang = None;
        h.root_id = None;
        let (mut task, mut id) = (None, None);
        let mut extra = Map::new();
        // Keys borrow from the input when they can: no allocation for the
        // ~20 known names.
        while let Some(Text(key)) = map.next_key()? {
            match key.as_ref() {
                "task" => task = Some(map.next_value::<String>()?),
                "id" => id = Some(map.next_value::<String>()?),
                "lang" => h.lang = map.next_value()?,
                "root_id" => h.root_id = map.next_value()?,
                "parent_id" => h.parent_id = map.next_value()?,
                "group" => h.group = map.next_value()?,
                "group_index" => h.group_index = map.next_value()?,
                "retries" => h.retries = or_default(&mut map)?,
                "eta" => h.eta = map.next_value()?,
                "expires" => h.expires = map.next_value()?,
                "timelimit" => h.timelimit = or_default(&mut map)?,
                "argsrepr" => h.argsrepr = map.next_value()?,
                "kwargsrepr" => h.kwargsrepr = map.next_value()?,
                "origin" => h.origin = map.next_value()?,
                "shadow" => h.shadow = map.next_value()?,
                "ignore_result" => h.ignore_result = or_default(&mut map)?,
                "stamped_headers" => h.stamped_headers = map.next_value()?,
                "stamps" => h.stamps = map.next_value()?,
                _ => {
                    let value: Value = map.next_value()?;
                    extra.insert(key.into_owned(), value);
                }
            }
        }
        h.extra = extra;
        Ok(ReadHeaders {
            headers: h,
            task,
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_known_headers_nulls_and_keeps_unknown_ones() {
        let h: TaskHeaders = serde_json::from_value(json!({
            "task": "tasks.add", "id": "abc", "lang": "py", "retries": null,
            "timelimit": [30, null], "ignore_result": null, "eta": "2024-01-01T00:00:00",
            "custom": {"x": 1}, "group_index": 2
        }))
        .expect("headers");
        assert_eq!((h.task.as_str(), h.id.as_str()), ("tasks.add", "abc"));
        assert_eq!(h.lang.as_deref(), Some("py"));
        assert_eq!(h.root_id, None);
        assert_eq!(h.retries, 0);
        assert_eq!(h.timelimit, (Some(30.0), None));
        assert!(!h.ignore_result);
        assert_eq!(h.group_index, Some(2));
        assert_eq!(h.extra.get("custom"), Some(&json!({"x": 1})));
        assert_eq!(h.extra.len(), 1);
    }

    #[test]
    fn names_a_missing_or_mistyped_field() {
        let err = serde_json::from_value::<TaskHeaders>(json!({"task": "t"})).expect_err("no id");
        assert!(err.to_string().contains("missing field `id`"), "{err}");
        let err =
            serde_json::from_value::<TaskHeaders>(json!({"task": "t", "id": "i", "retries": "x"}))
                .expect_err("retries is not a number");
        assert!(err.to_string().contains("invalid type"), "{err}");
        let err = serde_json::from_str::<TaskHeaders>("[1]").expect_err("not a map");
        assert!(err.to_string().contains("task headers"), "{err}");
    }

    #[test]
    fn serializes_and_reads_back_the_same() {
        let mut h = TaskHeaders::new("tasks.add", "abc");
        h.extra.insert("x-custom".into(), json!([1, 2]));
        h.timelimit = (Some(1.5), Some(2.0));
        let back: TaskHeaders =
            serde_json::from_slice(&serde_json::to_vec(&h).expect("json")).expect("back");
        assert_eq!(back, h);
    }
}
