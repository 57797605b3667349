//! `celeriac demo`: the example tasks' whole round trip on one machine, no
//! server needed; a project's demo runs it first ([`run_then`]).
//!
//! 1. Pick the broker and backend: `--broker`/`--backend` (or the usual
//!    environment and file), else a scratch SQLite file in a temp directory.
//! 2. Start a worker in this process ([`InProcessWorker`]) with the example
//!    tasks (and the project's), `tasks.wait_and_return` shortened to
//!    `--wait-secs`.
//! 3. Send a [`Plan`]: a list of [`DemoCall`]s, each with the value it must
//!    return; show a progress bar (on a terminal only) fed by the results,
//!    including the `PROGRESS` state of `tasks.sum_to_n_job`.
//! 4. Print each call and its result; stop the worker; fail unless every
//!    result was the expected one.
//! 5. Then the project's part, on a fresh in-process worker of the same app
//!    (the post-history binary runs its system there).

use std::io::IsTerminal as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use celeriac::protocol::TaskState;
use celeriac::{App, AppBuilder, AsyncResult, SendOptions, WorkerOptions};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};

use super::tasks::set_wait_and_return_secs;
use crate::config::{Config, ConnectionArgs};
use crate::inprocess::InProcessWorker;

/// Arguments of a `demo` command.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    connection: ConnectionArgs,

    /// Seconds tasks.wait_and_return sleeps in the demo (20 in a real worker)
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    wait_secs: f64,

    /// Give up if the plan has not finished after this many seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 120.0)]
    timeout: f64,
}

/// One call of a demo plan.
#[derive(Debug, Clone)]
pub(crate) struct DemoCall {
    /// Task name.
    pub(crate) name: &'static str,
    /// Positional arguments.
    pub(crate) args: Vec<Value>,
    /// The value the task must return.
    pub(crate) expected: Value,
}

/// A list of calls sent together.
pub(crate) type Plan = Vec<DemoCall>;

/// The seed's example tasks, each with its expected result.
pub(crate) fn example_plan() -> Plan {
    let call = |name, args: Vec<Value>, expected| DemoCall {
        name,
        args,
        expected,
    };
    let n: u64 = 100_000_000;
    vec![
        call("tasks.add", vec![json!(2), json!(3)], json!(5)),
        call("tasks.add", vec![json!(2.5), json!(1)], json!(3.5)),
        call("tasks.add", vec![json!(40), json!(2)], json!(42)),
        call("tasks.sum_to_n_job", vec![json!(10)], json!(55)),
        call("tasks.sum_to_n_job", vec![json!(n)], json!(n * (n + 1) / 2)),
        call("tasks.wait_and_return", vec![], json!("Hello World!")),
    ]
}

/// What became of one call.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The call.
    pub(crate) call: DemoCall,
    /// The task id.
    pub(crate) id: String,
    /// The value, or the error text.
    pub(crate) result: Result<Value, String>,
}

impl Outcome {
    /// True when the task returned the expected value.
    pub(crate) fn ok(&self) -> bool {
        self.result.as_ref().is_ok_and(|v| *v == self.call.expected)
    }
}

/// Run the example plan (the `celeriac demo` command).
///
/// # Errors
/// Bad arguments, an unreachable broker, or a task that did not return
/// its expected value in time.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    run_then(args, |builder, _| builder, async |_, _, _| Ok(())).await
}

/// Run the example plan with the project's tasks registered too
/// (`register` gets the demo's scratch directory, e.g. for a database
/// file), then the project's part `then(app, scratch_dir, timeout)` on a
/// fresh in-process worker.
///
/// # Errors
/// As [`run`], and `then`'s error.
pub async fn run_then(
    args: DemoArgs,
    register: impl FnOnce(AppBuilder, &Path) -> AppBuilder,
    then: impl AsyncFnOnce(&App, &Path, Duration) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    if !(args.wait_secs.is_finite() && args.wait_secs >= 0.0) {
        bail!("--wait-secs must be a non-negative number of seconds");
    }
    let timeout = Duration::try_from_secs_f64(args.timeout)
        .context("--timeout must be a non-negative number of seconds")?;
    let scratch = tempfile::Builder::new()
        .prefix("celeriac-demo-")
        .tempdir()
        .context("creating a scratch directory")?;
    let url = format!(
        "sqlite://{}",
        scratch.path().join("celeriac-demo.db").display()
    );
    // `--broker redis://…` alone keeps results in the same Redis, as the
    // seed's Celery app did (the configuration's rule for every command).
    let config = Config::with_default_urls(&args.connection, &url, &url)?;
    set_wait_and_return_secs(args.wait_secs);
    let app = config
        .connect(|b| register(super::register(b), scratch.path()))
        .await?;

    println!(
        "celeriac demo: broker {}, result backend {}",
        config.broker_display(),
        config.backend_display()
    );
    let options = WorkerOptions {
        queues: vec![app.config().default_queue.clone()],
        ..WorkerOptions::default()
    };
    println!(
        "started an in-process worker ({}, concurrency {}) for: {}",
        options.hostname,
        options.concurrency,
        app.task_names().join(", ")
    );
    let worker = InProcessWorker::start(app.clone(), options.clone());

    let started = Instant::now();
    let plan = example_plan();
    let outcomes = run_plan(&app, plan, timeout).await;
    let elapsed = started.elapsed();
    worker.stop().await?;
    let outcomes = outcomes?;

    print_outcomes(&outcomes);
    let failed = outcomes.iter().filter(|o| !o.ok()).count();
    println!(
        "{} tasks finished in {:.2} s{}",
        outcomes.len(),
        elapsed.as_secs_f64(),
        if failed == 0 { ", all as expected" } else { "" }
    );
    if failed > 0 {
        bail!(
            "{failed} of {} demo tasks did not return the expected value",
            outcomes.len()
        );
    }

    let worker = InProcessWorker::start(app.clone(), options);
    let project = then(&app, scratch.path(), timeout).await;
    worker.stop().await?;
    project
}

