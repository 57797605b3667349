//! The tokenizer for post text: words (with internal apostrophes, hyphens,
//! `&` and dotted abbreviations), numbers, punctuation, hashtags, @mentions
//! and URLs, each with its case shape and a sentence-start flag.

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokKind {
    /// A word starting with a letter.
    Word,
    /// A token starting with a digit ("2024", "49ers", "40,000").
    Number,
    /// A free-standing `&` ("Johnson & Johnson").
    Amp,
    /// Any other punctuation, symbol or emoji; also a line break.
    Punct,
    /// `#tag`.
    Hashtag,
    /// `@user`.
    Mention,
    /// `http://…`, `https://…`, `www.…`.
    Url,
}

/// The letter case of a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// "word".
    Lower,
    /// "Word", "McConnell", "I-95".
    Cap,
    /// "NASA", "U.S." (two or more letters, all upper case).
    Upper,
    /// "iPhone", "deGrasse".
    MixedLower,
    /// Numbers and punctuation.
    Other,
}

/// One token; offsets are byte offsets into the text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Token {
    /// Start offset.
    pub(crate) start: usize,
    /// End of the token without a possessive `'s`.
    pub(crate) end: usize,
    /// End of the token including a possessive `'s`.
    pub(crate) full_end: usize,
    /// What the token is.
    pub(crate) kind: TokKind,
    /// Letter case (words only).
    pub(crate) shape: Shape,
    /// First word of a sentence or clause (capitalised by convention).
    pub(crate) sent_start: bool,
    /// Ends with a possessive `'s`.
    pub(crate) possessive: bool,
    /// Ends with an attached abbreviation dot ("Dr.", "U.S.").
    pub(crate) dotted: bool,
}

/// Abbreviations written before a name: their dot does not end a sentence.
const PREFIX_ABBREVS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "st", "sen", "sens", "rep", "reps", "gov", "gen", "lt", "col", "capt",
    "sgt", "prof", "rev", "mt", "ft", "pres", "supt", "atty", "hon", "adm", "maj", "cmdr", "gens",
];

/// Other abbreviations that keep their dot.
const OTHER_ABBREVS: &[&str] = &[
    "jr", "sr", "inc", "corp", "co", "ltd", "ave", "blvd", "rd", "vs", "jan", "feb", "mar", "apr",
    "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "etc", "dept", "bros", "univ",
    "approx", "est", "assn", "intl", "natl",
];

fn is_abbrev(word: &str, list: &[&str]) -> bool {
    word.len() <= 6 && list.iter().any(|a| a.eq_ignore_ascii_case(word))
}

/// Writes the lower-case form of `s` into `out`, with `’` read as `'`.
pub(crate) fn lower_into(s: &str, out: &mut String) {
    out.clear();
    if s.is_ascii() {
        out.extend(s.bytes().map(|b| char::from(b.to_ascii_lowercase())));
        return;
    }
    for c in s.chars() {
        if c == '\u{2019}' {
            out.push('\'');
        } else {
            out.extend(c.to_lowercase());
        }
    }
}

#[inline]
fn char_at(text: &str, i: usize) -> Option<char> {
    text.get(i..).and_then(|s| s.chars().next())
}

#[inline]
fn is_apostrophe(c: char) -> bool {
    c == '\'' || c == '\u{2019}'
}

