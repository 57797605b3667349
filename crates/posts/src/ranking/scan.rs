//! A hand-written scanner for the common shape of a `/rank` body: one pass,
//! no serde, strings found with `memchr`, each item's `id` and `text`
//! borrowed.
//!
//! It takes a strict subset of what
//! [`RankingRequest`](crate::models::RankingRequest) accepts and checks it
//! with the models' own validators ([`parse_datetime`], [`check_http_url`],
//! [`Engagements`]'s shape rule), so that a body it accepts is one the
//! models accept, with the same ids and texts. Whatever is outside the
//! subset makes it give up (`None`), never guess: an unknown or duplicate
//! key, a survey that is not `null`, a number that is not a plain
//! non-negative integer, an escape in a key, a datetime given as a number.
//! The caller then falls back on the serde decode, which decides.
//!
//! Inside the subset every JSON rule is kept: whitespace only where JSON
//! allows it, no raw control character in a string, escapes decoded as
//! `serde_json` decodes them (a lone surrogate gives up), nothing after
//! the document.

use std::borrow::Cow;

use super::fast::Item;
use crate::models::datetime::parse_datetime;
use crate::models::engagements::{Counts, KEYS};
use crate::models::{check_http_url, Engagements};

/// The items of `body`, or `None` when the body is outside the subset.
pub fn scan(body: &[u8]) -> Option<Vec<Item<'_>>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut s = Scanner {
        text,
        b: body,
        i: 0,
    };
    let items = s.request()?;
    s.ws();
    (s.i == s.b.len()).then_some(items)
}

struct Scanner<'a> {
    /// The body (valid UTF-8: slices between ASCII delimiters are `str`s).
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

/// Keys seen in one object, as bits; a key seen twice gives up.
#[derive(Default)]
struct Seen(u32);

impl Seen {
    fn first(&mut self, bit: u32) -> Option<()> {
        let mask = 1 << bit;
        if self.0 & mask != 0 {
            return None;
        }
        self.0 |= mask;
        Some(())
    }

    fn has_all(&self, required: u32) -> bool {
        self.0 & required == required
    }
}

