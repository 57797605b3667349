//! `celeriac events --dump`: one line per event, as `celery events --dump`
//! (Celery's `Dumper`) prints them:
//!
//! ```text
//! w1@host [2024-05-01 12:00:00.123456+00:00] task received: tasks.add(<id>) args=(2, 3) kwargs={} clock=4, …
//! w1@host [2024-05-01 12:00:00.125000+00:00] task succeeded: tasks.add(<id>) args=(2, 3) kwargs={} clock=6, result=5, runtime=0.001, …
//! w1@host [2024-05-01 12:00:02+00:00] heartbeat: active=0, clock=7, freq=2.0, …
//! ```
//!
//! A task's name and arguments come from its `task-received` (or
//! `task-sent`) event and are remembered for its later events, as Celery
//! remembers the last 4,095.

use std::collections::{HashMap, VecDeque};

use celeriac::protocol::Event;
use chrono::{DateTime, Timelike};
use serde_json::{Map, Value};

/// Task descriptions remembered (Celery's `LRUCache(limit=0xFFF)`).
const REMEMBERED: usize = 0xFFF;

/// Turns events into Celery's dump lines.
#[derive(Default)]
pub(super) struct Dumper {
    tasks: HashMap<String, String>,
    order: VecDeque<String>,
}

impl Dumper {
    /// The line for `event` (not yet made printable).
    pub(super) fn line(&mut self, event: &Event) -> String {
        let mut fields: Map<String, Value> = event.fields.clone();
        let timestamp = fields
            .remove("timestamp")
            .and_then(|t| t.as_f64())
            .map(python_utc)
            .unwrap_or_default();
        let kind = text(fields.remove("type")).to_lowercase();
        let hostname = text(fields.remove("hostname"));
        if kind.starts_with("task-") {
            let uuid = text(fields.remove("uuid"));
            let task = if kind == "task-received" || kind == "task-sent" {
                let task = format!(
                    "{}({uuid}) args={} kwargs={}",
                    text(fields.remove("name")),
                    text(fields.remove("args")),
                    text(fields.remove("kwargs"))
                );
                self.remember(&uuid, &task);
                task
            } else {
                self.tasks.get(&uuid).cloned().unwrap_or_default()
            };
            let rest = joined(&fields);
            let sep = if rest.is_empty() { "" } else { ":" };
            return format!(
                "{hostname} [{timestamp}] {}{sep} {task} {rest}",
                humanize(&kind)
            );
        }
        let rest = joined(&fields);
        let sep = if rest.is_empty() { "" } else { ":" };
        format!("{hostname} [{timestamp}] {}{sep} {rest}", humanize(&kind))
    }

    fn remember(&mut self, uuid: &str, task: &str) {
        if self
            .tasks
            .insert(uuid.to_owned(), task.to_owned())
            .is_none()
        {
            self.order.push_back(uuid.to_owned());
            while self.order.len() > REMEMBERED {
                if let Some(oldest) = self.order.pop_front() {
                    self.tasks.remove(&oldest);
                }
            }
        }
    }
}

/// Celery's names for worker events; the others with `-` as a space.
fn humanize(kind: &str) -> String {
    match kind {
        "worker-offline" => "shutdown".to_owned(),
        "worker-online" => "started".to_owned(),
        "worker-heartbeat" => "heartbeat".to_owned(),
        other => other.replace('-', " "),
    }
}

/// Python's `str()` of a field: strings as they are, the rest as reprs.
fn text(value: Option<Value>) -> String {
    match value {
        Some(Value::String(s)) => s,
        Some(other) => celeriac::python_repr(&other),
        None => "None".to_owned(),
    }
}

/// `key=value, …` sorted by key.
fn joined(fields: &Map<String, Value>) -> String {
    let mut keys: Vec<&String> = fields.keys().collect();
    keys.sort();
    keys.iter()
        .map(|k| format!("{k}={}", text(fields.get(*k).cloned())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Python's `str(datetime.fromtimestamp(ts, timezone.utc))`.
fn python_utc(seconds: f64) -> String {
    let Some(time) = DateTime::from_timestamp_micros((seconds * 1e6).round() as i64) else {
        return seconds.to_string();
    };
    if time.nanosecond() == 0 {
        time.format("%Y-%m-%d %H:%M:%S+00:00").to_string()
    } else {
        time.format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(fields: Value) -> Event {
        Event {
            fields: fields.as_object().cloned().expect("an object"),
        }
    }

    #[test]
    fn lines_read_as_celerys_dumper_writes_them() {
        let mut dumper = Dumper::default();
        let received = event(json!({
            "type": "task-received", "hostname": "w1@h", "timestamp": 1714564800.5,
            "uuid": "id-1", "name": "tasks.add", "args": "(2, 3)", "kwargs": "{}", "clock": 4,
            "retries": 0, "eta": null,
        }));
        assert_eq!(
            dumper.line(&received),
            "w1@h [2024-05-01 12:00:00.500000+00:00] task received: tasks.add(id-1) args=(2, 3) kwargs={} clock=4, eta=None, retries=0"
        );
        let succeeded = event(json!({
            "type": "task-succeeded", "hostname": "w1@h", "timestamp": 1714564801.0,
            "uuid": "id-1", "result": "5", "runtime": 0.25,
        }));
        assert_eq!(
            dumper.line(&succeeded),
            "w1@h [2024-05-01 12:00:01+00:00] task succeeded: tasks.add(id-1) args=(2, 3) kwargs={} result=5, runtime=0.25"
        );
        let unknown = event(
            json!({"type": "task-started", "hostname": "w1@h", "timestamp": 1714564801.0, "uuid": "id-2"}),
        );
        assert_eq!(
            dumper.line(&unknown),
            "w1@h [2024-05-01 12:00:01+00:00] task started  "
        );
        let heartbeat = event(json!({
            "type": "worker-heartbeat", "hostname": "w1@h", "timestamp": 1714564802.0,
            "freq": 2.0, "loadavg": [0.5, 0.25, 0.0], "sw_ident": "celeriac", "active": 0,
        }));
        assert_eq!(
            dumper.line(&heartbeat),
            "w1@h [2024-05-01 12:00:02+00:00] heartbeat: active=0, freq=2.0, loadavg=[0.5, 0.25, 0.0], sw_ident=celeriac"
        );
    }

    #[test]
    fn only_the_latest_task_descriptions_are_remembered() {
        let mut dumper = Dumper::default();
        for n in 0..(REMEMBERED + 10) {
            dumper.remember(&n.to_string(), "t");
        }
        assert_eq!(dumper.tasks.len(), REMEMBERED);
        assert!(!dumper.tasks.contains_key("0"));
        assert!(dumper.tasks.contains_key(&(REMEMBERED + 9).to_string()));
    }
}
