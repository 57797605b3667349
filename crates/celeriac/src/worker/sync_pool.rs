//! Where synchronous task bodies run: a fixed set of threads fed by a
//! channel ([`SyncPool::Threads`], the default) or tokio's blocking pool,
//! one `spawn_blocking` per task ([`SyncPool::Blocking`]).
//!
//! The fixed pool exists because a hand-off to a thread that is already
//! waiting on the channel costs less than `spawn_blocking`'s per-call
//! bookkeeping (BENCHMARKS.md measures both). A thread cannot be killed:
//! when the worker stops waiting for one (hard time limit, `revoke
//! --terminate`) it drops the body's future, which starts a replacement so
//! the pool keeps its size while the stuck body runs on; that thread leaves
//! when the body returns.

use std::any::Any;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::oneshot;

/// How a worker runs synchronous task bodies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SyncPool {
    /// `concurrency` threads started with the worker, fed by a channel
    /// (default).
    #[default]
    Threads,
    /// tokio's blocking pool: one `spawn_blocking` per task, threads
    /// started on demand and stopped after 10 s idle.
    Blocking,
}

impl SyncPool {
    /// The names `--pool` accepts.
    pub const NAMES: [&'static str; 2] = ["threads", "blocking"];

    /// Parse a `--pool` value.
    ///
    /// # Errors
    /// A message naming the accepted values; Celery's process pools
    /// (`prefork`, `processes`) and green threads are named as unsupported.
    pub fn parse(name: &str) -> Result<SyncPool, String> {
        match name {
            "threads" => Ok(SyncPool::Threads),
            "blocking" => Ok(SyncPool::Blocking),
            "prefork" | "processes" | "solo" | "eventlet" | "gevent" => Err(format!(
                "pool `{name}` is a Python Celery pool; celeriac runs sync tasks on `threads` (default) or tokio's `blocking` pool, and async tasks on the runtime"
            )),
            other => Err(format!(
                "unknown pool `{other}`: expected `threads` or `blocking`"
            )),
        }
    }
}

/// What a body's thread hands back: its value, or the payload of its panic.
pub(super) type Caught<T> = Result<T, Box<dyn Any + Send>>;

/// A queued body; returns true when the worker abandoned it, so its thread
/// (already replaced) leaves.
type Job = Box<dyn FnOnce() -> bool + Send + 'static>;

// A job's life, shared by its thread and the future waiting for it.
const PENDING: u8 = 0;
const DONE: u8 = 1;
const ABANDONED: u8 = 2;

/// A fixed set of threads running synchronous task bodies.
pub(super) struct ThreadPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    queue: JobQueue,
    /// Threads alive (some may be stuck in an abandoned body).
    live: AtomicUsize,
    runtime: tokio::runtime::Handle,
}

impl ThreadPool {
    /// Start `size` threads (at least one). Must be called inside the
    /// worker's runtime: the threads enter it, so a body can use
    /// `Handle::current()` (e.g. [`crate::Context::update_state_blocking`]).
    pub(super) fn start(size: usize) -> std::io::Result<ThreadPool> {
        let inner = Arc::new(PoolInner {
            queue: JobQueue::default(),
            live: AtomicUsize::new(0),
            runtime: tokio::runtime::Handle::current(),
        });
        for _ in 0..size.max(1) {
            PoolInner::spawn(&inner)?;
        }
        Ok(ThreadPool { inner })
    }

    /// Run `body` on a pool thread; resolves with its value, or the panic
    /// payload if it panicked, or `None` if the pool is gone.
    ///
    /// Dropping the future before it resolves (hard time limit, terminate)
    /// abandons the body: a replacement thread starts at once, a body not
    /// yet started never runs, and the thread of one already running leaves
    /// when it returns.
    pub(super) fn run<T: Send + 'static>(
        &self,
        body: impl FnOnce() -> T + Send + 'static,
    ) -> impl std::future::Future<Output = Option<Caught<T>>> + Send + 'static {
        let (done, outcome) = oneshot::channel();
        let state = Arc::new(AtomicU8::new(PENDING));
        let job_state = Arc::clone(&state);
        let job: Job = Box::new(move || {
            if job_state.load(Ordering::SeqCst) == ABANDONED {
                return true;
            }
            let caught = std::panic::catch_unwind(AssertUnwindSafe(body));
            if job_state.swap(DONE, Ordering::SeqCst) == ABANDONED {
                return true;
            }
            let _ = done.send(caught);
            false
        });
        // Refused only once the pool is dropped: the dropped `done` then
        // resolves the future to `None`.
        self.inner.queue.push(job);
        let guard = AbandonOnDrop {
            state,
            pool: Arc::clone(&self.inner),
        };
        async move {
            let outcome = outcome.await.ok();
            drop(guard);
            outcome
        }
    }

    /// Start `n` more threads (remote `pool_grow`).
    pub(super) fn grow(&self, n: usize) -> std::io::Result<()> {
        for _ in 0..n {
            PoolInner::spawn(&self.inner)?;
        }
        Ok(())
    }

    /// Let `n` threads leave (remote `pool_shrink`): each takes a job that
    /// ends it once the bodies queued before it were taken.
    pub(super) fn shrink(&self, n: usize) {
        for _ in 0..n {
            self.inner.queue.push(Box::new(|| true));
        }
    }

    /// Threads alive, including any stuck in an abandoned body.
    #[cfg(test)]
    pub(super) fn live(&self) -> usize {
        self.inner.live.load(Ordering::SeqCst)
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.inner.queue.close();
    }
}

/// Jobs waiting for a thread. A mutex and a condition variable, as tokio's
/// blocking pool has: a channel whose receivers spin before they sleep cost
/// more CPU per task here (BENCHMARKS.md).
#[derive(Default)]
struct JobQueue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Job>,
    closed: bool,
}

