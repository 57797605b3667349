//! The fetch loop and the drain on shutdown.
//!
//! 1. Wait for prefetch room, then reserve as many messages as there is room
//!    for (one round trip for a batch); the room grows and shrinks with the
//!    rate tasks finish at ([`super::prefetch`]).
//! 2. Hand each message to its own handler task ([`super::executor`]).
//! 3. On a broker error: log, back off (100 ms doubling to 5 s), go on; a
//!    Redis restart or a busy SQLite file never stops the worker.
//! 4. On shutdown: stop reserving; handlers not yet started give their
//!    message back; running ones get `shutdown_timeout` to finish; after
//!    that they are aborted and every message not safely acknowledged is
//!    given back.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;

use super::adjust::{Pool, Queues, TimeLimits};
use super::executor;
use super::prefetch::PrefetchWindow;
use super::{WorkerOptions, WorkerStats};
use crate::shutdown::Shutdown;
use crate::App;

/// Longest single wait inside `reserve`, so shutdown is noticed promptly.
const RESERVE_WAIT: Duration = Duration::from_millis(500);
/// Most messages asked for in one reservation.
const MAX_BATCH: usize = 256;

/// What every handler shares.
pub(super) struct Shared {
    pub(super) app: App,
    pub(super) options: WorkerOptions,
    pub(super) stats: Arc<WorkerStats>,
    /// Execution slots and the threads sync bodies run on; resized by
    /// remote `pool_grow`/`pool_shrink`.
    pub(super) pool: Arc<Pool>,
    /// The queues consumed; changed by `add_consumer`/`cancel_consumer`.
    pub(super) queues: Queues,
    pub(super) shutdown: Shutdown,
    pub(super) rate_limits: super::rate_limit::RateLimits,
    pub(super) time_limits: TimeLimits,
    pub(super) state: Arc<super::state::WorkerState>,
    pub(super) events: Arc<super::events::WorkerEvents>,
    /// Messages this worker holds: tag → must it be given back if aborted?
    held: Mutex<HashMap<String, bool>>,
}

impl Shared {
    /// Record whether `tag` must be given back should the worker abort now
    /// (true until it is acknowledged).
    pub(super) fn hold(&self, tag: &str, give_back: bool) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        match held.get_mut(tag) {
            Some(flag) => *flag = give_back,
            None => {
                held.insert(tag.to_owned(), give_back);
            }
        }
    }

    /// Tags still unacknowledged (their leases need renewing).
    fn unacknowledged(&self) -> Vec<String> {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, give_back)| **give_back)
            .map(|(tag, _)| tag.clone())
            .collect()
    }

    pub(super) fn release(&self, tag: &str) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(tag);
    }
}

/// The limits the registered tasks declare; a bad one is logged and ignored
/// (it cannot stop the worker).
fn rate_limits_of(app: &App) -> super::rate_limit::RateLimits {
    let limits = super::rate_limit::RateLimits::default();
    for name in app.task_names() {
        let Some(limit) = app.task(name).and_then(|t| t.options().rate_limit) else {
            continue;
        };
        match super::rate_limit::parse_rate_limit(&limit) {
            Ok(interval) => limits.set(name, interval),
            Err(err) => {
                tracing::error!(task = name, error = %err, "ignoring the task's rate limit")
            }
        }
    }
    limits
}

pub(super) struct Consumer {
    shared: Arc<Shared>,
}