impl<'a> Scanner<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        if self.peek()? == c {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i.checked_add(word.len())?;
        if self.b.get(self.i..end)? == word {
            self.i = end;
            Some(())
        } else {
            None
        }
    }

    /// `null` (true) or not (false, nothing consumed).
    fn null(&mut self) -> bool {
        self.ws();
        self.literal(b"null").is_some()
    }

    /// The members of an object, `member` called with each key (escape-free)
    /// once the `:` is read; `false` from it gives up.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            let key = self.key()?;
            self.eat(b':')?;
            self.ws();
            member(self, key)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    self.ws();
                }
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The elements of an array, `element` called at each.
    fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
            return Some(());
        }
        loop {
            self.ws();
            element(self)?;
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A key without escapes or control characters.
    fn key(&mut self) -> Option<&'a [u8]> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.i + 1;
        let len = find_special(self.b.get(start..)?)?;
        if self.b[start + len] != b'"' {
            return None;
        }
        self.i = start + len + 1;
        self.b.get(start..start + len)
    }

    /// A JSON string, borrowed unless it has escapes.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.ws();
        if self.peek()? != b'"' {
            return None;
        }
        self.i += 1;
        let mut owned: Option<String> = None;
        loop {
            let start = self.i;
            let end = start + find_special(self.b.get(start..)?)?;
            // `"` and `\` are ASCII: both ends are char boundaries.
            let piece = self.text.get(start..end)?;
            let special = self.b[end];
            if special < 0x20 {
                return None;
            }
            if special == b'"' {
                self.i = end + 1;
                return Some(match owned {
                    None => Cow::Borrowed(piece),
                    Some(mut s) => {
                        s.push_str(piece);
                        Cow::Owned(s)
                    }
                });
            }
            let s = owned.get_or_insert_with(String::new);
            s.push_str(piece);
            self.i = end + 1;
            self.escape(s)?;
        }
    }

    /// The escape after a `\`, pushed onto `out`.
    fn escape(&mut self, out: &mut String) -> Option<()> {
        let c = self.peek()?;
        self.i += 1;
        let decoded = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let first = self.hex4()?;
                match first {
                    0xD800..=0xDBFF => {
                        self.literal(b"\\u")?;
                        let second = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&second) {
                            return None;
                        }
                        let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                        char::from_u32(code)?
                    }
                    // A lone trailing surrogate is not a char: give up.
                    _ => char::from_u32(first)?,
                }
            }
            _ => return None,
        };
        out.push(decoded);
        Some(())
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.b.get(self.i..self.i + 4)?;
        let mut v = 0u32;
        for &d in digits {
            v = v * 16 + char::from(d).to_digit(16)?;
        }
        self.i += 4;
        Some(v)
    }

    /// `null` or a string.
    fn optional_string(&mut self) -> Option<()> {
        if self.null() {
            return Some(());
        }
        self.string().map(drop)
    }

    /// A datetime string the models accept (a number gives up).
    fn datetime(&mut self) -> Option<()> {
        let s = self.string()?;
        parse_datetime(&s).ok().map(drop)
    }

    /// A plain non-negative integer: digits, no sign, fraction or exponent
    /// (those give up), at most 19 digits (always a `u64`).
    fn count(&mut self) -> Option<u64> {
        self.ws();
        let start = self.i;
        let digits = self.b.get(start..)?;
        let len = digits.iter().take_while(|d| d.is_ascii_digit()).count();
        if len == 0 || len > 19 || (len > 1 && digits[0] == b'0') {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = digits.get(len) {
            return None;
        }
        let v = digits[..len]
            .iter()
            .fold(0u64, |v, d| v * 10 + u64::from(d - b'0'));
        self.i = start + len;
        Some(v)
    }

    fn request(&mut self) -> Option<Vec<Item<'a>>> {
        const SESSION: u32 = 0;
        const SURVEY: u32 = 1;
        const ITEMS: u32 = 2;
        let mut seen = Seen::default();
        let mut items = None;
        self.object(|s, key| match key {
            b"session" => {
                seen.first(SESSION)?;
                s.session()
            }
            b"survey" => {
                seen.first(SURVEY)?;
                s.null().then_some(())
            }
            b"items" => {
                seen.first(ITEMS)?;
                items = Some(s.items()?);
                Some(())
            }
            _ => None,
        })?;
        if !seen.has_all(1 << SESSION | 1 << ITEMS) {
            return None;
        }
        items
    }

    fn session(&mut self) -> Option<()> {
        let mut seen = Seen::default();
        self.object(|s, key| match key {
            b"user_id" => {
                seen.first(0)?;
                s.string().map(drop)
            }
            b"user_name_hash" => {
                seen.first(1)?;
                s.string().map(drop)
            }
            b"cohort" => {
                seen.first(2)?;
                s.string().map(drop)
            }
            b"platform" => {
                seen.first(3)?;
                let p = s.string()?;
                matches!(&*p, "twitter" | "reddit" | "facebook").then_some(())
            }
            b"current_time" => {
                seen.first(4)?;
                s.datetime()
            }
            _ => None,
        })?;
        seen.has_all(0b1_1111).then_some(())
    }

    fn items(&mut self) -> Option<Vec<Item<'a>>> {
        let mut items = Vec::new();
        self.array(|s| {
            items.push(s.item()?);
            Some(())
        })?;
        Some(items)
    }

    fn item(&mut self) -> Option<Item<'a>> {
        const ID: u32 = 0;
        const TEXT: u32 = 1;
        const AUTHOR: u32 = 2;
        const TYPE: u32 = 3;
        const URLS: u32 = 4;
        const CREATED: u32 = 5;
        const ENGAGEMENTS: u32 = 6;
        const POST_ID: u32 = 7;
        const PARENT_ID: u32 = 8;
        const TITLE: u32 = 9;
        let mut seen = Seen::default();
        let mut id = None;
        let mut text = None;
        self.object(|s, key| match key {
            b"id" => {
                seen.first(ID)?;
                id = Some(s.string()?);
                Some(())
            }
            b"text" => {
                seen.first(TEXT)?;
                text = Some(s.string()?);
                Some(())
            }
            b"author_name_hash" => {
                seen.first(AUTHOR)?;
                s.string().map(drop)
            }
            b"type" => {
                seen.first(TYPE)?;
                let t = s.string()?;
                matches!(&*t, "post" | "comment").then_some(())
            }
            b"embedded_urls" => {
                seen.first(URLS)?;
                if s.null() {
                    return Some(());
                }
                s.array(|s| {
                    let url = s.string()?;
                    check_http_url(&url).ok()
                })
            }
            b"created_at" => {
                seen.first(CREATED)?;
                s.datetime()
            }
            b"engagements" => {
                seen.first(ENGAGEMENTS)?;
                s.engagements()
            }
            b"post_id" => {
                seen.first(POST_ID)?;
                s.optional_string()
            }
            b"parent_id" => {
                seen.first(PARENT_ID)?;
                s.optional_string()
            }
            b"title" => {
                seen.first(TITLE)?;
                s.optional_string()
            }
            _ => None,
        })?;
        if !seen.has_all(0b111_1111) {
            return None;
        }
        Some(Item::new(id?, text?))
    }

    fn engagements(&mut self) -> Option<()> {
        let mut counts: Counts = [None; 13];
        self.object(|s, key| {
            let slot = engagement_slot(key)?;
            if counts[slot].is_some() {
                return None;
            }
            counts[slot] = Some(s.count()?);
            Some(())
        })?;
        Engagements::from_counts(&counts).ok().map(drop)
    }
}