impl JobQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        // Jobs catch their own panics, so a poisoned lock holds valid data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, job: Job) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        state.jobs.push_back(job);
        drop(state);
        self.ready.notify_one();
    }

    /// The next job, waiting for one; `None` once closed and empty.
    fn pop(&self) -> Option<Job> {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.jobs.pop_front() {
                return Some(job);
            }
            if state.closed {
                return None;
            }
            state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

/// Held by the future waiting for a body: dropped before the body is done,
/// it marks the job abandoned and starts a replacement thread.
struct AbandonOnDrop {
    state: Arc<AtomicU8>,
    pool: Arc<PoolInner>,
}

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        let abandoned = self
            .state
            .compare_exchange(PENDING, ABANDONED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if abandoned {
            if let Err(e) = PoolInner::spawn(&self.pool) {
                tracing::warn!(error = %e, "could not start a replacement task thread");
            }
        }
    }
}

impl PoolInner {
    fn spawn(inner: &Arc<PoolInner>) -> std::io::Result<()> {
        let number = inner.live.fetch_add(1, Ordering::SeqCst);
        let pool = Arc::clone(inner);
        let started = std::thread::Builder::new()
            .name(format!("celeriac-task-{number}"))
            .spawn(move || pool.work());
        if started.is_err() {
            inner.live.fetch_sub(1, Ordering::SeqCst);
        }
        started.map(drop)
    }

    /// Take jobs until the pool is dropped, or until this thread's body was
    /// abandoned (a replacement already took its place).
    fn work(&self) {
        let _runtime = self.runtime.enter();
        while let Some(job) = self.queue.pop() {
            if job() {
                break;
            }
        }
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn parse_names_and_refusals() {
        assert_eq!(SyncPool::parse("threads"), Ok(SyncPool::Threads));
        assert_eq!(SyncPool::parse("blocking"), Ok(SyncPool::Blocking));
        let prefork = SyncPool::parse("prefork").expect_err("refused");
        assert!(prefork.contains("Python Celery pool"), "{prefork}");
        let typo = SyncPool::parse("thread").expect_err("refused");
        assert!(typo.contains("unknown pool `thread`"), "{typo}");
    }

    #[tokio::test]
    async fn runs_bodies_and_catches_panics() {
        let pool = ThreadPool::start(2).expect("threads start");
        assert_eq!(
            pool.run(|| 2 + 2)
                .await
                .expect("pool alive")
                .expect("no panic"),
            4
        );
        let panicked = pool
            .run(|| -> u32 { panic!("boom") })
            .await
            .expect("pool alive");
        let payload = panicked.expect_err("refused");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
        // The thread that caught the panic still serves.
        let names: Vec<String> = futures::future::join_all(
            (0..4).map(|_| pool.run(|| std::thread::current().name().unwrap_or("").to_owned())),
        )
        .await
        .into_iter()
        .map(|r| r.expect("pool alive").expect("no panic"))
        .collect();
        assert!(
            names.iter().all(|n| n.starts_with("celeriac-task-")),
            "{names:?}"
        );
    }

    #[tokio::test]
    async fn bodies_see_the_runtime() {
        let pool = ThreadPool::start(1).expect("threads start");
        let found = pool
            .run(|| tokio::runtime::Handle::try_current().is_ok())
            .await
            .expect("pool alive")
            .expect("no panic");
        assert!(found, "a pool thread must be inside the worker's runtime");
    }

    #[tokio::test]
    async fn a_body_abandoned_before_it_starts_never_runs() {
        let pool = ThreadPool::start(1).expect("threads start");
        let (release, stuck) = mpsc::channel::<()>();
        let (started, running) = mpsc::channel::<()>();
        let first = pool.run(move || {
            started.send(()).expect("receiver alive");
            let _ = stuck.recv_timeout(Duration::from_secs(30));
        });
        let first = tokio::spawn(first);
        running.recv().expect("sender alive");
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        drop(pool.run(move || flag.store(true, Ordering::SeqCst)));
        release.send(()).expect("receiver alive");
        first
            .await
            .expect("joined")
            .expect("pool alive")
            .expect("no panic");
        // Queued after the dropped body, so taken after it.
        assert_eq!(
            pool.run(|| 1).await.expect("pool alive").expect("no panic"),
            1
        );
        assert!(
            !ran.load(Ordering::SeqCst),
            "an abandoned body must not run"
        );
    }

    #[tokio::test]
    async fn an_abandoned_body_is_replaced_and_its_thread_retires() {
        let pool = ThreadPool::start(1).expect("threads start");
        let (release, stuck) = mpsc::channel::<()>();
        let (started, running) = mpsc::channel::<()>();
        let (finished, returned) = mpsc::channel::<()>();
        let body = pool.run(move || {
            started.send(()).expect("receiver alive");
            let _ = stuck.recv_timeout(Duration::from_secs(30));
            finished.send(()).expect("receiver alive");
        });
        // The worker gives up on it (a time limit) once it runs.
        let waited = tokio::time::timeout(Duration::from_millis(1), body);
        running.recv().expect("sender alive");
        assert!(
            waited.await.is_err(),
            "the body is stuck: the wait times out"
        );
        assert_eq!(pool.live(), 2, "a replacement started");
        // The only original thread is stuck; the replacement serves.
        assert_eq!(
            pool.run(|| 7).await.expect("pool alive").expect("no panic"),
            7
        );
        release.send(()).expect("receiver alive");
        returned.recv().expect("sender alive");
        // Once the stuck body returned, its thread left: one waits again.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while pool.live() != 1 {
            assert!(std::time::Instant::now() < deadline, "live {}", pool.live());
            tokio::task::yield_now().await;
        }
    }
}
