//! `celeriac bench`: how fast the queue moves tasks, measured as a user runs
//! it.
//!
//! **First row (the figure to quote): `celeriac worker` processes at their
//! default flags** (`-W` of them; `-c`/`--prefetch` passed only when given,
//! so by default the adaptive prefetch window is what is measured), running
//! the sync task `tasks.add(2, 2)` with results stored, fed by raw Celery
//! messages: the bytes Python Celery sends ([`message`]), not messages made
//! by this crate's producer. **Second row: an in-process worker** running an
//! async no-op (`tasks.noop`, `-c 128`, prefetch 512 unless given): the cost
//! of the queue alone, without process boundaries or a task body.
//!
//! Three phases per row on one broker and backend (a scratch SQLite file
//! unless `--broker`/`--backend` say otherwise), each with `-n` tasks:
//!
//! 1. **enqueue**: publish in chunks while no worker consumes; rate = tasks
//!    / time to publish them all.
//! 2. **drain**: start the workers on the full queue; rate = tasks / (last
//!    completion − worker start), process start-up included; also the
//!    *steady* rate from the first completion to the last.
//! 3. **end to end**: with the workers running, publish again in chunks
//!    (as fast as possible, or paced with `--rate`); rate = tasks / (last
//!    completion − first publish), and each task's latency = its completion
//!    − the moment its chunk was sent. Unpaced, the producer outruns the
//!    workers and the latency is mostly time spent queued behind the
//!    backlog; paced below the drain rate, it is the latency of a queue
//!    keeping up (paced chunks go out every millisecond).
//!
//! The drain phase also reports CPU time per task, of the workers and (on
//! Redis) of the Redis server ([`cpu`]): on a shared machine, where rates
//! move with everyone else's load, that is the steadier figure. The worker
//! row reports the worker process's resident memory: idle (a fresh worker
//! on the empty queue, after a settling pause), its peak over the run, and
//! after the run.
//!
//! A completion time is the `date_done` the worker stored with the result
//! (Celery's own field), so the measurement reads only what any Celery-
//! compatible worker writes. That is the seam `--compare-celery` uses
//! ([`celery`]): the same raw messages, drained by Python Celery at its
//! defaults and tuned, timed the same way.

mod celery;
mod cpu;
mod message;
mod procfs;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use celeriac::backend::ResultBackend;
use celeriac::broker::OutgoingMessage;
use celeriac::protocol::{time, TaskState};
use celeriac::{App, SendOptions, WorkerOptions};
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde::Serialize;
use serde_json::Map;

use crate::config::{Config, ConnectionArgs};
use crate::inprocess::InProcessWorker;

/// Arguments of `celeriac bench`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = AFTER_HELP)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,

    /// Tasks per phase
    #[arg(
        short = 'n',
        long = "tasks",
        value_name = "N",
        default_value_t = 20_000
    )]
    pub(crate) tasks: usize,

    /// Concurrency: passed to the `celeriac worker` processes only when
    /// given (their default is the number of cores); the in-process row's
    /// [default: 128]
    #[arg(short = 'c', long, value_name = "N")]
    pub(crate) concurrency: Option<usize>,

    /// Number of `celeriac worker` processes
    #[arg(short = 'w', long, value_name = "W", default_value_t = 1)]
    pub(crate) workers: usize,

    /// Messages each worker holds at once: passed to the `celeriac worker`
    /// processes only when given (their default is the adaptive window, up
    /// to 512); the in-process row's [default: 4 × concurrency]
    #[arg(long, value_name = "N")]
    pub(crate) prefetch: Option<usize>,

    /// Worker row: pass `--pool` to the workers (`threads`, their default,
    /// or `blocking`), to compare where sync tasks run
    #[arg(short = 'P', long, value_name = "POOL")]
    pub(crate) pool: Option<String>,

    /// Run only one row: `worker` (`celeriac worker` processes, tasks.add,
    /// results stored) or `in-process` (the async no-op in this process)
    #[arg(long, value_name = "ROW")]
    pub(crate) only: Option<RowKind>,

    /// In-process row only: send with ignore_result, nothing stored (no
    /// latency figures)
    #[arg(long)]
    pub(crate) no_results: bool,

    /// Workers acknowledge after each task instead of on receipt
    #[arg(long)]
    pub(crate) acks_late: bool,

    /// Messages per publish [default: 1000; paced with --rate: one chunk per
    /// millisecond]
    #[arg(long, value_name = "N")]
    pub(crate) chunk: Option<usize>,

    /// Queue to use, kept apart from real work
    #[arg(
        short = 'q',
        long,
        value_name = "QUEUE",
        default_value = "celeriac.bench"
    )]
    pub(crate) queue: String,

    /// In-process row only: the task to send; it must take no arguments
    #[arg(long, value_name = "NAME", default_value = "tasks.noop")]
    pub(crate) task: String,

    /// Pace the end-to-end phase's producer at this many tasks per second,
    /// to read the latency of a queue that keeps up (e.g. 1000, 10000)
    /// [default: as fast as it can]
    #[arg(long, value_name = "TASKS_PER_SECOND")]
    pub(crate) rate: Option<f64>,

    /// Give up a phase after this many seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 300.0)]
    pub(crate) timeout: f64,

    /// Print the report as JSON
    #[arg(long)]
    pub(crate) json: bool,

    /// Also drain the worker row's raw messages with Python Celery (one
    /// worker, prefork, concurrency = cores), at its defaults and tuned
    /// (prefetch multiplier 128, without gossip, mingle and heartbeat), on
    /// this Redis URL, and print both ratios. Runs
    /// bench/python/celery_bench.py with $CELERIAC_PYTHON, else
    /// .venv/bin/python, else python3. THE DATABASE AT THIS URL IS FLUSHED:
    /// give it a scratch database.
    #[arg(long, value_name = "REDIS_URL")]
    pub(crate) compare_celery: Option<String>,

    /// Tasks for each Python Celery drain [default: -n]
    #[arg(long, value_name = "N")]
    pub(crate) celery_tasks: Option<usize>,
}

