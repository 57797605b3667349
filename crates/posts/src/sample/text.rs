//! Text for the sample data: topic templates filled from [`super::vocab`].
//!
//! 1. [`Topic`]: news, politics, sports, technology, local life.
//! 2. [`Writer::post`]: a headline plus detail sentences, with the named
//!    entities it mentions (drawn with Zipf weights, so a few are very common
//!    and most are rare, as in real news).
//! 3. [`Writer::comment`]: a reply that often refers back to one of the post's
//!    entities, so comments read as replies to their post.

use super::templates::*;
use super::vocab::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// What a post is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Topic {
    News,
    Politics,
    Sports,
    Tech,
    Local,
}

impl Topic {
    pub(super) fn from_name(s: &str) -> Self {
        match s {
            "politics" => Self::Politics,
            "sports" => Self::Sports,
            "tech" => Self::Tech,
            "local" => Self::Local,
            _ => Self::News,
        }
    }
}

/// Which year's politicians are in the news.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Era {
    Y2017,
    Y2023,
}

/// A generated post.
pub(super) struct Draft {
    pub(super) headline: String,
    pub(super) details: String,
    pub(super) entities: Vec<&'static str>,
}

/// Fills templates with a seeded RNG.
pub(super) struct Writer<'a> {
    pub(super) rng: &'a mut ChaCha8Rng,
    pub(super) era: Era,
}

/// Index in `0..n` with probability ∝ 1 / (i + 1)^1.1 (Zipf-like).
pub(super) fn zipf(rng: &mut ChaCha8Rng, n: usize) -> usize {
    let w = |i: usize| 1.0 / ((i + 1) as f64).powf(1.1);
    let total: f64 = (0..n).map(w).sum();
    let mut x = rng.random::<f64>() * total;
    for i in 0..n {
        x -= w(i);
        if x <= 0.0 {
            return i;
        }
    }
    n.saturating_sub(1)
}

/// Upper-cases the first letter (templates may start with "the …").
fn capitalize(mut s: String) -> String {
    if let Some(first) = s.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    s
}

/// Lower-cases the first letter after an opener ("Honestly, this is…"),
/// unless the first word is a name or "I".
fn decapitalize_common(mut s: String) -> String {
    const COMMON: &[&str] = &[
        "This",
        "Finally",
        "Not",
        "Wait",
        "Great",
        "The",
        "What",
        "Read",
        "So",
        "And",
        "Same",
        "Can",
        "Why",
        "Good",
        "Interesting",
        "Nobody",
        "Every",
        "Give",
        "Bookmarking",
        "Told",
        "Prayers",
        "Vote",
        "Call",
        "Both",
        "Thoughts",
        "Refs",
        "Worst",
        "As",
        "My",
        "Another",
        "Remember",
        "Does",
        "We",
        "Moved",
        "Imagine",
        "Praying",
        "Thanks",
        "Source",
        "Who",
        "Honestly",
        "Can't",
        "Trade",
        "How",
    ];
    let first = s
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .next()
        .unwrap_or("");
    if COMMON.contains(&first) {
        if let Some(f) = s.get_mut(0..1) {
            f.make_ascii_lowercase();
        }
    }
    s
}

fn topic_name(t: Topic) -> &'static str {
    match t {
        Topic::News => "news",
        Topic::Politics => "politics",
        Topic::Sports => "sports",
        Topic::Tech => "tech",
        Topic::Local => "local",
    }
}

