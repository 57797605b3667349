//! Chunking: decides, token by token, what may be part of a name (using the
//! case mode of each clause, sentence-initial rules and the phrase table),
//! then groups name tokens into candidate chunks joined by connectors.

use super::lexicon::{Lexicon, Phrase};
use super::token::{lower_into, tokenize, Shape, TokKind, Token};

/// How capitalisation is to be read in a clause.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mode {
    /// Ordinary text: a capitalised word inside a sentence is a name.
    Normal,
    /// Title Case: every word is capitalised, so case says little.
    Title,
    /// ALL CAPS: case says nothing.
    Caps,
}

/// What a token may do in a chunk.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Role {
    /// Not part of a name.
    Other,
    /// A name word: may start and continue a chunk.
    Name,
    /// May continue a chunk but not start one ("deGrasse", a lone letter).
    Cont,
}

/// A phrase-table match over tokens `start..=end`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Match {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) phrase: Phrase,
    /// The match includes the last token's possessive `'s` ("Trader Joe's").
    pub(crate) full: bool,
    /// Matched in lower-case text: a chunk on its own.
    pub(crate) lower: bool,
}

/// A candidate chunk: tokens `a..=b`, and the phrase match when the chunk is
/// exactly one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chunk {
    pub(crate) a: usize,
    pub(crate) b: usize,
    pub(crate) single: Option<Match>,
}

/// Reusable buffers for one extraction.
#[derive(Default)]
pub(crate) struct Scratch {
    pub(crate) toks: Vec<Token>,
    arena: String,
    ranges: Vec<(u32, u32)>,
    pub(crate) modes: Vec<Mode>,
    pub(crate) roles: Vec<Role>,
    matches: Vec<Match>,
    /// Per token: 1 + index into `matches` of a match starting there, or 0.
    match_at: Vec<u32>,
    pub(crate) chunks: Vec<Chunk>,
    key: String,
    tmp: String,
}

/// Short words that Title Case headlines leave in lower case.
const TITLE_FUNCTION_WORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "but", "nor", "of", "in", "on", "at", "to", "for", "by", "with",
    "from", "as", "vs", "vs.",
];

impl Scratch {
    /// Lower-case surface of token `i`, including a possessive `'s`.
    pub(crate) fn low(&self, i: usize) -> &str {
        let (a, b) = self.ranges[i];
        &self.arena[a as usize..b as usize]
    }

    /// Lower-case token without a possessive `'s`.
    pub(crate) fn core(&self, i: usize) -> &str {
        let l = self.low(i);
        if self.toks[i].possessive {
            l.get(..l.len().saturating_sub(2)).unwrap_or(l)
        } else {
            l
        }
    }

    /// Lower-case token without possessive and without a trailing dot.
    pub(crate) fn bare(&self, i: usize) -> &str {
        let c = self.core(i);
        c.strip_suffix('.').unwrap_or(c)
    }

    /// Whether token `i` is a word (or `&`) that may sit inside a phrase.
    fn phrase_tok(&self, i: usize) -> bool {
        matches!(
            self.toks[i].kind,
            TokKind::Word | TokKind::Number | TokKind::Amp
        )
    }

    /// Tokenizes `text` and finds the candidate chunks.
    pub(crate) fn run(&mut self, lex: &Lexicon, text: &str) {
        tokenize(text, &mut self.toks);
        self.lowercase(text);
        self.find_modes(lex);
        self.find_matches(lex);
        self.assign_roles(lex);
        self.assemble(lex);
    }

    fn lowercase(&mut self, text: &str) {
        self.arena.clear();
        self.ranges.clear();
        for t in &self.toks {
            let a = self.arena.len() as u32;
            if matches!(t.kind, TokKind::Word | TokKind::Number | TokKind::Amp) {
                lower_into(&text[t.start..t.full_end], &mut self.tmp);
                self.arena.push_str(&self.tmp);
            }
            self.ranges.push((a, self.arena.len() as u32));
        }
    }

