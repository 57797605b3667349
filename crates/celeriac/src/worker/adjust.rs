//! What remote control changes in a running worker (Celery's `control`
//! commands), and what the worker reads back from it:
//!
//! 1. [`Queues`]: the queues consumed (`add_consumer`, `cancel_consumer`).
//!    The fetch loop reads them before each reservation, so a change takes
//!    effect within one reservation wait (500 ms); with none left it waits
//!    for one to be added.
//! 2. [`TimeLimits`]: per-task time limits set by `time_limit`. As in
//!    Celery's worker, a message's own `timelimit` header wins; these
//!    replace the task's declared defaults.
//! 3. [`Pool`]: how many tasks run at once (`pool_grow`, `pool_shrink`):
//!    the execution slots and, with the default thread pool, its threads.
//!    Shrinking takes effect as running tasks finish: none is interrupted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{watch, Semaphore};

use super::sync_pool::ThreadPool;
use crate::shutdown::Shutdown;

/// The queues a worker consumes, changed while it runs.
pub(super) struct Queues {
    current: watch::Sender<Arc<[String]>>,
}

impl Queues {
    pub(super) fn new(initial: &[String]) -> Self {
        Queues {
            current: watch::Sender::new(initial.into()),
        }
    }

    /// The queues consumed now.
    pub(super) fn current(&self) -> Arc<[String]> {
        Arc::clone(&self.current.borrow())
    }

    /// Start consuming `queue`; false when it already was.
    pub(super) fn add(&self, queue: &str) -> bool {
        self.current.send_if_modified(|queues| {
            if queues.iter().any(|q| q == queue) {
                return false;
            }
            let mut more = queues.to_vec();
            more.push(queue.to_owned());
            *queues = more.into();
            true
        })
    }

    /// Stop consuming `queue`; false when it was not consumed.
    pub(super) fn remove(&self, queue: &str) -> bool {
        self.current.send_if_modified(|queues| {
            if !queues.iter().any(|q| q == queue) {
                return false;
            }
            *queues = queues.iter().filter(|q| *q != queue).cloned().collect();
            true
        })
    }

    /// The queues to consume: at once when there are some, else once one
    /// is added; `None` when `shutdown` comes first.
    pub(super) async fn wait_for_any(&self, shutdown: &mut Shutdown) -> Option<Arc<[String]>> {
        let queues = self.current();
        if !queues.is_empty() {
            return Some(queues);
        }
        let mut changes = self.current.subscribe();
        loop {
            let queues = Arc::clone(&changes.borrow_and_update());
            if !queues.is_empty() {
                return Some(queues);
            }
            tokio::select! {
                _ = shutdown.requested() => return None,
                changed = changes.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
            }
        }
    }
}

/// `(soft, hard)` seconds; `None` for no limit.
pub(super) type Limits = (Option<f64>, Option<f64>);

/// Time limits set remotely, by task name (Celery's `time_limit` sets
/// both, a missing one to none).
#[derive(Default)]
pub(super) struct TimeLimits {
    by_task: Mutex<HashMap<String, Limits>>,
}

impl TimeLimits {
    pub(super) fn set(&self, task: &str, soft: Option<f64>, hard: Option<f64>) {
        self.by_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(task.to_owned(), (soft, hard));
    }

    /// `(soft, hard)` set for `task`, if any was.
    pub(super) fn get(&self, task: &str) -> Option<Limits> {
        let by_task = self.by_task.lock().unwrap_or_else(|e| e.into_inner());
        if by_task.is_empty() {
            return None;
        }
        by_task.get(task).copied()
    }
}

/// The most execution slots `pool_grow` builds up to.
pub(super) const MAX_POOL: usize = 10_000;

/// How many tasks run at once: the slots every task takes before it runs,
/// and the threads sync bodies run on (when the pool is the worker's own).
pub(super) struct Pool {
    pub(super) slots: Semaphore,
    size: AtomicUsize,
    /// `None`: sync bodies run on tokio's blocking pool.
    pub(super) threads: Option<ThreadPool>,
}

impl Pool {
    pub(super) fn new(size: usize, threads: Option<ThreadPool>) -> Self {
        let size = size.max(1);
        Pool {
            slots: Semaphore::new(size),
            size: AtomicUsize::new(size),
            threads,
        }
    }

    /// The number of slots now.
    pub(super) fn size(&self) -> usize {
        self.size.load(Ordering::Relaxed)
    }

