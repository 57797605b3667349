//! One normalized JSON line as the seeder takes it.
//!
//! Every row stores `post_blob = serde_json::to_string(&item)` (with the
//! item's new `created_at` under a user pool). The normalized files are
//! written by serde_json, so a line usually *is* that serialization already:
//!
//! 1. [`scan`] checks that strictly, without allocating: the keys of
//!    `ContentItem` in declaration order, no whitespace, strings escaped
//!    exactly as serde_json escapes them, `created_at` spelled as
//!    [`format_iso`] spells it, engagements in one shape's key order with
//!    plain integers. It also checks the values the `ContentItem`
//!    deserializer checks (URLs, the datetime, the counts). Such a line is
//!    kept as it is, borrowed from the file, and a new `created_at` is
//!    spliced into it ([`Stamp`] spells the time).
//! 2. Any other line (spacing, key order, other escapes, an unknown key, a
//!    value the deserializer refuses…) goes through serde
//!    ([`Item::from_serde`]): it is parsed as a `ContentItem`, with the same
//!    errors as [`crate::raw::read_jsonl`], and serialized again. Same
//!    result, slower.

use crate::models::datetime::{format_iso, parse_datetime};
use crate::models::{check_http_url, ContentItem, ItemType};
use chrono::{DateTime, Utc};
use std::borrow::Cow;

/// One input item, as the seeder needs it.
#[derive(Debug, Clone)]
pub(crate) struct Item<'a> {
    /// `serde_json::to_string(&item)`.
    json: Cow<'a, str>,
    /// Where the `created_at` string's contents start and end in `json`.
    at: (usize, usize),
    /// The item's id (unescaped).
    pub(crate) id: Cow<'a, str>,
    /// Its author's hash (unescaped).
    pub(crate) author_name_hash: Cow<'a, str>,
    /// Post or comment.
    pub(crate) kind: ItemType,
    /// When it was created.
    pub(crate) created_at: DateTime<Utc>,
}

impl Item<'_> {
    /// The item serialized as it is.
    pub(crate) fn json(&self) -> &str {
        &self.json
    }

    /// Whether the line was taken as it is (borrowed from the file).
    #[cfg(test)]
    pub(crate) fn is_borrowed(&self) -> bool {
        matches!(self.json, Cow::Borrowed(_))
    }

    /// The serialization before and after the contents of the `created_at`
    /// string: `before + format_iso(t) + after` is the item with time `t`.
    pub(crate) fn around_created_at(&self) -> (&str, &str) {
        (&self.json[..self.at.0], &self.json[self.at.1..])
    }

    /// Parses a line the slow way (serde), for any line [`scan`] does not take.
    pub(crate) fn from_serde(line: &str) -> Result<Item<'static>, String> {
        let item: ContentItem = match serde_json::from_str(line) {
            Ok(item) => item,
            Err(_) => crate::models::from_json(line.as_bytes()).map_err(|e| e.to_string())?,
        };
        let json = serde_json::to_string(&item).map_err(|e| e.to_string())?;
        // Only numbers and keys follow `created_at`, so its key is the last
        // `"created_at":"` of the serialization.
        const KEY: &str = "\"created_at\":\"";
        let start = json
            .rfind(KEY)
            .ok_or("no created_at in the serialization")?
            + KEY.len();
        let end = start + format_iso(&item.created_at).len();
        Ok(Item {
            json: Cow::Owned(json),
            at: (start, end),
            id: Cow::Owned(item.id),
            author_name_hash: Cow::Owned(item.author_name_hash),
            kind: item.kind,
            created_at: item.created_at,
        })
    }
}

