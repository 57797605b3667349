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
//! 4. One source of truth per task: the backend's final document. A task
//!    that finishes by an event drops whatever `result` it showed (a custom
//!    state's meta, such as its last progress) and is read from the backend
//!    once more ([`TaskTable::due_for_poll`]); the document's result then
//!    replaces the event's repr.

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

/// What queries compare, per record, kept apart from the records in one
/// contiguous array (no pointer to follow per task): interned strings and
/// times. Rebuilt for the records changed since the last query.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key {
    /// Interned state.
    pub(crate) state: u32,
    /// Interned name ([`NONE`] when unknown).
    pub(crate) name: u32,
    /// Interned worker ([`NONE`] when unknown).
    pub(crate) worker: u32,
    /// First seen (received, else sent, started, finished); NaN when unknown.
    pub(crate) first_seen: f64,
    /// Started; NaN when unknown.
    pub(crate) started: f64,
    /// Finished; NaN when unknown.
    pub(crate) finished: f64,
    /// Runtime (derived for failures); NaN when unknown.
    pub(crate) runtime: f64,
}

/// No interned value.
pub(crate) const NONE: u32 = u32::MAX;

impl Key {
    const EMPTY: Key = Key {
        state: NONE,
        name: NONE,
        worker: NONE,
        first_seen: f64::NAN,
        started: f64::NAN,
        finished: f64::NAN,
        runtime: f64::NAN,
    };
}

/// Distinct names, states and workers, numbered.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    ids: HashMap<String, u32>,
    texts: Vec<String>,
}

impl Interner {
    fn intern(&mut self, text: Option<&str>) -> u32 {
        let Some(text) = text else { return NONE };
        if let Some(id) = self.ids.get(text) {
            return *id;
        }
        let id = u32::try_from(self.texts.len()).unwrap_or(NONE);
        self.ids.insert(text.to_owned(), id);
        self.texts.push(text.to_owned());
        id
    }

    /// The number of `text`, if it was ever seen.
    pub(crate) fn id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// The text of `id` ("" for [`NONE`]).
    pub(crate) fn text(&self, id: u32) -> &str {
        self.texts.get(id as usize).map_or("", String::as_str)
    }

    /// Every text with its number.
    pub(crate) fn all(&self) -> impl Iterator<Item = (u32, &str)> {
        self.texts
            .iter()
            .enumerate()
            .map(|(i, t)| (u32::try_from(i).unwrap_or(NONE), t.as_str()))
    }
}

/// The newest tasks, bounded, in the order they were first seen.
///
/// Records sit in a ring (oldest first) numbered by a sequence; an index
/// maps ids to sequence numbers. Every change goes through
/// [`TaskTable::entry`] or [`TaskTable::get_mut`], which note the record as
/// changed; [`TaskTable::refresh`] then rebuilds its [`Key`], its search
/// text and whether the backend must still be read for it.
#[derive(Debug)]
pub(crate) struct TaskTable {
    records: VecDeque<TaskRecord>,
    keys: VecDeque<Key>,
    index: HashMap<String, u64>,
    /// Sequence number of `records[0]`.
    base: u64,
    capacity: usize,
    /// Records changed since the last refresh (may repeat).
    changed: Vec<u64>,
    /// Too many changes to list: refresh everything.
    all_changed: bool,
    /// Records the backend must still be read for.
    pollable: std::collections::HashSet<u64>,
    /// Search texts, beside `records` (empty: to be rebuilt).
    texts: VecDeque<String>,
    /// Records whose search text is stale (may repeat).
    stale_texts: Vec<u64>,
    /// Too many to list: rebuild every text.
    all_texts_stale: bool,
    pub(crate) interner: Interner,
}

impl TaskTable {
    pub(crate) fn new(capacity: usize) -> Self {
        TaskTable {
            records: VecDeque::new(),
            keys: VecDeque::new(),
            index: HashMap::new(),
            base: 0,
            capacity: capacity.max(1),
            changed: Vec::new(),
            all_changed: false,
            pollable: std::collections::HashSet::new(),
            texts: VecDeque::new(),
            stale_texts: Vec::new(),
            all_texts_stale: false,
            interner: Interner::default(),
        }
    }

    fn slot(&self, id: &str) -> Option<(u64, usize)> {
        let seq = *self.index.get(id)?;
        Some((seq, usize::try_from(seq - self.base).ok()?))
    }

