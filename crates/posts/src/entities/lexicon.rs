//! The embedded word lists (data/entities/*.txt) parsed once into hash tables:
//! common English words, given names, titles, non-entity words, cue words, and
//! the phrase table (gazetteer entries and known non-entity phrases).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::LazyLock;

use super::token::{lower_into, tokenize, TokKind};
use super::EntityKind;

const COMMON_WORDS: &str = include_str!("../../data/entities/common_words.txt");
const FIRST_NAMES: &str = include_str!("../../data/entities/first_names.txt");
const TITLES: &str = include_str!("../../data/entities/titles.txt");
const TITLE_MODIFIERS: &str = include_str!("../../data/entities/title_modifiers.txt");
const ROYAL_TITLES: &str = include_str!("../../data/entities/royal_titles.txt");
const NON_ENTITIES: &str = include_str!("../../data/entities/non_entities.txt");
const CUES: &str = include_str!("../../data/entities/cues.txt");
const EVENTS: &str = include_str!("../../data/entities/events.txt");
const LOCATIONS: &str = include_str!("../../data/entities/locations.txt");
const ORGANIZATIONS: &str = include_str!("../../data/entities/organizations.txt");
const PERSONS: &str = include_str!("../../data/entities/persons.txt");

/// FxHash (the rustc hasher): fast for the short keys used here.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            self.add(u64::from_le_bytes(b));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

type FxBuild = BuildHasherDefault<FxHasher>;
pub(crate) type FxSet<T> = HashSet<T, FxBuild>;
pub(crate) type FxMap<K, V> = HashMap<K, V, FxBuild>;

/// What a phrase-table entry says about a run of tokens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Phrase {
    /// The entity type, or `None` for a known non-entity (event, product, law).
    pub(crate) kind: Option<EntityKind>,
    /// May match lower-case (or all-caps / title-case) text: the phrase is
    /// not made only of ordinary words.
    pub(crate) caseless: bool,
    /// A single ordinary word trusted even at the start of a sentence.
    pub(crate) strong: bool,
}

/// All the tables the extractor needs, built once.
pub(crate) struct Lexicon {
    common: FxSet<&'static str>,
    pub(crate) first_names: FxSet<&'static str>,
    pub(crate) titles: FxSet<&'static str>,
    pub(crate) title_modifiers: FxSet<&'static str>,
    pub(crate) royal: FxSet<&'static str>,
    pub(crate) split_words: FxSet<&'static str>,
    pub(crate) alone_words: FxSet<&'static str>,
    pub(crate) org_suffix: FxSet<&'static str>,
    pub(crate) loc_suffix: FxSet<&'static str>,
    pub(crate) loc_prefix: FxSet<&'static str>,
    pub(crate) org_prefix: FxSet<&'static str>,
    pub(crate) name_start: FxSet<&'static str>,
    pub(crate) connectors: FxSet<&'static str>,
    pub(crate) particles: FxSet<&'static str>,
    pub(crate) roads: FxSet<&'static str>,
    pub(crate) event_heads: FxSet<&'static str>,
    pub(crate) event_starts: FxSet<&'static str>,
    /// Phrase table keyed by the lower-case tokens joined with one space.
    pub(crate) phrases: FxMap<Box<str>, Phrase>,
    /// Lower-case first tokens of the phrases (a cheap pre-filter).
    pub(crate) phrase_first: FxSet<Box<str>>,
    /// Longest phrase, in tokens.
    pub(crate) max_phrase_len: usize,
}

/// The shared lexicon, parsed on first use.
pub(crate) static LEXICON: LazyLock<Lexicon> = LazyLock::new(|| Lexicon::build(true));

/// The lexicon without the gazetteer of people, organisations and places
/// (rules, word lists and non-entity phrases only), for ablation.
pub(crate) static LEXICON_NO_GAZETTEER: LazyLock<Lexicon> = LazyLock::new(|| Lexicon::build(false));