const AFTER_HELP: &str = "\
Rows:
  worker       `celeriac worker` processes at default flags (what a user runs),
               fed raw Celery messages for the sync task tasks.add(2, 2), results
               stored. Figures: enqueue, drain (from the processes' start, and
               steady from the first result), CPU per task (worker and Redis),
               end to end (latency enqueue -> date_done), worker RSS (idle,
               peak, after the run).
  in-process   a worker inside this process running the async no-op tasks.noop
               (-c 128, prefetch 512): the queue's own cost.

Examples:
  celeriac bench                                    # embedded SQLite, scratch file
  celeriac bench --broker redis://127.0.0.1:6379/1 --backend redis://127.0.0.1:6379/1 \\
      --compare-celery redis://127.0.0.1:6379/2
  celeriac bench --broker ... --backend ... --only worker -n 10000 --rate 1000
";

/// Which row(s) to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RowKind {
    /// `celeriac worker` processes, raw Celery messages for tasks.add.
    Worker,
    /// A worker in this process, the async no-op.
    InProcess,
}

impl RowKind {
    /// What each task of the row returns, when the bench knows it.
    fn expected(self) -> Option<i64> {
        match self {
            RowKind::Worker => Some(message::RESULT),
            RowKind::InProcess => None,
        }
    }
}

/// The bench's report (text or `--json`).
#[derive(Debug, Serialize)]
struct Report {
    broker: String,
    backend: String,
    tasks_per_phase: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    load_average_before: Option<[f64; 3]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    load_average_after: Option<[f64; 3]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    worker: Option<Row>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    celery: Vec<celery::CeleryRun>,
    #[serde(skip_serializing_if = "Option::is_none")]
    in_process: Option<Row>,
}

/// One row's figures.
#[derive(Debug, Serialize)]
struct Row {
    kind: RowKind,
    task: String,
    workers: usize,
    /// `None`: the worker's own default (the number of cores).
    concurrency: Option<usize>,
    /// `None`: the worker's own default (the adaptive window).
    prefetch: Option<usize>,
    results_stored: bool,
    acks_late: bool,
    chunk: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    paced_at: Option<f64>,
    enqueue: Phase,
    drain: Phase,
    end_to_end: Phase,
    #[serde(skip_serializing_if = "Option::is_none")]
    rss_mib: Option<Rss>,
}

