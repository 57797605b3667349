//! From candidate chunks to typed entity spans: splits off titles ("Senator",
//! "Police Chief"), trims determiners, connectors and trailing group words,
//! drops events, and types what is left by the phrase table and cue words.

use super::chunk::Scratch;
use super::lexicon::Lexicon;
use super::token::{Shape, TokKind};
use super::{EntityKind, EntitySpan};

/// Prepositions after which a name is usually a place.
const PLACE_PREPS: &[&str] = &[
    "in",
    "from",
    "to",
    "near",
    "across",
    "outside",
    "visiting",
    "toward",
    "towards",
    "into",
    "around",
    "through",
    "throughout",
    "via",
    "leaving",
    "entering",
    "between",
    "inside",
    "within",
    "on",
    "of",
    "downtown",
    "uptown",
    "suburban",
    "rural",
];

/// Words after a name that suggest a person.
const PERSON_NEXT: &[&str] = &[
    "said", "says", "told", "tweeted", "posted", "wrote", "thinks", "wants", "believes", "claims",
    "argued", "admitted", "died", "dies", "married", "resigned", "retired", "scored", "signed",
];

/// Turns the chunks found in `s` into entity spans.
pub(crate) fn emit(lex: &Lexicon, s: &Scratch, text: &str, out: &mut Vec<EntitySpan>) {
    for c in &s.chunks {
        if let Some(m) = c.single {
            if let Some(kind) = m.phrase.kind {
                let t = &s.toks[m.end];
                let end = if m.full { t.full_end } else { t.end };
                out.push(EntitySpan {
                    start: s.toks[m.start].start,
                    end,
                    kind,
                });
                continue;
            }
        }
        range(lex, s, text, c.a, c.b, false, out);
    }
}

fn is_word(s: &Scratch, i: usize) -> bool {
    s.toks[i].kind == TokKind::Word
}

fn is_glue(lex: &Lexicon, s: &Scratch, i: usize) -> bool {
    let t = &s.toks[i];
    t.kind == TokKind::Amp
        || (t.shape == Shape::Lower
            && (lex.connectors.contains(s.core(i)) || lex.particles.contains(s.core(i))))
}

fn is_title(lex: &Lexicon, s: &Scratch, i: usize) -> bool {
    is_word(s, i) && lex.titles.contains(s.bare(i))
}

/// Whether token `i` looks like the start of a person's name.
fn person_like(lex: &Lexicon, s: &Scratch, i: usize) -> bool {
    let t = &s.toks[i];
    if t.kind != TokKind::Word || !matches!(t.shape, Shape::Cap | Shape::Upper) {
        return false;
    }
    let w = s.core(i);
    if lex.first_names.contains(w) || lex.royal.contains(s.bare(i)) {
        return true;
    }
    if let Some(p) = lex.phrases.get(w) {
        return p.kind == Some(EntityKind::Person);
    }
    !lex.is_common(w) && !lex.org_suffix.contains(w) && !lex.loc_suffix.contains(w)
}

/// Processes tokens `a..=b` of one chunk; `person` when a title preceded it.
fn range(
    lex: &Lexicon,
    s: &Scratch,
    text: &str,
    mut a: usize,
    mut b: usize,
    person: bool,
    out: &mut Vec<EntitySpan>,
) {
    // Leading determiners and glue, trailing glue.
    while a <= b
        && (is_glue(lex, s, a) || (is_word(s, a) && matches!(s.core(a), "the" | "a" | "an")))
    {
        a += 1;
    }
    while b > a && is_glue(lex, s, b) {
        b -= 1;
    }
    if a > b || !is_word(s, a) && s.toks[a].kind != TokKind::Number {
        return;
    }
    // Titles: "Senator Elizabeth Warren", "Detroit Police Chief James White".
    for k in a..b {
        if is_title(lex, s, k) && person_like(lex, s, k + 1) {
            let mut r = k;
            while r > a && is_word(s, r - 1) && {
                let w = s.bare(r - 1);
                lex.title_modifiers.contains(w) || lex.titles.contains(w)
            } {
                r -= 1;
            }
            if r > a {
                range(lex, s, text, a, r - 1, person, out);
            }
            range(lex, s, text, k + 1, b, true, out);
            return;
        }
    }
    // Only titles and royal words: "the President", "the Queen".
    if (a..=b).all(|k| {
        let w = s.bare(k);
        !is_word(s, k)
            || lex.titles.contains(w)
            || lex.title_modifiers.contains(w)
            || lex.royal.contains(w)
    }) {
        return;
    }
    // Events, storms, awards, laws.
    if lex.event_starts.contains(s.bare(a)) || (b > a && lex.event_heads.contains(s.bare(b))) {
        return;
    }
    // Trailing group words: "House Republicans" -> "House".
    while b >= a && lex.alone_words.contains(s.core(b)) {
        if b == a {
            return;
        }
        b -= 1;
    }
    while b > a && is_glue(lex, s, b) {
        b -= 1;
    }
    let mut end = s.toks[b].end;
    let kind = match phrase_kind(lex, s, a, b) {
        Some(Some(kind)) => kind,
        Some(None) => return,
        None => {
            if let Some(stem_end) = missing_apostrophe(lex, s, a, b) {
                // "Trumps lawyers": a known surname with a bare plural/possessive s.
                end = stem_end;
                EntityKind::Person
            } else if person {
                EntityKind::Person
            } else {
                classify(lex, s, text, a, b)
            }
        }
    };
    out.push(EntitySpan {
        start: s.toks[a].start,
        end,
        kind,
    });
}

