//! Datetimes as the ranking challenge sends them.
//!
//! 1. [`parse_datetime`]: a fast, allocation-free parser for every spelling the
//!    pydantic models accept in practice: `2024-01-20 18:41:20`,
//!    `2024-01-20T18:41:20`, with or without fractional seconds, with `Z`, an
//!    offset (`+01:00`, `+0100`, `+01`) or nothing (naive = UTC), a bare date,
//!    and unix timestamps (seconds, or milliseconds above 2×10¹⁰, as pydantic).
//! 2. [`serialize`]/[`deserialize`]: a `#[serde(with = "…")]` module for
//!    `DateTime<Utc>` fields; output is ISO 8601 with a `Z`.
//! 3. [`format_db`]: the posts database spelling `YYYY-MM-DD HH:MM:SS`.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use serde::{de, Deserializer, Serializer};
use std::fmt;

/// Why a datetime string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid datetime `{input}`: {reason}")]
pub struct DateTimeError {
    input: String,
    reason: &'static str,
}

impl DateTimeError {
    fn new(input: &str, reason: &'static str) -> Self {
        // Bound the echoed input so that a huge bogus value cannot flood logs.
        let input: String = input.chars().take(64).collect();
        Self { input, reason }
    }

    /// What was wrong, without the input.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

/// A tiny cursor over ASCII bytes.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Reads exactly `n` ASCII digits.
    fn digits(&mut self, n: usize) -> Option<u32> {
        let s = self.b.get(self.i..self.i + n)?;
        let mut v = 0u32;
        for &c in s {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        self.i += n;
        Some(v)
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
}

/// Parses a datetime in any of the accepted spellings; naive values are UTC.
///
/// # Errors
/// [`DateTimeError`] naming what was wrong (bad date, bad time, trailing text…).
pub fn parse_datetime(s: &str) -> Result<DateTime<Utc>, DateTimeError> {
    let t = s.trim();
    let b = t.as_bytes();
    if b.len() > 4 && b[4] != b'-' && b.iter().all(|c| c.is_ascii_digit() || *c == b'.') {
        return parse_unix_str(t).ok_or_else(|| DateTimeError::new(s, "bad unix timestamp"));
    }
    let mut c = Cursor { b, i: 0 };
    let (y, m, d) = (|| {
        let y = c.digits(4)?;
        c.eat(b'-').then_some(())?;
        let m = c.digits(2)?;
        c.eat(b'-').then_some(())?;
        Some((y, m, c.digits(2)?))
    })()
    .ok_or_else(|| DateTimeError::new(s, "expected a date like 2024-01-20"))?;
    let date = NaiveDate::from_ymd_opt(y as i32, m, d)
        .ok_or_else(|| DateTimeError::new(s, "no such calendar date"))?;
    if c.peek().is_none() {
        return Ok(Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN)));
    }
    if !matches!(c.peek(), Some(b'T' | b't' | b' ')) {
        return Err(DateTimeError::new(
            s,
            "expected `T` or a space after the date",
        ));
    }
    c.i += 1;
    let (hh, mm) = (|| {
        let hh = c.digits(2)?;
        c.eat(b':').then_some(())?;
        Some((hh, c.digits(2)?))
    })()
    .ok_or_else(|| DateTimeError::new(s, "expected a time like 18:41:20"))?;
    let mut ss = 0;
    let mut nanos = 0;
    if c.eat(b':') {
        ss = c
            .digits(2)
            .ok_or_else(|| DateTimeError::new(s, "expected two digits of seconds"))?;
        if c.eat(b'.') || c.eat(b',') {
            let start = c.i;
            while let Some(d) = c.peek().filter(u8::is_ascii_digit) {
                if c.i - start < 9 {
                    nanos = nanos * 10 + u32::from(d - b'0');
                }
                c.i += 1;
            }
            let n = c.i - start;
            if n == 0 {
                return Err(DateTimeError::new(
                    s,
                    "expected digits after the decimal point",
                ));
            }
            for _ in n..9 {
                nanos *= 10;
            }
        }
    }
    let time = chrono::NaiveTime::from_hms_nano_opt(hh, mm, ss, nanos)
        .ok_or_else(|| DateTimeError::new(s, "time out of range"))?;
    let offset_secs: i64 = match c.peek() {
        None => 0,
        Some(b'Z' | b'z') => {
            c.i += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            c.i += 1;
            let oh = c
                .digits(2)
                .ok_or_else(|| DateTimeError::new(s, "bad UTC offset"))?;
            let om = if c.peek().is_none() {
                0
            } else {
                c.eat(b':');
                c.digits(2)
                    .ok_or_else(|| DateTimeError::new(s, "bad UTC offset"))?
            };
            if oh > 23 || om > 59 {
                return Err(DateTimeError::new(s, "UTC offset out of range"));
            }
            let v = i64::from(oh * 3600 + om * 60);
            if sign == b'-' {
                -v
            } else {
                v
            }
        }
        Some(_) => return Err(DateTimeError::new(s, "unexpected text after the time")),
    };
    if c.peek().is_some() {
        return Err(DateTimeError::new(s, "unexpected text after the time"));
    }
    let naive = NaiveDateTime::new(date, time) - chrono::TimeDelta::seconds(offset_secs);
    Ok(Utc.from_utc_datetime(&naive))
}

