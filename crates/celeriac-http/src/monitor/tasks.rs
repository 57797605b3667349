//! Recent tasks: what the monitor remembers about each, and how events and
//! result documents update it.
//!
//! 1. [`TaskRecord`]: one task, from its send (through this API), its
//!    events, and its result document.
//! 2. [`TaskTable`]: the newest `capacity` records, oldest evicted first.
//! 3. State rules shared by events and documents ([`TaskRecord::set_state`]):
//!    a finished state (SUCCESS, FAILURE, REVOKED) is only replaced by
//!    another finished one, and SUCCESS never is — events can arrive late
//!    or out of order (a RETRY's redelivery, a poll racing an event).

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use celeriac::protocol::{Event, ResultMeta};
use serde_json::{Map, Value};

use crate::views::{Progress, TaskView};

/// What a retry needs to send the same call again.
#[derive(Debug, Clone, Default)]
pub(crate) struct SentCall {
    pub(crate) args: Vec<Value>,
    pub(crate) kwargs: Map<String, Value>,
    pub(crate) priority: Option<u8>,
}

/// One task, as far as the monitor knows it.
#[derive(Debug, Clone, Default)]
pub(crate) struct TaskRecord {
    pub(crate) view: TaskView,
    /// The exact call, when sent through this API.
    pub(crate) call: Option<SentCall>,
    /// When the backend was last read for it.
    pub(crate) polled: Option<Instant>,
}

pub(crate) fn is_ready(state: &str) -> bool {
    matches!(state, "SUCCESS" | "FAILURE" | "REVOKED")
}

fn now_secs() -> f64 {
    chrono::Utc::now().timestamp_micros() as f64 / 1e6
}

fn text(event: &Event, key: &str) -> Option<String> {
    match event.fields.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    }
}

fn number(event: &Event, key: &str) -> Option<f64> {
    event.fields.get(key).and_then(Value::as_f64)
}

impl TaskRecord {
    pub(crate) fn new(id: &str) -> Self {
        TaskRecord {
            view: TaskView {
                id: id.to_owned(),
                state: "PENDING".to_owned(),
                known: true,
                ..TaskView::default()
            },
            call: None,
            polled: None,
        }
    }

    /// Move to `state` unless the rules above forbid it; true if it changed.
    pub(crate) fn set_state(&mut self, state: &str) -> bool {
        let current = self.view.state.as_str();
        if current == state || current == "SUCCESS" {
            return false;
        }
        if is_ready(current) && !is_ready(state) {
            return false;
        }
        self.view.state = state.to_owned();
        self.view.ready = is_ready(state);
        if self.view.ready && self.view.finished_at.is_none() {
            self.view.finished_at = Some(now_secs());
        }
        true
    }

    /// Apply a task event; returns the Celery state it stands for.
    pub(crate) fn apply_event(&mut self, event: &Event) -> Option<&'static str> {
        let at = number(event, "timestamp");
        let v = &mut self.view;
        let state = match event.kind() {
            "task-sent" => {
                v.queue = text(event, "queue").or(v.queue.take());
                fill_call_fields(v, event);
                super::groups::from_event(v, event);
                "PENDING"
            }
            "task-received" => {
                fill_call_fields(v, event);
                super::groups::from_event(v, event);
                v.worker = Some(event.hostname().to_owned());
                v.received_at = at;
                "RECEIVED"
            }
            "task-started" => {
                v.worker = Some(event.hostname().to_owned());
                v.started_at = at;
                "STARTED"
            }
            "task-succeeded" => {
                v.result_repr = text(event, "result");
                v.runtime = number(event, "runtime");
                v.finished_at = at;
                "SUCCESS"
            }
            "task-failed" => {
                v.exception = text(event, "exception");
                v.traceback = text(event, "traceback");
                v.finished_at = at;
                "FAILURE"
            }
            "task-retried" => {
                v.exception = text(event, "exception");
                v.traceback = text(event, "traceback");
                "RETRY"
            }
            "task-revoked" => {
                v.finished_at = at;
                "REVOKED"
            }
            "task-rejected" => "REJECTED",
            _ => return None,
        };
        self.set_state(state);
        Some(state)
    }

    /// Apply the backend's document (or its absence).
    pub(crate) fn apply_meta(&mut self, meta: Option<&ResultMeta>) {
        self.polled = Some(Instant::now());
        let Some(meta) = meta else { return };
        let state = meta.status.as_str().to_owned();
        let v = &mut self.view;
        if v.name.is_none() {
            v.name.clone_from(&meta.name);
        }
        if meta.worker.is_some() {
            v.worker.clone_from(&meta.worker);
        }
        if meta.retries.is_some() {
            v.retries = meta.retries.map(u64::from);
        }
        v.date_done.clone_from(&meta.date_done);
        super::groups::from_meta(v, meta);
        let custom = !matches!(
            state.as_str(),
            "PENDING" | "RECEIVED" | "STARTED" | "RETRY" | "REJECTED" | "IGNORED"
        ) && !is_ready(&state);
        if is_ready(&state) {
            v.result = meta.result.clone();
            v.traceback = meta.traceback.clone().or(v.traceback.take());
            if state == "SUCCESS" {
                v.progress = v.progress.map(|p| Progress {
                    current: p.total,
                    percent: 100.0,
                    ..p
                });
            }
            self.set_state(&state);
        } else if custom {
            v.progress = Progress::from_meta(&meta.result).or(v.progress);
            v.result = meta.result.clone();
            self.set_state(&state);
        } else if self.view.state == "PENDING" {
            self.set_state(&state);
        }
    }

    /// Whether `POST …/retry` can send it again.
    pub(crate) fn retryable(&self) -> bool {
        self.view.name.is_some() && self.call_for_retry().is_some()
    }

    /// The call to repeat: the exact one when sent here, else the reprs
    /// read back (only when they are plain literals).
    pub(crate) fn call_for_retry(&self) -> Option<SentCall> {
        if let Some(call) = &self.call {
            return Some(call.clone());
        }
        let args = match self.view.argsrepr.as_deref() {
            Some(repr) => match crate::pyrepr::parse(repr).ok()? {
                Value::Array(items) => items,
                _ => return None,
            },
            None => return None,
        };
        let kwargs = match self.view.kwargsrepr.as_deref() {
            Some(repr) => match crate::pyrepr::parse(repr).ok()? {
                Value::Object(map) => map,
                _ => return None,
            },
            None => Map::new(),
        };
        Some(SentCall {
            args,
            kwargs,
            priority: None,
        })
    }

    /// The view with derived fields filled in.
    pub(crate) fn to_view(&self) -> TaskView {
        let mut view = self.view.clone();
        view.retryable = self.retryable();
        view
    }
}