/// Words of a list file: everything but `#` comment lines, split on whitespace.
fn words(data: &'static str) -> impl Iterator<Item = &'static str> {
    data.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(str::split_whitespace)
}

fn set(data: &'static str) -> FxSet<&'static str> {
    words(data).collect()
}

/// The words of one `%section` of a sectioned list file.
fn section(data: &'static str, name: &str) -> FxSet<&'static str> {
    let mut out = FxSet::default();
    let mut inside = false;
    for line in data.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        if let Some(sec) = line.strip_prefix('%') {
            inside = sec == name;
            continue;
        }
        if inside {
            out.extend(line.split_whitespace());
        }
    }
    out
}

impl Lexicon {
    fn build(with_gazetteer: bool) -> Lexicon {
        let mut lex = Lexicon {
            common: set(COMMON_WORDS),
            first_names: set(FIRST_NAMES),
            titles: set(TITLES),
            title_modifiers: set(TITLE_MODIFIERS),
            royal: set(ROYAL_TITLES),
            split_words: section(NON_ENTITIES, "split"),
            alone_words: section(NON_ENTITIES, "alone"),
            org_suffix: section(CUES, "org_suffix"),
            loc_suffix: section(CUES, "loc_suffix"),
            loc_prefix: section(CUES, "loc_prefix"),
            org_prefix: section(CUES, "org_prefix"),
            name_start: section(CUES, "name_start"),
            connectors: section(CUES, "connector"),
            particles: section(CUES, "particle"),
            roads: section(CUES, "road"),
            event_heads: section(CUES, "event_head"),
            event_starts: section(CUES, "event_start"),
            phrases: FxMap::default(),
            phrase_first: FxSet::default(),
            max_phrase_len: 1,
        };
        for line in EVENTS.lines() {
            lex.add_phrase(line, None, false);
        }
        if !with_gazetteer {
            return lex;
        }
        for (data, kind) in [
            (LOCATIONS, EntityKind::Location),
            (ORGANIZATIONS, EntityKind::Organization),
            (PERSONS, EntityKind::Person),
        ] {
            for line in data.lines() {
                lex.add_phrase(line, Some(kind), false);
            }
        }
        // Surnames of the listed people, where not already known otherwise.
        for line in PERSONS.lines() {
            let name = line.trim();
            if name.is_empty() || name.starts_with('#') {
                continue;
            }
            let parts: Vec<&str> = name
                .split_whitespace()
                .filter(|w| !matches!(*w, "Jr." | "Sr." | "II" | "III" | "IV"))
                .collect();
            if parts.len() >= 2 {
                if let Some(last) = parts.last() {
                    lex.add_phrase(last, Some(EntityKind::Person), true);
                }
            }
        }
        lex
    }

    /// Adds one list line (`Name`, `Name !` strong, `Name ~` caseless org).
    fn add_phrase(&mut self, line: &str, kind: Option<EntityKind>, surname: bool) {
        let mut name = line.trim();
        if name.is_empty() || name.starts_with('#') {
            return;
        }
        let mut strong = false;
        let mut org_caseless = false;
        if let Some(n) = name.strip_suffix(" !") {
            strong = true;
            name = n.trim_end();
        }
        if let Some(n) = name.strip_suffix(" ~") {
            org_caseless = true;
            name = n.trim_end();
        }
        let mut toks = Vec::new();
        tokenize(name, &mut toks);
        let mut key = String::new();
        let mut lower = String::new();
        let mut all_ordinary = true;
        let mut count = 0;
        for t in &toks {
            if !matches!(t.kind, TokKind::Word | TokKind::Number | TokKind::Amp) {
                continue;
            }
            let s = &name[t.start..t.full_end];
            lower_into(s, &mut lower);
            if !key.is_empty() {
                key.push(' ');
            }
            key.push_str(&lower);
            count += 1;
            let distinctive = match t.kind {
                TokKind::Number => true,
                TokKind::Word => {
                    !self.connectors.contains(lower.as_str())
                        && !self.particles.contains(lower.as_str())
                        && !self.is_common(&lower)
                        && !(surname
                            && (self.first_names.contains(lower.as_str())
                                || lower.chars().count() < 5))
                }
                _ => false,
            };
            if distinctive {
                all_ordinary = false;
            }
        }
        if count == 0 {
            return;
        }
        let caseless = !all_ordinary
            && match kind {
                Some(EntityKind::Organization) => org_caseless,
                Some(_) => true,
                None => true,
            };
        if surname && self.phrases.contains_key(key.as_str()) {
            return;
        }
        if let Some(first) = key.split(' ').next() {
            self.phrase_first.insert(first.into());
        }
        self.max_phrase_len = self.max_phrase_len.max(count);
        self.phrases.entry(key.into_boxed_str()).or_insert(Phrase {
            kind,
            caseless,
            strong,
        });
    }

    /// Whether a lower-case word is listed as an ordinary word (no
    /// inflection rules; a possessive `'s` is ignored).
    pub(crate) fn is_listed_common(&self, w: &str) -> bool {
        self.common.contains(w)
            || w.strip_suffix("'s")
                .is_some_and(|s| self.common.contains(s))
    }

    /// Whether a lower-case word is an ordinary English word (directly or as
    /// a regular inflection of one).
    pub(crate) fn is_common(&self, w: &str) -> bool {
        if self.common.contains(w) {
            return true;
        }
        let w = w
            .strip_suffix("'s")
            .or_else(|| w.strip_suffix('\''))
            .unwrap_or(w);
        if self.common.contains(w) {
            return true;
        }
        let n = w.len();
        if n < 4 || !w.is_ascii() {
            return false;
        }
        let b = w.as_bytes();
        let check = |stem: &str| stem.len() >= 2 && self.common.contains(stem);
        let with = |stem: &str, tail: &str| {
            let mut buf = [0u8; 40];
            let n = stem.len() + tail.len();
            if n > buf.len() {
                return false;
            }
            buf[..stem.len()].copy_from_slice(stem.as_bytes());
            buf[stem.len()..n].copy_from_slice(tail.as_bytes());
            std::str::from_utf8(&buf[..n]).is_ok_and(|s| self.common.contains(s))
        };
        // A doubled final consonant before -ed/-ing/-er/-est ("stopped").
        let undouble = |stem: &str| {
            let sb = stem.as_bytes();
            let k = sb.len();
            k >= 3 && sb[k - 1] == sb[k - 2] && check(&stem[..k - 1])
        };
        for suf in ["ies", "ied", "ier", "iest", "ily"] {
            if let Some(stem) = w.strip_suffix(suf) {
                if with(stem, "y") {
                    return true;
                }
            }
        }
        if let Some(stem) = w.strip_suffix("es") {
            if check(stem) {
                return true;
            }
        }
        if b[n - 1] == b's' && b[n - 2] != b's' && check(&w[..n - 1]) {
            return true;
        }
        for suf in ["ed", "ing", "er", "est"] {
            if let Some(stem) = w.strip_suffix(suf) {
                if check(stem) || with(stem, "e") || undouble(stem) {
                    return true;
                }
            }
        }
        for suf in ["ly", "ness", "ment", "ful"] {
            if let Some(stem) = w.strip_suffix(suf) {
                if check(stem) {
                    return true;
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflections_are_common() {
        let lex = &*LEXICON;
        for w in [
            "went", "watching", "stopped", "tried", "lakes", "donated", "freezing",
        ] {
            assert!(lex.is_common(w), "{w}");
        }
        for w in ["merkel", "lakers", "pelosi", "angela", "texas"] {
            assert!(!lex.is_common(w), "{w}");
        }
    }

    #[test]
    fn phrases_are_loaded() {
        let lex = &*LEXICON;
        let p = lex.phrases.get("new york city").copied();
        assert!(matches!(p.and_then(|p| p.kind), Some(EntityKind::Location)));
        let p = lex.phrases.get("pelosi").copied();
        assert!(matches!(p, Some(Phrase { caseless: true, .. })));
        let p = lex.phrases.get("super bowl").copied();
        assert!(matches!(p, Some(Phrase { kind: None, .. })));
        assert!(lex.phrases.contains_key("st. louis"));
        assert!(lex.phrases.contains_key("johnson & johnson"));
        assert!(lex.phrases.contains_key("trader joe's"));
    }
}