fn parse_unix_str(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(i) = s.parse::<i64>() {
        return from_unix_i64(i);
    }
    from_unix_f64(s.parse::<f64>().ok()?)
}

/// Unix seconds, or milliseconds when the magnitude exceeds 2×10¹⁰ (pydantic's rule).
fn from_unix_i64(v: i64) -> Option<DateTime<Utc>> {
    if v.abs() > 20_000_000_000 {
        DateTime::from_timestamp_millis(v)
    } else {
        DateTime::from_timestamp(v, 0)
    }
}

fn from_unix_f64(v: f64) -> Option<DateTime<Utc>> {
    if !v.is_finite() {
        return None;
    }
    let secs = if v.abs() > 2e10 { v / 1000.0 } else { v };
    let whole = secs.floor();
    let nanos = ((secs - whole) * 1e9).round().min(999_999_999.0) as u32;
    DateTime::from_timestamp(whole as i64, nanos)
}

/// Writes `v` as exactly `width` zero-padded digits.
fn push_digits(out: &mut [u8], at: &mut usize, v: u32, width: usize) {
    let mut v = v;
    for k in (0..width).rev() {
        out[*at + k] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    *at += width;
}

/// Formats `YYYY-MM-DD?HH:MM:SS` into `buf` and returns the length (19).
fn write_base(dt: &DateTime<Utc>, sep: u8, buf: &mut [u8; 40]) -> usize {
    let mut at = 0;
    let year = dt.year().clamp(0, 9999) as u32;
    push_digits(buf, &mut at, year, 4);
    buf[at] = b'-';
    at += 1;
    push_digits(buf, &mut at, dt.month(), 2);
    buf[at] = b'-';
    at += 1;
    push_digits(buf, &mut at, dt.day(), 2);
    buf[at] = sep;
    at += 1;
    push_digits(buf, &mut at, dt.hour(), 2);
    buf[at] = b':';
    at += 1;
    push_digits(buf, &mut at, dt.minute(), 2);
    buf[at] = b':';
    at += 1;
    push_digits(buf, &mut at, dt.second(), 2);
    at
}

/// The formatted ASCII bytes as a `String` (no UTF-8 validation needed).
fn ascii_string(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// ISO 8601 with `Z`: `2024-01-20T18:41:20Z`, with `.mmm` or `.uuuuuu` when
/// the value has sub-second precision (pydantic reads at most microseconds).
pub fn format_iso(dt: &DateTime<Utc>) -> String {
    let mut buf = [0u8; 40];
    let mut at = write_base(dt, b'T', &mut buf);
    let nanos = dt.nanosecond() % 1_000_000_000;
    if nanos != 0 {
        buf[at] = b'.';
        at += 1;
        // Milliseconds when exact, else microseconds (pydantic's finest).
        match nanos % 1_000_000 {
            0 => push_digits(&mut buf, &mut at, nanos / 1_000_000, 3),
            _ => push_digits(&mut buf, &mut at, nanos / 1_000, 6),
        }
    }
    buf[at] = b'Z';
    at += 1;
    ascii_string(&buf[..at])
}

/// The posts database spelling: `YYYY-MM-DD HH:MM:SS` (UTC, whole seconds).
pub fn format_db(dt: &DateTime<Utc>) -> String {
    let mut buf = [0u8; 40];
    let at = write_base(dt, b' ', &mut buf);
    ascii_string(&buf[..at])
}

/// Serializes as [`format_iso`].
///
/// # Errors
/// Only those of the serializer.
pub fn serialize<S: Serializer>(dt: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_iso(dt))
}

/// Deserializes any spelling [`parse_datetime`] accepts, or a unix timestamp number.
///
/// # Errors
/// A custom error carrying the [`DateTimeError`] message.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    d.deserialize_any(DateTimeVisitor)
}

