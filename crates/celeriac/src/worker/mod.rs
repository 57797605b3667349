//! The worker: fetch messages, run tasks, store results, settle messages.
//!
//! 1. [`WorkerOptions`]: queues, concurrency, prefetch, acks_late default,
//!    shutdown timeout.
//! 2. [`Worker::run`]: the fetch loop ([`consumer`]) until shutdown, then the
//!    drain: stop fetching, give back what has not started, let running tasks
//!    finish up to the deadline, give back acks_late tasks still running.
//! 3. [`executor`]: one message from bytes to a stored result.
//!
//! Two bounds shape the flow. *Prefetch* caps messages held (reserved but not
//! finished), within a window sized by the rate tasks finish at, so a fast
//! worker batches its round trips and a slow one does not hoard a queue;
//! *concurrency* caps tasks executing at once. Sync tasks run on a fixed set
//! of `concurrency` threads ([`SyncPool`]) and async tasks on the runtime,
//! so CPU-heavy work never stalls fetching.
//!
//! Order: messages are reserved highest priority first and oldest first, but
//! the handlers of one reservation race for the free slots, so with
//! concurrency below prefetch they may start in any order. Prefetch 1
//! (`--prefetch 1`) keeps strict queue and priority order, as the
//! interoperability tests of priorities do.

mod adjust;
mod consumer;
mod events;
mod execute;
mod executor;
mod prefetch;
mod rate_limit;
mod remote;
mod retry;
mod settle;
mod state;
mod sync_pool;

pub use rate_limit::{parse_rate_limit, RateLimitError};
pub use sync_pool::SyncPool;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::shutdown::Shutdown;
use crate::{App, Result};

/// The default ceiling of [`WorkerOptions::prefetch`].
pub const DEFAULT_PREFETCH: usize = 512;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Queues to consume, in no particular order (priority decides).
    pub queues: Vec<String>,
    /// Tasks executing at once (default: number of cores).
    pub concurrency: usize,
    /// Where synchronous task bodies run (default: `concurrency` threads
    /// of the worker's own).
    pub sync_pool: SyncPool,
    /// The most messages held at once, executing or waiting (default 512;
    /// see [`WorkerOptions::adaptive_prefetch`]). `1` keeps strict queue and
    /// priority order.
    pub prefetch: usize,
    /// Hold only what the worker finishes in about 50 ms at its recent
    /// rate, never fewer than `4 × concurrency` (Celery's default prefetch)
    /// nor more than `prefetch`: short tasks get batched round trips, long
    /// ones are left for other workers (default). When off, the worker
    /// always holds up to `prefetch`.
    pub adaptive_prefetch: bool,
    /// Acknowledge after completion unless a task says otherwise (Celery's
    /// `task_acks_late`).
    pub acks_late: bool,
    /// On shutdown, how long running tasks may take to finish.
    pub shutdown_timeout: Duration,
    /// Store STARTED when a task begins (Celery's `task_track_started`).
    pub track_started: bool,
    /// Node name, `celeriac@<host>` by default.
    pub hostname: String,
    /// Messages larger than this are dead-lettered unread (default 10 MiB).
    pub max_message_bytes: usize,
    /// Send task events from the start (Celery's `-E`); monitors can also
    /// turn them on remotely.
    pub send_events: bool,
    /// How long revocations are remembered (Celery keeps them in memory
    /// only; we keep them in the broker for this long).
    pub revoke_ttl: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let host = hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".to_owned());
        WorkerOptions {
            queues: vec!["celery".to_owned()],
            concurrency: cores,
            sync_pool: SyncPool::default(),
            prefetch: DEFAULT_PREFETCH,
            adaptive_prefetch: true,
            acks_late: false,
            shutdown_timeout: Duration::from_secs(30),
            track_started: false,
            hostname: format!("celeriac@{host}"),
            max_message_bytes: 10 * 1024 * 1024,
            send_events: false,
            revoke_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// Counters a worker keeps while it runs (for `stats` and heartbeats).
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Tasks finished (any outcome).
    pub processed: AtomicU64,
    /// Tasks that finished with SUCCESS.
    pub succeeded: AtomicU64,
    /// Tasks that finished with FAILURE.
    pub failed: AtomicU64,
    /// Tasks executing now.
    pub active: AtomicU64,
    /// Messages moved to the dead-letter store.
    pub dead_lettered: AtomicU64,
    per_task: Mutex<HashMap<String, u64>>,
}

