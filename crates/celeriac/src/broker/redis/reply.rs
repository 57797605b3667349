//! Reading what `reserve.lua` returns, and the `unacked` entries it writes.

use crate::broker::Delivery;
use crate::{Error, Result};

/// The end of a message's `unacked` entry, `[message, "", queue]`: the
/// anonymous exchange with the queue's name as routing key sends a restored
/// message (by kombu or by us) back to exactly the queue it was taken from.
pub(super) fn unacked_tail(queue: &str) -> String {
    let quoted = serde_json::Value::from(queue).to_string();
    format!(r#","",{quoted}]"#)
}

/// Read `reserve.lua`'s reply: the count of due delayed messages, then per
/// list its index, a count and that many messages, tagged in order.
pub(super) fn parse_reserved(
    reply: Vec<redis::Value>,
    tag_prefix: &str,
    list_queue: &[&str],
) -> Result<Vec<Delivery>> {
    use redis::FromRedisValue;
    let bad = |what: &str| Error::broker("reading a Redis reservation", what.to_owned());
    let int = |value: Option<redis::Value>, what: &str| -> Result<usize> {
        let value = value.ok_or_else(|| bad(what))?;
        usize::from_redis_value(&value).map_err(|e| bad(&e.to_string()))
    };
    let mut fields = reply.into_iter();
    int(fields.next(), "empty reply from the reserve script")?;
    let mut out = Vec::with_capacity(fields.len());
    while let Some(index) = fields.next() {
        let index = int(Some(index), "list index")?;
        let queue = index
            .checked_sub(1)
            .and_then(|i| list_queue.get(i))
            .ok_or_else(|| bad("list index out of range"))?;
        let count = int(fields.next(), "message count")?;
        for _ in 0..count {
            // Taken, not copied: payloads are most of the reply's bytes.
            let payload = match fields.next() {
                Some(redis::Value::BulkString(bytes)) => bytes,
                Some(other) => {
                    Vec::<u8>::from_redis_value(&other).map_err(|e| bad(&e.to_string()))?
                }
                None => return Err(bad("fewer messages than counted")),
            };
            out.push(Delivery {
                tag: numbered(tag_prefix, out.len() + 1),
                queue: (*queue).to_owned(),
                redelivered: marked_redelivered(&payload),
                payload,
            });
        }
    }
    Ok(out)
}

/// `prefix` followed by `n` in decimal (`format!` costs more, once per
/// message).
fn numbered(prefix: &str, n: usize) -> String {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n);
    let mut tag = String::with_capacity(prefix.len() + digits.len());
    tag.push_str(prefix);
    tag.push_str(digits);
    tag
}

/// Whether kombu marked this message redelivered when it restored it (it
/// sets `redelivered` in the headers and the delivery info).
fn marked_redelivered(payload: &[u8]) -> bool {
    use memchr::memmem::Finder;
    use std::sync::LazyLock;
    const KEY: &[u8] = br#""redelivered""#;
    // Built once: a searcher's setup costs more than a search of 1 KB.
    static FINDER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(KEY));
    FINDER.find_iter(payload).any(|at| {
        let rest = payload.get(at + KEY.len()..).unwrap_or_default();
        rest.trim_ascii_start()
            .strip_prefix(b":")
            .is_some_and(|value| value.trim_ascii_start().starts_with(b"true"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> redis::Value {
        redis::Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn reserved_messages_are_tagged_in_order_across_lists() {
        let reply = vec![
            redis::Value::Int(0),
            redis::Value::Int(1),
            redis::Value::Int(2),
            bulk("a"),
            bulk(r#"{"redelivered": true}"#),
            redis::Value::Int(3),
            redis::Value::Int(1),
            bulk("c"),
        ];
        let got = parse_reserved(reply, "me.7.", &["x", "y", "x", "y"]).expect("parse");
        let seen: Vec<(&str, &str, bool)> = got
            .iter()
            .map(|d| (d.tag.as_str(), d.queue.as_str(), d.redelivered))
            .collect();
        assert_eq!(
            seen,
            [
                ("me.7.1", "x", false),
                ("me.7.2", "x", true),
                ("me.7.3", "x", false)
            ]
        );
    }

    #[test]
    fn tags_number_in_decimal() {
        for n in [0, 1, 9, 10, 512, 1_000_007, usize::MAX] {
            assert_eq!(numbered("c.3.", n), format!("c.3.{n}"));
        }
    }

    #[test]
    fn redelivered_is_read_in_either_spelling() {
        assert!(marked_redelivered(br#"{"a": 1, "redelivered": true}"#));
        assert!(marked_redelivered(br#"{"a":1,"redelivered":true}"#));
        assert!(!marked_redelivered(br#"{"redelivered": false}"#));
        assert!(!marked_redelivered(b""));
        assert!(!marked_redelivered(br#"{"redelivered""#));
        assert!(marked_redelivered(
            br#"{"x": "redelivered", "redelivered" :  true}"#
        ));
    }

    #[test]
    fn a_short_or_misnumbered_reply_is_an_error_not_a_panic() {
        // (list index, message count) for a reply carrying one message:
        // more counted than sent, a list that does not exist, list 0.
        for (index, count) in [(1, 2), (5, 1), (0, 1)] {
            let reply = vec![
                redis::Value::Int(0),
                redis::Value::Int(index),
                redis::Value::Int(count),
                bulk("a"),
            ];
            assert!(
                parse_reserved(reply, "p.", &["q"]).is_err(),
                "index {index}, count {count}"
            );
        }
        assert!(parse_reserved(Vec::new(), "p.", &["q"]).is_err());
    }

    #[test]
    fn the_unacked_entry_routes_back_to_the_queue_by_name() {
        assert_eq!(unacked_tail("celery"), r#","","celery"]"#);
        assert_eq!(unacked_tail(r#"we"ird"#), r#","","we\"ird"]"#);
        let entry = format!("[{{\"body\": 1}}{}", unacked_tail("q"));
        let parsed: serde_json::Value = serde_json::from_str(&entry).expect("json");
        assert_eq!(parsed, serde_json::json!([{"body": 1}, "", "q"]));
    }
}