struct DateTimeVisitor;

impl de::Visitor<'_> for DateTimeVisitor {
    type Value = DateTime<Utc>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a datetime such as \"2024-01-20 18:41:20\" or a unix timestamp")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        parse_datetime(v).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        from_unix_i64(v).ok_or_else(|| E::custom("unix timestamp out of range"))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        i64::try_from(v)
            .ok()
            .and_then(from_unix_i64)
            .ok_or_else(|| E::custom("unix timestamp out of range"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        from_unix_f64(v).ok_or_else(|| E::custom("unix timestamp out of range"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        match parse_datetime(s) {
            Ok(dt) => format_iso(&dt),
            Err(e) => format!("ERR {}", e.reason()),
        }
    }

    #[test]
    fn accepts_every_spelling() {
        assert_eq!(p("2024-01-20 18:41:20"), "2024-01-20T18:41:20Z");
        assert_eq!(p("2024-01-20T18:41:20"), "2024-01-20T18:41:20Z");
        assert_eq!(p("2024-01-20t18:41:20z"), "2024-01-20T18:41:20Z");
        assert_eq!(p("2024-01-20T18:41:20.5"), "2024-01-20T18:41:20.500Z");
        assert_eq!(
            p("2024-01-20 18:41:20.123456"),
            "2024-01-20T18:41:20.123456Z"
        );
        assert_eq!(p("2024-01-20T18:41:20.000Z"), "2024-01-20T18:41:20Z");
        assert_eq!(p("2024-01-20T18:41:20+01:00"), "2024-01-20T17:41:20Z");
        assert_eq!(p("2017-07-14T00:21:53+0000"), "2017-07-14T00:21:53Z");
        assert_eq!(p("2024-01-20T18:41:20-05"), "2024-01-20T23:41:20Z");
        assert_eq!(p("2024-01-20T18:41"), "2024-01-20T18:41:00Z");
        assert_eq!(p("2024-01-20"), "2024-01-20T00:00:00Z");
        assert_eq!(p("1705776080"), "2024-01-20T18:41:20Z");
        assert_eq!(p("1705776080.0"), "2024-01-20T18:41:20Z");
        assert_eq!(p("1705776080000"), "2024-01-20T18:41:20Z");
    }

    #[test]
    fn refuses_garbage() {
        assert!(p("2024-02-30 10:00:00").starts_with("ERR no such"));
        assert!(p("2024-01-20 25:00:00").starts_with("ERR time out"));
        assert!(p("2024-01-20X18:41:20").starts_with("ERR"));
        assert!(p("2024-01-20 18:41:20 UTC").starts_with("ERR unexpected"));
        assert!(p("yesterday").starts_with("ERR"));
        assert!(p("2024-01-20 18:41:20.").starts_with("ERR"));
        assert!(p("2024-01-20 18:41:20+99:00").starts_with("ERR"));
    }

    #[test]
    fn db_format() -> Result<(), DateTimeError> {
        let dt = parse_datetime("2024-01-20T18:41:20.999Z")?;
        assert_eq!(format_db(&dt), "2024-01-20 18:41:20");
        Ok(())
    }
}
