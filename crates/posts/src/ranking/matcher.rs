//! Does a text mention one of the top entities?
//!
//! 1. [`MatchOptions`]: the original ranker's rule by default — `any(ne in
//!    item.text for ne in top_entities)`, a case-sensitive substring test —
//!    with two opt-in variants: ASCII case-insensitive matching, and whole
//!    words only (the match may not touch a letter, digit or `_` on either
//!    side, so "Paris" no longer matches "Parisian").
//! 2. [`EntityMatcher`]: all entities compiled into one Aho-Corasick
//!    automaton, so a text is scanned once however many entities there are
//!    (hundreds cost about what ten do).
//!
//! Empty entity names are dropped: `"" in text` is true for every text, so
//! one empty name would push the whole feed down.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// How entity names are matched against item text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MatchOptions {
    /// Ignore ASCII case ("TRUMP" matches "Trump"); non-ASCII letters still
    /// match exactly. Off by default, as in the original.
    pub ignore_ascii_case: bool,
    /// Only whole words: the match must not be preceded or followed by a
    /// letter, digit or `_`. Off by default, as in the original.
    pub whole_words: bool,
}

/// The error of [`EntityMatcher::new`].
#[derive(Debug, thiserror::Error)]
#[error("cannot build the entity matcher: {0}")]
pub struct MatcherError(#[from] aho_corasick::BuildError);

/// The current top entities, ready to test texts against.
#[derive(Debug, Clone, Default)]
pub struct EntityMatcher {
    entities: Vec<String>,
    automaton: Option<AhoCorasick>,
    options: MatchOptions,
}

impl EntityMatcher {
    /// A matcher that matches nothing (no entities known).
    pub fn empty() -> Self {
        EntityMatcher::default()
    }

    /// A matcher for `entities` (empty names dropped, duplicates kept once).
    ///
    /// # Errors
    /// [`MatcherError`] when the automaton cannot be built (far beyond any
    /// realistic number of entities).
    pub fn new(
        entities: impl IntoIterator<Item = String>,
        options: MatchOptions,
    ) -> Result<Self, MatcherError> {
        let mut names: Vec<String> = Vec::new();
        for name in entities {
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
        }
        if names.is_empty() {
            return Ok(EntityMatcher {
                options,
                ..EntityMatcher::default()
            });
        }
        // Whole words need every candidate (overlapping search, standard
        // semantics): "Par" inside "Paris" must not hide a later "Paris".
        // Otherwise any match will do, and leftmost-first semantics let the
        // automaton use its SIMD prefilter (several times faster).
        let kind = if options.whole_words {
            MatchKind::Standard
        } else {
            MatchKind::LeftmostFirst
        };
        let automaton = AhoCorasickBuilder::new()
            .ascii_case_insensitive(options.ignore_ascii_case)
            .match_kind(kind)
            .build(&names)?;
        Ok(EntityMatcher {
            entities: names,
            automaton: Some(automaton),
            options,
        })
    }

    /// The entity names, in the order given (deduplicated).
    pub fn entities(&self) -> &[String] {
        &self.entities
    }

    /// The options the matcher was built with.
    pub fn options(&self) -> MatchOptions {
        self.options
    }

    /// Whether there are no entities (nothing ever matches).
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// Whether `text` mentions one of the entities.
    pub fn is_match(&self, text: &str) -> bool {
        self.find(text).is_some()
    }

    /// The first entity (by position in `text`) that `text` mentions.
    pub fn find(&self, text: &str) -> Option<&str> {
        let automaton = self.automaton.as_ref()?;
        if !self.options.whole_words {
            return automaton
                .find(text)
                .map(|m| self.entities[m.pattern().as_usize()].as_str());
        }
        automaton
            .find_overlapping_iter(text)
            .find(|m| is_word_boundary(text, m.start(), m.end()))
            .map(|m| self.entities[m.pattern().as_usize()].as_str())
    }
}

/// Whether `text[start..end]` is not glued to a word character on either side.
fn is_word_boundary(text: &str, start: usize, end: usize) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let before = text[..start].chars().next_back().is_some_and(word);
    let after = text[end..].chars().next().is_some_and(word);
    !before && !after
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(names: &[&str], options: MatchOptions) -> EntityMatcher {
        EntityMatcher::new(names.iter().map(|s| (*s).to_owned()), options)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_default_is_the_original_substring_test() {
        let m = matcher(&["foo", "New York"], MatchOptions::default());
        assert!(m.is_match("this is amazing! foo!"));
        assert!(m.is_match("food"), "substring, as `ne in text`");
        assert!(!m.is_match("FOO"), "case-sensitive, as `ne in text`");
        assert_eq!(m.find("in New York and foo"), Some("New York"));
        assert!(!m.is_match("this thing is ok."));
    }

    #[test]
    fn options_widen_or_narrow_the_match() {
        let loose = MatchOptions {
            ignore_ascii_case: true,
            ..MatchOptions::default()
        };
        assert!(matcher(&["Trump"], loose).is_match("TRUMP!"));
        let words = MatchOptions {
            whole_words: true,
            ..MatchOptions::default()
        };
        let m = matcher(&["Paris", "Par"], words);
        assert!(!m.is_match("Parisian cafés"));
        assert!(m.is_match("a Parisian in Paris."));
        assert!(m.is_match("Par"));
        assert!(!matcher(&["é"], words).is_match("café"));
    }

    #[test]
    fn empty_names_are_dropped() {
        let m = matcher(&["", ""], MatchOptions::default());
        assert!(m.is_empty());
        assert!(!m.is_match("anything"));
        assert!(!EntityMatcher::empty().is_match(""));
    }
}
