//! Prometheus metrics, counted from events and written in the text
//! exposition format (version 0.0.4) by hand.
//!
//! A process-wide recorder (the `metrics` crate's) would mix the counts of
//! several servers in one process (tests run many); these counters live in
//! the server's state instead.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `celeriac_tasks_total` | counter | `name`, `state` (one per task event: RECEIVED, STARTED, SUCCESS, …) |
//! | `celeriac_task_runtime_seconds` | histogram | `name` (from `task-succeeded`) |
//! | `celeriac_tasks_sent_total` | counter | `name` (sent through this API) |
//! | `celeriac_queue_depth` | gauge | `queue` |
//! | `celeriac_workers_online` | gauge | |
//! | `celeriac_workers_known` | gauge | |
//! | `celeriac_dead_letters` | gauge | dead letters stored |

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::views::QueueView;

/// Upper bounds of the runtime histogram's buckets, seconds.
const BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Task names become labels; past this many, the rest count as `other`.
const MAX_NAMES: usize = 500;
/// Window of [`TaskStats::finished_per_sec`].
const RATE_WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Counters kept from task events and sends.
#[derive(Debug, Default)]
pub(crate) struct TaskStats {
    by_state: BTreeMap<(String, String), u64>,
    runtime: BTreeMap<String, Histogram>,
    sent: BTreeMap<String, u64>,
    names: std::collections::HashSet<String>,
    finished: VecDeque<Instant>,
}

impl TaskStats {
    fn label(&mut self, name: &str) -> String {
        if self.names.contains(name) {
            return name.to_owned();
        }
        if self.names.len() < MAX_NAMES {
            self.names.insert(name.to_owned());
            return name.to_owned();
        }
        "other".to_owned()
    }

    /// Count a task event that put task `name` in `state`.
    pub(crate) fn event(&mut self, name: &str, state: &str, runtime: Option<f64>) {
        let name = self.label(name);
        *self
            .by_state
            .entry((name.clone(), state.to_owned()))
            .or_default() += 1;
        if matches!(state, "SUCCESS" | "FAILURE") {
            self.finished.push_back(Instant::now());
            self.prune();
        }
        if let Some(seconds) = runtime.filter(|s| s.is_finite() && *s >= 0.0) {
            let h = self.runtime.entry(name).or_default();
            h.count += 1;
            h.sum += seconds;
            for (i, bound) in BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    h.counts[i] += 1;
                }
            }
        }
    }

    /// Count a send through this API.
    pub(crate) fn sent(&mut self, name: &str) {
        let name = self.label(name);
        *self.sent.entry(name).or_default() += 1;
    }

    fn prune(&mut self) {
        while self
            .finished
            .front()
            .is_some_and(|t| t.elapsed() > RATE_WINDOW)
        {
            self.finished.pop_front();
        }
    }

    /// Tasks finished per second over the last ten seconds.
    pub(crate) fn finished_per_sec(&mut self) -> f64 {
        self.prune();
        self.finished.len() as f64 / RATE_WINDOW.as_secs_f64()
    }
}

/// A label value, escaped as the exposition format wants.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// What a scrape shows besides the counters.
pub(crate) struct Gauges<'a> {
    pub(crate) queues: &'a [QueueView],
    pub(crate) workers_online: usize,
    pub(crate) workers_known: usize,
    pub(crate) dead_letters: usize,
}

/// The whole exposition.
pub(crate) fn render(stats: &TaskStats, gauges: &Gauges<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP celeriac_tasks_total Task events seen, by task name and the state they report."
    );
    let _ = writeln!(out, "# TYPE celeriac_tasks_total counter");
    for ((name, state), count) in &stats.by_state {
        let _ = writeln!(
            out,
            "celeriac_tasks_total{{name=\"{}\",state=\"{}\"}} {count}",
            escape(name),
            escape(state)
        );
    }
    let _ = writeln!(
        out,
        "# HELP celeriac_task_runtime_seconds Run time of successful tasks."
    );
    let _ = writeln!(out, "# TYPE celeriac_task_runtime_seconds histogram");
    for (name, h) in &stats.runtime {
        let name = escape(name);
        for (bound, count) in BUCKETS.iter().zip(h.counts.iter()) {
            let _ = writeln!(
                out,
                "celeriac_task_runtime_seconds_bucket{{name=\"{name}\",le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "celeriac_task_runtime_seconds_bucket{{name=\"{name}\",le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "celeriac_task_runtime_seconds_sum{{name=\"{name}\"}} {}",
            h.sum
        );
        let _ = writeln!(
            out,
            "celeriac_task_runtime_seconds_count{{name=\"{name}\"}} {}",
            h.count
        );
    }
    let _ = writeln!(
        out,
        "# HELP celeriac_tasks_sent_total Tasks sent through this API."
    );
    let _ = writeln!(out, "# TYPE celeriac_tasks_sent_total counter");
    for (name, count) in &stats.sent {
        let _ = writeln!(
            out,
            "celeriac_tasks_sent_total{{name=\"{}\"}} {count}",
            escape(name)
        );
    }
    let _ = writeln!(
        out,
        "# HELP celeriac_queue_depth Messages waiting in a queue, at the last sample."
    );
    let _ = writeln!(out, "# TYPE celeriac_queue_depth gauge");
    for queue in gauges.queues {
        if let Some(depth) = queue.depth {
            let _ = writeln!(
                out,
                "celeriac_queue_depth{{queue=\"{}\"}} {depth}",
                escape(&queue.name)
            );
        }
    }
    for (metric, help, value) in [
        (
            "celeriac_workers_online",
            "Workers whose heartbeats are current.",
            gauges.workers_online,
        ),
        (
            "celeriac_workers_known",
            "Workers seen in the last hour.",
            gauges.workers_known,
        ),
        (
            "celeriac_dead_letters",
            "Dead letters stored.",
            gauges.dead_letters,
        ),
    ] {
        let _ = writeln!(out, "# HELP {metric} {help}");
        let _ = writeln!(out, "# TYPE {metric} gauge");
        let _ = writeln!(out, "{metric} {value}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let mut stats = TaskStats::default();
        stats.event("tasks.add", "RECEIVED", None);
        stats.event("tasks.add", "SUCCESS", Some(0.02));
        stats.event("we\"ird", "FAILURE", None);
        stats.sent("tasks.add");
        let queues = vec![QueueView {
            name: "celery".into(),
            depth: Some(7),
            rate: 0.0,
            history: vec![7],
            error: None,
        }];
        let text = render(
            &stats,
            &Gauges {
                queues: &queues,
                workers_online: 2,
                workers_known: 3,
                dead_letters: 1,
            },
        );
        assert!(text.contains("celeriac_tasks_total{name=\"tasks.add\",state=\"SUCCESS\"} 1"));
        assert!(text.contains("name=\"we\\\"ird\""));
        assert!(text
            .contains("celeriac_task_runtime_seconds_bucket{name=\"tasks.add\",le=\"0.025\"} 1"));
        assert!(
            text.contains("celeriac_task_runtime_seconds_bucket{name=\"tasks.add\",le=\"0.01\"} 0")
        );
        assert!(text.contains("celeriac_queue_depth{queue=\"celery\"} 7"));
        assert!(text.contains("celeriac_workers_online 2"));
        assert!(stats.finished_per_sec() > 0.0);
    }
}
