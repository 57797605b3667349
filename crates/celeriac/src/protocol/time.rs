//! Times on the wire.
//!
//! Celery writes `eta`, `expires` and `date_done` with Python's
//! `isoformat()`: `2024-01-20T18:41:20.123456+00:00`, or without an offset for
//! naive times, which Celery treats as UTC. We write the same spelling and
//! read every variant (space or `T`, fractional seconds or none, `Z`, offset).

use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone, Utc};

/// Parse an ISO-8601 time as Celery writes it; naive times are UTC.
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(&text.replacen(' ', "T", 1)) {
        return Some(t.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc());
        }
    }
    // A date alone is midnight, as dateutil's isoparse (Celery's reader) has it.
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// The last second Python's `datetime` can hold (9999-12-31 23:59:59 UTC):
/// later times could not be read by a Python peer.
pub fn latest() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Now plus `after`, or `None` past [`latest`] (where chrono would panic
/// or Python could not follow).
pub fn from_now(after: std::time::Duration) -> Option<DateTime<Utc>> {
    chrono::Duration::from_std(after)
        .ok()
        .and_then(|delta| Utc::now().checked_add_signed(delta))
        .filter(|at| *at <= latest())
}

/// Format a time as Python's `datetime.isoformat()` does for an aware UTC time.
pub fn format(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_now_stops_where_python_does() {
        let soon = from_now(std::time::Duration::from_secs(60)).expect("a minute ahead");
        assert!(soon > Utc::now() && soon <= latest());
        assert_eq!(from_now(std::time::Duration::MAX), None);
        assert_eq!(
            from_now(std::time::Duration::from_secs(400 * 365 * 86_400 * 25)),
            None
        );
        assert_eq!(format(latest()), "9999-12-31T23:59:59.000000+00:00");
        assert_eq!(parse(&format(latest())), Some(latest()));
    }

    #[test]
    fn reads_every_spelling_celery_and_users_write() {
        let expected = parse("2024-01-20T18:41:20+00:00").map(|t| t.timestamp());
        for text in [
            "2024-01-20T18:41:20",
            "2024-01-20 18:41:20",
            "2024-01-20T18:41:20Z",
            "2024-01-20T18:41:20.000000+00:00",
            "2024-01-20T19:41:20+01:00",
            "2024-01-20 18:41:20.5",
        ] {
            assert_eq!(parse(text).map(|t| t.timestamp()), expected, "{text}");
        }
        assert!(parse("yesterday").is_none());
        assert!(parse("not-a-date").is_none());
        let midnight = parse("2024-01-20T00:00:00Z");
        assert_eq!(parse("2024-01-20"), midnight);
        assert_eq!(parse("2024-01-20T00:00"), midnight);
    }

    #[test]
    fn formats_like_python_isoformat() {
        let t = parse("2024-01-20T18:41:20.25Z").map(format);
        assert_eq!(t.as_deref(), Some("2024-01-20T18:41:20.250000+00:00"));
    }
}