/// For a one-word chunk like "Trumps" (a known person's name plus "s", a
/// possessive written without its apostrophe), the end of the name.
fn missing_apostrophe(lex: &Lexicon, s: &Scratch, a: usize, b: usize) -> Option<usize> {
    if a != b || s.toks[a].possessive {
        return None;
    }
    let stem = s.core(a).strip_suffix('s')?;
    let p = lex.phrases.get(stem)?;
    (p.kind == Some(EntityKind::Person) && p.caseless).then(|| s.toks[a].end - 1)
}

/// Whether a word has a capital inside it after a lower-case letter, as in
/// company names ("HashiCorp", "CrowdStrike"), but not surname prefixes
/// ("McConnell", "DeSantis", "LeBron", "DiCaprio", "MacKenzie").
fn camel_case(word: &str) -> bool {
    let chars: Vec<char> = word.chars().collect();
    for k in 2..chars.len() {
        if chars[k].is_uppercase() && chars[k - 1].is_lowercase() {
            let prefix: String = chars[..k].iter().collect();
            if !matches!(
                prefix.as_str(),
                "Mc" | "Mac" | "De" | "Le" | "La" | "Di" | "Da" | "Van" | "Von" | "Du"
            ) {
                return true;
            }
        }
    }
    false
}

/// A road number such as "I-95", "US-101", "SR-520".
fn road_number(word: &str) -> bool {
    let Some((head, num)) = word.split_once('-') else {
        return false;
    };
    (1..=2).contains(&head.len())
        && head.chars().all(|c| c.is_ascii_uppercase())
        && !num.is_empty()
        && num.chars().all(|c| c.is_ascii_digit())
}

/// The phrase-table entry for tokens `a..=b`, if any (`Some(None)` for a
/// known non-entity).
fn phrase_kind(lex: &Lexicon, s: &Scratch, a: usize, b: usize) -> Option<Option<EntityKind>> {
    if b - a + 1 > lex.max_phrase_len {
        return None;
    }
    let mut key = String::new();
    for k in a..=b {
        if k > a {
            key.push(' ');
        }
        key.push_str(s.core(k));
    }
    lex.phrases.get(key.as_str()).map(|p| p.kind)
}

/// Types a chunk that the phrase table does not know, by cue words and
/// context.
fn classify(lex: &Lexicon, s: &Scratch, text: &str, a: usize, b: usize) -> EntityKind {
    let surface = |k: usize| text.get(s.toks[k].start..s.toks[k].end).unwrap_or("");
    let mut per = 0i32;
    let mut org = 0i32;
    let mut loc = 0i32;
    // The last word, or the word before a trailing number ("Route 9").
    let mut lb = b;
    while lb > a && s.toks[lb].kind == TokKind::Number {
        lb -= 1;
    }
    let first = s.bare(a);
    let last = s.bare(lb);
    let words = (a..=b).filter(|&k| is_word(s, k)).count();
    if lex.org_suffix.contains(last) {
        org += 4;
    }
    if lex.loc_suffix.contains(last) {
        loc += 4;
    }
    if words > 1 {
        if lex.org_prefix.contains(first) {
            org += 3;
        }
        if lex.loc_prefix.contains(first) {
            loc += 2;
        }
    }
    if lex.first_names.contains(s.core(a)) && words <= 4 {
        per += if words == 1 { 2 } else { 3 };
    }
    if words > 1 {
        if let Some(p) = lex.phrases.get(s.core(b)) {
            match p.kind {
                Some(EntityKind::Person) => per += 2,
                Some(EntityKind::Location) if words == 2 => loc += 1,
                _ => {}
            }
        }
    }
    let normal = s.modes[a] == super::chunk::Mode::Normal;
    if words == 1 && s.toks[a].shape == Shape::Upper && normal {
        org += 2;
    }
    if (a..=b).any(|k| s.toks[k].kind == TokKind::Amp) {
        org += 3;
    }
    if (a..=b).any(|k| is_word(s, k) && camel_case(surface(k))) && normal {
        org += 2;
    }
    if words == 1 && road_number(surface(a)) {
        loc += 6;
    }
    if matches!(last, "center" | "centre") && lb > a && lex.org_suffix.contains(s.bare(lb - 1)) {
        // "Lakeside Medical Center", "Cancer Research Centre".
        org += 5;
    }
    // A place followed by a plural: a team ("Georgia Bulldogs").
    if words >= 2 && last.ends_with('s') && !last.ends_with("ss") && !lex.loc_suffix.contains(last)
    {
        if let Some(p) = lex.phrases.get(s.core(a)) {
            if p.kind == Some(EntityKind::Location) {
                org += 5;
            }
        }
    }
    // Context before the chunk.
    let prev = (a > 0 && is_word(s, a - 1)).then(|| s.core(a - 1));
    let prev2 = (a > 1 && is_word(s, a - 2)).then(|| s.core(a - 2));
    if let Some(p) = prev {
        if PLACE_PREPS.contains(&p) {
            loc += 2;
        } else if p == "at" {
            loc += 1;
            org += 1;
        } else if p == "the" {
            org += 1;
            if words == 1 && last.ends_with('s') && last.len() > 3 {
                org += 2;
            }
            if prev2.is_some_and(|q| q == "at" || PLACE_PREPS.contains(&q)) {
                loc += 1;
            }
        }
    }
    // Context after the chunk.
    if let Some(t) = s.toks.get(b + 1) {
        if t.kind == TokKind::Word && PERSON_NEXT.contains(&s.core(b + 1)) {
            per += 1;
        }
    }
    if s.toks[b].possessive {
        per += 1;
    }
    if words >= 2 && per == 0 && org == 0 && loc == 0 {
        per += 1;
    }
    if per >= org && per >= loc {
        EntityKind::Person
    } else if loc >= org {
        EntityKind::Location
    } else {
        EntityKind::Organization
    }
}
