//! Caller-given text made safe to print: task names, queue names, ids and
//! reasons reach logs and terminals, and a control character in them could
//! forge a log line (`\n`), rewrite the line (`\r`), or drive the terminal
//! (`ESC` sequences that move the cursor, set the title, …).
//!
//! [`printable`] wraps a string so that its `Display` escapes every such
//! character; [`EscapeWriter`] does the same to everything written through
//! it (the `celeriac` binary's log formatter writes field values through
//! it). Ordinary text, non-ASCII letters included, is written unchanged.
//!
//! What is escaped, and how:
//! - `\n`, `\r`, `\t` as those two-character escapes;
//! - every other control character (C0, `DEL`, C1) as `\u{..}`;
//! - the invisible characters that reorder or hide text (bidirectional
//!   overrides and isolates, zero-width characters, the BOM) as `\u{..}`.
//!
//! The escaping is for reading, not reversible: a backslash is left as is.
//!
//! ```
//! assert_eq!(celeriac::printable("tasks.add").to_string(), "tasks.add");
//! assert_eq!(
//!     celeriac::printable("x\n\u{1b}[2Jy").to_string(),
//!     "x\\n\\u{1b}[2Jy"
//! );
//! ```

use std::fmt;

/// `text`, displayed with its control and invisible characters escaped.
pub fn printable(text: &str) -> Printable<'_> {
    Printable(text)
}

/// A string whose `Display` (and `Debug`, quoted) escapes control and
/// invisible characters; made by [`printable`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Printable<'a>(&'a str);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, self.0)
    }
}

impl fmt::Debug for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        write_escaped(f, self.0)?;
        f.write_str("\"")
    }
}

/// True when `c` must not reach a log or terminal as it is.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// True when `text` has nothing [`printable`] would escape.
pub fn is_printable(text: &str) -> bool {
    !text.chars().any(needs_escape)
}

/// Write `text` to `out`, escaping what [`needs_escape`] names.
fn write_escaped(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    let mut rest = text;
    while let Some(at) = rest.find(needs_escape) {
        out.write_str(&rest[..at])?;
        let Some(c) = rest[at..].chars().next() else {
            break;
        };
        match c {
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            other => write!(out, "\\u{{{:x}}}", u32::from(other))?,
        }
        rest = &rest[at + c.len_utf8()..];
    }
    out.write_str(rest)
}

/// A [`fmt::Write`] that escapes, as [`printable`] does, everything written
/// through it before passing it on to the writer it wraps.
#[derive(Debug)]
pub struct EscapeWriter<W>(pub W);

impl<W: fmt::Write> fmt::Write for EscapeWriter<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_escaped(&mut self.0, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    #[test]
    fn escapes_control_and_invisible_characters_only() {
        let cases = [
            ("tasks.add", "tasks.add"),
            ("", ""),
            ("naïve.täsk→ok", "naïve.täsk→ok"),
            ("a\nb", "a\\nb"),
            ("a\r\tb", "a\\r\\tb"),
            ("\u{1b}]0;title\u{7}", "\\u{1b}]0;title\\u{7}"),
            ("\u{0}\u{7f}\u{85}\u{9b}", "\\u{0}\\u{7f}\\u{85}\\u{9b}"),
            ("abc\u{202e}fed", "abc\\u{202e}fed"),
            ("zero\u{200b}width\u{feff}", "zero\\u{200b}width\\u{feff}"),
            ("back\\slash", "back\\slash"),
        ];
        for (raw, shown) in cases {
            assert_eq!(printable(raw).to_string(), shown, "{raw:?}");
            assert_eq!(is_printable(raw), raw == shown, "{raw:?}");
            assert!(!printable(raw).to_string().contains(needs_escape));
        }
        assert_eq!(format!("{:?}", printable("a\nb")), "\"a\\nb\"");
    }

    #[test]
    fn the_writer_escapes_what_passes_through_it() {
        let mut out = EscapeWriter(String::new());
        let name = "evil\u{1b}[1A";
        writeln!(out, "task {name} done").expect("write to a String");
        assert_eq!(out.0, "task evil\\u{1b}[1A done\\n");
    }
}
