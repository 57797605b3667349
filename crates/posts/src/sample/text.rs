//! Text for the sample data: topic templates filled from [`super::vocab`].
//!
//! 1. [`Topic`]: news, politics, sports, technology, local life.
//! 2. [`Writer::post`]: a headline plus detail sentences, with the named
//!    entities it mentions (drawn with Zipf weights, so a few are very common
//!    and most are rare, as in real news).
//! 3. [`Writer::comment`]: a reply that often refers back to one of the post's
//!    entities, so comments read as replies to their post.

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

const POLITICS: &[&str] = &[
    "{pol} {says} {porg} will vote on {issue} {when}",
    "BREAKING: {porg} blocks {pol}'s plan on {issue}",
    "{pol} and {pol} clash over {issue} in {city}",
    "Why {issue} could decide the race in {city}",
    "{pol} meets {pol} in {country} as talks on {issue} stall",
    "Poll: {pct} of voters in {city} disapprove of {pol}",
    "{pol} signs executive order on {issue}",
    "{porg} to investigate {pol} over ties to {country}",
    "{pol} calls {porg} plan on {issue} \"{bad}\"",
    "Inside the fight over {issue}: what {pol} wants and why {porg} says no",
    "{pol} rallies supporters in {city} ahead of a vote on {issue}",
    "{pol}: \"We will not back down on {issue}\"",
    "Protesters gather outside {porg} in {city} over {issue}",
    "{pol} picks a new ambassador to {country}",
    "{porg} releases its report on {issue}, and {pol} is not happy",
];

const NEWS: &[&str] = &[
    "{country} and {country} agree to talks after weeks of tension",
    "At least {n} dead after storms hit {city}",
    "{news} reports {pol} will travel to {country} {when}",
    "{porg} warns of rising tensions between {country} and {country}",
    "Wildfires force thousands to evacuate near {city}",
    "{co} shares fall {pct} after a report from {news}",
    "{pol} arrives in {country} for a summit with {pol}",
    "Federal judge in {city} blocks the new rule on {issue}",
    "{celeb} speaks out on {issue} during a visit to {city}",
    "Explosion in {city} under investigation, officials say",
    "{porg} approves an aid package for {country}",
    "Markets rally as the Federal Reserve holds rates steady",
    "{celeb} makes a surprise appearance in {city} {when}",
    "Strike at {co} plants enters its second week",
    "Earthquake shakes {country}; no tsunami warning issued",
];

const SPORTS: &[&str] = &[
    "{team} beat {team2} {score} behind {n} points from {ath}",
    "{ath} signs a {money} extension with {team}",
    "{ath} ruled out for {team} game against {team2} {when}",
    "{league} suspends {ath} for {small} games",
    "{team} fire their head coach after {small} straight losses",
    "{ath} breaks a record as {team} roll past {team2}",
    "Trade rumors: {team} are reportedly interested in {ath}",
    "{ath} on {league} playoffs: \"We believe in this group\"",
    "{team} clinch a playoff spot with a win over {team2} in {city}",
    "{league} announces new rules after controversy in {team} game",
    "{ath} and {celeb} spotted together at {team} game",
    "{ath} returns from injury as {team} face {team2} in {city}",
];

const TECH: &[&str] = &[
    "{co} unveils a new push into {thing} at an event in {city}",
    "{tech} {says} {thing} will change everything within {small} years",
    "{co} faces a {porg} probe over {thing}",
    "{co} to lay off {big} workers as spending on {thing} grows",
    "{tech} confirms {co} is working on {thing}",
    "{porg} sues {co} over {thing}",
    "Why {thing} matters more than you think, according to {tech}",
    "{co} stock jumps {pct} after an earnings beat",
    "{co} and {co} announce a partnership on {thing}",
    "Report: {co} paid {money} to settle a case over {thing}",
    "{tech} and {tech} trade barbs over {thing}",
    "{co} opens a new office in {city} focused on {thing}",
];

const LOCAL: &[&str] = &[
    "{lorg} votes to fund {lthing} on {local}",
    "Heads up: {lthing} on {local} {when}",
    "{lorg} is looking for volunteers for {lthing} this Saturday at {local}",
    "Anyone know what's going on with {lthing} near {local}?",
    "{lorg} in {city} warns residents about {lthing}",
    "Great turnout at {lthing} in {local} {when}!",
    "Road closed near {local} after {lthing}, {lorg} says",
    "{lorg} meeting {when}: {lthing} and {lthing} on the agenda",
    "Shoutout to {lorg} for helping with {lthing} at {local}",
    "Is it just me or is {lthing} on {local} getting worse?",
];

const DETAILS: &[(&str, &str)] = &[
    ("politics", "{pol} {says} the plan would cost {money}."),
    ("politics", "Critics say the move puts {issue} at risk."),
    ("politics", "A final vote is expected {when}."),
    (
        "politics",
        "{porg} did not respond to a request for comment.",
    ),
    ("politics", "Aides to {pol} said talks would continue."),
    (
        "politics",
        "It is the latest clash between {pol} and {porg}.",
    ),
    (
        "news",
        "Officials in {city} said more details would follow.",
    ),
    ("news", "{news} first reported the story {when}."),
    ("news", "Witnesses described a chaotic scene."),
    ("news", "Here's what we know so far."),
    (
        "news",
        "{porg} said it was monitoring the situation in {country}.",
    ),
    (
        "sports",
        "{ath} finished with {n} points and {small} assists.",
    ),
    ("sports", "{team} host {team2} next."),
    ("sports", "Fans in {city} were not happy."),
    ("sports", "{team} are now {small}-{small} on the season."),
    ("tech", "The rollout begins in {country} {when}."),
    ("tech", "{tech} announced the news on Twitter."),
    ("tech", "Shares were up {pct} in early trading."),
    ("tech", "Privacy groups and {porg} have raised concerns."),
    ("local", "Please share!"),
    ("local", "Details are on {lorg} website."),
    ("local", "Bring the kids!"),
    ("local", "Stay safe everyone."),
];

