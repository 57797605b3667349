//! A signature's `apply_async` options (`task_id`, `queue`, `priority`,
//! `countdown`, `eta`, `expires`, limits, `link`/`link_error`, group) read
//! into [`SendOptions`], each refused by name when it has the wrong type.

use std::time::Duration;

use serde_json::{Map, Value};

use super::apply::option_str;
use super::CanvasError;
use crate::protocol::time;
use crate::SendOptions;

/// A signature's `apply_async` options as [`SendOptions`].
pub(super) fn send_options(
    options: &Map<String, Value>,
    inherited: Option<u8>,
) -> Result<SendOptions, CanvasError> {
    let bad =
        |name: &str, what: &str| CanvasError::Malformed(format!("option `{name}` must be {what}"));
    let seconds = |name: &str| -> Result<Option<f64>, CanvasError> {
        match options.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Some)
                .ok_or_else(|| bad(name, "a number of seconds")),
        }
    };
    let mut send = SendOptions::new();
    if let Some(id) = option_str(options, "task_id") {
        send = send.task_id(id);
    }
    if let Some(queue) = option_str(options, "queue").or_else(|| option_str(options, "routing_key"))
    {
        send = send.queue(queue);
    }
    match options.get("priority") {
        None | Some(Value::Null) => {
            if let Some(p) = inherited {
                send = send.priority(p.min(9));
            }
        }
        Some(v) => {
            let p = v.as_u64().ok_or_else(|| bad("priority", "an integer"))?;
            send = send.priority(p.min(9) as u8);
        }
    }
    if let Some(s) = seconds("countdown")? {
        send = send.countdown(Duration::from_secs_f64(s));
    }
    if let Some(eta) = options.get("eta").filter(|v| !v.is_null()) {
        let at = eta
            .as_str()
            .and_then(time::parse)
            .ok_or_else(|| bad("eta", "an ISO-8601 time"))?;
        send = send.eta(at);
    }
    match options.get("expires") {
        None | Some(Value::Null) => {}
        Some(Value::String(at)) => {
            send = send.expires_at(
                time::parse(at).ok_or_else(|| bad("expires", "an ISO-8601 time or seconds"))?,
            );
        }
        Some(_) => {
            let s = seconds("expires")?.unwrap_or_default();
            send = send.expires_in(Duration::from_secs_f64(s));
        }
    }
    if let Some(s) = seconds("time_limit")? {
        send = send.time_limit(s);
    }
    if let Some(s) = seconds("soft_time_limit")? {
        send = send.soft_time_limit(s);
    }
    if let Some(ignore) = options.get("ignore_result").and_then(Value::as_bool) {
        send = send.ignore_result(ignore);
    }
    for (name, slot) in [
        ("link", &mut send.embed.callbacks),
        ("link_error", &mut send.embed.errbacks),
    ] {
        if let Some(list) = options.get(name).filter(|v| !v.is_null()) {
            let list = match list {
                Value::Array(_) => list.clone(),
                single => Value::Array(vec![single.clone()]),
            };
            *slot = Some(list);
        }
    }
    if let Some(group) = option_str(options, "group_id") {
        let index = options.get("group_index").and_then(Value::as_i64);
        send.group = Some((group, index));
    }
    Ok(send)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Signature;
    use serde_json::json;

    fn add(args: Vec<Value>) -> Signature {
        Signature::new("tasks.add", args, Map::new())
    }

    #[test]
    fn options_are_read_or_refused_by_name() {
        let object = |v: Value| v.as_object().cloned().unwrap_or_default();
        let link = add(vec![]).to_value();
        let ok = send_options(
            &object(json!({"queue": "q", "priority": 7, "countdown": 1.5, "link": link})),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.task.queue.as_deref(), Some("q"));
        assert_eq!(ok.task.priority, Some(7));
        assert!(matches!(ok.embed.callbacks, Some(Value::Array(ref l)) if l.len() == 1));
        let bad = send_options(&object(json!({"countdown": "soon"})), None);
        let err = bad.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("countdown"), "{err}");
    }
}