    /// Add `n` slots (and threads).
    ///
    /// # Errors
    /// Past [`MAX_POOL`] slots, or when a thread cannot be started.
    pub(super) fn grow(&self, n: usize) -> Result<usize, String> {
        let before = self
            .size
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| {
                s.checked_add(n).filter(|total| *total <= MAX_POOL)
            })
            .map_err(|s| {
                format!(
                    "cannot grow the pool by {n}: it has {s} slots and grows to at most {MAX_POOL}"
                )
            })?;
        self.slots.add_permits(n);
        if let Some(threads) = &self.threads {
            threads
                .grow(n)
                .map_err(|e| format!("could not start task threads: {e}"))?;
        }
        Ok(before + n)
    }

    /// Remove `n` slots (and threads): free ones at once, busy ones as
    /// their tasks finish.
    ///
    /// # Errors
    /// When fewer than one slot would be left.
    pub(super) fn shrink(self: &Arc<Self>, n: usize) -> Result<usize, String> {
        let before = self
            .size
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| {
                s.checked_sub(n).filter(|left| *left >= 1)
            })
            .map_err(|s| {
                format!("cannot shrink the pool by {n}: it has {s} slots and keeps at least one")
            })?;
        let busy = n - self.slots.forget_permits(n);
        if busy > 0 {
            // Semaphore waiters are served in order, so this one takes the
            // next slots that free up before any later task does.
            let pool = Arc::clone(self);
            let busy = u32::try_from(busy).unwrap_or(u32::MAX);
            tokio::spawn(async move {
                if let Ok(permits) = pool.slots.acquire_many(busy).await {
                    permits.forget();
                }
            });
        }
        if let Some(threads) = &self.threads {
            threads.shrink(n);
        }
        Ok(before - n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_are_added_and_removed_once() {
        let queues = Queues::new(&["celery".to_owned()]);
        assert!(queues.add("extra"));
        assert!(!queues.add("extra"), "already consumed");
        assert_eq!(&*queues.current(), ["celery", "extra"]);
        assert!(queues.remove("celery"));
        assert!(!queues.remove("celery"), "no longer consumed");
        assert_eq!(&*queues.current(), ["extra"]);
    }

    #[tokio::test]
    async fn with_no_queue_the_wait_ends_when_one_is_added_or_at_shutdown() {
        let queues = Arc::new(Queues::new(&[]));
        let (trigger, mut shutdown) = Shutdown::new();
        let waiting = {
            let queues = Arc::clone(&queues);
            let mut shutdown = shutdown.clone();
            tokio::spawn(async move { queues.wait_for_any(&mut shutdown).await })
        };
        tokio::task::yield_now().await;
        assert!(queues.add("late"));
        let got = waiting.await.expect("joined").expect("a queue");
        assert_eq!(&*got, ["late"]);
        assert!(queues.remove("late"));
        trigger.fire();
        assert!(queues.wait_for_any(&mut shutdown).await.is_none());
    }

    #[test]
    fn time_limits_replace_per_task() {
        let limits = TimeLimits::default();
        assert_eq!(limits.get("t"), None);
        limits.set("t", Some(1.5), None);
        assert_eq!(limits.get("t"), Some((Some(1.5), None)));
        assert_eq!(limits.get("other"), None);
    }

    #[tokio::test]
    async fn the_pool_grows_and_shrinks_within_bounds() {
        let pool = Arc::new(Pool::new(2, None));
        assert_eq!(pool.grow(3), Ok(5));
        assert_eq!(pool.slots.available_permits(), 5);
        assert_eq!(pool.shrink(4), Ok(1));
        assert_eq!(pool.slots.available_permits(), 1);
        let refused = pool.shrink(1).expect_err("one slot is kept");
        assert!(refused.contains("keeps at least one"), "{refused}");
        let refused = pool.grow(MAX_POOL).expect_err("capped");
        assert!(refused.contains("at most"), "{refused}");
        assert_eq!(pool.size(), 1);
    }

    #[tokio::test]
    async fn shrinking_a_busy_pool_takes_slots_as_they_free() {
        let pool = Arc::new(Pool::new(2, None));
        let first = pool.slots.acquire().await.expect("open");
        let second = pool.slots.acquire().await.expect("open");
        assert_eq!(pool.shrink(1), Ok(1));
        // Let the shrink take its place in line.
        tokio::task::yield_now().await;
        drop(first);
        // The freed slot goes to the shrink, not to a new task.
        let waiter = pool.slots.try_acquire();
        assert!(waiter.is_err(), "the shrink waits first in line");
        drop(second);
        let third = tokio::time::timeout(std::time::Duration::from_secs(5), pool.slots.acquire())
            .await
            .expect("one slot left")
            .expect("open");
        assert_eq!(pool.slots.available_permits(), 0);
        drop(third);
        assert_eq!(pool.slots.available_permits(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn threads_follow_the_pool_size() {
        let threads = ThreadPool::start(1).expect("threads start");
        let pool = Arc::new(Pool::new(1, Some(threads)));
        let live = |pool: &Pool| pool.threads.as_ref().map_or(0, ThreadPool::live);
        assert_eq!(pool.grow(2), Ok(3));
        assert_eq!(live(&pool), 3);
        assert_eq!(pool.shrink(2), Ok(1));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while live(&pool) != 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "threads did not leave"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // The one left still runs bodies.
        let threads = pool.threads.as_ref().expect("own threads");
        let seven = threads
            .run(|| 7)
            .await
            .expect("pool alive")
            .expect("no panic");
        assert_eq!(seven, 7);
    }
}