impl Writer<'_> {
    fn pick<'v>(&mut self, list: &[&'v str]) -> &'v str {
        list[self.rng.random_range(0..list.len())]
    }

    fn entity(&mut self, list: &[&'static str], seen: &mut Vec<&'static str>) -> &'static str {
        // Avoid repeating the same entity inside one text ("X and X clash").
        for _ in 0..8 {
            let e = list[zipf(self.rng, list.len())];
            if !seen.contains(&e) {
                seen.push(e);
                return e;
            }
        }
        let e = list[self.rng.random_range(0..list.len())];
        seen.push(e);
        e
    }

    /// Expands `{slot}`s of `template`, appending mentioned entities to `seen`.
    fn fill(
        &mut self,
        template: &str,
        refs: &[&'static str],
        seen: &mut Vec<&'static str>,
    ) -> String {
        let mut out = String::with_capacity(template.len() + 48);
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            let slot = &rest[open + 1..open + close];
            rest = &rest[open + close + 1..];
            let pols = match self.era {
                Era::Y2017 => POLITICIANS_2017,
                Era::Y2023 => POLITICIANS_2023,
            };
            let text: String = match slot {
                "pol" => self.entity(pols, seen).into(),
                "ath" => self.entity(ATHLETES, seen).into(),
                "tech" => self.entity(TECH_PEOPLE, seen).into(),
                "celeb" => self.entity(CELEBRITIES, seen).into(),
                "porg" => self.entity(POLITICAL_ORGS, seen).into(),
                "co" => self.entity(COMPANIES, seen).into(),
                "news" => self.entity(NEWS_ORGS, seen).into(),
                "team" | "team2" => self.entity(TEAMS, seen).into(),
                "league" => self.entity(LEAGUES, seen).into(),
                "lorg" => self.entity(LOCAL_ORGS, seen).into(),
                "country" => self.entity(COUNTRIES, seen).into(),
                "city" => self.entity(CITIES, seen).into(),
                "local" => self.entity(LOCAL_PLACES, seen).into(),
                "ref" if !refs.is_empty() => refs[zipf(self.rng, refs.len())].into(),
                "ref" => self.entity(pols, seen).into(),
                "issue" => self.pick(ISSUES).into(),
                "thing" => self.pick(TECH_THINGS).into(),
                "lthing" => self.pick(LOCAL_THINGS).into(),
                "says" => self.pick(SAYS).into(),
                "when" => self.pick(WHEN).into(),
                "good" => self.pick(GOOD).into(),
                "bad" => self.pick(BAD).into(),
                "n" => self.rng.random_range(3..45).to_string(),
                "small" => self.rng.random_range(2..9).to_string(),
                "big" => format!(
                    "{},{:03}",
                    self.rng.random_range(1..20),
                    self.rng.random_range(0..10) * 100
                ),
                "pct" => format!("{}%", self.rng.random_range(2..71)),
                "score" => {
                    let a = self.rng.random_range(90..131);
                    format!("{a}-{}", a - self.rng.random_range(1..25))
                }
                "money" => format!(
                    "${}.{} {}",
                    self.rng.random_range(1..99),
                    self.rng.random_range(0..10),
                    self.pick(&["million", "billion"])
                ),
                other => other.to_string(),
            };
            out.push_str(&text);
        }
        out.push_str(rest);
        out
    }

    /// A post on `topic`: headline, 0–2 detail sentences, entities mentioned.
    pub(super) fn post(&mut self, topic: Topic) -> Draft {
        let list = match topic {
            Topic::News => NEWS,
            Topic::Politics => POLITICS,
            Topic::Sports => SPORTS,
            Topic::Tech => TECH,
            Topic::Local => LOCAL,
        };
        let mut seen = Vec::new();
        let template = self.pick(list);
        let headline = self.fill(template, &[], &mut seen);
        let name = topic_name(topic);
        let pool: Vec<&str> = DETAILS
            .iter()
            .filter(|d| d.0 == name)
            .map(|d| d.1)
            .collect();
        let mut details = String::new();
        let mut used: Vec<&str> = Vec::new();
        for _ in 0..self.rng.random_range(0..3) {
            let t = self.pick(&pool);
            if used.contains(&t) {
                continue;
            }
            used.push(t);
            let sentence = capitalize(self.fill(t, &[], &mut seen));
            if !details.is_empty() {
                details.push(' ');
            }
            details.push_str(&sentence);
        }
        let headline = capitalize(headline);
        Draft {
            headline,
            details,
            entities: seen,
        }
    }

    /// A comment replying to a post about `topic` that mentioned `refs`.
    pub(super) fn comment(&mut self, topic: Topic, refs: &[&'static str]) -> String {
        let name = topic_name(topic);
        let template = if self.rng.random_bool(0.35) {
            let pool: Vec<&str> = TOPIC_COMMENTS
                .iter()
                .filter(|d| d.0 == name)
                .map(|d| d.1)
                .collect();
            self.pick(&pool)
        } else {
            self.pick(COMMENTS)
        };
        let mut seen = Vec::new();
        let mut text = String::new();
        if self.rng.random_bool(0.35) {
            let opener = self.pick(OPENERS);
            text.push_str(&self.fill(opener, refs, &mut seen));
        }
        let core = self.fill(template, refs, &mut seen);
        if text.is_empty() || text.ends_with(". ") || text.ends_with(": ") {
            text.push_str(&capitalize(core));
        } else {
            text.push_str(&decapitalize_common(core));
        }
        if self.rng.random_bool(0.3) {
            let tail = self.pick(COMMENTS);
            text.push(' ');
            text.push_str(&capitalize(self.fill(tail, refs, &mut seen)));
        }
        if self.rng.random_bool(0.25) {
            text.push_str(self.pick(CLOSERS));
        }
        let text = capitalize(text);
        if self.rng.random_bool(0.08) {
            return text.to_lowercase();
        }
        text
    }

    /// A hashtag made from an entity (`New York City` → `#NewYorkCity`).
    pub(super) fn hashtag(entity: &str) -> String {
        let mut s = String::from("#");
        s.extend(entity.chars().filter(|c| c.is_alphanumeric()));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn entities_are_skewed_and_comments_refer_back() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut w = Writer {
            rng: &mut rng,
            era: Era::Y2023,
        };
        let mut counts = std::collections::HashMap::new();
        let mut referring = 0;
        for _ in 0..2000 {
            let d = w.post(Topic::Politics);
            assert!(!d.headline.contains('{'), "{}", d.headline);
            for e in &d.entities {
                *counts.entry(*e).or_insert(0u32) += 1;
            }
            let c = w.comment(Topic::Politics, &d.entities);
            if d.entities.iter().any(|e| c.contains(e)) {
                referring += 1;
            }
        }
        let mut v: Vec<u32> = counts.values().copied().collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        // The most frequent entity is far more common than the median one.
        assert!(v[0] > 5 * v[v.len() / 2], "{v:?}");
        assert!(referring > 400, "{referring}");
    }
}
