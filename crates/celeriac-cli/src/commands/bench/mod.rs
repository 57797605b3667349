//! `celeriac bench`: how fast the queue moves no-op tasks.
//!
//! Three phases on one broker and backend (a scratch SQLite file unless
//! `--broker`/`--backend` say otherwise), each with `-n` tasks:
//!
//! 1. **enqueue**: publish with [`App::send_batch`] in chunks while no worker
//!    consumes; rate = tasks / time to publish them all.
//! 2. **drain**: start the workers on the full queue; rate = tasks / (last
//!    completion − worker start).
//! 3. **end to end**: with the workers running, publish again in chunks
//!    (as fast as possible, or paced with `--rate`); rate = tasks / (last
//!    completion − first publish), and each task's latency = its completion
//!    − the moment its chunk was sent. Unpaced, the producer outruns the
//!    workers and the latency is mostly time spent queued behind the
//!    backlog; paced below the drain rate (with a small `--chunk`), it is
//!    the latency of a queue keeping up.
//!
//! The drain phase also reports CPU time per task, of the workers and (on
//! Redis) of the Redis server ([`cpu`]): on a shared machine, where rates
//! move with everyone else's load, that is the steadier figure.
//!
//! A completion time is the `date_done` the worker stored with the result
//! (Celery's own field), so the measurement reads only what any Celery-
//! compatible worker writes. That is the seam for comparing implementations:
//! [`Pool`] says who consumes: workers in this process, `celeriac worker`
//! processes (`--processes`), and, later, a Python Celery pool
//! (`--compare-celery` would add a variant that spawns
//! `celery -A pytasks worker` on the same Redis; the phases and the
//! measurement stay as they are). With `--no-results` nothing is stored, so
//! completions are counted by the in-process workers themselves and no
//! latency is reported.

mod cpu;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use celeriac::protocol::{time, TaskState};
use celeriac::{App, SendOptions, WorkerOptions};
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde::Serialize;
use serde_json::Map;

use crate::config::{Config, ConnectionArgs};
use crate::example_tasks::shipped_tasks;
use crate::inprocess::InProcessWorker;

/// Arguments of `celeriac bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,

    /// Tasks per phase
    #[arg(
        short = 'n',
        long = "tasks",
        value_name = "N",
        default_value_t = 10_000
    )]
    pub(crate) tasks: usize,

    /// Concurrency of each worker
    #[arg(short = 'c', long, value_name = "N", default_value_t = 128)]
    pub(crate) concurrency: usize,

    /// Number of workers
    #[arg(short = 'w', long, value_name = "W", default_value_t = 1)]
    pub(crate) workers: usize,

    /// Run the workers as `celeriac worker` processes instead of in this process
    #[arg(long)]
    pub(crate) processes: bool,

    /// Messages each worker holds at once [default: 4 × concurrency]
    #[arg(long, value_name = "N")]
    pub(crate) prefetch: Option<usize>,

    /// Send with ignore_result: nothing is stored (no latency figures)
    #[arg(long)]
    pub(crate) no_results: bool,

    /// Workers acknowledge after each task instead of on receipt
    #[arg(long)]
    pub(crate) acks_late: bool,

    /// Tasks per send_batch call
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub(crate) chunk: usize,

    /// Queue to use, kept apart from real work
    #[arg(
        short = 'q',
        long,
        value_name = "QUEUE",
        default_value = "celeriac.bench"
    )]
    pub(crate) queue: String,

    /// Task to send; it must take no arguments (another worker
    /// implementation must register it under the same name)
    #[arg(long, value_name = "NAME", default_value = "tasks.noop")]
    pub(crate) task: String,

    /// Pace the end-to-end phase's producer at this many tasks per second
    /// (latency below saturation) [default: as fast as it can]
    #[arg(long, value_name = "TASKS_PER_SECOND")]
    pub(crate) rate: Option<f64>,

    /// Give up a phase after this many seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 300.0)]
    pub(crate) timeout: f64,

    /// Print the report as JSON
    #[arg(long)]
    pub(crate) json: bool,

    /// Then drain the same number of no-op tasks with Python Celery workers
    /// (bench/python/celery_bench.py: one worker, thread pool, concurrency 4)
    /// on this Redis URL and print both drain rates and their ratio.
    /// THE DATABASE AT THIS URL IS FLUSHED: give it a scratch database.
    #[arg(long, value_name = "REDIS_URL")]
    pub(crate) compare_celery: Option<String>,
}

