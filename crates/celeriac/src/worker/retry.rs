//! When a retried task runs again.
//!
//! Celery's rules: an explicit countdown wins; otherwise, with
//! `retry_backoff`, the delay is `factor × 2^retries` capped at
//! `retry_backoff_max` and, with `retry_jitter` (on by default), drawn
//! uniformly from `[0, delay]` ("full jitter", so many tasks failing together
//! do not retry together); otherwise `default_retry_delay` (180 s).

use std::time::Duration;

use crate::task::{TaskError, TaskOptions};

/// Celery's `default_retry_delay`.
pub(crate) const DEFAULT_RETRY_DELAY: f64 = 180.0;
/// Celery's `retry_backoff_max`.
pub(crate) const DEFAULT_BACKOFF_MAX: f64 = 600.0;

/// The delay before retry number `retries + 1`.
pub(crate) fn delay(options: &TaskOptions, error: &TaskError, retries: u32) -> Duration {
    if let Some(countdown) = error.retry.as_ref().and_then(|r| r.countdown) {
        return countdown;
    }
    let seconds = match options.retry_backoff {
        Some(factor) if factor > 0.0 => {
            let cap = options.retry_backoff_max.unwrap_or(DEFAULT_BACKOFF_MAX);
            let exp = factor * 2f64.powi(retries.min(62) as i32);
            let ceiling = exp.min(cap).max(0.0);
            if options.retry_jitter.unwrap_or(true) {
                rand::random_range(0.0..=ceiling)
            } else {
                ceiling
            }
        }
        _ => options.default_retry_delay.unwrap_or(DEFAULT_RETRY_DELAY),
    };
    Duration::from_secs_f64(seconds.max(0.0))
}

/// Does this failure ask for a retry, explicitly or through `autoretry_for`?
pub(crate) fn wanted(options: &TaskOptions, error: &TaskError) -> bool {
    error.retry.is_some() || options.autoretry_for.contains(&error.exc_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff(factor: f64, max: f64, jitter: bool) -> TaskOptions {
        TaskOptions {
            retry_backoff: Some(factor),
            retry_backoff_max: Some(max),
            retry_jitter: Some(jitter),
            ..TaskOptions::default()
        }
    }

    #[test]
    fn exponential_backoff_doubles_up_to_the_cap() {
        let options = backoff(2.0, 30.0, false);
        let error = TaskError::new("IOError", "down");
        let delays: Vec<f64> = (0..6)
            .map(|n| delay(&options, &error, n).as_secs_f64())
            .collect();
        assert_eq!(delays, vec![2.0, 4.0, 8.0, 16.0, 30.0, 30.0]);
    }

    #[test]
    fn full_jitter_stays_under_the_curve() {
        let options = backoff(1.0, 600.0, true);
        let error = TaskError::new("IOError", "down");
        for n in 0..8 {
            let d = delay(&options, &error, n).as_secs_f64();
            assert!((0.0..=2f64.powi(n as i32)).contains(&d), "retry {n}: {d}");
        }
    }

    #[test]
    fn explicit_countdown_wins_and_autoretry_matches_by_type() {
        let options = TaskOptions {
            autoretry_for: vec!["IOError".into()],
            ..backoff(1.0, 10.0, false)
        };
        let asked = TaskError::new("X", "y").retry(Some(Duration::from_millis(5)));
        assert_eq!(delay(&options, &asked, 3), Duration::from_millis(5));
        assert!(wanted(&options, &TaskError::new("IOError", "down")));
        assert!(!wanted(&options, &TaskError::new("ValueError", "bad")));
        let plain = TaskOptions::default();
        assert_eq!(
            delay(&plain, &TaskError::new("X", "y"), 0),
            Duration::from_secs(180)
        );
    }
}
