//! The live view of `celeriac events`: the workers and the most recent
//! tasks, rebuilt from the event stream and redrawn every `--frequency`
//! seconds (Celery's `celery events` curses view, as a plain table).
//!
//! 1. [`Monitor::apply`]: fold one event into the view. Worker events keep
//!    each worker's counters and when it was last heard; task events move
//!    a task through RECEIVED, STARTED, then SUCCESS, FAILURE, RETRY,
//!    REVOKED or REJECTED. A final state is never replaced by an earlier
//!    one that arrives late.
//! 2. [`Monitor::render`]: the table, text only (names made printable by
//!    the caller's writer). At most [`KEPT`] tasks are remembered; the
//!    oldest are forgotten first.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use celeriac::printable;
use celeriac::protocol::Event;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// Tasks remembered at most.
pub(super) const KEPT: usize = 10_000;

/// A worker is offline when not heard for this many heartbeat periods
/// (Celery's expire window: 200 %).
const EXPIRE_PERIODS: f64 = 2.0;

struct WorkerRow {
    online: bool,
    heard: Instant,
    freq: f64,
    active: u64,
    processed: u64,
    loadavg: String,
}

struct TaskRow {
    name: String,
    state: &'static str,
    worker: String,
    received: Option<f64>,
    runtime: Option<f64>,
    /// Result or exception, shortened.
    info: String,
    /// When it last changed (event time), for ordering.
    updated: f64,
}

fn is_final(state: &str) -> bool {
    matches!(state, "SUCCESS" | "FAILURE" | "REVOKED" | "REJECTED")
}

/// What the live view shows.
#[derive(Default)]
pub(super) struct Monitor {
    workers: BTreeMap<String, WorkerRow>,
    tasks: HashMap<String, TaskRow>,
    events: u64,
    task_events: u64,
}

fn number(event: &Event, key: &str) -> Option<f64> {
    event.fields.get(key).and_then(Value::as_f64)
}

