//! Crontab schedules: fields, day-of-month/day-of-week rules, month ends,
//! leap days, and daylight-saving changes in non-UTC zones.

use celeriac::beat::{BeatError, Crontab, Schedule};
use chrono::{DateTime, Utc};

fn t(s: &str) -> DateTime<Utc> {
    s.parse()
        .unwrap_or_else(|e| panic!("bad time in test {s}: {e}"))
}

/// The first `n` firing times after `from`, as RFC 3339 UTC strings.
fn runs(expr: &str, zone: &str, from: &str, n: usize) -> Vec<String> {
    let cron = Crontab::parse(expr, zone).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let mut out = Vec::new();
    let mut at = t(from);
    for _ in 0..n {
        match cron.next_after(at) {
            Some(next) => {
                assert!(next > at, "{expr}: {next} is not after {at}");
                out.push(next.format("%Y-%m-%dT%H:%M:%SZ").to_string());
                at = next;
            }
            None => break,
        }
    }
    out
}

#[test]
fn steps_ranges_lists_and_names() {
    assert_eq!(
        runs("*/15 * * * *", "UTC", "2024-01-01T10:07:00Z", 3),
        [
            "2024-01-01T10:15:00Z",
            "2024-01-01T10:30:00Z",
            "2024-01-01T10:45:00Z"
        ]
    );
    assert_eq!(
        runs("0 9-17/4 * * mon-fri", "UTC", "2024-01-05T12:00:00Z", 4),
        // Friday 13:00 and 17:00, then Monday 09:00 and 13:00.
        [
            "2024-01-05T13:00:00Z",
            "2024-01-05T17:00:00Z",
            "2024-01-08T09:00:00Z",
            "2024-01-08T13:00:00Z"
        ]
    );
    assert_eq!(
        runs("5 0 * JAN,jul *", "UTC", "2024-01-31T00:05:00Z", 2),
        ["2024-07-01T00:05:00Z", "2024-07-02T00:05:00Z"]
    );
    // 7 is Sunday, like 0.
    assert_eq!(
        runs("0 0 * * 7", "UTC", "2024-01-01T00:00:00Z", 1),
        runs("0 0 * * sun", "UTC", "2024-01-01T00:00:00Z", 1)
    );
    assert_eq!(
        runs("@hourly", "UTC", "2024-01-01T10:07:00Z", 1),
        ["2024-01-01T11:00:00Z"]
    );
    // Seconds after a match do not re-fire it.
    assert_eq!(
        runs("30 10 * * *", "UTC", "2024-01-01T10:30:00.5Z", 1),
        ["2024-01-02T10:30:00Z"]
    );
}

#[test]
fn day_of_month_or_day_of_week_when_both_are_restricted() {
    // Cron's rule: Fridays *or* the 13th (13 Oct 2024 is a Sunday).
    assert_eq!(
        runs("0 9 13 * fri", "UTC", "2024-09-01T00:00:00Z", 8),
        [
            "2024-09-06T09:00:00Z",
            "2024-09-13T09:00:00Z",
            "2024-09-20T09:00:00Z",
            "2024-09-27T09:00:00Z",
            "2024-10-04T09:00:00Z",
            "2024-10-11T09:00:00Z",
            "2024-10-13T09:00:00Z",
            "2024-10-18T09:00:00Z",
        ]
    );
    // A day-of-month field starting with `*` is not "restricted": both must
    // match, here odd days that are Mondays.
    assert_eq!(
        runs("0 0 */2 * 1", "UTC", "2023-12-31T00:00:00Z", 5),
        [
            "2024-01-01T00:00:00Z",
            "2024-01-15T00:00:00Z",
            "2024-01-29T00:00:00Z",
            "2024-02-05T00:00:00Z",
            "2024-02-19T00:00:00Z",
        ]
    );
    // Only day-of-week restricted: every Monday.
    assert_eq!(
        runs("0 0 * * 1", "UTC", "2024-01-01T00:00:00Z", 2),
        ["2024-01-08T00:00:00Z", "2024-01-15T00:00:00Z"]
    );
}

#[test]
fn month_ends_skip_months_without_the_day() {
    assert_eq!(
        runs("0 0 31 * *", "UTC", "2024-01-31T00:00:00Z", 4),
        [
            "2024-03-31T00:00:00Z",
            "2024-05-31T00:00:00Z",
            "2024-07-31T00:00:00Z",
            "2024-08-31T00:00:00Z"
        ]
    );
    assert_eq!(
        runs("0 0 30 * *", "UTC", "2024-01-30T00:00:00Z", 2),
        ["2024-03-30T00:00:00Z", "2024-04-30T00:00:00Z"]
    );
    assert_eq!(
        runs("59 23 28-31 2 *", "UTC", "2023-02-27T00:00:00Z", 3),
        [
            "2023-02-28T23:59:00Z",
            "2024-02-28T23:59:00Z",
            "2024-02-29T23:59:00Z"
        ]
    );
}

#[test]
fn leap_day_runs_every_four_years_and_skips_2100() {
    assert_eq!(
        runs("0 12 29 2 *", "UTC", "2024-03-01T00:00:00Z", 2),
        ["2028-02-29T12:00:00Z", "2032-02-29T12:00:00Z"]
    );
    assert_eq!(
        runs("0 12 29 2 *", "UTC", "2096-03-01T00:00:00Z", 1),
        ["2104-02-29T12:00:00Z"]
    );
}

