//! Crontab expressions in a time zone.
//!
//! 1. Parse the five fields `minute hour day-of-month month day-of-week`
//!    (`*`, `a`, `a-b`, `*/n`, `a-b/n`, `a/n`, lists, month and day names,
//!    day 7 = Sunday) and the `@hourly`, `@daily`, `@weekly`, `@monthly`,
//!    `@yearly` shorthands. An expression that can never match (`0 0 31 2 *`)
//!    is refused when parsed.
//! 2. Day matching follows POSIX (Vixie) cron: when *both* day-of-month and
//!    day-of-week are restricted (neither starts with `*`), a day matches if
//!    *either* does; otherwise both must. (Python Celery's `crontab` class
//!    requires both; the cron rule is what people writing a 5-field string
//!    expect.)
//! 3. Find the next firing instant after a UTC time, with these rules for
//!    daylight-saving changes in the entry's zone:
//!    - a local time that does not exist (spring forward: 02:30 in
//!      Europe/Berlin on the last Sunday of March) fires at the first instant
//!      after the gap (03:00 local), so a daily job still runs that day;
//!    - a local time that happens twice (fall back: 02:30 on the last Sunday
//!      of October) fires once, at its first occurrence, unless the hour
//!      field starts with `*`: such jobs (`*/5 * * * *`) keep their pace
//!      through the repeated hour and fire on both passes, as Vixie cron does.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, Offset};
use chrono::{TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use super::BeatError;

/// How far ahead to look for a match before calling an expression empty:
/// nine years covers every Feb 29 (2096 to 2104 skips 2100).
const SEARCH_YEARS: i32 = 9;

/// A crontab schedule in a time zone.
///
/// ```
/// use celeriac::beat::Crontab;
/// let daily = Crontab::parse("30 2 * * *", "Europe/Berlin")?;
/// let after = "2024-03-30T12:00:00Z".parse()?;
/// // 02:30 does not exist on 31 March 2024 in Berlin: it fires at 03:00 CEST.
/// assert_eq!(daily.next_after(after).map(|t| t.to_rfc3339()),
///            Some("2024-03-31T01:00:00+00:00".to_owned()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Crontab {
    expression: String,
    zone: Tz,
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    /// Both day fields restricted: a day matches if either does.
    days_either: bool,
    /// The hour field starts with `*`: fire on both passes of a repeated hour.
    every_hour: bool,
}

impl Crontab {
    /// Parse `expression` for the IANA time zone `zone` (e.g. `"UTC"`,
    /// `"Europe/Berlin"`).
    ///
    /// # Errors
    /// [`BeatError::UnknownTimeZone`] for a zone not in the database;
    /// [`BeatError::Cron`] naming the field at fault, or saying the
    /// expression never matches.
    pub fn parse(expression: &str, zone: &str) -> Result<Crontab, BeatError> {
        let zone: Tz = zone
            .trim()
            .parse()
            .map_err(|_| BeatError::UnknownTimeZone(zone.to_owned()))?;
        let err = |reason: String| BeatError::Cron {
            expression: expression.to_owned(),
            reason,
        };
        let text = match expression.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(err(format!(
                    "unknown shorthand {other} (use @hourly, @daily, @weekly, @monthly or @yearly)"
                )))
            }
            other => other,
        };
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            return Err(err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                fields.len()
            )));
        };
        let minutes = parse_field(minute, "minute", 0, 59, &[]).map_err(err)?;
        let hours = parse_field(hour, "hour", 0, 23, &[]).map_err(err)?;
        let days = parse_field(dom, "day-of-month", 1, 31, &[]).map_err(err)?;
        let months = parse_field(month, "month", 1, 12, &MONTHS).map_err(err)?;
        let mut weekdays = parse_field(dow, "day-of-week", 0, 7, &DAYS).map_err(err)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & 0x7f; // 7 is Sunday too
        }
        let cron = Crontab {
            expression: expression.trim().to_owned(),
            zone,
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: weekdays as u8,
            days_either: !dom.starts_with('*') && !dow.starts_with('*'),
            every_hour: hour.starts_with('*'),
        };
        let probe = NaiveDate::from_ymd_opt(2001, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0));
        if probe.and_then(|p| cron.next_local_match(p)).is_none() {
            return Err(err("it never matches (no such day in any month)".to_owned()));
        }
        Ok(cron)
    }

    /// The expression as given.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone's IANA name.
    pub fn timezone(&self) -> &'static str {
        self.zone.name()
    }

    /// The first firing instant strictly after `t`, or `None` if there is
    /// none within the search horizon (only for dates past year 262000).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // A job that fires on both passes of a repeated hour may have a
        // match at a local time *earlier* than `t`'s that happens again after
        // `t`: look back by the coming fall-back, if there is one soon.
        let fold = if self.every_hour {
            let now = self.offset_secs(t);
            let later = self.offset_secs(t + Duration::hours(3));
            Duration::seconds((now - later).max(0))
        } else {
            Duration::zero()
        };
        let local = t.with_timezone(&self.zone).naive_local() - fold;
        let mut m = local.with_second(0)?.with_nanosecond(0)?;
        let mut best: Option<DateTime<Utc>> = None;
        // Bounded: each pass moves `m` forward by at least a minute, and the
        // loop ends within `fold` (hours) of the first hit.
        for _ in 0..100_000 {
            m = self.next_local_match(m)?;
            if let Some(b) = best {
                if m > b.with_timezone(&self.zone).naive_local() + fold {
                    break;
                }
            }
            for x in self.instants(m).into_iter().flatten() {
                if x > t && best.is_none_or(|b| x < b) {
                    best = Some(x);
                }
            }
            if best.is_some() && fold.is_zero() {
                break; // without a fold ahead, instants grow with local time
            }
            m += Duration::minutes(1);
        }
        best
    }

    /// True when the local date (in the entry's zone) is a matching day.
    fn day_matches(&self, date: NaiveDate) -> bool {
        let dom = self.days & (1 << date.day()) != 0;
        let dow = self.weekdays & (1 << date.weekday().num_days_from_sunday()) != 0;
        if self.days_either {
            dom || dow
        } else {
            dom && dow
        }
    }

    /// The first local minute at or after `from` that matches every field.
    fn next_local_match(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        let limit = from.year() + SEARCH_YEARS;
        let mut t = from;
        while t.year() <= limit {
            let date = t.date();
            if self.months & (1 << t.month()) == 0 {
                let (y, m) = if t.month() == 12 {
                    (t.year() + 1, 1)
                } else {
                    (t.year(), t.month() + 1)
                };
                t = NaiveDate::from_ymd_opt(y, m, 1)?.and_hms_opt(0, 0, 0)?;
            } else if !self.day_matches(date) {
                t = date.succ_opt()?.and_hms_opt(0, 0, 0)?;
            } else if self.hours & (1 << t.hour()) == 0 {
                t = date.and_hms_opt(t.hour(), 0, 0)? + Duration::hours(1);
            } else {
                let above = self.minutes >> t.minute();
                if above == 0 {
                    t = date.and_hms_opt(t.hour(), 0, 0)? + Duration::hours(1);
                } else {
                    let minute = t.minute() + above.trailing_zeros();
                    return date.and_hms_opt(t.hour(), minute, 0);
                }
            }
        }
        None
    }

    /// The instants at which the local time `m` fires (see the module docs).
    fn instants(&self, m: NaiveDateTime) -> [Option<DateTime<Utc>>; 2] {
        match self.zone.from_local_datetime(&m) {
            LocalResult::Single(x) => [Some(x.with_timezone(&Utc)), None],
            LocalResult::Ambiguous(a, b) => {
                let (a, b) = (a.with_timezone(&Utc), b.with_timezone(&Utc));
                if self.every_hour {
                    [Some(a.min(b)), Some(a.max(b))]
                } else {
                    [Some(a.min(b)), None]
                }
            }
            LocalResult::None => [self.gap_end(m), None],
        }
    }

    /// The first instant after the daylight-saving gap containing `m`.
    fn gap_end(&self, m: NaiveDateTime) -> Option<DateTime<Utc>> {
        let mut t = m;
        for _ in 0..(48 * 60) {
            t += Duration::minutes(1);
            match self.zone.from_local_datetime(&t) {
                LocalResult::Single(x) => return Some(x.with_timezone(&Utc)),
                LocalResult::Ambiguous(a, _) => return Some(a.with_timezone(&Utc)),
                LocalResult::None => {}
            }
        }
        None
    }

    fn offset_secs(&self, t: DateTime<Utc>) -> i64 {
        i64::from(
            self.zone
                .offset_from_utc_datetime(&t.naive_utc())
                .fix()
                .local_minus_utc(),
        )
    }
}