/// The slot of an engagement name in [`KEYS`].
fn engagement_slot(key: &[u8]) -> Option<usize> {
    let slot = match key {
        b"retweet" => 0,
        b"like" => 1,
        b"comment" => 2,
        b"share" => 3,
        b"upvote" => 4,
        b"downvote" => 5,
        b"award" => 6,
        b"love" => 7,
        b"care" => 8,
        b"haha" => 9,
        b"wow" => 10,
        b"sad" => 11,
        b"angry" => 12,
        _ => return None,
    };
    debug_assert_eq!(KEYS[slot].as_bytes(), key);
    Some(slot)
}

/// Where the first `"`, `\\` or control character of `bytes` is.
///
/// Most strings of a request are short (keys, ids, dates): eight bytes at
/// a time (SWAR) finds their end before `memchr` would have set up. Past
/// the first 32 bytes (texts, hashes), `memchr` finds the next `"` or `\\`
/// and a vectorized pass checks the bytes before it for control characters.
fn find_special(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    let mut at = 0;
    while at < 32 {
        let Some(chunk) = bytes.get(at..at + 8) else {
            let tail = bytes.get(at..)?;
            return tail.iter().position(|&b| is_special(b)).map(|p| at + p);
        };
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // A byte's high bit is set where it is below 0x20, or equal to
        // `"` or `\\` (exact for the lowest such byte, which is all we use).
        let control = x.wrapping_sub(ONES * 0x20) & !x;
        let q = x ^ (ONES * u64::from(b'"'));
        let quote = q.wrapping_sub(ONES) & !q;
        let bs = x ^ (ONES * u64::from(b'\\'));
        let backslash = bs.wrapping_sub(ONES) & !bs;
        let found = (control | quote | backslash) & HIGH;
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let rest = bytes.get(at..)?;
    let end = memchr::memchr2(b'"', b'\\', rest)?;
    let before = rest.get(..end)?;
    if has_control(before) {
        return before.iter().position(|&b| b < 0x20).map(|p| at + p);
    }
    Some(at + end)
}

fn is_special(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Whether `bytes` holds a raw control character (not allowed in a JSON
/// string). Written without an early exit so that it vectorizes.
fn has_control(bytes: &[u8]) -> bool {
    bytes.iter().fold(false, |found, &b| found | (b < 0x20))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ITEM: &str = r#"{"id": "a", "post_id": null, "parent_id": "p", "title": null,
        "text": "hello", "author_name_hash": "h", "type": "post",
        "embedded_urls": ["https://x.org/a"], "created_at": "2024-01-20 18:41:20",
        "engagements": {"upvote": 1, "downvote": 0, "comment": 12, "award": 0}}"#;

    fn body(item: &str) -> String {
        format!(
            r#"{{"session": {{"user_id": "u", "user_name_hash": "h", "cohort": "AB",
               "platform": "reddit", "current_time": "2024-01-20T18:41:20Z"}},
              "survey": null, "items": [{item}, {item}]}}"#
        )
    }

    fn ids(body: &str) -> Option<Vec<(String, String)>> {
        scan(body.as_bytes()).map(|items| {
            items
                .iter()
                .map(|i| (i.id.to_string(), i.text.to_string()))
                .collect()
        })
    }

    #[test]
    fn the_common_shape_is_taken_with_escapes_decoded() {
        let got = ids(&body(ITEM));
        assert_eq!(got.map(|v| v.len()), Some(2));
        let escaped = ITEM.replace(
            r#""hello""#,
            r#""a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00 ✓""#,
        );
        let got = ids(&body(&escaped)).unwrap_or_default();
        assert_eq!(
            got.first().map(|p| p.1.as_str()),
            Some("a\"b\\c/d\u{8}\u{c}\n\r\té😀 ✓")
        );
        // Borrowed when there is nothing to decode.
        let plain = body(ITEM);
        let items = scan(plain.as_bytes()).unwrap_or_default();
        assert!(matches!(
            items.first().map(|i| &i.text),
            Some(Cow::Borrowed("hello"))
        ));
    }

    #[test]
    fn anything_outside_the_subset_or_invalid_gives_up() {
        let cases = [
            // Invalid JSON or values.
            ITEM.replace(r#""hello""#, "\"tab\there\""),
            ITEM.replace(r#""hello""#, r#""\ud800""#),
            ITEM.replace(r#""hello""#, r#""\x""#),
            ITEM.replace(r#""upvote": 1"#, r#""upvote": 01"#),
            ITEM.replace(r#""upvote": 1"#, r#""upvote": -1"#),
            ITEM.replace(r#""award": 0"#, r#""awards": 0"#),
            ITEM.replace(r#""post""#, r#""story""#),
            ITEM.replace("https://x.org/a", "ftp://x.org"),
            ITEM.replace("2024-01-20 18:41:20", "2024-02-30 18:41:20"),
            ITEM.replace(r#""text": "hello","#, ""),
            ITEM.replace(r#""embedded_urls": ["https://x.org/a"],"#, ""),
            ITEM.replace(r#""id": "a","#, r#""id": "a", "id": "b","#),
            ITEM.replace(r#""id": "a""#, r#""id": 1"#),
            ITEM.replace("}}", "},}"),
            // Valid, but left to serde.
            ITEM.replace(r#""upvote": 1"#, r#""upvote": 1.0"#),
            ITEM.replace(r#""id": "a","#, r#""id": "a", "extra": 1,"#),
            ITEM.replace(r#""i"#, r#""\u0069"#),
        ];
        for item in &cases {
            assert_eq!(ids(&body(item)), None, "{item}");
        }
        let good = body(ITEM);
        for bad in [
            format!("{good} x"),
            good.replace(r#""survey": null"#, r#""survey": {}"#),
            good.replace("reddit", "myspace"),
            good.replace(r#""cohort": "AB","#, ""),
            good[..good.len() - 1].to_owned(),
        ] {
            assert_eq!(ids(&bad), None, "{bad}");
        }
        assert!(ids(&format!(" \n{good}\t\r\n")).is_some());
    }
}
