//! When an entry runs: intervals, crontab, one-off.
//!
//! 1. [`Schedule`]: the three kinds, each a function from a time to the next
//!    *tick* (the instant a run is due). Ticks are deterministic, the same in
//!    every beat process, which is what lets many beats agree on "the run of
//!    12:05" without talking to each other.
//! 2. Intervals tick on multiples of the interval since the Unix epoch
//!    (`every = "300s"` runs at :00, :05, :10… UTC), not relative to when a
//!    beat started; Celery's `schedule(run_every)` counts from the last run,
//!    which differs per process.
//! 3. [`parse_duration`]: `"300s"`, `"5m"`, `"1h30m"`, `"1d"`, `"500ms"`.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::{BeatError, Crontab};

/// When a [`ScheduleEntry`](super::ScheduleEntry) runs.
///
/// ```
/// use celeriac::beat::Schedule;
/// use std::time::Duration;
/// let every = Schedule::every(Duration::from_secs(300))?;
/// let cron = Schedule::cron("*/5 * * * *", "UTC")?;
/// let after = "2024-01-01T10:02:00Z".parse()?;
/// assert_eq!(every.next_after(after), cron.next_after(after));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// Every `n` milliseconds, on multiples of `n` since the epoch.
    Every(i64),
    Cron(Box<Crontab>),
    At(DateTime<Utc>),
}

impl Schedule {
    /// Run every `interval` (at least 1 ms), aligned on the Unix epoch.
    ///
    /// # Errors
    /// [`BeatError::Duration`] for a zero or absurdly long interval.
    pub fn every(interval: Duration) -> Result<Schedule, BeatError> {
        let ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
        if !(1..=100 * 365 * 86_400_000).contains(&ms) {
            return Err(BeatError::Duration {
                text: format!("{interval:?}"),
                reason: "an interval must be between 1 ms and 100 years".into(),
            });
        }
        Ok(Schedule {
            kind: Kind::Every(ms),
        })
    }

    /// Run when the crontab `expression` matches in the time zone `zone`.
    ///
    /// # Errors
    /// As [`Crontab::parse`].
    pub fn cron(expression: &str, zone: &str) -> Result<Schedule, BeatError> {
        Ok(Schedule::from(Crontab::parse(expression, zone)?))
    }

    /// Run once, at `at` (Celery's `clocked` schedule).
    pub fn at(at: DateTime<Utc>) -> Schedule {
        Schedule { kind: Kind::At(at) }
    }

    /// The first tick strictly after `t`; `None` when there are no more (a
    /// one-off whose time has passed).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Every(ms) => {
                let next = (t.timestamp_millis().div_euclid(*ms) + 1).checked_mul(*ms)?;
                Utc.timestamp_millis_opt(next).single()
            }
            Kind::Cron(cron) => cron.next_after(t),
            Kind::At(at) => (*at > t).then_some(*at),
        }
    }

    /// The latest tick in `(after, now]`: the run that is due now, with any
    /// earlier ones since `after` counted as missed.
    pub fn latest_due(&self, after: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Every(ms) => {
                let tick = now.timestamp_millis().div_euclid(*ms).checked_mul(*ms)?;
                let tick = Utc.timestamp_millis_opt(tick).single()?;
                (tick > after).then_some(tick)
            }
            Kind::Cron(_) => {
                // Walk forward from `after`; after a long outage, first from
                // recent windows, since only the latest tick matters.
                for hours in [1, 24, 32 * 24, 366 * 24] {
                    let recent = now - chrono::Duration::hours(hours);
                    if after >= recent {
                        break;
                    }
                    if let Some(t) = self.walk(recent, now) {
                        return Some(t);
                    }
                }
                self.walk(after, now)
            }
            Kind::At(at) => (*at > after && *at <= now).then_some(*at),
        }
    }

    fn walk(&self, after: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut latest = None;
        let mut t = after;
        while let Some(next) = self.next_after(t).filter(|n| *n <= now) {
            latest = Some(next);
            t = next;
        }
        latest
    }

    /// The interval, for an interval schedule.
    pub fn interval(&self) -> Option<Duration> {
        match self.kind {
            Kind::Every(ms) => Some(Duration::from_millis(ms as u64)),
            _ => None,
        }
    }
}