impl std::fmt::Display for Crontab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cron {:?} ({})", self.expression, self.zone.name())
    }
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Parse one field into a bit set (bit `v` set = value `v` matches).
/// `names[i]` stands for the value `low + i` when the field starts at 1
/// (months), or `i` for days of the week.
fn parse_field(text: &str, what: &str, low: u32, high: u32, names: &[&str]) -> Result<u64, String> {
    let value = |s: &str| -> Result<u32, String> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = names.iter().position(|n| *n == lower) {
            return Ok(if low == 1 { i as u32 + 1 } else { i as u32 });
        }
        let v: u32 = s
            .parse()
            .map_err(|_| format!("{what}: {s:?} is not a number"))?;
        if v < low || v > high {
            return Err(format!("{what}: {v} is out of range {low}-{high}"));
        }
        Ok(v)
    };
    let mut bits = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| format!("{what}: step {s:?} is not a number"))?;
                if step == 0 {
                    return Err(format!("{what}: a step of 0 never advances"));
                }
                (r, step)
            }
            None => (item, 1),
        };
        let (start, end) = if range == "*" {
            (low, high)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(format!("{what}: range {range} goes backwards"));
            }
            (a, b)
        } else if range.is_empty() {
            return Err(format!("{what}: empty item in {text:?}"));
        } else {
            let a = value(range)?;
            // `a/n` means from a to the end, stepping n (as in Vixie cron).
            (a, if item.contains('/') { high } else { a })
        };
        let mut v = start;
        while v <= end {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_parse_to_the_values_cron_means() {
        assert_eq!(
            parse_field("*/15", "minute", 0, 59, &[]),
            Ok(1 | 1 << 15 | 1 << 30 | 1 << 45)
        );
        assert_eq!(parse_field("1-3,5", "hour", 0, 23, &[]), Ok(0b101110));
        assert_eq!(parse_field("mon-wed", "dow", 0, 7, &DAYS), Ok(0b1110));
        assert_eq!(parse_field("FEB", "month", 1, 12, &MONTHS), Ok(1 << 2));
        assert_eq!(
            parse_field("50/5", "minute", 0, 59, &[]),
            Ok(1 << 50 | 1 << 55)
        );
        assert!(parse_field("60", "minute", 0, 59, &[]).is_err());
        assert!(parse_field("5-1", "hour", 0, 23, &[]).is_err());
        assert!(parse_field("*/0", "hour", 0, 23, &[]).is_err());
        assert!(parse_field("1,,2", "hour", 0, 23, &[]).is_err());
    }
}