/// Characters after which the next word starts a new sentence or clause.
fn is_boundary(c: char) -> bool {
    matches!(
        c,
        '.' | '!'
            | '?'
            | '\u{2026}'
            | ':'
            | ';'
            | '"'
            | '\u{201c}'
            | '\u{201d}'
            | '('
            | ')'
            | '['
            | ']'
            | '|'
            | '\u{2022}'
            | '\u{2014}'
            | '\u{2013}'
            | '\n'
            | '>'
            | '<'
            | '*'
            | '~'
    ) || (!c.is_ascii() && !c.is_alphanumeric())
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// Splits `text` into tokens, appending them to `out` (cleared first).
pub(crate) fn tokenize(text: &str, out: &mut Vec<Token>) {
    out.clear();
    let bytes = text.as_bytes();
    let n = bytes.len();
    let mut i = 0;
    let mut pending_start = true;
    while i < n {
        let b = bytes[i];
        // Fast path for ASCII whitespace.
        if b == b' ' || b == b'\t' || b == b'\r' {
            i += 1;
            continue;
        }
        let Some(c) = char_at(text, i) else { break };
        let clen = c.len_utf8();
        if c == '\n' {
            out.push(punct(i, i + 1));
            pending_start = true;
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            i += clen;
            continue;
        }
        let rest = &text[i..];
        if starts_with_ci(rest, "http://")
            || starts_with_ci(rest, "https://")
            || starts_with_ci(rest, "www.")
        {
            let len = rest.find(char::is_whitespace).unwrap_or(rest.len());
            out.push(simple(i, i + len, TokKind::Url));
            i += len;
            continue;
        }
        if (c == '#' || c == '@')
            && char_at(text, i + 1).is_some_and(|d| d.is_alphanumeric() || d == '_')
        {
            let body = &text[i + 1..];
            let len = body
                .find(|d: char| !(d.is_alphanumeric() || d == '_'))
                .unwrap_or(body.len());
            let kind = if c == '#' {
                TokKind::Hashtag
            } else {
                TokKind::Mention
            };
            out.push(simple(i, i + 1 + len, kind));
            i += 1 + len;
            continue;
        }
        if c.is_alphanumeric() {
            let (tok, next_start) = scan_word(text, i, pending_start);
            out.push(tok);
            pending_start = next_start;
            i = tok.full_end;
            continue;
        }
        if c == '&' {
            out.push(simple(i, i + 1, TokKind::Amp));
            i += 1;
            continue;
        }
        // A free-standing hyphen between spaces works like a dash.
        let dash = c == '-'
            && i > 0
            && bytes[i - 1] == b' '
            && bytes.get(i + 1).is_some_and(|&d| d == b' ');
        if is_boundary(c) || dash {
            pending_start = true;
        }
        out.push(punct(i, i + clen));
        i += clen;
    }
}

fn simple(start: usize, end: usize, kind: TokKind) -> Token {
    Token {
        start,
        end,
        full_end: end,
        kind,
        shape: Shape::Other,
        sent_start: false,
        possessive: false,
        dotted: false,
    }
}

fn punct(start: usize, end: usize) -> Token {
    simple(start, end, TokKind::Punct)
}

/// Scans one word or number starting at `start`; returns the token and
/// whether the next word starts a sentence.
fn scan_word(text: &str, start: usize, sent_start: bool) -> (Token, bool) {
    let bytes = text.as_bytes();
    let mut i = start;
    let first = char_at(text, start).unwrap_or(' ');
    let numeric = first.is_ascii_digit();
    // Length in characters of the current dot-separated segment.
    let mut seg_chars = 0usize;
    let mut has_dot = false;
    loop {
        // Consume alphanumerics.
        while let Some(c) = char_at(text, i) {
            if c.is_alphanumeric() || c == '\u{301}' {
                i += c.len_utf8();
                seg_chars += 1;
            } else {
                break;
            }
        }
        let Some(c) = char_at(text, i) else { break };
        let next = char_at(text, i + c.len_utf8());
        let prev = if i > start { bytes[i - 1] } else { b' ' };
        if is_apostrophe(c) && next.is_some_and(char::is_alphabetic) && !numeric {
            i += c.len_utf8();
            continue;
        }
        if c == '-' && next.is_some_and(char::is_alphanumeric) {
            i += 1;
            continue;
        }
        if c == '&' && prev.is_ascii_uppercase() && next.is_some_and(|d| d.is_ascii_uppercase()) {
            i += 1;
            continue;
        }
        if numeric && (c == ',' || c == '.') && next.is_some_and(|d| d.is_ascii_digit()) {
            i += 1;
            continue;
        }
        if c == '.' && !numeric && seg_chars == 1 && next.is_some_and(char::is_alphabetic) {
            // "U.S", "p.m", "J.K": single letters separated by dots.
            let after = char_at(text, i + 1 + next.map_or(1, char::len_utf8));
            if !matches!(after, Some(a) if a.is_alphanumeric()) {
                i += 1;
                seg_chars = 0;
                has_dot = true;
                continue;
            }
        }
        break;
    }
    let mut end = i;
    let word = &text[start..end];
    let mut next_start = false;
    let mut dotted = false;
    if !numeric && bytes.get(end) == Some(&b'.') {
        let single_upper = word.chars().count() == 1 && first.is_uppercase();
        let followed_by_cap = text[end + 1..].starts_with(' ')
            && char_at(text, end + 2).is_some_and(char::is_uppercase);
        if has_dot || (single_upper && followed_by_cap) {
            end += 1;
            dotted = true;
            next_start = has_dot;
        } else if is_abbrev(word, PREFIX_ABBREVS) {
            end += 1;
            dotted = true;
        } else if is_abbrev(word, OTHER_ABBREVS) {
            end += 1;
            dotted = true;
            next_start = true;
        }
    }
    let full_end = end;
    let mut name_end = end;
    let mut possessive = false;
    if !dotted && !numeric {
        let w = &text[start..end];
        for suffix in ["'s", "'S", "\u{2019}s", "\u{2019}S"] {
            if w.len() > suffix.len() + 1 && w.ends_with(suffix) {
                name_end = end - suffix.len();
                possessive = true;
                break;
            }
        }
    }
    let shape = if numeric {
        Shape::Other
    } else {
        shape_of(&text[start..name_end])
    };
    let kind = if numeric {
        TokKind::Number
    } else {
        TokKind::Word
    };
    let tok = Token {
        start,
        end: name_end,
        full_end,
        kind,
        shape,
        sent_start,
        possessive,
        dotted,
    };
    (tok, next_start)
}

/// The case shape of a word.
pub(crate) fn shape_of(w: &str) -> Shape {
    let mut letters = 0usize;
    let mut upper = 0usize;
    let mut first_upper = None;
    for c in w.chars() {
        if c.is_alphabetic() {
            letters += 1;
            let u = c.is_uppercase();
            if u {
                upper += 1;
            }
            if first_upper.is_none() {
                first_upper = Some(u);
            }
        }
    }
    match first_upper {
        None => Shape::Other,
        Some(false) if upper == 0 => Shape::Lower,
        Some(false) => Shape::MixedLower,
        Some(true) if letters >= 2 && upper == letters => Shape::Upper,
        Some(true) => Shape::Cap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<(&str, Shape, bool)> {
        let mut toks = Vec::new();
        tokenize(text, &mut toks);
        toks.iter()
            .filter(|t| t.kind == TokKind::Word)
            .map(|t| (&text[t.start..t.end], t.shape, t.sent_start))
            .collect()
    }

    #[test]
    fn words_and_shapes() {
        let w = words("Nancy Pelosi's husband met the U.S. team at O'Hare. AT&T and NASA!");
        let texts: Vec<&str> = w.iter().map(|x| x.0).collect();
        assert_eq!(
            texts,
            [
                "Nancy", "Pelosi", "husband", "met", "the", "U.S.", "team", "at", "O'Hare", "AT&T",
                "and", "NASA"
            ]
        );
        assert_eq!(w[0].1, Shape::Cap);
        assert!(w[0].2);
        assert_eq!(w[5].1, Shape::Upper);
        assert!(w[9].2, "after a full stop");
        assert_eq!(w[11].1, Shape::Upper);
    }

    #[test]
    fn hashtags_mentions_urls() {
        let mut toks = Vec::new();
        let text = "see https://t.co/Ab9 and #BlackLivesMatter @elonmusk now";
        tokenize(text, &mut toks);
        let kinds: Vec<TokKind> = toks.iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            [
                TokKind::Word,
                TokKind::Url,
                TokKind::Word,
                TokKind::Hashtag,
                TokKind::Mention,
                TokKind::Word
            ]
        );
    }

    #[test]
    fn abbreviations_and_initials() {
        let w = words("Dr. Patel met George W. Bush in St. Louis at 9 p.m. Then left.");
        let texts: Vec<&str> = w.iter().map(|x| x.0).collect();
        assert_eq!(
            texts,
            [
                "Dr.", "Patel", "met", "George", "W.", "Bush", "in", "St.", "Louis", "at", "p.m.",
                "Then", "left"
            ]
        );
        assert!(!w[1].2, "no sentence break after Dr.");
        assert!(w[11].2, "sentence break after p.m.");
    }

    #[test]
    fn unicode_words() {
        let w = words("Viktor Orbán and Kylian Mbappé 😭 Jürgen");
        let texts: Vec<&str> = w.iter().map(|x| x.0).collect();
        assert_eq!(
            texts,
            ["Viktor", "Orbán", "and", "Kylian", "Mbappé", "Jürgen"]
        );
        assert!(w[5].2, "an emoji ends a clause");
    }
}