    /// Splits the tokens into clauses and decides each clause's mode.
    fn find_modes(&mut self, lex: &Lexicon) {
        let n = self.toks.len();
        self.modes.clear();
        self.modes.resize(n, Mode::Normal);
        let mut s = 0;
        while s < n {
            let mut e = s + 1;
            while e < n && !(self.toks[e].sent_start && self.toks[e].kind == TokKind::Word) {
                e += 1;
            }
            let mode = self.clause_mode(lex, s, e);
            for m in &mut self.modes[s..e] {
                *m = mode;
            }
            s = e;
        }
    }

    fn clause_mode(&self, lex: &Lexicon, s: usize, e: usize) -> Mode {
        let mut words = 0usize;
        let mut upper = 0usize;
        let mut all_capish = true;
        let mut later = 0usize;
        let mut later_common = 0usize;
        for i in s..e {
            let t = &self.toks[i];
            if t.kind != TokKind::Word || t.end - t.start < 2 {
                continue;
            }
            words += 1;
            match t.shape {
                Shape::Upper => upper += 1,
                Shape::Cap => {}
                _ => {
                    if all_capish
                        && !(t.shape == Shape::Lower
                            && TITLE_FUNCTION_WORDS.contains(&self.core(i)))
                    {
                        all_capish = false;
                    }
                    continue;
                }
            }
            if all_capish && words > 1 {
                later += 1;
                let w = self.core(i);
                if lex.is_common(w) && !lex.first_names.contains(w) {
                    later_common += 1;
                }
            }
        }
        if words >= 2 && upper * 10 >= words * 7 {
            Mode::Caps
        } else if words >= 2 && all_capish && later >= 1 && later_common * 2 >= later {
            Mode::Title
        } else {
            Mode::Normal
        }
    }

    /// Finds phrase-table matches, longest first, left to right.
    fn find_matches(&mut self, lex: &Lexicon) {
        let n = self.toks.len();
        self.matches.clear();
        self.match_at.clear();
        self.match_at.resize(n, 0);
        let mut i = 0;
        while i < n {
            if self.phrase_tok(i)
                && self.toks[i].kind != TokKind::Amp
                && (lex.phrase_first.contains(self.core(i))
                    || (self.toks[i].possessive && lex.phrase_first.contains(self.low(i))))
            {
                if let Some(m) = self.longest_match(lex, i) {
                    if self.accept(lex, &m) {
                        self.match_at[i] = self.matches.len() as u32 + 1;
                        self.matches.push(m);
                        i = m.end + 1;
                        continue;
                    }
                }
            }
            i += 1;
        }
    }

    fn longest_match(&mut self, lex: &Lexicon, i: usize) -> Option<Match> {
        let n = self.toks.len();
        let mut key = std::mem::take(&mut self.key);
        key.clear();
        let mut best = None;
        let mut j = i;
        while j < n && j - i < lex.max_phrase_len {
            if !self.phrase_tok(j) {
                break;
            }
            if j > i {
                let (p, t) = (&self.toks[j - 1], &self.toks[j]);
                if p.possessive || (t.sent_start && !p.dotted) {
                    break;
                }
                key.push(' ');
            }
            let before = key.len();
            key.push_str(self.core(j));
            if let Some(p) = lex.phrases.get(key.as_str()) {
                best = Some(self.new_match(i, j, *p, false));
            }
            if self.toks[j].possessive {
                key.truncate(before);
                key.push_str(self.low(j));
                if let Some(p) = lex.phrases.get(key.as_str()) {
                    best = Some(self.new_match(i, j, *p, true));
                }
            }
            j += 1;
        }
        self.key = key;
        best
    }

    fn new_match(&self, start: usize, end: usize, phrase: Phrase, full: bool) -> Match {
        let lower = (start..=end)
            .all(|k| self.toks[k].shape != Shape::Cap && self.toks[k].shape != Shape::Upper);
        Match {
            start,
            end,
            phrase,
            full,
            lower,
        }
    }