const COMMENTS: &[&str] = &[
    "{ref} has no idea what they're doing.",
    "Finally someone is talking about this.",
    "This is {good}.",
    "This is {bad}.",
    "I can't believe {ref} said that.",
    "Source?",
    "lol",
    "Same thing happened in {city} last year.",
    "Who else thinks {ref} is overrated?",
    "{ref} deserves way more credit for this.",
    "Not surprised at all.",
    "Can we talk about how {bad} the coverage from {news} has been?",
    "I live in {city} and nobody here cares about this.",
    "Wait, is this real?",
    "Great reporting, thank you.",
    "The comments here are wild.",
    "What does this mean for {city}?",
    "{ref} again? Every single day.",
    "Honestly {ref} is the only one making sense.",
    "Read the article before commenting, people.",
    "This aged well.",
    "So much for {issue}.",
    "And yet {porg} does nothing.",
    "My cousin works for {co} and says this is true.",
    "Interesting. I didn't know that about {ref}.",
    "{ref} should be ashamed.",
    "Good for {ref}!",
    "Why is nobody asking {ref} about this?",
    "Prayers for everyone in {city}.",
    "{ref} is going to regret this.",
    "Nobody in {city} asked for this.",
    "I remember when {ref} said the opposite.",
    "Can someone explain what {ref} actually wants here?",
    "This thread is full of people who never met anyone from {city}.",
    "{news} is already spinning this.",
    "The real story is {issue}, not this.",
    "Every time {ref} is in the news it's something like this.",
    "Bookmarking this for later.",
    "Give it a week and everyone will forget.",
    "Can't believe this is only getting {n} likes.",
    "Told you so.",
];

const TOPIC_COMMENTS: &[(&str, &str)] = &[
    ("politics", "Vote them all out."),
    ("politics", "Call your representatives about {issue}."),
    ("politics", "{ref} is lying and everyone knows it."),
    ("politics", "Both parties are the same on {issue}."),
    ("politics", "{pol} said the exact opposite last year."),
    ("news", "Thoughts with the families."),
    ("news", "{news} had this story hours ago."),
    ("sports", "{ref} is the GOAT, don't @ me"),
    ("sports", "Refs were {bad} tonight."),
    ("sports", "{team} in {small}, calling it now."),
    ("sports", "{team} need to trade for {ath} already."),
    (
        "tech",
        "I switched from {co} years ago and never looked back.",
    ),
    ("tech", "{ref} just wants your data."),
    ("tech", "Can't wait to try it."),
    ("tech", "How is this even legal?"),
    ("local", "Does anyone know if {local} is still closed?"),
    ("local", "Thanks to {lorg} for organizing this!"),
    ("local", "We went last year and loved it."),
    ("local", "The traffic on {local} is already terrible."),
    (
        "politics",
        "This is what happens when nobody reads the bill.",
    ),
    (
        "politics",
        "Imagine if {pol} spent this much energy on {issue}.",
    ),
    ("politics", "{ref} won't last the year, mark my words."),
    ("news", "Praying for {city} tonight."),
    ("news", "Why is {news} the only outlet covering this?"),
    ("news", "Wait until {porg} gets involved."),
    ("news", "This is going to get worse before it gets better."),
    ("news", "My sister lives near {city}, she says it's bad."),
    ("sports", "Worst officiating I've seen all season."),
    ("sports", "{ath} carried this team again."),
    ("sports", "As a {team} fan this hurts."),
    ("sports", "{ref} in the clutch, as always."),
    ("tech", "{co} will just copy this in a year."),
    ("tech", "My phone already does this."),
    ("tech", "Remember when {tech} promised {thing} by now?"),
    ("tech", "Another subscription, great."),
    ("local", "Finally! {local} needed this."),
    ("local", "Does anyone know where to park near {local}?"),
    ("local", "Call {lorg}, they're usually quick."),
    (
        "local",
        "Moved here two years ago and this keeps happening.",
    ),
];

/// Words that may open a comment.
const OPENERS: &[&str] = &[
    "Honestly, ",
    "Yeah, ",
    "Wow. ",
    "Ok but ",
    "As someone from {city}, ",
    "Lol ",
    "Hot take: ",
    "Not gonna lie, ",
    "Sad to say, ",
    "Exactly. ",
    "Ugh. ",
    "Well, ",
    "To be fair, ",
    "Serious question: ",
    "Update: ",
    "Same here. ",
    "Hmm. ",
    "Agreed. ",
];

/// Words that may close a comment.
const CLOSERS: &[&str] = &[
    " Just my two cents.",
    " Sad.",
    " Unreal.",
    " Let that sink in.",
    " Change my mind.",
    " Wild times.",
    " Thanks for posting.",
    " Anyway.",
    " Can't make this up.",
    " Stay tuned.",
    " Not the first time.",
    " We'll see.",
];

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