/// Send every call of `plan`, then follow the results until all are ready
/// (or `timeout` passes), showing progress on a terminal.
pub(crate) async fn run_plan(
    app: &App,
    plan: Plan,
    timeout: Duration,
) -> anyhow::Result<Vec<Outcome>> {
    let mut sent: Vec<(DemoCall, AsyncResult<Value>)> = Vec::with_capacity(plan.len());
    for call in plan {
        let result = app
            .send_task(call.name, call.args.clone(), Map::new(), SendOptions::new())
            .await
            .with_context(|| format!("sending {}", call.name))?;
        sent.push((call, result));
    }
    let bar = progress_bar(sent.len() as u64);
    let deadline = Instant::now() + timeout;
    let mut done: Vec<Option<Result<Value, String>>> = vec![None; sent.len()];
    loop {
        let mut progress = None;
        for ((call, result), slot) in sent.iter().zip(done.iter_mut()) {
            if slot.is_some() {
                continue;
            }
            let Some(meta) = result.info().await? else {
                continue;
            };
            match meta.status {
                TaskState::Custom(ref state) if state == "PROGRESS" => {
                    let current = meta.result.get("current").and_then(Value::as_u64);
                    let total = meta.result.get("total").and_then(Value::as_u64);
                    if let (Some(current), Some(total)) = (current, total) {
                        progress = Some(format!("{}: {current}/{total}", call.name));
                    }
                }
                ref state if state.is_ready() => {
                    *slot = Some(result.get(Duration::ZERO).await.map_err(|e| e.to_string()));
                    bar.inc(1);
                }
                _ => {}
            }
        }
        bar.set_message(progress.unwrap_or_default());
        if done.iter().all(Option::is_some) {
            break;
        }
        if Instant::now() >= deadline {
            bar.abandon();
            bail!("the demo did not finish within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bar.finish_and_clear();
    Ok(sent
        .into_iter()
        .zip(done)
        .map(|((call, result), value)| Outcome {
            id: result.id().to_owned(),
            call,
            result: value.unwrap_or_else(|| Err("no result".to_owned())),
        })
        .collect())
}

/// A progress bar on stderr when it is a terminal, hidden otherwise.
fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} tasks  {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// `tasks.add(2, 3) = 5`, one line per call.
pub(crate) fn print_outcomes(outcomes: &[Outcome]) {
    let shown: Vec<String> = outcomes
        .iter()
        .map(|o| {
            let args: Vec<String> = o.call.args.iter().map(Value::to_string).collect();
            format!("{}({})", o.call.name, args.join(", "))
        })
        .collect();
    let width = shown.iter().map(String::len).max().unwrap_or(0);
    for (call, o) in shown.iter().zip(outcomes) {
        let value = match &o.result {
            Ok(v) => v.to_string(),
            Err(e) => format!("error: {e}"),
        };
        let mark = if o.ok() {
            String::new()
        } else {
            format!("   (expected {}, task {})", o.call.expected, o.id)
        };
        println!("  {call:width$} = {value}{mark}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_example_plan_runs_on_the_memory_broker() -> anyhow::Result<()> {
        set_wait_and_return_secs(0.0);
        let app = super::super::register(
            App::builder()
                .broker_url("memory://demo-test")
                .backend_url("memory://demo-test"),
        )
        .build()
        .await?;
        let worker = InProcessWorker::start(app.clone(), WorkerOptions::default());
        let outcomes = run_plan(&app, example_plan(), Duration::from_secs(60)).await;
        worker.stop().await?;
        let outcomes = outcomes?;
        for o in &outcomes {
            assert!(o.ok(), "{o:?}");
        }
        Ok(())
    }
}
