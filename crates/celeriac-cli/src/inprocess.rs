//! A worker running inside the current process (the demo and the bench).
//!
//! [`InProcessWorker::start`] spawns [`celeriac::Worker::run`] with a oneshot
//! as its shutdown future; [`InProcessWorker::stop`] fires it and waits for
//! the graceful drain. The counters ([`WorkerStats`]) stay readable, which the
//! bench uses to see completions without reading results.

use std::sync::Arc;

use anyhow::Context as _;
use celeriac::worker::WorkerStats;
use celeriac::{App, Worker, WorkerOptions};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running in-process worker.
pub struct InProcessWorker {
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<celeriac::Result<()>>,
    stats: Arc<WorkerStats>,
}

impl InProcessWorker {
    /// Start a worker for `app`'s tasks.
    pub fn start(app: App, options: WorkerOptions) -> InProcessWorker {
        let worker = Worker::new(app, options);
        let stats = worker.stats();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(worker.run(async move {
            let _ = stopped.await;
        }));
        InProcessWorker {
            stop: Some(stop),
            handle,
            stats,
        }
    }

    /// The worker's counters.
    pub fn stats(&self) -> &Arc<WorkerStats> {
        &self.stats
    }

    /// Ask the worker to stop and wait for its drain to finish.
    ///
    /// # Errors
    /// When the worker failed to start (queues not declared) or panicked.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.handle)
            .await
            .context("the in-process worker panicked")?
            .context("the in-process worker failed")
    }
}

impl Drop for InProcessWorker {
    fn drop(&mut self) {
        // Dropped without `stop` (an early error): stop fetching at least.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