/// The bench's report (text or `--json`).
#[derive(Debug, Serialize)]
struct Report {
    task: String,
    tasks_per_phase: usize,
    broker: String,
    backend: String,
    pool: String,
    workers: usize,
    concurrency: usize,
    prefetch: usize,
    results_stored: bool,
    acks_late: bool,
    chunk: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    paced_at: Option<f64>,
    enqueue: Phase,
    drain: Phase,
    end_to_end: Phase,
}

/// One phase's figures.
#[derive(Debug, Serialize)]
struct Phase {
    seconds: f64,
    tasks_per_second: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<Latency>,
    /// CPU per task (drain phase only).
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu_per_task: Option<cpu::CpuPerTask>,
}

/// Enqueue-to-done latency percentiles, in milliseconds.
#[derive(Debug, Serialize)]
struct Latency {
    p50: f64,
    p99: f64,
    max: f64,
}

impl Phase {
    fn new(tasks: usize, seconds: f64, latency_ms: Option<Latency>) -> Phase {
        let seconds = seconds.max(1e-9);
        Phase {
            seconds,
            tasks_per_second: tasks as f64 / seconds,
            latency_ms,
            cpu_per_task: None,
        }
    }
}

/// Who consumes the bench queue.
///
/// Every variant is observed the same way (broker queue depth, stored
/// results), except that in-process workers can also count completions when
/// results are not stored.
enum Pool {
    /// Workers in this process, sharing its broker connection.
    InProcess(Vec<InProcessWorker>),
    /// `celeriac worker` processes started from this binary.
    Processes(Vec<tokio::process::Child>),
}

impl Pool {
    fn describe(&self) -> &'static str {
        match self {
            Pool::InProcess(_) => "in-process",
            Pool::Processes(_) => "processes",
        }
    }

    /// Tasks finished so far, when the pool can count them itself.
    fn processed(&self) -> Option<u64> {
        match self {
            Pool::InProcess(workers) => Some(
                workers
                    .iter()
                    .map(|w| {
                        w.stats()
                            .processed
                            .load(std::sync::atomic::Ordering::Relaxed)
                    })
                    .sum(),
            ),
            Pool::Processes(_) => None,
        }
    }

    /// The worker processes' ids (none for in-process workers).
    fn pids(&self) -> Vec<u32> {
        match self {
            Pool::InProcess(_) => Vec::new(),
            Pool::Processes(children) => children.iter().filter_map(|c| c.id()).collect(),
        }
    }

    async fn stop(self) -> anyhow::Result<()> {
        match self {
            Pool::InProcess(workers) => {
                for w in workers {
                    w.stop().await?;
                }
            }
            Pool::Processes(children) => {
                for child in &children {
                    if let Some(pid) = child.id() {
                        let _ = tokio::process::Command::new("kill")
                            .args(["-TERM", &pid.to_string()])
                            .status()
                            .await;
                    }
                }
                for mut child in children {
                    let status = child.wait().await.context("waiting for a worker process")?;
                    if !status.success() {
                        tracing::warn!(%status, "a bench worker process exited with an error");
                    }
                }
            }
        }
        Ok(())
    }
}

/// Validated bench settings.
struct Bench {
    args: Args,
    config: Config,
    app: App,
    options: WorkerOptions,
    deadline: Duration,
}

/// `celeriac bench`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    if args.tasks == 0 || args.chunk == 0 || args.workers == 0 || args.concurrency == 0 {
        bail!("--tasks, --chunk, --workers and --concurrency must be at least 1");
    }
    if args.processes && args.no_results {
        bail!("--no-results needs in-process workers: only they can count completions without stored results");
    }
    if args.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        bail!("--rate must be a positive number of tasks per second");
    }
    let deadline = Duration::try_from_secs_f64(args.timeout)
        .context("--timeout must be a non-negative number of seconds")?;
    let scratch = tempfile::Builder::new()
        .prefix("celeriac-bench-")
        .tempdir()
        .context("creating a scratch directory")?;
    let url = format!("sqlite://{}", scratch.path().join("bench.db").display());
    let config = Config::with_default_urls(&args.connection, &url, &url)?;
    let app = config.connect(shipped_tasks).await?;
    let waiting = app.broker().queue_depth(&args.queue).await?;
    if waiting > 0 {
        bail!(
            "queue {:?} already holds {waiting} messages; use an empty queue (--queue) or broker",
            args.queue
        );
    }
    let options = WorkerOptions {
        queues: vec![args.queue.clone()],
        concurrency: args.concurrency,
        prefetch: args.prefetch.unwrap_or(args.concurrency * 4).max(1),
        acks_late: args.acks_late,
        ..WorkerOptions::default()
    };
    let bench = Bench {
        args,
        config,
        app,
        options,
        deadline,
    };
    let report = bench.run().await?;
    if bench.args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    drop(scratch);
    if let Some(url) = &bench.args.compare_celery {
        compare_with_celery(url, &bench.args, report.drain.tasks_per_second).await?;
    }
    Ok(())
}