    fn note(&mut self, seq: u64) {
        let most = self.capacity.saturating_mul(4).max(1024);
        if !self.all_changed {
            if self.changed.len() >= most {
                self.all_changed = true;
                self.changed.clear();
            } else {
                self.changed.push(seq);
            }
        }
        if !self.all_texts_stale {
            if self.stale_texts.len() >= most {
                self.all_texts_stale = true;
                self.stale_texts.clear();
            } else {
                self.stale_texts.push(seq);
            }
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<&TaskRecord> {
        let (_, at) = self.slot(id)?;
        self.records.get(at)
    }

    /// The record for `id`, to change (its key and search text are rebuilt).
    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut TaskRecord> {
        let (seq, at) = self.slot(id)?;
        self.note(seq);
        self.records.get_mut(at)
    }

    /// How many records it holds.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// The record for `id`, created (and the oldest evicted) if new.
    pub(crate) fn entry(&mut self, id: &str) -> &mut TaskRecord {
        let at = match self.slot(id) {
            Some((seq, at)) => {
                self.note(seq);
                at
            }
            None => {
                while self.records.len() >= self.capacity {
                    if let Some(old) = self.records.pop_front() {
                        self.index.remove(&old.view.id);
                        self.pollable.remove(&self.base);
                    }
                    self.keys.pop_front();
                    self.texts.pop_front();
                    self.base += 1;
                }
                let seq = self.base + self.records.len() as u64;
                self.records.push_back(TaskRecord::new(id));
                self.keys.push_back(Key::EMPTY);
                self.texts.push_back(String::new());
                self.index.insert(id.to_owned(), seq);
                self.note(seq);
                self.records.len() - 1
            }
        };
        &mut self.records[at]
    }

    /// Rebuild what changed since the last call: keys, search texts (when
    /// `search`), the set of records to poll.
    pub(crate) fn refresh(&mut self, search: bool) {
        let changed: Vec<u64> = if self.all_changed {
            self.all_changed = false;
            (self.base..self.base + self.records.len() as u64).collect()
        } else {
            std::mem::take(&mut self.changed)
        };
        for seq in changed {
            let Some(at) = seq
                .checked_sub(self.base)
                .and_then(|a| usize::try_from(a).ok())
            else {
                continue;
            };
            let Some(record) = self.records.get(at) else {
                continue;
            };
            let view = &record.view;
            let key = Key {
                state: self.interner.intern(Some(&view.state)),
                name: self.interner.intern(view.name.as_deref()),
                worker: self.interner.intern(view.worker.as_deref()),
                first_seen: view
                    .received_at
                    .or(view.sent_at)
                    .or(view.started_at)
                    .or(view.finished_at)
                    .unwrap_or(f64::NAN),
                started: view.started_at.unwrap_or(f64::NAN),
                finished: view.finished_at.unwrap_or(f64::NAN),
                runtime: record.runtime().unwrap_or(f64::NAN),
            };
            if record.needs_poll() {
                self.pollable.insert(seq);
            } else {
                self.pollable.remove(&seq);
            }
            self.keys[at] = key;
        }
        if search {
            let stale: Vec<u64> = if self.all_texts_stale {
                self.all_texts_stale = false;
                (self.base..self.base + self.records.len() as u64).collect()
            } else {
                std::mem::take(&mut self.stale_texts)
            };
            for seq in stale {
                let Some(at) = seq
                    .checked_sub(self.base)
                    .and_then(|a| usize::try_from(a).ok())
                else {
                    continue;
                };
                if let Some(record) = self.records.get(at) {
                    self.texts[at] = record.search_text();
                }
            }
        }
    }

    /// Search texts, beside [`TaskTable::keys`] (call
    /// [`TaskTable::refresh`] with `search` first).
    pub(crate) fn texts(&self) -> &VecDeque<String> {
        &self.texts
    }

    /// Keys, oldest first (call [`TaskTable::refresh`] first).
    pub(crate) fn keys(&self) -> &VecDeque<Key> {
        &self.keys
    }

    /// The record at `at` (an index into [`TaskTable::keys`]).
    pub(crate) fn at(&self, at: usize) -> Option<&TaskRecord> {
        self.records.get(at)
    }

    /// Newest first.
    pub(crate) fn newest(&self) -> impl Iterator<Item = &TaskRecord> {
        self.records.iter().rev()
    }

    /// Ids of tasks to read from the backend: unfinished ones, and
    /// finished ones whose final document was not read yet (those first);
    /// the least recently read first, at most `max`, none read within
    /// `min_age`.
    pub(crate) fn due_for_poll(&mut self, max: usize, min_age: std::time::Duration) -> Vec<String> {
        self.refresh(false);
        let mut due: Vec<(bool, Option<Instant>, &String)> = self
            .pollable
            .iter()
            .filter_map(|seq| self.records.get(usize::try_from(seq - self.base).ok()?))
            .filter(|r| r.needs_poll() && r.polled.is_none_or(|t| t.elapsed() >= min_age))
            .map(|r| (!r.view.ready, r.polled, &r.view.id))
            .collect();
        due.sort_by_key(|(unfinished, polled, _)| (*unfinished, *polled));
        due.into_iter()
            .take(max)
            .map(|(_, _, id)| id.clone())
            .collect()
    }

    /// How many records are in each state.
    pub(crate) fn count_by_state(&mut self) -> std::collections::BTreeMap<String, u64> {
        self.refresh(false);
        let mut counts: HashMap<u32, u64> = HashMap::new();
        for key in &self.keys {
            *counts.entry(key.state).or_insert(0) += 1;
        }
        counts
            .into_iter()
            .map(|(state, n)| (self.interner.text(state).to_owned(), n))
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

    #[test]
    fn failures_get_a_runtime() {
        let mut r = TaskRecord::new("t");
        r.apply_event(&event("task-started", "t").with("timestamp", 100.0));
        r.apply_event(&event("task-failed", "t").with("timestamp", 101.5));
        assert_eq!(r.to_view().runtime, Some(1.5));
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