fn fill_call_fields(v: &mut TaskView, event: &Event) {
    if let Some(name) = text(event, "name") {
        v.name = Some(name);
    }
    if let Some(args) = text(event, "args") {
        v.argsrepr = Some(args);
    }
    if let Some(kwargs) = text(event, "kwargs") {
        v.kwargsrepr = Some(kwargs);
    }
    if let Some(retries) = event.fields.get("retries").and_then(Value::as_u64) {
        v.retries = Some(retries);
    }
    v.eta = text(event, "eta").or(v.eta.take());
    v.expires = text(event, "expires").or(v.expires.take());
}

/// The newest tasks, bounded.
#[derive(Debug)]
pub(crate) struct TaskTable {
    records: HashMap<String, TaskRecord>,
    order: VecDeque<String>,
    capacity: usize,
}

impl TaskTable {
    pub(crate) fn new(capacity: usize) -> Self {
        TaskTable {
            records: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<&TaskRecord> {
        self.records.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut TaskRecord> {
        self.records.get_mut(id)
    }

    /// The record for `id`, created (and the oldest evicted) if new.
    pub(crate) fn entry(&mut self, id: &str) -> &mut TaskRecord {
        if !self.records.contains_key(id) {
            while self.order.len() >= self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.records.remove(&old);
                }
            }
            self.order.push_back(id.to_owned());
        }
        self.records
            .entry(id.to_owned())
            .or_insert_with(|| TaskRecord::new(id))
    }

    /// Newest first.
    pub(crate) fn newest(&self) -> impl Iterator<Item = &TaskRecord> {
        self.order
            .iter()
            .rev()
            .filter_map(|id| self.records.get(id))
    }

    /// Ids of unfinished tasks to read from the backend: the least recently
    /// read first, at most `max`, none read within `min_age`.
    pub(crate) fn due_for_poll(&self, max: usize, min_age: std::time::Duration) -> Vec<String> {
        let mut due: Vec<(Option<Instant>, &String)> = self
            .records
            .values()
            .filter(|r| !r.view.ready && r.polled.is_none_or(|t| t.elapsed() >= min_age))
            .map(|r| (r.polled, &r.view.id))
            .collect();
        due.sort_by_key(|(polled, _)| *polled);
        due.into_iter()
            .take(max)
            .map(|(_, id)| id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use celeriac::TaskState;
    use serde_json::json;

    fn event(kind: &str, id: &str) -> Event {
        Event::new(kind, "w@h", 1).with("uuid", id)
    }

    #[test]
    fn success_is_final_and_ready_states_stay() {
        let mut r = TaskRecord::new("t");
        r.apply_event(&event("task-received", "t").with("name", "tasks.add"));
        assert_eq!(r.view.state, "RECEIVED");
        r.apply_event(&event("task-succeeded", "t").with("result", "5"));
        r.apply_event(&event("task-started", "t"));
        assert_eq!(r.view.state, "SUCCESS");
        r.apply_event(&event("task-revoked", "t"));
        assert_eq!(r.view.state, "SUCCESS");
        assert_eq!(r.view.name.as_deref(), Some("tasks.add"));
    }

    #[test]
    fn progress_comes_from_custom_states() {
        let mut r = TaskRecord::new("t");
        r.apply_event(&event("task-started", "t"));
        let meta = ResultMeta::new(
            "t",
            TaskState::Custom("PROGRESS".into()),
            json!({"current": 3, "total": 4}),
        );
        r.apply_meta(Some(&meta));
        assert_eq!(r.view.state, "PROGRESS");
        assert_eq!(r.view.progress.map(|p| p.percent), Some(75.0));
        let done = ResultMeta::new("t", TaskState::Success, json!(10));
        r.apply_meta(Some(&done));
        assert!(r.view.ready);
        assert_eq!(r.view.progress.map(|p| p.percent), Some(100.0));
    }

    #[test]
    fn the_table_evicts_the_oldest() {
        let mut table = TaskTable::new(2);
        table.entry("a");
        table.entry("b");
        table.entry("c");
        assert!(table.get("a").is_none());
        let ids: Vec<_> = table.newest().map(|r| r.view.id.clone()).collect();
        assert_eq!(ids, ["c", "b"]);
    }

    #[test]
    fn reprs_make_a_task_retryable() {
        let mut r = TaskRecord::new("t");
        r.apply_event(
            &event("task-received", "t")
                .with("name", "tasks.add")
                .with("args", "(2, 3)")
                .with("kwargs", "{}"),
        );
        let call = r.call_for_retry().expect("parsed");
        assert_eq!(call.args, vec![json!(2), json!(3)]);
        r.view.argsrepr = Some("(<object at 0x1>,)".into());
        assert!(!r.retryable());
    }
}