/// Run the Python Celery reference on the same workload and print the ratio.
async fn compare_with_celery(url: &str, args: &Args, ours: f64) -> anyhow::Result<()> {
    let script = [
        "bench/python/celery_bench.py",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../bench/python/celery_bench.py"
        ),
    ]
    .into_iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.exists())
    .context("bench/python/celery_bench.py not found: run from the repository root")?;
    let python = std::env::var("CELERIAC_PYTHON").ok().unwrap_or_else(|| {
        if std::path::Path::new(".venv/bin/python").exists() {
            ".venv/bin/python".to_owned()
        } else {
            "python3".to_owned()
        }
    });
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(&script)
        .args(["--url", url, "-n", &args.tasks.to_string()])
        .args(["--workers", "1", "--pool", "threads", "--concurrency", "4"]);
    if args.acks_late {
        cmd.arg("--acks-late");
    }
    if args.no_results {
        cmd.arg("--no-results");
    }
    let output = cmd
        .output()
        .await
        .with_context(|| format!("running {python} {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "the Celery reference failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let celery: serde_json::Value = serde_json::from_slice(&output.stdout)
        .context("the Celery reference printed something other than JSON")?;
    let theirs = celery["drain_per_sec"].as_f64().unwrap_or(0.0);
    println!(
        "  reference: {} drained {:.0} tasks/s; celeriac {:.0} tasks/s = {:.1}× Celery",
        celery["system"].as_str().unwrap_or("Python Celery"),
        theirs,
        ours,
        if theirs > 0.0 {
            ours / theirs
        } else {
            f64::INFINITY
        }
    );
    Ok(())
}

impl Bench {
    async fn run(&self) -> anyhow::Result<Report> {
        let n = self.args.tasks;

        // 1. Enqueue with nobody consuming.
        let (ids, _, enqueue_secs) = self.enqueue(None).await?;
        let enqueue = Phase::new(n, enqueue_secs, None);

        // 2. Drain the full queue.
        let broker_url = &self.config.app.broker_url;
        let cpu = cpu::CpuMark::before_workers(!self.args.processes, broker_url).await;
        let started = Utc::now();
        let pool = self.start_pool().await?;
        let outcome = self.drain_phase(&pool, &ids, started, &cpu).await;
        let drain = match outcome {
            Ok(phase) => phase,
            Err(err) => {
                pool.stop().await?;
                return Err(err);
            }
        };

        // 3. Enqueue while the workers consume.
        let outcome = self.end_to_end_phase(&pool, 2 * n as u64).await;
        pool.stop().await?;
        let end_to_end = outcome?;

        Ok(Report {
            task: self.args.task.clone(),
            tasks_per_phase: n,
            broker: self.config.broker_display(),
            backend: self.config.backend_display(),
            pool: if self.args.processes {
                "processes"
            } else {
                "in-process"
            }
            .to_owned(),
            workers: self.args.workers,
            concurrency: self.options.concurrency,
            prefetch: self.options.prefetch,
            results_stored: !self.args.no_results,
            acks_late: self.args.acks_late,
            chunk: self.args.chunk,
            paced_at: self.args.rate,
            enqueue,
            drain,
            end_to_end,
        })
    }

    /// Publish `-n` tasks in chunks, no faster than `rate` tasks/s if given;
    /// returns the ids, the time each chunk was sent (by id), and the
    /// seconds it took.
    async fn enqueue(
        &self,
        rate: Option<f64>,
    ) -> anyhow::Result<(Vec<String>, HashMap<String, DateTime<Utc>>, f64)> {
        let n = self.args.tasks;
        let mut ids = Vec::with_capacity(n);
        let mut sent_at = HashMap::with_capacity(n);
        let start = Instant::now();
        let mut left = n;
        while left > 0 {
            if let Some(rate) = rate {
                // Chunk k may go out k * chunk / rate seconds after the start.
                let due = Duration::from_secs_f64((n - left) as f64 / rate);
                tokio::time::sleep_until((start + due).into()).await;
            }
            let size = left.min(self.args.chunk);
            left -= size;
            let options = SendOptions::new()
                .queue(self.args.queue.clone())
                .ignore_result(self.args.no_results);
            let calls = (0..size).map(|_| {
                (
                    self.args.task.clone(),
                    Vec::new(),
                    Map::new(),
                    options.clone(),
                )
            });
            let now = Utc::now();
            let chunk = self
                .app
                .send_batch(calls)
                .await
                .context("publishing a batch of bench tasks")?;
            for id in &chunk {
                sent_at.insert(id.clone(), now);
            }
            ids.extend(chunk);
        }
        Ok((ids, sent_at, start.elapsed().as_secs_f64()))
    }

    async fn start_pool(&self) -> anyhow::Result<Pool> {
        if !self.args.processes {
            let workers = (0..self.args.workers)
                .map(|i| {
                    let options = WorkerOptions {
                        hostname: format!("{}-{i}", self.options.hostname),
                        ..self.options.clone()
                    };
                    InProcessWorker::start(self.app.clone(), options)
                })
                .collect();
            return Ok(Pool::InProcess(workers));
        }
        let exe = std::env::current_exe().context("finding the celeriac executable")?;
        let mut children = Vec::new();
        for i in 0..self.args.workers {
            let mut cmd = tokio::process::Command::new(&exe);
            cmd.arg("worker")
                .args(["-Q", &self.args.queue])
                .args(["-c", &self.options.concurrency.to_string()])
                .args(["--prefetch", &self.options.prefetch.to_string()])
                .args(["-n", &format!("bench-{i}@{}", std::process::id())])
                .args([
                    "--visibility-timeout",
                    &self.config.app.visibility_timeout.as_secs_f64().to_string(),
                ])
                // URLs travel in the environment, not argv, so a password
                // never shows in `ps`.
                .env("CELERIAC_BROKER_URL", &self.config.app.broker_url)
                .env("CELERIAC_RESULT_BACKEND", &self.config.app.backend_url)
                .env_remove("CELERIAC_CONFIG")
                .kill_on_drop(true);
            if self.args.acks_late {
                cmd.arg("--acks-late");
            }
            if std::env::var_os("RUST_LOG").is_none() {
                cmd.args(["--loglevel", "warn"]);
            }
            children.push(cmd.spawn().context("starting a worker process")?);
        }
        Ok(Pool::Processes(children))
    }

    /// Wait until the `ids` are done; rate from `started` to the last
    /// completion, CPU per task from `cpu` to the moment all were seen done
    /// (before reading the results back, which costs CPU of its own).
    async fn drain_phase(
        &self,
        pool: &Pool,
        ids: &[String],
        started: DateTime<Utc>,
        cpu: &cpu::CpuMark,
    ) -> anyhow::Result<Phase> {
        let detected = self.wait_done(pool, ids.len() as u64).await?;
        let cpu_per_task = cpu
            .per_task(ids.len(), &pool.pids(), &self.config.app.broker_url)
            .await;
        let end = if self.args.no_results {
            detected
        } else {
            let done = self.completions(ids).await?;
            done.values().copied().max().unwrap_or(detected)
        };
        let mut phase = Phase::new(ids.len(), seconds_between(started, end), None);
        phase.cpu_per_task = cpu_per_task;
        Ok(phase)
    }

    async fn end_to_end_phase(&self, pool: &Pool, processed_target: u64) -> anyhow::Result<Phase> {
        let started = Utc::now();
        let (ids, sent_at, _) = self.enqueue(self.args.rate).await?;
        let detected = self.wait_done(pool, processed_target).await?;
        if self.args.no_results {
            return Ok(Phase::new(
                ids.len(),
                seconds_between(started, detected),
                None,
            ));
        }
        let done = self.completions(&ids).await?;
        let end = done.values().copied().max().unwrap_or(detected);
        let mut latencies: Vec<f64> = done
            .iter()
            .filter_map(|(id, at)| {
                sent_at
                    .get(id)
                    .map(|sent| seconds_between(*sent, *at) * 1e3)
            })
            .collect();
        latencies.sort_by(f64::total_cmp);
        let latency = Latency {
            p50: percentile(&latencies, 0.50),
            p99: percentile(&latencies, 0.99),
            max: latencies.last().copied().unwrap_or(0.0),
        };
        Ok(Phase::new(
            ids.len(),
            seconds_between(started, end),
            Some(latency),
        ))
    }

    /// Wait until the pool has finished everything sent so far; returns when
    /// that was noticed.
    async fn wait_done(&self, pool: &Pool, processed_target: u64) -> anyhow::Result<DateTime<Utc>> {
        let give_up = Instant::now() + self.deadline;
        loop {
            let finished = match pool.processed() {
                Some(count) => count >= processed_target,
                // Observed from outside: nothing left to take. What is still
                // running is awaited through its result in `completions`.
                None => self.app.broker().queue_depth(&self.args.queue).await? == 0,
            };
            if finished {
                return Ok(Utc::now());
            }
            if Instant::now() >= give_up {
                bail!(
                    "the {} workers did not finish within {:?}",
                    pool.describe(),
                    self.deadline
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Every task's completion time, from its stored result; fails if any
    /// task did not succeed.
    async fn completions(&self, ids: &[String]) -> anyhow::Result<HashMap<String, DateTime<Utc>>> {
        let wait = self.deadline;
        let mut stream = futures::stream::iter(ids.iter().cloned())
            .map(|id| {
                let backend = std::sync::Arc::clone(self.app.backend());
                async move {
                    let meta = backend.wait(&id, wait).await;
                    (id, meta)
                }
            })
            .buffer_unordered(64);
        let mut done = HashMap::with_capacity(ids.len());
        while let Some((id, meta)) = stream.next().await {
            let meta = meta.with_context(|| format!("reading the result of {id}"))?;
            let Some(meta) = meta.filter(|m| m.status.is_ready()) else {
                bail!("task {id} has no result after {wait:?}");
            };
            if meta.status != TaskState::Success {
                bail!(
                    "task {id} ({}) ended {}: {}; is {} registered on the workers?",
                    self.args.task,
                    meta.status,
                    meta.result,
                    self.args.task
                );
            }
            let at = meta
                .date_done
                .as_deref()
                .and_then(time::parse)
                .with_context(|| format!("the result of {id} has no readable date_done"))?;
            done.insert(id, at);
        }
        Ok(done)
    }
}

fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
}

/// The `q` quantile of sorted values (nearest rank).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn print_report(r: &Report) {
    println!(
        "celeriac bench: {} × {} per phase; {} {} worker(s) × concurrency {} (prefetch {}); results {}; acks {}",
        r.tasks_per_phase,
        r.task,
        r.workers,
        r.pool,
        r.concurrency,
        r.prefetch,
        if r.results_stored { "stored" } else { "not stored" },
        if r.acks_late { "late" } else { "early" },
    );
    println!("  broker {}, backend {}", r.broker, r.backend);
    if let Some(rate) = r.paced_at {
        println!("  end-to-end producer paced at {rate} tasks/s");
    }
    let line = |name: &str, p: &Phase| {
        let latency = p
            .latency_ms
            .as_ref()
            .map(|l| {
                format!(
                    "   latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                    l.p50, l.p99, l.max
                )
            })
            .unwrap_or_default();
        println!(
            "  {name:<11} {:>8.0} tasks/s  ({} tasks in {:.3} s){latency}",
            p.tasks_per_second, r.tasks_per_phase, p.seconds
        );
    };
    line("enqueue", &r.enqueue);
    line("drain", &r.drain);
    if let Some(cpu) = r.drain.cpu_per_task {
        let redis = cpu
            .redis_us
            .map(|us| format!(", Redis {us:.1} µs"))
            .unwrap_or_default();
        println!(
            "  {:<11} workers {:.1} µs{redis} of CPU per task (load on the machine skews this less than the rates)",
            "drain CPU", cpu.workers_us
        );
    }
    line("end to end", &r.end_to_end);
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
}
