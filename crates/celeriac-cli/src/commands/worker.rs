//! `celeriac worker`: run the shipped tasks until SIGINT or SIGTERM.
//!
//! The library does the work ([`celeriac::Worker`]); this file only turns the
//! validated [`WorkerConfig`] into an app and passes the signal future as the
//! shutdown. On the signal the worker stops fetching, gives back messages it
//! has not started, and lets running tasks finish up to `--shutdown-timeout`.

use anyhow::Context as _;
use celeriac::Worker;

use crate::config::{ConnectionArgs, WorkerArgs, WorkerConfig};
use crate::example_tasks::shipped_tasks;

/// Arguments of `celeriac worker`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,
    #[command(flatten)]
    pub(crate) worker: WorkerArgs,
}

/// Run a worker until SIGINT/SIGTERM.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let cfg = WorkerConfig::from_args(&args.connection, &args.worker)?;
    let app = cfg.config.connect(shipped_tasks).await?;
    crate::logging::log_panics();
    tracing::info!(
        broker = %cfg.config.broker_display(),
        backend = %cfg.config.backend_display(),
        acks_late = cfg.options.acks_late,
        prefetch = cfg.options.prefetch,
        visibility_timeout = ?cfg.config.app.visibility_timeout,
        "starting worker"
    );
    Worker::new(app, cfg.options)
        .run(celeriac::shutdown::terminate_signal())
        .await
        .context("running the worker")
}