    /// Whether a match is believable given the case of its tokens.
    fn accept(&self, lex: &Lexicon, m: &Match) -> bool {
        let p = m.phrase;
        if p.kind.is_none() {
            return true;
        }
        if m.lower {
            return p.caseless;
        }
        let all_cap = (m.start..=m.end).all(|k| {
            let t = &self.toks[k];
            matches!(
                t.shape,
                Shape::Cap | Shape::Upper | Shape::MixedLower | Shape::Other
            ) || lex.connectors.contains(self.core(k))
                || lex.particles.contains(self.core(k))
        });
        if !all_cap {
            return p.caseless;
        }
        let single = m.start == m.end;
        match self.modes[m.start] {
            Mode::Normal => {
                let t = &self.toks[m.start];
                !(single
                    && t.sent_start
                    && t.shape == Shape::Cap
                    && !p.strong
                    && lex.is_listed_common(self.core(m.start)))
            }
            Mode::Title => !single || p.caseless || p.strong,
            Mode::Caps => p.caseless || p.strong,
        }
    }

    /// Decides the role of every token outside a match.
    fn assign_roles(&mut self, lex: &Lexicon) {
        let n = self.toks.len();
        self.roles.clear();
        self.roles.resize(n, Role::Other);
        for i in 0..n {
            self.roles[i] = self.role_of(lex, i);
        }
    }

    fn role_of(&self, lex: &Lexicon, i: usize) -> Role {
        let t = &self.toks[i];
        if t.kind != TokKind::Word || matches!(t.shape, Shape::Lower | Shape::Other) {
            return Role::Other;
        }
        let w = self.core(i);
        let bare = self.bare(i);
        if lex.split_words.contains(w) || lex.split_words.contains(bare) {
            return Role::Other;
        }
        let single_letter = t.end - t.start == 1;
        match (self.modes[i], t.shape) {
            (_, Shape::Lower | Shape::Other) => Role::Other,
            (_, Shape::MixedLower) => Role::Cont,
            (_, Shape::Cap) if single_letter => Role::Cont,
            (Mode::Normal, Shape::Upper) => {
                if lex.is_common(w) {
                    Role::Other
                } else {
                    Role::Name
                }
            }
            (Mode::Normal, _) if t.sent_start => self.initial_role(lex, i),
            (Mode::Normal, _) => Role::Name,
            (Mode::Title | Mode::Caps, _) => {
                if !lex.is_common(w)
                    || lex.titles.contains(bare)
                    || lex.royal.contains(bare)
                    || (self.modes[i] == Mode::Title && lex.first_names.contains(w))
                    || (lex.name_start.contains(w) && self.next_is_name(lex, i))
                {
                    Role::Name
                } else {
                    Role::Other
                }
            }
        }
    }

    /// Role of a capitalised word at the start of a sentence.
    fn initial_role(&self, lex: &Lexicon, i: usize) -> Role {
        let w = self.core(i);
        let bare = self.bare(i);
        if lex.titles.contains(bare) || lex.royal.contains(bare) {
            return Role::Name;
        }
        if !lex.is_common(w) {
            return Role::Name;
        }
        if (lex.first_names.contains(w) || lex.name_start.contains(w)) && self.next_is_name(lex, i)
        {
            return Role::Name;
        }
        Role::Other
    }

    /// Whether token `i + 1` is a capitalised, non-ordinary word or starts a
    /// phrase match.
    fn next_is_name(&self, lex: &Lexicon, i: usize) -> bool {
        let Some(t) = self.toks.get(i + 1) else {
            return false;
        };
        if self.toks[i].possessive || t.kind != TokKind::Word || t.sent_start {
            return false;
        }
        if !matches!(t.shape, Shape::Cap | Shape::Upper) {
            return false;
        }
        self.match_at.get(i + 1).is_some_and(|&m| m != 0) || !lex.is_common(self.core(i + 1))
    }

