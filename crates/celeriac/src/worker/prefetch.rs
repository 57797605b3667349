//! How many messages a worker holds at once: sized by what it can run
//! soon, not by its concurrency alone.
//!
//! A worker running tasks of 10 µs with two slots needs hundreds of
//! messages in hand to keep its round trips batched (one reservation, one
//! result store, one acknowledgement for many tasks); one running tasks of
//! a second needs a few, or it hoards a queue other workers could serve.
//! The window holds what the worker finishes in about [`HORIZON`] at its
//! recent rate, never fewer than Celery's `4 × concurrency` and never more
//! than the `prefetch` ceiling.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// How far ahead the window reaches, in time at the recent rate.
const HORIZON: Duration = Duration::from_millis(50);
/// How often the rate is measured.
const SAMPLE: Duration = Duration::from_millis(100);

/// The prefetch window: permits of a semaphore, one per message held.
pub(super) struct PrefetchWindow {
    permits: Arc<Semaphore>,
    /// Permits that exist (held or available), less those owed.
    allowed: usize,
    /// Permits to forget as they come back (the window shrank while they
    /// were held).
    owed: usize,
    floor: usize,
    ceiling: usize,
    sampled_at: Instant,
    processed_then: u64,
}

impl PrefetchWindow {
    /// A window between `4 × concurrency` (at most `ceiling`) and
    /// `ceiling` messages, starting at the floor; fixed at `ceiling` when
    /// not `adaptive`.
    pub(super) fn new(concurrency: usize, ceiling: usize, adaptive: bool) -> Self {
        let ceiling = ceiling.max(1);
        let floor = if adaptive {
            concurrency.saturating_mul(4).clamp(1, ceiling)
        } else {
            ceiling
        };
        PrefetchWindow {
            permits: Arc::new(Semaphore::new(floor)),
            allowed: floor,
            owed: 0,
            floor,
            ceiling,
            sampled_at: Instant::now(),
            processed_then: 0,
        }
    }

    /// The permits handlers hold while they have a message.
    pub(super) fn permits(&self) -> &Arc<Semaphore> {
        &self.permits
    }

    /// The window's size now.
    #[cfg(test)]
    fn size(&self) -> usize {
        self.allowed
    }

    /// Resize from the count of finished tasks, at most every [`SAMPLE`].
    pub(super) fn adjust(&mut self, processed: u64) {
        self.forget_owed();
        let now = Instant::now();
        let elapsed = now.duration_since(self.sampled_at);
        if elapsed < SAMPLE {
            return;
        }
        let done = processed.saturating_sub(self.processed_then);
        self.sampled_at = now;
        self.processed_then = processed;
        let per_horizon = done as f64 * HORIZON.as_secs_f64() / elapsed.as_secs_f64();
        let target = (per_horizon.ceil() as usize).clamp(self.floor, self.ceiling);
        self.resize(target);
    }

    fn resize(&mut self, target: usize) {
        if target > self.allowed {
            let grow = target - self.allowed;
            let repaid = grow.min(self.owed);
            self.owed -= repaid;
            self.permits.add_permits(grow - repaid);
        } else if target < self.allowed {
            self.owed += self.allowed - target;
            self.forget_owed();
        }
        self.allowed = target;
    }

    fn forget_owed(&mut self) {
        if self.owed > 0 {
            self.owed -= self.permits.forget_permits(self.owed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_follows_the_rate_between_its_bounds() {
        let mut window = PrefetchWindow::new(2, 512, true);
        assert_eq!(window.size(), 8);
        // 10,000 tasks in ~100 ms: 5,000 per 50 ms, capped at the ceiling.
        window.sampled_at -= SAMPLE;
        window.adjust(10_000);
        assert_eq!(window.size(), 512);
        assert_eq!(window.permits().available_permits(), 512);
        // Slow again: back to the floor, even with permits held.
        let held: Vec<_> = (0..500)
            .filter_map(|_| Arc::clone(window.permits()).try_acquire_owned().ok())
            .collect();
        window.sampled_at -= SAMPLE * 10;
        window.adjust(10_001);
        assert_eq!(window.size(), 8);
        drop(held);
        window.adjust(10_001);
        assert_eq!(window.permits().available_permits(), 8);
        // A ceiling below the floor wins; a fixed window never moves.
        assert_eq!(PrefetchWindow::new(8, 1, true).size(), 1);
        let mut fixed = PrefetchWindow::new(1, 6, false);
        fixed.sampled_at -= SAMPLE;
        fixed.adjust(1_000_000);
        assert_eq!(fixed.size(), 6);
    }
}
