//! Recent tasks: what the monitor remembers about each, and how events and
//! result documents update it.
//!
//! 1. [`TaskRecord`]: one task, from its send (through this API), its
//!    events, and its result document.
//! 2. [`TaskTable`](super::table::TaskTable) (in `table.rs`): the newest
//!    `capacity` records, oldest evicted first.
//! 3. State rules shared by events and documents ([`TaskRecord::set_state`]):
//!    a finished state (SUCCESS, FAILURE, REVOKED) is only replaced by
//!    another finished one, and SUCCESS never is — events can arrive late
//!    or out of order (a RETRY's redelivery, a poll racing an event).
//! 4. One source of truth per task: the backend's final document. A task
//!    that finishes by an event drops whatever `result` it showed (a custom
//!    state's meta, such as its last progress) and is read from the backend
//!    once more
//!    ([`TaskTable::due_for_poll`](super::table::TaskTable::due_for_poll));
//!    the document's result then replaces the event's repr.

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
    /// The backend's final document was applied (nothing left to read).
    pub(crate) final_read: bool,
    /// Reads of a finished task that found no final document yet.
    pub(crate) final_misses: u8,
}

/// Reads of a finished task's document before giving up (a task that
/// ignores its result never has one).
const FINAL_READS: u8 = 3;

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
            final_read: false,
            final_misses: 0,
        }
    }

    /// Whether the backend should still be read for this task.
    pub(crate) fn needs_poll(&self) -> bool {
        !self.view.ready || (!self.final_read && self.final_misses < FINAL_READS)
    }

    /// The lower-case text search looks in: id, name, arguments, result,
    /// exception.
    pub(crate) fn search_text(&self) -> String {
        let v = &self.view;
        let mut text = String::with_capacity(128);
        for part in [
            Some(v.id.as_str()),
            v.name.as_deref(),
            v.argsrepr.as_deref(),
            v.kwargsrepr.as_deref(),
            v.result_repr.as_deref(),
            v.exception.as_deref(),
        ]
        .into_iter()
        .flatten()
        {
            text.push_str(part);
            text.push('\u{1}');
        }
        for value in [&v.args, &v.kwargs].into_iter().flatten() {
            text.push_str(&value.to_string());
            text.push('\u{1}');
        }
        if !v.result.is_null() {
            text.push_str(&v.result.to_string());
        }
        text.to_lowercase()
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
        if self.set_state(state) && is_ready(state) && !self.final_read {
            // Whatever `result` showed was not the outcome but a custom
            // state's meta (e.g. progress): the event's repr stands in
            // until the backend's document is read. Without such meta the
            // event is the whole story (the page reads the document).
            let had_meta = !self.view.result.is_null() || self.view.progress.is_some();
            self.view.result = Value::Null;
            self.final_read = !had_meta;
        }
        Some(state)
    }

    /// Apply the backend's document (or its absence).
    pub(crate) fn apply_meta(&mut self, meta: Option<&ResultMeta>) {
        self.polled = Some(Instant::now());
        let Some(meta) = meta else {
            if self.view.ready {
                self.final_misses = self.final_misses.saturating_add(1);
            }
            return;
        };
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
            // A stored SUCCESS is never replaced, nor its result.
            let stands = v.state == "SUCCESS" && state != "SUCCESS";
            if !stands {
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
            }
            self.final_read = true;
        } else if custom && !v.ready {
            v.progress = Progress::from_meta(&meta.result).or(v.progress);
            v.result = meta.result.clone();
            self.set_state(&state);
        } else if self.view.state == "PENDING" {
            self.set_state(&state);
        } else if self.view.ready {
            // Finished by an event; the document does not say so yet
            // (a read racing the store): read it again later.
            self.final_misses = self.final_misses.saturating_add(1);
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
        view.runtime = self.runtime();
        view
    }

    /// The runtime: the worker's, else (failures carry none in Celery's
    /// events) from its start and finish.
    pub(crate) fn runtime(&self) -> Option<f64> {
        let v = &self.view;
        v.runtime.or(match (v.started_at, v.finished_at) {
            (Some(start), Some(end)) if v.ready => Some((end - start).max(0.0)),
            _ => None,
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::table::TaskTable;
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
    fn the_final_document_wins_over_progress() {
        let mut r = TaskRecord::new("t");
        r.apply_event(&event("task-started", "t"));
        let progress = ResultMeta::new(
            "t",
            TaskState::Custom("PROGRESS".into()),
            json!({"current": 5700, "total": 6000}),
        );
        r.apply_meta(Some(&progress));
        assert_eq!(r.view.result, json!({"current": 5700, "total": 6000}));
        // The success event arrives before the document is read again.
        r.apply_event(&event("task-succeeded", "t").with("result", "18000"));
        assert_eq!(r.view.state, "SUCCESS");
        assert_eq!(r.view.result, Value::Null, "progress is not the result");
        assert_eq!(r.view.result_repr.as_deref(), Some("18000"));
        assert!(r.needs_poll(), "the final document is still to be read");
        // A read racing the store still sees PROGRESS: kept unread.
        r.apply_meta(Some(&progress));
        assert_eq!(r.view.result, Value::Null);
        assert!(r.needs_poll());
        let done = ResultMeta::new("t", TaskState::Success, json!(18000));
        r.apply_meta(Some(&done));
        assert_eq!(r.view.result, json!(18000));
        assert!(!r.needs_poll());
        // Later progress events or documents change nothing.
        r.apply_meta(Some(&progress));
        assert_eq!(r.view.result, json!(18000));
        assert_eq!(r.view.state, "SUCCESS");
    }

    #[test]
    fn failures_get_a_runtime() {
        let mut r = TaskRecord::new("t");
        r.apply_event(&event("task-started", "t").with("timestamp", 100.0));
        r.apply_event(&event("task-failed", "t").with("timestamp", 101.5));
        assert_eq!(r.to_view().runtime, Some(1.5));
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

    #[test]
    fn finished_tasks_without_a_document_are_read_a_few_times_only() {
        let mut table = TaskTable::new(10);
        let record = table.entry("t");
        record.view.progress = Progress::from_meta(&json!({"current": 1, "total": 2}));
        record.apply_event(&event("task-succeeded", "t"));
        let mut reads = 0;
        while table.due_for_poll(10, std::time::Duration::ZERO) == ["t"] {
            table.get_mut("t").expect("record").apply_meta(None);
            reads += 1;
            assert!(reads < 10, "polled forever");
        }
        assert_eq!(reads, usize::from(FINAL_READS));
    }
}