/// A strict reader of serde_json's serialization of a `ContentItem`.
struct Scanner<'a> {
    s: &'a str,
    i: usize,
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Whether any of the 8 bytes of `w` is `"`, `\` or a control character.
fn special(w: u64) -> bool {
    let zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
    let ctrl = w.wrapping_sub(LO * 0x20) & !w & HI;
    (zero(w ^ (LO * u64::from(b'"'))) | zero(w ^ (LO * u64::from(b'\\'))) | ctrl) != 0
}

impl<'a> Scanner<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.s.as_bytes()
    }

    /// Consumes `lit` exactly.
    fn lit(&mut self, lit: &[u8]) -> Option<()> {
        if self.bytes().get(self.i..)?.starts_with(lit) {
            self.i += lit.len();
            Some(())
        } else {
            None
        }
    }

    /// A string as serde_json writes it; returns its contents (escaped) and
    /// whether they hold an escape.
    fn string(&mut self) -> Option<(&'a str, bool)> {
        let b = self.bytes();
        if b.get(self.i) != Some(&b'"') {
            return None;
        }
        let start = self.i + 1;
        let mut j = start;
        let mut escaped = false;
        loop {
            while let Some(chunk) = b.get(j..j + 8) {
                let Ok(word) = <[u8; 8]>::try_from(chunk) else {
                    break;
                };
                if special(u64::from_le_bytes(word)) {
                    break;
                }
                j += 8;
            }
            match *b.get(j)? {
                b'"' => {
                    self.i = j + 1;
                    return Some((self.s.get(start..j)?, escaped));
                }
                b'\\' => {
                    escaped = true;
                    j += match *b.get(j + 1)? {
                        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                        b'u' => {
                            // serde_json writes `\u00xx` (lowercase) for the
                            // other control characters only.
                            let hex = b.get(j + 2..j + 6)?;
                            let digit = |c: u8| match c {
                                b'0'..=b'9' => Some(c - b'0'),
                                b'a'..=b'f' => Some(c - b'a' + 10),
                                _ => None,
                            };
                            if hex[0] != b'0' || hex[1] != b'0' || hex[2] > b'1' {
                                return None;
                            }
                            let v = digit(hex[2])? * 16 + digit(hex[3])?;
                            if matches!(v, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                                return None;
                            }
                            6
                        }
                        _ => return None,
                    };
                }
                0..=0x1f => return None,
                _ => j += 1,
            }
        }
    }

    /// A string without escapes.
    fn plain_string(&mut self) -> Option<&'a str> {
        match self.string()? {
            (s, false) => Some(s),
            _ => None,
        }
    }

    /// `null` or a string.
    fn nullable_string(&mut self) -> Option<()> {
        if self.lit(b"null").is_some() {
            return Some(());
        }
        self.string().map(|_| ())
    }

    /// A count as serde_json writes a `u64`.
    fn count(&mut self) -> Option<()> {
        let b = self.bytes();
        let start = self.i;
        let mut v: u64 = 0;
        while let Some(d) = b.get(self.i).filter(|c| c.is_ascii_digit()) {
            v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            self.i += 1;
        }
        let n = self.i - start;
        (n == 1 || (n > 1 && b[start] != b'0')).then_some(())
    }
}

/// The engagement keys of each shape, in serialization order, after the first.
const TWITTER_REST: [&[u8]; 3] = [b",\"like\":", b",\"comment\":", b",\"share\":"];
const REDDIT_REST: [&[u8]; 3] = [b",\"downvote\":", b",\"comment\":", b",\"award\":"];
const FACEBOOK_REST: [&[u8]; 8] = [
    b",\"love\":",
    b",\"care\":",
    b",\"haha\":",
    b",\"wow\":",
    b",\"sad\":",
    b",\"angry\":",
    b",\"comment\":",
    b",\"share\":",
];

/// The item of `line` when the line is exactly `serde_json::to_string` of
/// the `ContentItem` it deserializes to; `None` for any other line, valid or
/// not (see the module documentation).
pub(crate) fn scan(line: &str) -> Option<Item<'_>> {
    let mut p = Scanner { s: line, i: 0 };
    p.lit(b"{\"id\":")?;
    let id = p.plain_string()?;
    p.lit(b",\"post_id\":")?;
    p.nullable_string()?;
    p.lit(b",\"parent_id\":")?;
    p.nullable_string()?;
    p.lit(b",\"title\":")?;
    p.nullable_string()?;
    p.lit(b",\"text\":")?;
    p.string()?;
    p.lit(b",\"author_name_hash\":")?;
    let author = p.plain_string()?;
    p.lit(b",\"type\":")?;
    let kind = if p.lit(b"\"post\"").is_some() {
        ItemType::Post
    } else {
        p.lit(b"\"comment\"")?;
        ItemType::Comment
    };
    p.lit(b",\"embedded_urls\":")?;
    if p.lit(b"null").is_none() {
        p.lit(b"[")?;
        if p.lit(b"]").is_none() {
            loop {
                check_http_url(p.plain_string()?).ok()?;
                if p.lit(b"]").is_some() {
                    break;
                }
                p.lit(b",")?;
            }
        }
    }
    p.lit(b",\"created_at\":")?;
    let at_start = p.i + 1;
    let created = p.plain_string()?;
    let at = (at_start, at_start + created.len());
    let created_at = parse_datetime(created).ok()?;
    if !is_iso_of(created, &created_at) {
        return None;
    }
    p.lit(b",\"engagements\":{")?;
    let rest: &[&[u8]] = if p.lit(b"\"retweet\":").is_some() {
        &TWITTER_REST
    } else if p.lit(b"\"upvote\":").is_some() {
        &REDDIT_REST
    } else {
        p.lit(b"\"like\":")?;
        &FACEBOOK_REST
    };
    p.count()?;
    for key in rest {
        p.lit(key)?;
        p.count()?;
    }
    p.lit(b"}}")?;
    if p.i != line.len() {
        return None;
    }
    Some(Item {
        json: Cow::Borrowed(line),
        at,
        id: Cow::Borrowed(id),
        author_name_hash: Cow::Borrowed(author),
        kind,
        created_at,
    })
}

/// `YYYY-MM-DD HH:MM:SS` for whole seconds `t`, or `None` outside years
/// 0–9999.
fn civil(t: i64) -> Option<[u8; 19]> {
    // Days to (year, month, day) in the proleptic Gregorian calendar
    // (H. Hinnant's `civil_from_days`).
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(0..=9999).contains(&year) {
        return None;
    }
    let mut buf = *b"0000-00-00 00:00:00";
    let mut put = |at: usize, width: usize, v: i64| {
        let mut v = v;
        for k in (at..at + width).rev() {
            buf[k] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, secs / 3600);
    put(14, 2, secs / 60 % 60);
    put(17, 2, secs % 60);
    Some(buf)
}

/// A time to the second, spelled once, written as a database timestamp or
/// inside an ISO 8601 one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp([u8; 19]);

impl Stamp {
    /// `dt` as [`format_db`](crate::models::datetime::format_db) spells it.
    pub(crate) fn new(dt: &DateTime<Utc>) -> Self {
        match civil(dt.timestamp()) {
            Some(buf) => Self(buf),
            None => {
                let mut buf = [b'0'; 19];
                let db = crate::models::datetime::format_db(dt);
                for (slot, b) in buf.iter_mut().zip(db.bytes()) {
                    *slot = b;
                }
                Self(buf)
            }
        }
    }

    /// Appends it with `sep` between the date and the time: `' '` gives
    /// [`format_db`](crate::models::datetime::format_db); `'T'`, then a `Z`,
    /// gives [`format_iso`] of a time in whole seconds.
    pub(crate) fn push(&self, out: &mut String, sep: char) {
        // ASCII digits and separators only.
        let text = std::str::from_utf8(&self.0).unwrap_or_default();
        out.push_str(text.get(..10).unwrap_or_default());
        out.push(sep);
        out.push_str(text.get(11..).unwrap_or_default());
    }
}

/// Whether `s` is [`format_iso`] of `dt` (without allocating, in the usual case).
fn is_iso_of(s: &str, dt: &DateTime<Utc>) -> bool {
    if s.len() == 20 && dt.timestamp_subsec_nanos() == 0 {
        if let Some(buf) = civil(dt.timestamp()) {
            let b = s.as_bytes();
            return b[..10] == buf[..10]
                && b[10] == b'T'
                && b[11..19] == buf[11..]
                && b[19] == b'Z';
        }
    }
    format_iso(dt) == s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::datetime::format_db;

    fn serde_blob(line: &str) -> Result<String, Box<dyn std::error::Error>> {
        let item: ContentItem = serde_json::from_str(line)?;
        Ok(serde_json::to_string(&item)?)
    }

    const CANONICAL: &str = r#"{"id":"a1","post_id":null,"parent_id":"p\"q","title":"T\\","text":"line\nnext\t\u0001 é ✓ /","author_name_hash":"h","type":"comment","embedded_urls":["https://x.org/a","http://y.com"],"created_at":"2024-01-20T18:41:20.500Z","engagements":{"like":1,"love":2,"care":3,"haha":4,"wow":5,"sad":6,"angry":7,"comment":8,"share":18446744073709551615}}"#;

    #[test]
    fn takes_serde_json_output_as_it_is() -> Result<(), Box<dyn std::error::Error>> {
        assert_eq!(serde_blob(CANONICAL)?, CANONICAL);
        let item = scan(CANONICAL).ok_or("not taken")?;
        assert_eq!(item.json(), CANONICAL);
        assert_eq!((&*item.id, &*item.author_name_hash), ("a1", "h"));
        assert_eq!(item.kind, ItemType::Comment);
        assert_eq!(format_iso(&item.created_at), "2024-01-20T18:41:20.500Z");
        let (before, after) = item.around_created_at();
        assert!(before.ends_with("\"created_at\":\"") && after.starts_with("\",\"engagements\""));
        for line in [
            r#"{"id":"b","post_id":"a","parent_id":null,"title":null,"text":"","author_name_hash":"h","type":"post","embedded_urls":null,"created_at":"2024-01-20T18:41:20Z","engagements":{"retweet":0,"like":10,"comment":0,"share":3}}"#,
            r#"{"id":"c","post_id":null,"parent_id":null,"title":"t","text":"x","author_name_hash":"h","type":"post","embedded_urls":[],"created_at":"2024-01-20T18:41:20.123456Z","engagements":{"upvote":5,"downvote":0,"comment":1,"award":0}}"#,
        ] {
            assert_eq!(serde_blob(line)?, line);
            assert_eq!(scan(line).map(|i| i.json().len()), Some(line.len()));
        }
        Ok(())
    }

    #[test]
    fn other_spellings_go_through_serde() -> Result<(), Box<dyn std::error::Error>> {
        let variants = [
            CANONICAL.replace("\"id\":\"a1\",", "\"id\": \"a1\","),
            CANONICAL.replace("\"type\":\"comment\",", "\"type\":\"comment\",\"extra\":1,"),
            CANONICAL.replace("\\u0001", "\\u0041"),
            CANONICAL.replace("\\n", "\\u000a"),
            CANONICAL.replace("\\t", "\\u0009"),
            CANONICAL.replace("✓ /", "✓ \\/"),
            CANONICAL.replace("\"text\":\"line", "\"text\":\"\\u00e9line"),
            CANONICAL.replace("\"sad\":6", "\"sad\":6.0"),
            CANONICAL.replace("18:41:20.500Z", "18:41:20.5Z"),
            CANONICAL.replace("18:41:20.500Z", "18:41:20.500+00:00"),
            CANONICAL.replace("\"id\":\"a1\"", "\"id\":\"a\\\"1\""),
            CANONICAL.replace(
                "\"author_name_hash\":\"h\"",
                "\"author_name_hash\":\"h\\\\\"",
            ),
            CANONICAL.replace("\"post_id\":null,", ""),
            CANONICAL.replace("\"comment\":8,\"share\"", "\"share\":0,\"comment\":8,\"x\""),
            format!("{CANONICAL}\r"),
            format!(" {CANONICAL}"),
        ];
        for line in &variants {
            assert_ne!(line, CANONICAL);
            assert!(scan(line).is_none(), "taken: {line}");
            let item = Item::from_serde(line)?;
            let expected = serde_blob(line)?;
            assert_eq!(item.json(), expected);
            let parsed: ContentItem = serde_json::from_str(line)?;
            assert_eq!(
                (&*item.id, &*item.author_name_hash),
                (&*parsed.id, &*parsed.author_name_hash)
            );
            let (before, after) = item.around_created_at();
            assert_eq!(
                format!("{before}{}{after}", format_iso(&parsed.created_at)),
                expected
            );
        }
        Ok(())
    }

    #[test]
    fn refuses_what_serde_refuses() {
        let bad = [
            CANONICAL.replace("https://x.org/a", "ftp://x.org/a"),
            CANONICAL.replace("2024-01-20", "2024-02-30"),
            CANONICAL.replace("\"sad\":6", "\"sad\":-6"),
            CANONICAL.replace("\"sad\":6", "\"sad\":06"),
            CANONICAL.replace("18446744073709551615", "18446744073709551616"),
            CANONICAL.replace(",\"share\":18446744073709551615", ""),
            CANONICAL.replace("\\u0001", "\u{1}"),
            CANONICAL.replace("\"comment\",", "\"reply\","),
            CANONICAL.replace("\"text\":", "\"txt\":"),
        ];
        for line in &bad {
            assert_ne!(line, CANONICAL);
            assert!(scan(line).is_none(), "taken: {line}");
            assert!(serde_json::from_str::<ContentItem>(line).is_err(), "{line}");
            assert!(Item::from_serde(line).is_err(), "{line}");
        }
    }

    #[test]
    fn stamps_match_the_datetime_formats() {
        for t in [
            0i64,
            1,
            86_399,
            1_705_776_080,
            951_782_400,
            4_102_444_799,
            -1,
            -86_401,
        ] {
            let Some(dt) = DateTime::from_timestamp(t, 0) else {
                continue;
            };
            let mut db = String::new();
            Stamp::new(&dt).push(&mut db, ' ');
            assert_eq!(db, format_db(&dt));
            let mut iso = String::new();
            Stamp::new(&dt).push(&mut iso, 'T');
            iso.push('Z');
            assert_eq!(iso, format_iso(&dt));
            assert!(is_iso_of(&iso, &dt));
            assert!(!is_iso_of(&db, &dt));
            let with_nanos = DateTime::from_timestamp(t, 999_000_000).unwrap_or_default();
            let mut db2 = String::new();
            Stamp::new(&with_nanos).push(&mut db2, ' ');
            assert_eq!(db2, format_db(&with_nanos));
            assert!(is_iso_of(&format_iso(&with_nanos), &with_nanos));
            assert!(!is_iso_of(&iso, &with_nanos));
        }
    }
}
