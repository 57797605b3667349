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

mod args;
mod celery;
mod cpu;
mod message;
mod pool;
mod procfs;
mod report;
mod results;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use celeriac::broker::OutgoingMessage;
use celeriac::{App, SendOptions, WorkerOptions};
use chrono::{DateTime, Utc};
use serde_json::Map;

use crate::config::Config;
use crate::inprocess::InProcessWorker;
pub(crate) use args::{Args, RowKind};
use pool::Pool;
use report::{
    percentile, print_header, print_row, seconds_between, Latency, Phase, Report, Row, Rss,
};
use results::{completions, still_pending, tail_window};

/// How long a worker is left without work before its idle RSS is read.
const IDLE_SETTLE: Duration = Duration::from_secs(2);

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
