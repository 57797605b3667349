//! What `celeriac bench` reports: the rows and phases it measured, as
//! JSON (`--json`) or as the text it prints.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{celery, cpu, RowKind};

/// The bench's report (text or `--json`).
#[derive(Debug, Serialize)]
pub(super) struct Report {
    pub(super) broker: String,
    pub(super) backend: String,
    pub(super) tasks_per_phase: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) load_average_before: Option<[f64; 3]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) load_average_after: Option<[f64; 3]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) worker: Option<Row>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) celery: Vec<celery::CeleryRun>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) in_process: Option<Row>,
}

/// One row's figures.
#[derive(Debug, Serialize)]
pub(super) struct Row {
    pub(super) kind: RowKind,
    pub(super) task: String,
    pub(super) workers: usize,
    /// `None`: the worker's own default (the number of cores).
    pub(super) concurrency: Option<usize>,
    /// `None`: the worker's own default (the adaptive window).
    pub(super) prefetch: Option<usize>,
    pub(super) results_stored: bool,
    pub(super) acks_late: bool,
    pub(super) chunk: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) paced_at: Option<f64>,
    pub(super) enqueue: Phase,
    pub(super) drain: Phase,
    pub(super) end_to_end: Phase,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) rss_mib: Option<Rss>,
}

/// One phase's figures.
#[derive(Debug, Serialize)]
pub(super) struct Phase {
    pub(super) seconds: f64,
    pub(super) tasks_per_second: f64,
    /// Drain only: from the first completion to the last (start-up left out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) steady_tasks_per_second: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) latency_ms: Option<Latency>,
    /// CPU per task (drain phase only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) cpu_per_task: Option<cpu::CpuPerTask>,
}

/// Enqueue-to-done latency percentiles, in milliseconds.
#[derive(Debug, Serialize)]
pub(super) struct Latency {
    pub(super) p50: f64,
    pub(super) p99: f64,
    pub(super) max: f64,
}

/// Resident memory of a worker process, MiB (the largest over the worker
/// processes).
#[derive(Debug, Default, Serialize)]
pub(super) struct Rss {
    /// A fresh worker on the empty queue, after [`super::IDLE_SETTLE`].
    pub(super) idle: Option<f64>,
    /// The peak (`VmHWM`) over the drain and end-to-end phases.
    pub(super) peak: Option<f64>,
    /// Once the run is over, after [`super::IDLE_SETTLE`] without work.
    pub(super) after_run: Option<f64>,
}

impl Phase {
    pub(super) fn new(tasks: usize, seconds: f64, latency_ms: Option<Latency>) -> Phase {
        let seconds = seconds.max(1e-9);
        Phase {
            seconds,
            tasks_per_second: tasks as f64 / seconds,
            steady_tasks_per_second: None,
            latency_ms,
            cpu_per_task: None,
        }
    }

    /// A drain's figures from its completions: `started` → last, and first
    /// → last.
    pub(super) fn drain(
        done: &HashMap<String, DateTime<Utc>>,
        started: DateTime<Utc>,
        fallback_end: DateTime<Utc>,
    ) -> Phase {
        let end = done.values().copied().max().unwrap_or(fallback_end);
        let mut phase = Phase::new(done.len(), seconds_between(started, end), None);
        if let Some(first) = done.values().copied().min() {
            let steady = seconds_between(first, end);
            if done.len() > 1 && steady > 0.0 {
                phase.steady_tasks_per_second = Some((done.len() - 1) as f64 / steady);
            }
        }
        phase
    }
}

pub(super) fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
}

/// The `q` quantile of sorted values (nearest rank).
pub(super) fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// "workers 16.0 µs, Redis 11.0 µs of CPU per task".
pub(super) fn describe_cpu(cpu: &cpu::CpuPerTask) -> String {
    let redis = cpu
        .redis_us
        .map(|us| format!(", Redis {us:.1} µs"))
        .unwrap_or_default();
    format!(
        "workers {:.1} µs{redis} of CPU per task (the machine's load skews this less than the rates)",
        cpu.workers_us
    )
}

pub(super) fn print_header(r: &Report) {
    let load = r
        .load_average_before
        .map(|[one, five, _]| format!("; load average {one:.2} (5 min {five:.2})"))
        .unwrap_or_default();
    println!(
        "celeriac bench: {} tasks per phase; broker {}, backend {}{load}",
        r.tasks_per_phase, r.broker, r.backend
    );
}

pub(super) fn print_row(r: &Row, n: usize) {
    let flags = |value: Option<usize>, default: &str| {
        value.map_or_else(|| default.to_owned(), |v| v.to_string())
    };
    match r.kind {
        RowKind::Worker => println!(
            "celeriac worker × {} (concurrency {}, prefetch {}): {} as raw Celery messages, results stored, acks {}",
            r.workers,
            flags(r.concurrency, "default = cores"),
            flags(r.prefetch, "default = adaptive"),
            r.task,
            if r.acks_late { "late" } else { "early" },
        ),
        RowKind::InProcess => println!(
            "in-process worker (second row: the queue's own cost; concurrency {}, prefetch {}): {}, results {}, acks {}",
            flags(r.concurrency, "?"),
            flags(r.prefetch, "?"),
            r.task,
            if r.results_stored { "stored" } else { "not stored" },
            if r.acks_late { "late" } else { "early" },
        ),
    }
    if let Some(rate) = r.paced_at {
        println!(
            "  end-to-end producer paced at {rate} tasks/s ({} per chunk)",
            r.chunk
        );
    }
    let line = |name: &str, p: &Phase| {
        let steady = p
            .steady_tasks_per_second
            .map(|s| format!("; {s:.0}/s from the first result"))
            .unwrap_or_default();
        let latency = p
            .latency_ms
            .as_ref()
            .map(|l| {
                format!(
                    "   latency p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
                    l.p50, l.p99, l.max
                )
            })
            .unwrap_or_default();
        println!(
            "  {name:<11} {:>8.0} tasks/s  ({n} tasks in {:.3} s{steady}){latency}",
            p.tasks_per_second, p.seconds
        );
    };
    line("enqueue", &r.enqueue);
    line("drain", &r.drain);
    if let Some(cpu) = r.drain.cpu_per_task {
        println!("  {:<11} {}", "drain CPU", describe_cpu(&cpu));
    }
    line("end to end", &r.end_to_end);
    if let Some(rss) = &r.rss_mib {
        let mib = |v: Option<f64>| v.map_or_else(|| "?".to_owned(), |v| format!("{v:.1} MiB"));
        println!(
            "  {:<11} idle {}, peak {}, after the run {}",
            "worker RSS",
            mib(rss.idle),
            mib(rss.peak),
            mib(rss.after_run)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.50), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn a_drain_counts_from_the_start_and_steadily_from_the_first_result() {
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("a time")
            .with_timezone(&Utc);
        let at = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
        // Started at 0, first result at 500 ms, 11 results until 1,500 ms.
        let done: HashMap<String, DateTime<Utc>> = (0..=10)
            .map(|i| (i.to_string(), at(500 + 100 * i)))
            .collect();
        let phase = Phase::drain(&done, t0, at(9_999));
        assert!((phase.seconds - 1.5).abs() < 1e-9, "{phase:?}");
        assert!((phase.tasks_per_second - 11.0 / 1.5).abs() < 1e-9);
        assert_eq!(phase.steady_tasks_per_second, Some(10.0));
    }
}
