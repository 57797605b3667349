//! `celeriac worker`: run the binary's tasks until SIGINT or SIGTERM
//! (and, with `--with-test-tasks DIR`, the test-only tasks of
//! [`crate::test_tasks`]); with `--reload`, under [`crate::reload`].
//!
//! The library does the work ([`celeriac::Worker`]); this file only turns the
//! validated [`WorkerConfig`] into an app and passes the signal future as the
//! shutdown. On the signal the worker stops fetching, gives back messages it
//! has not started, and lets running tasks finish up to `--shutdown-timeout`;
//! a second signal exits at once.

use anyhow::Context as _;
use celeriac::shutdown::Shutdown;
use celeriac::Worker;

use crate::config::{ConnectionArgs, WorkerArgs, WorkerConfig};
use crate::project::Tasks;
use crate::reload::ReloadArgs;
use crate::test_tasks::TestTasksDir;

/// Arguments of `celeriac worker`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,
    #[command(flatten)]
    pub(crate) worker: WorkerArgs,
    /// Also run the beat in this process (Celery's `worker -B`); needs --schedule.
    /// Safe on every worker: each periodic run is still sent once
    #[arg(short = 'B', long)]
    pub(crate) beat: bool,
    /// Schedule file for -B (the format of `celeriac beat --schedule`)
    #[arg(long, value_name = "FILE", requires = "beat")]
    pub(crate) schedule: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub(crate) reload: ReloadArgs,
    /// Also register the example tasks (`tasks.add`…): what `bench` runs
    /// in the workers it starts
    #[arg(long, hide = true)]
    pub(crate) with_example_tasks: bool,
    /// TEST ONLY, never in production: also run `tasks.record` and
    /// `tasks.slow_record`, which append a line to a file the caller names,
    /// limited to files directly inside DIR
    #[arg(
        long,
        value_name = "DIR",
        env = crate::test_tasks::TEST_TASKS_ENV,
        hide_env_values = true
    )]
    pub(crate) with_test_tasks: Option<std::path::PathBuf>,
}

/// Run a worker until SIGINT/SIGTERM; with `--reload`, a supervisor that
/// runs it as a child process and replaces it when the sources change.
pub(crate) fn start(args: Args, tasks: &Tasks) -> anyhow::Result<()> {
    if args.reload.reload {
        return crate::reload::supervise(&args.reload, "worker");
    }
    crate::block_on(run(args, tasks.clone()))
}

/// Run a worker until SIGINT/SIGTERM.
async fn run(args: Args, tasks: Tasks) -> anyhow::Result<()> {
    let cfg = WorkerConfig::from_args(&args.connection, &args.worker)?;
    let test_tasks = match &args.with_test_tasks {
        Some(dir) if !dir.as_os_str().is_empty() => Some(TestTasksDir::open(dir)?),
        _ => None,
    };
    let app = cfg
        .config
        .connect(|b| {
            let b = tasks.register(b);
            let b = if args.with_example_tasks {
                crate::examples::register(b)
            } else {
                b
            };
            match &test_tasks {
                Some(dir) => crate::test_tasks::register(b, dir),
                None => b,
            }
        })
        .await?;
    crate::logging::log_panics();
    if let Some(dir) = &test_tasks {
        tracing::warn!(
            dir = %dir.path().display(),
            "test-only tasks registered (tasks.record, tasks.slow_record): they write files in this directory"
        );
    }
    tracing::info!(
        broker = %cfg.config.broker_display(),
        backend = %cfg.config.backend_display(),
        acks_late = cfg.options.acks_late,
        prefetch = cfg.options.prefetch,
        visibility_timeout = ?cfg.config.app.visibility_timeout,
        "starting worker"
    );
    let shutdown = Shutdown::from_future(async {
        crate::reload::stop_requested().await;
        tracing::warn!(
            "shutting down: finishing running tasks (send the signal again to exit now)"
        );
        // A second signal exits at once. Nothing acks_late is lost: those
        // messages are unacknowledged, and the broker gives them back
        // within seconds, as this worker's liveness expires (Redis key,
        // SQLite row).
        tokio::spawn(async {
            celeriac::shutdown::terminate_signal().await;
            tracing::warn!(
                "second signal: exiting now; unacknowledged messages return to their queues"
            );
            std::process::exit(130);
        });
    });
    let beat = match (args.beat, &args.schedule) {
        (true, Some(path)) => Some(super::beat::spawn_embedded(&app, path, shutdown.clone())?),
        (true, None) => anyhow::bail!("-B/--beat needs --schedule FILE"),
        (false, _) => None,
    };
    let outcome = Worker::new(app, cfg.options)
        .run_until(shutdown)
        .await
        .context("running the worker");
    if let Some(beat) = beat {
        // The beat saw the same shutdown; its claims are atomic, so a beat
        // still busy after a few seconds can be left behind.
        match tokio::time::timeout(std::time::Duration::from_secs(5), beat).await {
            Ok(Ok(Err(e))) => tracing::error!("the embedded beat failed: {e}"),
            Ok(Err(e)) => tracing::error!("the embedded beat panicked: {e}"),
            Ok(Ok(Ok(()))) | Err(_) => {}
        }
    }
    outcome
}