impl From<Crontab> for Schedule {
    fn from(cron: Crontab) -> Self {
        Schedule {
            kind: Kind::Cron(Box::new(cron)),
        }
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Every(ms) => write!(f, "every {}", format_duration(*ms)),
            Kind::Cron(cron) => cron.fmt(f),
            Kind::At(at) => write!(f, "once at {}", at.format("%Y-%m-%d %H:%M:%S UTC")),
        }
    }
}

/// `300000` → `5m`, `5400000` → `1h30m`, `1500` → `1500ms`.
fn format_duration(ms: i64) -> String {
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let mut secs = ms / 1000;
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

/// Parse a duration: one or more `<number><unit>` with units `ms`, `s`,
/// `m`/`min`, `h`, `d`, `w` (`"300s"`, `"1h30m"`, `"1.5h"`), or a bare number
/// of seconds.
///
/// # Errors
/// [`BeatError::Duration`] saying what is wrong.
pub fn parse_duration(text: &str) -> Result<Duration, BeatError> {
    let err = |reason: &str| BeatError::Duration {
        text: text.to_owned(),
        reason: reason.to_owned(),
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(err("empty"));
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| err("must be a non-negative number of seconds"));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(err(
                "expected a number before each unit, e.g. \"300s\" or \"1h30m\"",
            ));
        }
        let number: f64 = rest[..digits]
            .parse()
            .map_err(|_| err("a number is malformed"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match rest[..unit_len].trim() {
            "ms" => 0.001,
            "s" | "sec" | "secs" => 1.0,
            "m" | "min" | "mins" => 60.0,
            "h" | "hr" | "hrs" => 3600.0,
            "d" | "day" | "days" => 86_400.0,
            "w" | "week" | "weeks" => 604_800.0,
            "" => return Err(err("a number lacks its unit (ms, s, m, h, d, w)")),
            other => {
                return Err(err(&format!(
                    "unknown unit {other:?} (use ms, s, m, h, d or w)"
                )))
            }
        };
        total += number * seconds;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| err("too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn intervals_tick_on_epoch_multiples() -> Result<(), BeatError> {
        let s = Schedule::every(Duration::from_secs(300))?;
        assert_eq!(
            s.next_after(t("2024-01-01T10:02:03Z")),
            Some(t("2024-01-01T10:05:00Z"))
        );
        assert_eq!(
            s.next_after(t("2024-01-01T10:05:00Z")),
            Some(t("2024-01-01T10:10:00Z"))
        );
        assert_eq!(
            s.latest_due(t("2024-01-01T09:00:00Z"), t("2024-01-01T10:07:00Z")),
            Some(t("2024-01-01T10:05:00Z"))
        );
        assert_eq!(
            s.latest_due(t("2024-01-01T10:05:00Z"), t("2024-01-01T10:07:00Z")),
            None
        );
        assert!(Schedule::every(Duration::ZERO).is_err());
        Ok(())
    }

    #[test]
    fn one_off_runs_once() {
        let s = Schedule::at(t("2024-01-01T10:00:00Z"));
        assert_eq!(
            s.next_after(t("2024-01-01T09:00:00Z")),
            Some(t("2024-01-01T10:00:00Z"))
        );
        assert_eq!(s.next_after(t("2024-01-01T10:00:00Z")), None);
        assert_eq!(
            s.latest_due(t("2024-01-01T09:00:00Z"), t("2024-01-02T00:00:00Z")),
            Some(t("2024-01-01T10:00:00Z"))
        );
        assert_eq!(
            s.latest_due(t("2024-01-01T10:00:00Z"), t("2024-01-02T00:00:00Z")),
            None
        );
    }

    #[test]
    fn durations_read_like_people_write_them() -> Result<(), BeatError> {
        assert_eq!(parse_duration("300s")?, Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m")?, Duration::from_secs(5400));
        assert_eq!(parse_duration("1.5h")?, Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms")?, Duration::from_millis(500));
        assert_eq!(parse_duration("2d")?, Duration::from_secs(172_800));
        assert_eq!(parse_duration("42")?, Duration::from_secs(42));
        for bad in ["", "5x", "h", "-3s", "10 s s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(5_400_000), "1h30m");
        assert_eq!(format_duration(1500), "1500ms");
        Ok(())
    }
}
