//! `--compare-celery`: the worker row's raw messages drained by Python
//! Celery (`bench/python/celery_bench.py worker`, which execs `celery -A
//! benchtasks worker`), timed exactly as the Celeriac worker processes are:
//! from the process's start (and from its first result) to the last
//! `date_done` it stored, with the CPU of its process tree and of Redis.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context as _};
use celeriac::{App, AppConfig};
use chrono::Utc;
use serde::Serialize;

use super::pool::Pool;
use super::report::{describe_cpu, Phase, Row};
use super::results::completions;
use super::{cpu, procfs, Bench, RowKind};

/// The presets of `celery_bench.py`, in the order they run.
pub(super) const PRESETS: [Preset; 2] = [
    Preset {
        name: "defaults",
        describe: "prefork, -c cores, prefetch multiplier 4, gossip/mingle/heartbeat on",
    },
    Preset {
        name: "tuned",
        describe: "prefork, -c cores, --prefetch-multiplier 128 --without-gossip --without-mingle --without-heartbeat",
    },
];

/// A Python Celery configuration.
#[derive(Debug, Clone, Copy)]
pub(super) struct Preset {
    name: &'static str,
    describe: &'static str,
}

/// One Python Celery drain.
#[derive(Debug, Serialize)]
pub(super) struct CeleryRun {
    preset: &'static str,
    system: String,
    tasks: usize,
    drain: Phase,
    /// The Celeriac worker row's drain rate over this one (both from the
    /// worker's start).
    ratio: f64,
    /// The same, both from the first result.
    #[serde(skip_serializing_if = "Option::is_none")]
    steady_ratio: Option<f64>,
}

impl Bench {
    /// Drain `n` of the worker row's messages with Python Celery at
    /// `preset` on the (flushed) Redis database `url`.
    pub(super) async fn celery(
        &self,
        url: &str,
        preset: Preset,
        n: usize,
        ours: &Row,
    ) -> anyhow::Result<CeleryRun> {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            bail!("--compare-celery needs a redis:// URL");
        }
        let (python, script) = locate()?;
        let config = AppConfig {
            broker_url: url.to_owned(),
            backend_url: url.to_owned(),
            ..self.config.app.clone()
        };
        let app = App::builder()
            .config(config)
            .build()
            .await
            .with_context(|| format!("connecting to {}", celeriac::redact(url)))?;
        let client = redis::Client::open(url).context("the --compare-celery URL")?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .with_context(|| format!("connecting to {}", celeriac::redact(url)))?;
        let _: () = redis::cmd("FLUSHDB")
            .query_async(&mut conn)
            .await
            .context("flushing the --compare-celery database")?;
        let version = celery_version(&python).await;

        let (ids, _) = self.enqueue(RowKind::Worker, &app, n, None).await?;
        let redis_before = cpu::redis_seconds(url).await;
        let started = Utc::now();
        let mut cmd = tokio::process::Command::new(&python);
        cmd.arg(&script)
            .arg("worker")
            .args(["--url", url, "--queue", &self.args.queue])
            .args(["--preset", preset.name])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        if self.args.acks_late {
            cmd.arg("--acks-late");
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("running {python} {}", script.display()))?;
        let mut pool = Pool::Processes(vec![child]);
        let outcome = async {
            let detected = self.wait_done(&mut pool, &app, &ids, 0).await?;
            // The pool's children are counted too, so not `CpuMark::per_task`.
            let workers: f64 = pool
                .pids()
                .into_iter()
                .filter_map(procfs::tree_seconds)
                .sum();
            let redis_after = cpu::redis_seconds(url).await;
            let per_task = |seconds: f64| seconds * 1e6 / n as f64;
            let cpu_per_task = cpu::CpuPerTask {
                workers_us: per_task(workers),
                redis_us: redis_before.zip(redis_after).map(|(b, a)| per_task(a - b)),
            };
            let done = completions(
                app.backend(),
                &ids,
                RowKind::Worker.expected(),
                self.deadline,
            )
            .await?;
            let mut drain = Phase::drain(&done, started, detected);
            drain.cpu_per_task = Some(cpu_per_task);
            anyhow::Ok(drain)
        }
        .await;
        pool.stop().await?;
        let drain = outcome.context("draining with Python Celery")?;
        let ratio = ours.drain.tasks_per_second / drain.tasks_per_second;
        let steady_ratio = ours
            .drain
            .steady_tasks_per_second
            .zip(drain.steady_tasks_per_second)
            .map(|(a, b)| a / b);
        Ok(CeleryRun {
            preset: preset.name,
            system: format!("Python Celery {version} ({})", preset.describe),
            tasks: n,
            drain,
            ratio,
            steady_ratio,
        })
    }
}

/// The Python and the script: `$CELERIAC_PYTHON`, else the repository's
/// `.venv`, else `python3`.
fn locate() -> anyhow::Result<(String, PathBuf)> {
    let script = [
        PathBuf::from("bench/python/celery_bench.py"),
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../bench/python/celery_bench.py"
        )),
    ]
    .into_iter()
    .find(|p| p.exists())
    .context("bench/python/celery_bench.py not found: run from the repository root")?;
    let python = std::env::var("CELERIAC_PYTHON").ok().unwrap_or_else(|| {
        if std::path::Path::new(".venv/bin/python").exists() {
            ".venv/bin/python".to_owned()
        } else {
            "python3".to_owned()
        }
    });
    Ok((python, script))
}

async fn celery_version(python: &str) -> String {
    let started = Instant::now();
    let out = tokio::process::Command::new(python)
        .args(["-c", "import celery; print(celery.__version__)"])
        .output()
        .await;
    tracing::debug!(elapsed = ?started.elapsed(), "asked Python for Celery's version");
    match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        _ => "(version unknown)".to_owned(),
    }
}

/// One line per run, with the ratio.
pub(super) fn print_run(run: &CeleryRun) {
    let d = &run.drain;
    let steady = d
        .steady_tasks_per_second
        .map(|s| format!("; {s:.0}/s from the first result"))
        .unwrap_or_default();
    println!("{}", run.system);
    println!(
        "  {:<11} {:>8.0} tasks/s  ({} tasks in {:.3} s{steady})",
        "drain", d.tasks_per_second, run.tasks, d.seconds
    );
    if let Some(cpu) = d.cpu_per_task {
        println!("  {:<11} {}", "drain CPU", describe_cpu(&cpu));
    }
    let steady_ratio = run
        .steady_ratio
        .map(|r| format!(" ({r:.1}× from the first results)"))
        .unwrap_or_default();
    println!(
        "  {:<11} celeriac worker drains {:.1}× as fast as Python Celery {}{steady_ratio}",
        "ratio", run.ratio, run.preset
    );
}