fn string(event: &Event, key: &str) -> Option<String> {
    match event.fields.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

impl Monitor {
    /// Fold one event in (`at`: when it was received here).
    pub(super) fn apply(&mut self, event: &Event, at: Instant) {
        self.events += 1;
        let host = event.hostname().to_owned();
        let kind = event.kind();
        if let Some(uuid) = event.task_id().filter(|_| kind.starts_with("task-")) {
            self.task_events += 1;
            self.task(uuid, kind, &host, event);
            return;
        }
        if !kind.starts_with("worker-") {
            return;
        }
        let row = self.workers.entry(host).or_insert_with(|| WorkerRow {
            online: true,
            heard: at,
            freq: 2.0,
            active: 0,
            processed: 0,
            loadavg: String::new(),
        });
        row.online = kind != "worker-offline";
        row.heard = at;
        row.freq = number(event, "freq")
            .filter(|f| *f > 0.0)
            .unwrap_or(row.freq);
        row.active = number(event, "active").map_or(row.active, |n| n as u64);
        row.processed = number(event, "processed").map_or(row.processed, |n| n as u64);
        if let Some(Value::Array(load)) = event.fields.get("loadavg") {
            row.loadavg = load
                .iter()
                .filter_map(Value::as_f64)
                .map(|l| format!("{l:.2}"))
                .collect::<Vec<_>>()
                .join(" ");
        }
    }

    fn task(&mut self, uuid: &str, kind: &str, host: &str, event: &Event) {
        let state = match kind {
            "task-sent" => "PENDING",
            "task-received" => "RECEIVED",
            "task-started" => "STARTED",
            "task-succeeded" => "SUCCESS",
            "task-failed" => "FAILURE",
            "task-retried" => "RETRY",
            "task-revoked" => "REVOKED",
            "task-rejected" => "REJECTED",
            _ => return,
        };
        let time = number(event, "timestamp").unwrap_or(0.0);
        if !self.tasks.contains_key(uuid) && self.tasks.len() >= KEPT {
            self.forget_oldest();
        }
        let row = self
            .tasks
            .entry(uuid.to_owned())
            .or_insert_with(|| TaskRow {
                name: String::new(),
                state,
                worker: String::new(),
                received: None,
                runtime: None,
                info: String::new(),
                updated: time,
            });
        if let Some(name) = string(event, "name") {
            row.name = name;
        }
        if kind != "task-sent" {
            row.worker = host.to_owned();
        }
        if kind == "task-received" {
            row.received = Some(time);
        }
        if let Some(runtime) = number(event, "runtime") {
            row.runtime = Some(runtime);
        }
        if let Some(info) = string(event, "result").or_else(|| string(event, "exception")) {
            row.info = info;
        }
        if is_final(row.state) && !is_final(state) {
            return;
        }
        row.state = state;
        row.updated = row.updated.max(time);
    }

    fn forget_oldest(&mut self) {
        let mut by_age: Vec<(f64, String)> = self
            .tasks
            .iter()
            .map(|(id, t)| (t.updated, id.clone()))
            .collect();
        by_age.sort_by(|a, b| a.0.total_cmp(&b.0));
        // A tenth at a time, so this sort runs rarely.
        for (_, id) in by_age.into_iter().take(KEPT / 10) {
            self.tasks.remove(&id);
        }
    }

    /// The view: a title, the workers, the `limit` most recent tasks.
    pub(super) fn render(&self, title: &str, limit: usize, now: Instant) -> String {
        let mut out = String::new();
        let clock = Utc::now().format("%Y-%m-%d %H:%M:%S UTC");
        let _ = writeln!(
            out,
            "{title} — {clock} — {} events (Ctrl-C to quit)",
            self.events
        );
        let _ = writeln!(out);
        let online = self.workers.values().filter(|w| self.alive(w, now)).count();
        let _ = writeln!(
            out,
            "Workers: {online} online, {} known",
            self.workers.len()
        );
        if self.workers.is_empty() {
            let _ = writeln!(
                out,
                "  (none heard yet: workers send a heartbeat every 2 s)"
            );
        } else {
            let _ = writeln!(
                out,
                "  {:<32} {:<8} {:>6} {:>10}  {:<16} HEARD",
                "NODE", "STATUS", "ACTIVE", "PROCESSED", "LOAD"
            );
            for (name, w) in &self.workers {
                let status = if self.alive(w, now) {
                    "online"
                } else {
                    "OFFLINE"
                };
                let heard = now.saturating_duration_since(w.heard).as_secs();
                let _ = writeln!(
                    out,
                    "  {:<32} {:<8} {:>6} {:>10}  {:<16} {heard}s ago",
                    cut(name, 32),
                    status,
                    w.active,
                    w.processed,
                    cut(&w.loadavg, 16)
                );
            }
        }
        let _ = writeln!(out);
        let shown = limit.min(self.tasks.len());
        let _ = writeln!(
            out,
            "Tasks: {shown} most recent of {} seen",
            self.tasks.len()
        );
        if self.task_events == 0 {
            let _ = writeln!(
                out,
                "  (no task events yet: start workers with -E, or run `celeriac control enable_events`)"
            );
            return out;
        }
        let _ = writeln!(
            out,
            "  {:<36}  {:<28} {:<9} {:<24} {:<8} {:>9}  RESULT/EXCEPTION",
            "UUID", "NAME", "STATE", "WORKER", "RECEIVED", "RUNTIME"
        );
        let mut recent: Vec<(&String, &TaskRow)> = self.tasks.iter().collect();
        recent.sort_by(|a, b| {
            b.1.updated
                .total_cmp(&a.1.updated)
                .then_with(|| a.0.cmp(b.0))
        });
        for (id, t) in recent.into_iter().take(limit) {
            let received = t
                .received
                .and_then(|s| DateTime::from_timestamp_micros((s * 1e6) as i64))
                .map(|d| d.format("%H:%M:%S").to_string())
                .unwrap_or_default();
            let runtime = t.runtime.map(runtime).unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<36}  {:<28} {:<9} {:<24} {:<8} {:>9}  {}",
                cut(id, 36),
                cut(&t.name, 28),
                t.state,
                cut(&t.worker, 24),
                received,
                runtime,
                cut(&t.info, 40)
            );
        }
        out
    }

    fn alive(&self, w: &WorkerRow, now: Instant) -> bool {
        let window = Duration::from_secs_f64(w.freq * EXPIRE_PERIODS + 1.0);
        w.online && now.saturating_duration_since(w.heard) <= window
    }
}