#[test]
fn spring_forward_runs_a_missing_time_once_when_the_gap_ends() {
    // Berlin, 31 March 2024: 02:00 CET jumps to 03:00 CEST; 02:30 never happens.
    assert_eq!(
        runs("30 2 * * *", "Europe/Berlin", "2024-03-30T12:00:00Z", 3),
        [
            "2024-03-31T01:00:00Z", // 03:00 CEST, the end of the gap
            "2024-04-01T00:30:00Z", // 02:30 CEST
            "2024-04-02T00:30:00Z",
        ]
    );
    // Jobs through the night keep going; the skipped hour's runs collapse
    // into one at 03:00.
    assert_eq!(
        runs("*/30 * * * *", "Europe/Berlin", "2024-03-31T00:10:00Z", 4),
        [
            "2024-03-31T00:30:00Z", // 01:30 CET
            "2024-03-31T01:00:00Z", // 03:00 CEST
            "2024-03-31T01:30:00Z", // 03:30 CEST
            "2024-03-31T02:00:00Z",
        ]
    );
    // New York, 10 March 2024: 02:00 EST jumps to 03:00 EDT.
    assert_eq!(
        runs("0 2 * * *", "America/New_York", "2024-03-09T12:00:00Z", 2),
        ["2024-03-10T07:00:00Z", "2024-03-11T06:00:00Z"]
    );
}

#[test]
fn fall_back_runs_a_repeated_time_once() {
    // Berlin, 27 October 2024: 03:00 CEST goes back to 02:00 CET, so 02:30
    // happens twice. A fixed-time job runs at the first one only.
    assert_eq!(
        runs("30 2 * * *", "Europe/Berlin", "2024-10-26T12:00:00Z", 3),
        [
            "2024-10-27T00:30:00Z", // 02:30 CEST
            "2024-10-28T01:30:00Z", // 02:30 CET, the next day
            "2024-10-29T01:30:00Z",
        ]
    );
    // Starting inside the repeated hour, after the first 02:30: not again.
    assert_eq!(
        runs("30 2 * * *", "Europe/Berlin", "2024-10-27T01:10:00Z", 1),
        ["2024-10-28T01:30:00Z"]
    );
    // A job with `*` hours keeps its pace through both passes.
    assert_eq!(
        runs("*/30 * * * *", "Europe/Berlin", "2024-10-26T23:50:00Z", 5),
        [
            "2024-10-27T00:00:00Z", // 02:00 CEST
            "2024-10-27T00:30:00Z", // 02:30 CEST
            "2024-10-27T01:00:00Z", // 02:00 CET
            "2024-10-27T01:30:00Z", // 02:30 CET
            "2024-10-27T02:00:00Z", // 03:00 CET
        ]
    );
}

#[test]
fn zones_shift_local_times() {
    assert_eq!(
        runs("0 9 * * *", "America/New_York", "2024-07-01T00:00:00Z", 1),
        ["2024-07-01T13:00:00Z"] // EDT
    );
    assert_eq!(
        runs("0 9 * * *", "America/New_York", "2024-12-01T00:00:00Z", 1),
        ["2024-12-01T14:00:00Z"] // EST
    );
    assert_eq!(
        runs("0 0 * * *", "Asia/Kolkata", "2024-01-01T00:00:00Z", 1),
        ["2024-01-01T18:30:00Z"]
    );
}

#[test]
fn latest_due_collapses_missed_runs() -> Result<(), BeatError> {
    let hourly = Schedule::cron("0 * * * *", "UTC")?;
    // Down from 10:00 to 15:20: the 11:00..15:00 runs were missed; the one
    // to send is 15:00.
    assert_eq!(
        hourly.latest_due(t("2024-01-01T10:00:00Z"), t("2024-01-01T15:20:00Z")),
        Some(t("2024-01-01T15:00:00Z"))
    );
    assert_eq!(
        hourly.latest_due(t("2024-01-01T15:00:00Z"), t("2024-01-01T15:20:00Z")),
        None
    );
    // Years of downtime stay cheap.
    let minutely = Schedule::cron("* * * * *", "UTC")?;
    assert_eq!(
        minutely.latest_due(t("2019-01-01T00:00:00Z"), t("2024-01-01T15:20:30Z")),
        Some(t("2024-01-01T15:20:00Z"))
    );
    Ok(())
}

#[test]
fn bad_expressions_say_what_is_wrong() {
    let err = |expr: &str, zone: &str| match Crontab::parse(expr, zone) {
        Ok(_) => panic!("{expr} should be refused"),
        Err(e) => e.to_string(),
    };
    assert!(err("* * * *", "UTC").contains("expected 5 fields"));
    assert!(err("60 * * * *", "UTC").contains("minute: 60 is out of range 0-59"));
    assert!(err("0 24 * * *", "UTC").contains("hour"));
    assert!(err("0 0 0 * *", "UTC").contains("day-of-month"));
    assert!(err("0 0 * 13 *", "UTC").contains("month"));
    assert!(err("0 0 * * funday", "UTC").contains("day-of-week"));
    assert!(err("*/0 * * * *", "UTC").contains("step of 0"));
    assert!(err("0 0 31 2 *", "UTC").contains("never matches"));
    assert!(err("@sometimes", "UTC").contains("unknown shorthand"));
    assert!(err("0 0 * * *", "Mars/Olympus").contains("unknown time zone \"Mars/Olympus\""));
}