impl Consumer {
    pub(super) fn new(
        app: App,
        options: WorkerOptions,
        threads: Option<super::sync_pool::ThreadPool>,
        stats: Arc<WorkerStats>,
        shutdown: Shutdown,
        state: Arc<super::state::WorkerState>,
        events: Arc<super::events::WorkerEvents>,
    ) -> Self {
        let pool = Arc::new(Pool::new(options.concurrency, threads));
        let queues = Queues::new(&options.queues);
        let app_for_limits = app.clone();
        Consumer {
            shared: Arc::new(Shared {
                app,
                options,
                stats,
                pool,
                queues,
                shutdown,
                rate_limits: rate_limits_of(&app_for_limits),
                time_limits: TimeLimits::default(),
                state,
                events,
                held: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The state handlers share (for remote control).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(super) fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    pub(super) async fn run(self) {
        let shared = self.shared;
        let keeper = spawn_lease_keeper(&shared);
        let mut window = PrefetchWindow::new(
            shared.options.concurrency,
            shared.options.prefetch,
            shared.options.adaptive_prefetch,
        );
        let mut handlers = JoinSet::new();
        let mut shutdown = shared.shutdown.clone();
        let mut backoff = Duration::from_millis(100);
        let broker = Arc::clone(shared.app.broker());
        loop {
            window.adjust(shared.stats.processed.load(Ordering::Relaxed));
            let prefetch = Arc::clone(window.permits());
            let first = tokio::select! {
                biased;
                _ = shutdown.requested() => break,
                permit = Arc::clone(&prefetch).acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let Some(queues) = shared.queues.wait_for_any(&mut shutdown).await else {
                break;
            };
            let mut permits = vec![first];
            while permits.len() < MAX_BATCH {
                match Arc::clone(&prefetch).try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            match broker.reserve(&queues, permits.len(), RESERVE_WAIT).await {
                Ok(deliveries) => {
                    if backoff > Duration::from_millis(100) {
                        tracing::info!("broker reachable again, consuming");
                    }
                    backoff = Duration::from_millis(100);
                    for delivery in deliveries {
                        let Some(permit) = permits.pop() else { break };
                        shared.hold(&delivery.tag, true);
                        // Boxed: the handler's state is kilobytes, and a
                        // task cell is moved several times over its life.
                        handlers.spawn(Box::pin(executor::handle(
                            Arc::clone(&shared),
                            delivery,
                            permit,
                        )));
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, retry_in = ?backoff, "cannot reserve messages");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.requested() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
            while handlers.try_join_next().is_some() {}
        }
        drain(&shared, handlers).await;
        keeper.abort();
    }
}

/// Renew the lease of every message this worker holds and has not
/// acknowledged, every third of the visibility timeout: one waiting for a
/// slot or a rate limit, or an acks_late one running longer than the
/// timeout, is never redelivered while this worker lives.
fn spawn_lease_keeper(shared: &Arc<Shared>) -> tokio::task::JoinHandle<()> {
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let broker = Arc::clone(shared.app.broker());
        let every = (broker.visibility_timeout() / 3).max(Duration::from_millis(50));
        loop {
            tokio::time::sleep(every).await;
            let tags = shared.unacknowledged();
            if tags.is_empty() {
                continue;
            }
            if let Err(err) = broker.extend_many(&tags).await {
                tracing::warn!(error = %err, "could not renew leases");
            }
        }
    })
}

async fn drain(shared: &Shared, mut handlers: JoinSet<()>) {
    let timeout = shared.options.shutdown_timeout;
    tracing::info!(
        in_flight = handlers.len(),
        ?timeout,
        "shutting down: finishing running tasks"
    );
    let finished = tokio::time::timeout(timeout, async {
        while handlers.join_next().await.is_some() {}
    })
    .await;
    if finished.is_ok() {
        tracing::info!("all tasks finished, worker stopped");
        return;
    }
    handlers.abort_all();
    while handlers.join_next().await.is_some() {}
    let give_back: Vec<String> = shared
        .held
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(_, give_back)| **give_back)
        .map(|(tag, _)| tag.clone())
        .collect();
    tracing::warn!(
        given_back = give_back.len(),
        "shutdown timeout passed: aborted running tasks and gave their messages back"
    );
    for tag in give_back {
        if let Err(err) = shared.app.broker().requeue(&tag).await {
            tracing::warn!(error = %err, %tag, "could not give a message back; it returns after the visibility timeout");
        }
    }
}