    /// Groups name tokens and matches into chunks.
    fn assemble(&mut self, lex: &Lexicon) {
        self.chunks.clear();
        let n = self.toks.len();
        let mut cur: Option<Chunk> = None;
        let mut i = 0;
        while i < n {
            let m = self.match_at[i];
            let (start, end, single) = if m != 0 {
                let mm = self.matches[m as usize - 1];
                if mm.phrase.kind.is_none() {
                    // A known non-entity phrase: skip it, it breaks chunks.
                    if let Some(c) = cur.take() {
                        self.chunks.push(c);
                    }
                    i = mm.end + 1;
                    continue;
                }
                (mm.start, mm.end, Some(mm))
            } else {
                match self.roles[i] {
                    Role::Name => (i, i, None),
                    Role::Cont if cur.is_some_and(|c| c.b + 1 == i) => (i, i, None),
                    Role::Cont => {
                        i += 1;
                        continue;
                    }
                    Role::Other => {
                        // A number after a road word: "Route 9", "Channel 8".
                        if let Some(c) = cur.as_mut() {
                            if self.toks[i].kind == TokKind::Number
                                && c.b + 1 == i
                                && lex.roads.contains(self.bare(c.b))
                            {
                                c.b = i;
                                c.single = None;
                            }
                        }
                        i += 1;
                        continue;
                    }
                }
            };
            let lower = single.is_some_and(|m| m.lower);
            match cur {
                Some(c)
                    if !lower
                        && !c.single.is_some_and(|m| m.lower)
                        && self.joins(lex, c.b, start) =>
                {
                    cur = Some(Chunk {
                        a: c.a,
                        b: end,
                        single: None,
                    });
                }
                _ => {
                    if let Some(c) = cur.take() {
                        self.chunks.push(c);
                    }
                    // An ordinal before a street word: "5th Avenue", "42nd Street".
                    let a = if single.is_none() && start > 0 && self.ordinal_street(lex, start) {
                        start - 1
                    } else {
                        start
                    };
                    cur = Some(Chunk { a, b: end, single });
                }
            }
            i = end + 1;
        }
        if let Some(c) = cur {
            self.chunks.push(c);
        }
    }

    /// Whether token `s` is a street word right after an ordinal number.
    fn ordinal_street(&self, lex: &Lexicon, s: usize) -> bool {
        let p = &self.toks[s - 1];
        let w = self.low(s - 1);
        p.kind == TokKind::Number
            && p.full_end + 1 == self.toks[s].start
            && ["st", "nd", "rd", "th"].iter().any(|x| w.ends_with(x))
            && lex.loc_suffix.contains(self.bare(s))
    }

    /// Whether a chunk ending at token `b` continues with a unit at `s`.
    fn joins(&self, lex: &Lexicon, b: usize, s: usize) -> bool {
        let left = &self.toks[b];
        if left.possessive {
            // "Rosie's Diner", "St. Mary's Church".
            let w = self.bare(s);
            return s == b + 1 && (lex.org_suffix.contains(w) || lex.loc_suffix.contains(w));
        }
        if s == b + 1 {
            return !self.toks[s].sent_start || left.dotted;
        }
        let right_cap = matches!(self.toks[s].shape, Shape::Cap | Shape::Upper);
        if !right_cap {
            return false;
        }
        let cue = |w: &str| {
            lex.org_suffix.contains(w)
                || lex.loc_suffix.contains(w)
                || lex.org_prefix.contains(w)
                || lex.royal.contains(w)
        };
        match s - b - 1 {
            1 => {
                let g = b + 1;
                let t = &self.toks[g];
                let w = self.core(g);
                match t.kind {
                    TokKind::Amp => matches!(left.shape, Shape::Cap | Shape::Upper),
                    TokKind::Word if t.shape == Shape::Lower => {
                        lex.particles.contains(w)
                            || (w == "of" && cue(self.bare(b)))
                            || (w == "for" && lex.org_suffix.contains(self.bare(b)))
                    }
                    _ => false,
                }
            }
            2 => {
                let (g1, g2) = (b + 1, b + 2);
                self.toks[g1].shape == Shape::Lower
                    && self.core(g1) == "of"
                    && self.toks[g2].shape == Shape::Lower
                    && self.core(g2) == "the"
                    && cue(self.bare(b))
            }
            _ => false,
        }
    }
}