/// A runtime: milliseconds under a second, else seconds.
fn runtime(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.1}ms", seconds * 1e3)
    } else {
        format!("{seconds:.3}s")
    }
}

/// `text` made printable and cut to `width` characters (… when cut).
fn cut(text: &str, width: usize) -> String {
    let text = printable(text).to_string();
    if text.chars().count() <= width {
        return text;
    }
    let mut short: String = text.chars().take(width.saturating_sub(1)).collect();
    short.push('…');
    short
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
    fn tasks_move_through_their_states_and_workers_are_listed() {
        let mut m = Monitor::default();
        let now = Instant::now();
        m.apply(
            &event(
                json!({"type": "worker-heartbeat", "hostname": "w1@h", "timestamp": 1.0,
                "freq": 2.0, "active": 1, "processed": 41, "loadavg": [0.5, 0.25, 0.75]}),
            ),
            now,
        );
        m.apply(
            &event(
                json!({"type": "task-received", "hostname": "w1@h", "timestamp": 10.0,
                "uuid": "id-1", "name": "tasks.add", "args": "(2, 3)"}),
            ),
            now,
        );
        // Late and out of order: the final state stays.
        m.apply(
            &event(
                json!({"type": "task-succeeded", "hostname": "w1@h", "timestamp": 12.0,
                "uuid": "id-1", "result": "5", "runtime": 0.25}),
            ),
            now,
        );
        m.apply(
            &event(json!({"type": "task-started", "hostname": "w1@h", "timestamp": 11.0, "uuid": "id-1"})),
            now,
        );
        m.apply(
            &event(
                json!({"type": "task-failed", "hostname": "w1@h", "timestamp": 13.0,
                "uuid": "id-2", "exception": "ValueError('no')"}),
            ),
            now,
        );
        let view = m.render("celeriac events", 10, now);
        assert!(view.contains("Workers: 1 online, 1 known"), "{view}");
        assert!(view.contains("w1@h"), "{view}");
        assert!(view.contains("0.50 0.25 0.75"), "{view}");
        let task_line = view.lines().find(|l| l.contains("id-1")).expect("task row");
        assert!(
            task_line.contains("tasks.add") && task_line.contains("SUCCESS"),
            "{task_line}"
        );
        assert!(
            task_line.contains("250.0ms") && task_line.contains('5'),
            "{task_line}"
        );
        let failed = view.lines().find(|l| l.contains("id-2")).expect("task row");
        assert!(
            failed.contains("FAILURE") && failed.contains("ValueError"),
            "{failed}"
        );
        // Most recent first.
        let first = view.find("id-2").expect("listed");
        assert!(first < view.find("id-1").expect("listed"), "{view}");
        // One row asked: only the most recent.
        assert!(!m.render("t", 1, now).contains("id-1"));
    }

    #[test]
    fn silent_or_stopped_workers_read_offline_and_no_task_events_say_why() {
        let mut m = Monitor::default();
        let then = Instant::now();
        m.apply(
            &event(json!({"type": "worker-online", "hostname": "w1@h", "freq": 2.0})),
            then,
        );
        m.apply(
            &event(json!({"type": "worker-offline", "hostname": "w2@h", "freq": 2.0})),
            then,
        );
        let view = m.render("t", 10, then + Duration::from_secs(1));
        assert!(view.contains("Workers: 1 online, 2 known"), "{view}");
        assert!(view.contains("start workers with -E"), "{view}");
        let later = m.render("t", 10, then + Duration::from_secs(60));
        assert!(later.contains("Workers: 0 online"), "{later}");
    }

    #[test]
    fn memory_is_bounded() {
        let mut m = Monitor::default();
        let now = Instant::now();
        for n in 0..(KEPT + 5) {
            m.apply(
                &event(
                    json!({"type": "task-received", "hostname": "w", "timestamp": n as f64,
                    "uuid": n.to_string(), "name": "t"}),
                ),
                now,
            );
        }
        assert!(m.tasks.len() <= KEPT);
        assert!(m.tasks.contains_key(&(KEPT + 4).to_string()));
        assert!(!m.tasks.contains_key("0"));
    }
}