/// One phase's figures.
#[derive(Debug, Serialize)]
struct Phase {
    seconds: f64,
    tasks_per_second: f64,
    /// Drain only: from the first completion to the last (start-up left out).
    #[serde(skip_serializing_if = "Option::is_none")]
    steady_tasks_per_second: Option<f64>,
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

/// Resident memory of a worker process, MiB (the largest over the worker
/// processes).
#[derive(Debug, Default, Serialize)]
struct Rss {
    /// A fresh worker on the empty queue, after [`IDLE_SETTLE`].
    idle: Option<f64>,
    /// The peak (`VmHWM`) over the drain and end-to-end phases.
    peak: Option<f64>,
    /// Once the run is over, after [`IDLE_SETTLE`] without work.
    after_run: Option<f64>,
}

/// How long a worker is left without work before its idle RSS is read.
const IDLE_SETTLE: Duration = Duration::from_secs(2);

impl Phase {
    fn new(tasks: usize, seconds: f64, latency_ms: Option<Latency>) -> Phase {
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
    fn drain(
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

/// Who consumes the bench queue.
enum Pool {
    /// Workers in this process, sharing its broker connection.
    InProcess(Vec<InProcessWorker>),
    /// Worker processes (`celeriac worker`, or a Python Celery worker).
    Processes(Vec<tokio::process::Child>),
}

impl Pool {
    fn describe(&self) -> &'static str {
        match self {
            Pool::InProcess(_) => "in-process",
            Pool::Processes(_) => "worker process",
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

    /// The largest of the worker processes' `field` (`VmRSS`, `VmHWM`).
    fn memory_mib(&self, field: &str) -> Option<f64> {
        self.pids()
            .into_iter()
            .filter_map(|pid| procfs::memory_mib(pid, field))
            .reduce(f64::max)
    }

    /// Fails if a worker process has exited (it cannot finish the run).
    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Pool::Processes(children) = self {
            for child in children {
                if let Some(status) = child.try_wait().context("polling a worker process")? {
                    bail!("a worker process exited early ({status}); run it by hand to see why");
                }
            }
        }
        Ok(())
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
                    match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
                        Ok(status) => {
                            let status = status.context("waiting for a worker process")?;
                            if !status.success() {
                                tracing::warn!(%status, "a bench worker process exited with an error");
                            }
                        }
                        Err(_) => {
                            tracing::warn!(
                                "a bench worker process ignored SIGTERM for 30 s; killing it"
                            );
                            let _ = child.kill().await;
                        }
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
    deadline: Duration,
}

/// `celeriac bench`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    if args.tasks == 0
        || args.chunk == Some(0)
        || args.workers == 0
        || args.concurrency == Some(0)
        || args.prefetch == Some(0)
        || args.celery_tasks == Some(0)
    {
        bail!("--tasks, --chunk, --workers, --concurrency, --prefetch and --celery-tasks must be at least 1");
    }
    if args.no_results && args.only == Some(RowKind::Worker) {
        bail!("--no-results applies to the in-process row only: the worker row is observed through its stored results");
    }
    if args.compare_celery.is_some() && args.only == Some(RowKind::InProcess) {
        bail!("--compare-celery drains the worker row's messages: drop --only in-process");
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
    // The bench runs the example tasks whatever the binary registers.
    let app = config.connect(crate::examples::register).await?;
    let waiting = app.broker().queues().depth(&args.queue).await?;
    if waiting > 0 {
        bail!(
            "queue {:?} already holds {waiting} messages; use an empty queue (--queue) or broker",
            args.queue
        );
    }
    let bench = Bench {
        args,
        config,
        app,
        deadline,
    };
    let text = !bench.args.json;
    let mut report = Report {
        broker: bench.config.broker_display(),
        backend: bench.config.backend_display(),
        tasks_per_phase: bench.args.tasks,
        load_average_before: procfs::load_average(),
        load_average_after: None,
        worker: None,
        celery: Vec::new(),
        in_process: None,
    };
    if text {
        print_header(&report);
    }
    if bench.args.only != Some(RowKind::InProcess) {
        let row = bench.row(RowKind::Worker).await?;
        if text {
            print_row(&row, report.tasks_per_phase);
        }
        if let Some(url) = &bench.args.compare_celery {
            let n = bench.args.celery_tasks.unwrap_or(bench.args.tasks);
            for preset in celery::PRESETS {
                let run = bench.celery(url, preset, n, &row).await?;
                if text {
                    celery::print_run(&run);
                }
                report.celery.push(run);
            }
        }
        report.worker = Some(row);
    }
    if bench.args.only != Some(RowKind::Worker) {
        let row = bench.row(RowKind::InProcess).await?;
        if text {
            print_row(&row, report.tasks_per_phase);
        }
        report.in_process = Some(row);
    }
    report.load_average_after = procfs::load_average();
    if text {
        if let Some([one, ..]) = report.load_average_after {
            println!("load average at the end: {one:.2}");
        }
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    drop(scratch);
    Ok(())
}

impl Bench {
    /// Messages per publish call.
    fn chunk(&self, paced: bool) -> usize {
        match (self.args.chunk, self.args.rate) {
            (Some(chunk), _) => chunk,
            (None, Some(rate)) if paced => ((rate / 1000.0).round() as usize).max(1),
            (None, _) => 1000,
        }
    }

    /// The in-process row's worker options.
    fn in_process_options(&self) -> WorkerOptions {
        let concurrency = self.args.concurrency.unwrap_or(128);
        WorkerOptions {
            queues: vec![self.args.queue.clone()],
            concurrency,
            prefetch: self.args.prefetch.unwrap_or(concurrency * 4),
            acks_late: self.args.acks_late,
            ..WorkerOptions::default()
        }
    }

    async fn row(&self, kind: RowKind) -> anyhow::Result<Row> {
        let n = self.args.tasks;
        let results_stored = kind == RowKind::Worker || !self.args.no_results;
        let (concurrency, prefetch, task) = match kind {
            RowKind::Worker => (
                self.args.concurrency,
                self.args.prefetch,
                message::TASK.to_owned(),
            ),
            RowKind::InProcess => {
                let options = self.in_process_options();
                (
                    Some(options.concurrency),
                    Some(options.prefetch),
                    self.args.task.clone(),
                )
            }
        };
        let mut rss = None;
        if kind == RowKind::Worker {
            rss = Some(Rss {
                idle: self.idle_rss().await?,
                ..Rss::default()
            });
        }

        // 1. Enqueue with nobody consuming.
        let enqueue_start = Instant::now();
        let (ids, _) = self.enqueue(kind, &self.app, n, None).await?;
        let enqueue = Phase::new(n, enqueue_start.elapsed().as_secs_f64(), None);

        // 2. Drain the full queue.
        let broker_url = &self.config.app.broker_url;
        let cpu = cpu::CpuMark::before_workers(kind == RowKind::InProcess, broker_url).await;
        let started = Utc::now();
        let mut pool = match kind {
            RowKind::Worker => self.start_processes()?,
            RowKind::InProcess => self.start_in_process(),
        };
        let outcome = self
            .drain_phase(&mut pool, &ids, started, &cpu, kind, results_stored)
            .await;
        let drain = match outcome {
            Ok(phase) => phase,
            Err(err) => {
                pool.stop().await?;
                return Err(err);
            }
        };

        // 3. Enqueue while the workers consume.
        let outcome = self
            .end_to_end_phase(kind, &mut pool, 2 * n as u64, results_stored)
            .await;
        if let (Some(rss), Ok(_)) = (rss.as_mut(), outcome.as_ref()) {
            rss.peak = pool.memory_mib("VmHWM");
            tokio::time::sleep(IDLE_SETTLE).await;
            rss.after_run = pool.memory_mib("VmRSS");
        }
        pool.stop().await?;
        let end_to_end = outcome?;

        Ok(Row {
            kind,
            task,
            workers: match kind {
                RowKind::Worker => self.args.workers,
                RowKind::InProcess => 1,
            },
            concurrency,
            prefetch,
            results_stored,
            acks_late: self.args.acks_late,
            chunk: self.chunk(false),
            paced_at: self.args.rate,
            enqueue,
            drain,
            end_to_end,
            rss_mib: rss,
        })
    }

    /// The resident memory of a fresh worker process on the empty queue.
    async fn idle_rss(&self) -> anyhow::Result<Option<f64>> {
        let mut pool = self.start_processes_n(1)?;
        tokio::time::sleep(IDLE_SETTLE).await;
        let alive = pool.check_alive();
        let rss = pool.memory_mib("VmRSS");
        pool.stop().await?;
        alive?;
        Ok(rss)
    }

    /// Publish `n` tasks in chunks, no faster than `rate` tasks/s if given;
    /// returns the ids and the time each chunk was sent (by id).
    async fn enqueue(
        &self,
        kind: RowKind,
        app: &App,
        n: usize,
        rate: Option<f64>,
    ) -> anyhow::Result<(Vec<String>, HashMap<String, DateTime<Utc>>)> {
        let chunk_size = self.chunk(rate.is_some());
        let mut ids = Vec::with_capacity(n);
        let mut sent_at = HashMap::with_capacity(n);
        let mut messages = message::Messages::new(&self.args.queue);
        let start = Instant::now();
        let mut left = n;
        while left > 0 {
            if let Some(rate) = rate {
                // Chunk k may go out k * chunk / rate seconds after the start.
                let due = Duration::from_secs_f64((n - left) as f64 / rate);
                tokio::time::sleep_until((start + due).into()).await;
            }
            let size = left.min(chunk_size);
            left -= size;
            let now = Utc::now();
            let chunk = match kind {
                RowKind::Worker => {
                    let chunk: Vec<String> = (0..size).map(|_| messages.next_id()).collect();
                    let batch = chunk
                        .iter()
                        .map(|id| OutgoingMessage {
                            queue: self.args.queue.clone(),
                            priority: 0,
                            not_before: None,
                            payload: messages.message(id),
                        })
                        .collect();
                    app.broker()
                        .publish_batch(batch)
                        .await
                        .context("publishing raw Celery messages")?;
                    chunk
                }
                RowKind::InProcess => {
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
                    app.send_batch(calls)
                        .await
                        .context("publishing a batch of bench tasks")?
                }
            };
            for id in &chunk {
                sent_at.insert(id.clone(), now);
            }
            ids.extend(chunk);
        }
        Ok((ids, sent_at))
    }

    fn start_in_process(&self) -> Pool {
        let options = self.in_process_options();
        Pool::InProcess(vec![InProcessWorker::start(self.app.clone(), options)])
    }

    fn start_processes(&self) -> anyhow::Result<Pool> {
        self.start_processes_n(self.args.workers)
    }

    /// `count` `celeriac worker` processes: default flags, except the queue,
    /// a name, the visibility timeout, and what the user gave (`-c`,
    /// `--prefetch`, `--pool`, `--acks-late`).
    fn start_processes_n(&self, count: usize) -> anyhow::Result<Pool> {
        let exe = std::env::current_exe().context("finding the celeriac executable")?;
        let mut children = Vec::new();
        for i in 0..count {
            let mut cmd = tokio::process::Command::new(&exe);
            cmd.args(["worker", "--with-example-tasks"])
                .args(["-Q", &self.args.queue])
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
            if let Some(c) = self.args.concurrency {
                cmd.args(["-c", &c.to_string()]);
            }
            if let Some(p) = self.args.prefetch {
                cmd.args(["--prefetch", &p.to_string()]);
            }
            if let Some(pool) = &self.args.pool {
                cmd.args(["--pool", pool]);
            }
            if self.args.acks_late {
                cmd.arg("--acks-late");
            }
            if std::env::var_os("RUST_LOG").is_none() {
                cmd.args(["--loglevel", "error"]);
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
        pool: &mut Pool,
        ids: &[String],
        started: DateTime<Utc>,
        cpu: &cpu::CpuMark,
        kind: RowKind,
        results_stored: bool,
    ) -> anyhow::Result<Phase> {
        let detected = self
            .wait_done(pool, &self.app, ids, ids.len() as u64)
            .await?;
        let cpu_per_task = cpu
            .per_task(ids.len(), &pool.pids(), &self.config.app.broker_url)
            .await;
        let mut phase = if results_stored {
            let done = completions(self.app.backend(), ids, kind.expected(), self.deadline).await?;
            Phase::drain(&done, started, detected)
        } else {
            Phase::new(ids.len(), seconds_between(started, detected), None)
        };
        phase.cpu_per_task = cpu_per_task;
        Ok(phase)
    }

    async fn end_to_end_phase(
        &self,
        kind: RowKind,
        pool: &mut Pool,
        processed_target: u64,
        results_stored: bool,
    ) -> anyhow::Result<Phase> {
        let n = self.args.tasks;
        let started = Utc::now();
        let (ids, sent_at) = self.enqueue(kind, &self.app, n, self.args.rate).await?;
        let detected = self
            .wait_done(pool, &self.app, &ids, processed_target)
            .await?;
        if !results_stored {
            return Ok(Phase::new(n, seconds_between(started, detected), None));
        }
        let done = completions(self.app.backend(), &ids, kind.expected(), self.deadline).await?;
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
        Ok(Phase::new(n, seconds_between(started, end), Some(latency)))
    }

    /// Wait until the pool has finished the `ids` (in-process: until its
    /// counter reaches `processed_target`); returns when that was noticed.
    ///
    /// Worker processes are observed from outside, cheaply, so that the
    /// watching adds little to the CPU per task: the queue must be empty,
    /// then the results of the last messages published (the only ones that
    /// can still be held: each worker takes at most its prefetch window,
    /// oldest first) must be stored.
    async fn wait_done(
        &self,
        pool: &mut Pool,
        app: &App,
        ids: &[String],
        processed_target: u64,
    ) -> anyhow::Result<DateTime<Utc>> {
        let give_up = Instant::now() + self.deadline;
        let window = tail_window(self.args.workers, self.args.prefetch);
        let mut pending: Vec<String> = ids[ids.len().saturating_sub(window)..].to_vec();
        let mut emptied = false;
        loop {
            let finished = match pool.processed() {
                Some(count) => count >= processed_target,
                None => {
                    pool.check_alive()?;
                    emptied = emptied || app.broker().queues().depth(&self.args.queue).await? == 0;
                    if emptied {
                        pending = still_pending(app.backend(), pending).await?;
                    }
                    emptied && pending.is_empty()
                }
            };
            if finished {
                return Ok(Utc::now());
            }
            if Instant::now() >= give_up {
                bail!(
                    "the {} did not finish within {:?}",
                    pool.describe(),
                    self.deadline
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// How many of the last-published ids a drain watches once the queue is
/// empty: more than all the workers can hold.
fn tail_window(workers: usize, prefetch: Option<usize>) -> usize {
    workers * (2 * prefetch.unwrap_or(0)).max(4096)
}

/// The ids among `ids` without a ready result yet.
async fn still_pending(
    backend: &Arc<dyn ResultBackend>,
    ids: Vec<String>,
) -> anyhow::Result<Vec<String>> {
    let mut stream = futures::stream::iter(ids)
        .map(|id| {
            let backend = Arc::clone(backend);
            async move {
                let meta = backend.fetch(&id).await;
                (id, meta)
            }
        })
        .buffer_unordered(64);
    let mut pending = Vec::new();
    while let Some((id, meta)) = stream.next().await {
        let meta = meta.with_context(|| format!("reading the result of {id}"))?;
        if !meta.is_some_and(|m| m.status.is_ready()) {
            pending.push(id);
        }
    }
    Ok(pending)
}

/// Every task's completion time, from its stored result; fails if any
/// task did not succeed, or (with `expected`) returned something else.
async fn completions(
    backend: &Arc<dyn ResultBackend>,
    ids: &[String],
    expected: Option<i64>,
    wait: Duration,
) -> anyhow::Result<HashMap<String, DateTime<Utc>>> {
    let mut stream = futures::stream::iter(ids.iter().cloned())
        .map(|id| {
            let backend = Arc::clone(backend);
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
                "task {id} ended {}: {}; is its task registered on the workers?",
                meta.status,
                meta.result,
            );
        }
        if let Some(expected) = expected {
            if meta.result != expected {
                bail!("task {id} returned {}, not {expected}", meta.result);
            }
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

/// "workers 16.0 µs, Redis 11.0 µs of CPU per task".
fn describe_cpu(cpu: &cpu::CpuPerTask) -> String {
    let redis = cpu
        .redis_us
        .map(|us| format!(", Redis {us:.1} µs"))
        .unwrap_or_default();
    format!(
        "workers {:.1} µs{redis} of CPU per task (the machine's load skews this less than the rates)",
        cpu.workers_us
    )
}

fn print_header(r: &Report) {
    let load = r
        .load_average_before
        .map(|[one, five, _]| format!("; load average {one:.2} (5 min {five:.2})"))
        .unwrap_or_default();
    println!(
        "celeriac bench: {} tasks per phase; broker {}, backend {}{load}",
        r.tasks_per_phase, r.broker, r.backend
    );
}

fn print_row(r: &Row, n: usize) {
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

    #[test]
    fn the_watched_tail_covers_every_worker_window() {
        assert_eq!(tail_window(1, None), 4096);
        assert_eq!(tail_window(2, Some(512)), 8192);
        assert_eq!(tail_window(1, Some(10_000)), 20_000);
    }
}
