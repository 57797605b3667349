//! Named-entity extraction from post text, in pure Rust with no downloaded
//! model: PERSON, ORGANIZATION and LOCATION names, multi-word names joined
//! as they are written ("Angela Merkel", "Federal Reserve", "New York City").
//! It takes the place of NLTK's `ne_chunk` in the original worker.
//!
//! # How it works
//! 1. [`token`]: a tokenizer that keeps "U.S.", "O'Hare", "AT&T" and
//!    "Ocasio-Cortez" whole, strips possessive `'s`, and skips hashtags,
//!    @mentions and URLs.
//! 2. [`chunk`]: each clause is read as ordinary text, Title Case or ALL
//!    CAPS; capitalised words become name words, except ordinary words at the
//!    start of a sentence (checked against an embedded lexicon of common
//!    English words), days, months, pronouns and the like. An embedded
//!    gazetteer of well-known people, organisations and places recognises
//!    names in lower-case and shouted text and blocks known non-entities
//!    (events, products, laws). Name words are grouped into chunks, joined
//!    by "of", "&" and name particles ("Bank of America", "von der Leyen").
//! 3. [`classify`]: titles are split off ("Senator Elizabeth Warren" →
//!    "Elizabeth Warren"), determiners and trailing group words trimmed
//!    ("the European Union" → "European Union"), and each chunk typed by the
//!    gazetteer, suffix and prefix cues ("… University", "Lake …", "… County")
//!    and context ("in …").
//!
//! The word lists live in `crates/posts/data/entities/` and are embedded at
//! build time. The [`eval`] module measures precision and recall on the
//! shipped hand-labelled set (`crates/posts/data/entities_eval.jsonl`).

mod chunk;
mod classify;
pub mod eval;
mod lexicon;
mod token;

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use chunk::Scratch;
use lexicon::{Lexicon, LEXICON, LEXICON_NO_GAZETTEER};

/// The type of a named entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EntityKind {
    /// A person ("Angela Merkel", "Bernie").
    #[serde(rename = "PERSON", alias = "PER")]
    Person,
    /// An organisation: company, agency, party, team, school, outlet…
    #[serde(rename = "ORGANIZATION", alias = "ORG")]
    Organization,
    /// A place: country, city, region, landmark, road (NLTK's GPE too).
    #[serde(rename = "LOCATION", alias = "GPE", alias = "LOC", alias = "FACILITY")]
    Location,
}

impl EntityKind {
    /// All kinds, in a fixed order.
    pub const ALL: [EntityKind; 3] = [
        EntityKind::Person,
        EntityKind::Organization,
        EntityKind::Location,
    ];

    /// The label used in JSON and reports: `PERSON`, `ORGANIZATION`, `LOCATION`.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Person => "PERSON",
            EntityKind::Organization => "ORGANIZATION",
            EntityKind::Location => "LOCATION",
        }
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown entity type label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown entity type {0:?} (expected PERSON, ORGANIZATION or LOCATION)")]
pub struct UnknownKind(pub String);

impl FromStr for EntityKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "PERSON" | "PER" => Ok(EntityKind::Person),
            "ORGANIZATION" | "ORGANISATION" | "ORG" => Ok(EntityKind::Organization),
            "LOCATION" | "LOC" | "GPE" | "FACILITY" => Ok(EntityKind::Location),
            _ => Err(UnknownKind(s.to_string())),
        }
    }
}

/// An entity as a byte range of the input text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntitySpan {
    /// Byte offset of the first character.
    pub start: usize,
    /// Byte offset just past the last character (a possessive `'s` excluded).
    pub end: usize,
    /// The entity type.
    pub kind: EntityKind,
}

impl EntitySpan {
    /// The entity's text in `text` (the string the span was found in).
    pub fn text<'t>(&self, text: &'t str) -> &'t str {
        text.get(self.start..self.end).unwrap_or("")
    }
}

/// A named entity found in a text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    /// The entity as written, its words joined with single spaces, e.g.
    /// "New York City".
    pub text: String,
    /// The entity type.
    #[serde(rename = "type")]
    pub kind: EntityKind,
    /// Byte offset of the first character in the input.
    pub start: usize,
    /// Byte offset just past the last character in the input.
    pub end: usize,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// The named-entity extractor. Cheap to create and copy: the embedded
/// tables are built once per process and shared.
#[derive(Clone, Copy)]
pub struct Extractor {
    lex: &'static Lexicon,
}

impl fmt::Debug for Extractor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extractor").finish_non_exhaustive()
    }
}

impl Default for Extractor {
    fn default() -> Self {
        Extractor::new()
    }
}

impl Extractor {
    /// An extractor over the embedded tables (built on first use).
    pub fn new() -> Self {
        Extractor { lex: &LEXICON }
    }

    /// An extractor without the embedded gazetteer of well-known people,
    /// organisations and places: capitalisation rules, word lists and cue
    /// words only. Used to measure how much the gazetteer contributes.
    pub fn without_gazetteer() -> Self {
        Extractor {
            lex: &LEXICON_NO_GAZETTEER,
        }
    }

    /// Appends the entity spans of `text` to `out`, in text order. Reuses
    /// per-thread buffers: no allocation besides `out` once warm.
    pub fn spans_into(&self, text: &str, out: &mut Vec<EntitySpan>) {
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => self.run(&mut scratch, text, out),
            Err(_) => self.run(&mut Scratch::default(), text, out),
        });
    }

    fn run(&self, scratch: &mut Scratch, text: &str, out: &mut Vec<EntitySpan>) {
        scratch.run(self.lex, text);
        classify::emit(self.lex, scratch, text, out);
    }

    /// The entity spans of `text`, in text order.
    pub fn spans(&self, text: &str) -> Vec<EntitySpan> {
        let mut out = Vec::new();
        self.spans_into(text, &mut out);
        out
    }

    /// The entities of `text`, in text order (repeats included).
    pub fn extract(&self, text: &str) -> Vec<Entity> {
        self.spans(text)
            .into_iter()
            .map(|s| Entity {
                text: joined(s.text(text)).into_owned(),
                kind: s.kind,
                start: s.start,
                end: s.end,
            })
            .collect()
    }

    /// The distinct entity names of `text`, in order of first appearance.
    pub fn distinct(&self, text: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for name in self.spans(text).iter().map(|s| joined(s.text(text))) {
            if !out.iter().any(|n| *n == name) {
                out.push(name.into_owned());
            }
        }
        out
    }
}

/// `s` with every run of whitespace replaced by one space (names split
/// over several spaces or a tab are joined like NLTK's output).
fn joined(s: &str) -> Cow<'_, str> {
    let single =
        s.split(' ').all(|w| !w.is_empty()) && !s.contains(|c: char| c != ' ' && c.is_whitespace());
    if single {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.split_whitespace().collect::<Vec<_>>().join(" "))
    }
}

/// The entities of `text`, in text order (repeats included).
pub fn extract(text: &str) -> Vec<Entity> {
    Extractor::new().extract(text)
}

/// The entity names of `text` as slices of it, in text order (repeats
/// included). Unlike [`extract`], a name written with several spaces
/// between its words keeps them.
pub fn entity_names(text: &str) -> impl Iterator<Item = &str> + '_ {
    Extractor::new()
        .spans(text)
        .into_iter()
        .map(move |s| s.text(text))
}

/// The distinct entity names of `text`, deduplicated, in order of first
/// appearance: what `count_top_named_entities` counts once per post.
pub fn distinct_entities(text: &str) -> Vec<String> {
    Extractor::new().distinct(text)
}

#[cfg(test)]
mod tests;
