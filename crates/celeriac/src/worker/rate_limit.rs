//! Per-task rate limits, per worker, as Celery's `rate_limit`.
//!
//! `"100/s"`, `"10/m"`, `"5/h"` or a bare number (per second). Each limited
//! task name has a schedule of free slots spaced `1/rate` apart: a task
//! takes the next slot and waits for it before it starts, so a burst is
//! spread out instead of refused. Tasks wait here *before* taking an
//! execution slot, so a throttled task never blocks others.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Why a rate limit did not parse.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "invalid rate limit {0:?}: expected e.g. \"100/s\", \"10/m\", \"5/h\" or a number per second"
)]
pub struct RateLimitError(pub String);

/// Parse a Celery rate limit into the interval between two starts; `None`
/// for "no limit" (`0` or empty).
pub fn parse_rate_limit(text: &str) -> Result<Option<Duration>, RateLimitError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let (count, unit) = match text.split_once('/') {
        Some((count, unit)) => (count.trim(), unit.trim()),
        None => (text, "s"),
    };
    let per_seconds = match unit {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        _ => return Err(RateLimitError(text.to_owned())),
    };
    let count: f64 = count.parse().map_err(|_| RateLimitError(text.to_owned()))?;
    if !count.is_finite() || count < 0.0 {
        return Err(RateLimitError(text.to_owned()));
    }
    if count == 0.0 {
        return Ok(None);
    }
    Ok(Some(Duration::from_secs_f64(per_seconds / count)))
}

/// The limits of one worker, by task name.
#[derive(Default)]
pub(crate) struct RateLimits {
    slots: Mutex<HashMap<String, (Duration, Instant)>>,
}

impl RateLimits {
    /// Set (or with `None`, lift) the limit of `task`.
    pub(crate) fn set(&self, task: &str, interval: Option<Duration>) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        match interval {
            Some(interval) => {
                slots.insert(task.to_owned(), (interval, Instant::now()));
            }
            None => {
                slots.remove(task);
            }
        }
    }

    /// The limit of `task` in Celery's spelling (`10/s`, `5/m`, `2/h`),
    /// `None` when unlimited.
    pub(crate) fn spelled(&self, task: &str) -> Option<String> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let (interval, _) = slots.get(task)?;
        let per_second = 1.0 / interval.as_secs_f64().max(1e-9);
        for (unit, seconds) in [("s", 1.0), ("m", 60.0), ("h", 3600.0)] {
            let count = per_second * seconds;
            if count >= 1.0 && (count - count.round()).abs() < 1e-6 {
                return Some(format!("{}/{unit}", count.round()));
            }
        }
        Some(format!("{:.3}/h", per_second * 3600.0))
    }

    /// Wait for `task`'s next free slot (at once when unlimited).
    pub(crate) async fn acquire(&self, task: &str) {
        let start = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            let Some((interval, next)) = slots.get_mut(task) else {
                return;
            };
            let start = (*next).max(Instant::now());
            *next = start + *interval;
            start
        };
        tokio::time::sleep_until(start).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_spelled_back() {
        let limits = RateLimits::default();
        for text in ["10/s", "5/m", "2/h", "100/m"] {
            limits.set("t", parse_rate_limit(text).expect("valid"));
            assert_eq!(limits.spelled("t").as_deref(), Some(text));
        }
        limits.set("t", None);
        assert_eq!(limits.spelled("t"), None);
    }

    #[test]
    fn parses_celery_spellings() {
        assert_eq!(
            parse_rate_limit("100/s"),
            Ok(Some(Duration::from_millis(10)))
        );
        assert_eq!(parse_rate_limit("10/m"), Ok(Some(Duration::from_secs(6))));
        assert_eq!(parse_rate_limit("2/h"), Ok(Some(Duration::from_secs(1800))));
        assert_eq!(parse_rate_limit("4"), Ok(Some(Duration::from_millis(250))));
        assert_eq!(parse_rate_limit("0"), Ok(None));
        assert!(parse_rate_limit("ten/s").is_err());
        assert!(parse_rate_limit("5/fortnight").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn spreads_starts_at_the_rate() {
        let limits = RateLimits::default();
        limits.set("t", Some(Duration::from_millis(100)));
        let start = Instant::now();
        for _ in 0..5 {
            limits.acquire("t").await;
        }
        // Five starts at 0, 100, 200, 300, 400 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(400));
        let free = Instant::now();
        limits.acquire("other").await;
        assert_eq!(free.elapsed(), Duration::ZERO);
    }
}