impl WorkerStats {
    /// Finished-task counts per task name.
    pub fn per_task(&self) -> HashMap<String, u64> {
        self.per_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn finished(&self, name: &str, success: bool) {
        self.processed.fetch_add(1, Ordering::Relaxed);
        if success {
            self.succeeded.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let mut per_task = self.per_task.lock().unwrap_or_else(|e| e.into_inner());
        // Look up before inserting: the name is allocated once per task
        // name, not once per message.
        match per_task.get_mut(name) {
            Some(count) => *count += 1,
            None => {
                per_task.insert(name.to_owned(), 1);
            }
        }
    }
}

/// Keep the worker's revoked set in step with the broker's record, so
/// revocations made before this worker started, or sent to another worker,
/// apply here too. The first read is done before this returns, that is
/// before the worker takes its first message; then it polls every second.
async fn start_revocation_sync(
    app: &App,
    state: &Arc<state::WorkerState>,
    ttl: Duration,
) -> tokio::task::JoinHandle<()> {
    let broker = Arc::clone(app.broker());
    let state = Arc::clone(state);
    let since = state::now() - ttl.as_secs_f64();
    let mut since = sync_revocations(broker.as_ref(), &state, since, ttl).await;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            since = sync_revocations(broker.as_ref(), &state, since, ttl).await;
        }
    })
}

/// One read of the revocations recorded since `since`; returns the new mark.
async fn sync_revocations(
    broker: &dyn crate::broker::Broker,
    state: &state::WorkerState,
    mut since: f64,
    ttl: Duration,
) -> f64 {
    match broker.revocations().revoked_since(since).await {
        Ok(revocations) => {
            for r in revocations {
                since = since.max(r.at);
                state.revoke(std::slice::from_ref(&r.task_id), r.terminate);
            }
            state.prune_revoked(ttl.as_secs_f64());
        }
        Err(err) => tracing::debug!(error = %err, "could not read revocations"),
    }
    since
}

/// A worker for the tasks registered in an [`App`].
pub struct Worker {
    app: App,
    options: WorkerOptions,
    stats: Arc<WorkerStats>,
}

impl Worker {
    /// A worker for `app`.
    pub fn new(app: App, options: WorkerOptions) -> Self {
        Worker {
            app,
            options,
            stats: Arc::new(WorkerStats::default()),
        }
    }

    /// The counters, shared with the running worker.
    pub fn stats(&self) -> Arc<WorkerStats> {
        Arc::clone(&self.stats)
    }

    /// Consume and execute until `shutdown` resolves, then drain gracefully.
    ///
    /// # Errors
    /// Only when the queues cannot be declared at start; later broker errors
    /// are logged and retried with backoff, never fatal.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let shutdown = Shutdown::from_future(shutdown);
        self.run_until(shutdown).await
    }

    /// As [`Worker::run`], with a [`Shutdown`] shared with other components.
    ///
    /// # Errors
    /// As [`Worker::run`].
    pub async fn run_until(self, shutdown: Shutdown) -> Result<()> {
        let Worker {
            app,
            options,
            stats,
        } = self;
        let threads = match options.sync_pool {
            SyncPool::Threads => Some(
                sync_pool::ThreadPool::start(options.concurrency)
                    .map_err(crate::Error::WorkerThreads)?,
            ),
            SyncPool::Blocking => None,
        };
        app.broker().declare(&options.queues).await?;
        tracing::info!(
            hostname = %options.hostname,
            queues = ?options.queues,
            concurrency = options.concurrency,
            pool = ?options.sync_pool,
            tasks = ?app.task_names(),
            "worker ready"
        );
        let state = Arc::new(state::WorkerState::default());
        let events = Arc::new(events::WorkerEvents::new(
            Arc::clone(app.events()),
            &options.hostname,
            options.send_events,
        ));
        // Our own trigger, so a remote `shutdown` stops us like a signal.
        let (trigger, internal) = Shutdown::new();
        let trigger = Arc::new(trigger);
        let relay = {
            let trigger = Arc::clone(&trigger);
            let mut outer = shutdown;
            tokio::spawn(async move {
                outer.requested().await;
                trigger.fire();
            })
        };
        // Listen for remote control before announcing ourselves, so a
        // monitor answering `worker-online` with `enable_events` reaches us.
        let control = app.remote_control();
        let commands = match control.listen(&options.hostname).await {
            Ok(commands) => Some(commands),
            Err(err) => {
                tracing::warn!(error = %err, "remote control unavailable");
                None
            }
        };
        events.worker("worker-online", 0, 0).await;
        let heartbeats = events.spawn_heartbeats(Arc::clone(&stats));
        let revocations = start_revocation_sync(&app, &state, options.revoke_ttl).await;
        let consumer = consumer::Consumer::new(
            app.clone(),
            options,
            threads,
            Arc::clone(&stats),
            internal,
            state,
            Arc::clone(&events),
        );
        let remote = commands.map(|commands| {
            tokio::spawn(remote::serve(
                control,
                commands,
                consumer.shared(),
                Arc::clone(&trigger),
                std::time::Instant::now(),
            ))
        });
        consumer.run().await;
        if let Some(remote) = remote {
            remote.abort();
        }
        heartbeats.abort();
        revocations.abort();
        relay.abort();
        let processed = stats.processed.load(Ordering::Relaxed);
        events.worker("worker-offline", 0, processed).await;
        Ok(())
    }
}
