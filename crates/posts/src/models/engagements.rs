//! Engagement counts: the three platform shapes of the pydantic union.
//!
//! 1. [`TwitterEngagements`], [`RedditEngagements`], [`FacebookEngagements`].
//! 2. [`Engagements`]: the union. It serializes as the bare inner object, and
//!    deserializes in one pass over the map (no buffering, unlike
//!    `#[serde(untagged)]`), choosing the shape like pydantic's smart union:
//!    the shape whose fields are all present; with several, the one with the
//!    most fields (Twitter before Reddit on a tie, the union's order).
//! 3. Counts must be non-negative integers (integral floats such as `3.0`
//!    are accepted, as pydantic's lax mode does); errors name the field.

use serde::{de, Deserialize, Deserializer, Serialize};
use std::fmt;

/// Engagement counts of a tweet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TwitterEngagements {
    /// Number of retweets.
    pub retweet: u64,
    /// Number of likes.
    pub like: u64,
    /// Number of replies.
    pub comment: u64,
    /// Number of shares (quote tweets).
    pub share: u64,
}

/// Engagement counts of a Reddit post or comment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RedditEngagements {
    /// Number of upvotes.
    pub upvote: u64,
    /// Number of downvotes.
    pub downvote: u64,
    /// Number of comments.
    pub comment: u64,
    /// Number of awards.
    pub award: u64,
}

/// Engagement counts (reactions) of a Facebook post or comment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FacebookEngagements {
    /// "Like" reactions.
    pub like: u64,
    /// "Love" reactions.
    pub love: u64,
    /// "Care" reactions.
    pub care: u64,
    /// "Haha" reactions.
    pub haha: u64,
    /// "Wow" reactions.
    pub wow: u64,
    /// "Sad" reactions.
    pub sad: u64,
    /// "Angry" reactions.
    pub angry: u64,
    /// Number of comments.
    pub comment: u64,
    /// Number of shares.
    pub share: u64,
}

/// Engagement counts in one of the three platform shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Engagements {
    /// `{retweet, like, comment, share}`.
    Twitter(TwitterEngagements),
    /// `{upvote, downvote, comment, award}`.
    Reddit(RedditEngagements),
    /// `{like, love, care, haha, wow, sad, angry, comment, share}`.
    Facebook(FacebookEngagements),
}

/// The keys of all shapes, in one table: the index is the slot in `Counts`.
pub(crate) const KEYS: [&str; 13] = [
    "retweet", "like", "comment", "share", "upvote", "downvote", "award", "love", "care", "haha",
    "wow", "sad", "angry",
];
const TWITTER: [usize; 4] = [0, 1, 2, 3];
const REDDIT: [usize; 4] = [4, 5, 2, 6];
const FACEBOOK: [usize; 9] = [1, 7, 8, 9, 10, 11, 12, 2, 3];

pub(crate) type Counts = [Option<u64>; 13];

fn get(c: &Counts, i: usize) -> u64 {
    c[i].unwrap_or(0)
}

impl Engagements {
    pub(crate) fn from_counts(c: &Counts) -> Result<Self, String> {
        let complete = |slots: &[usize]| slots.iter().all(|&i| c[i].is_some());
        if complete(&FACEBOOK) {
            return Ok(Self::Facebook(FacebookEngagements {
                like: get(c, 1),
                love: get(c, 7),
                care: get(c, 8),
                haha: get(c, 9),
                wow: get(c, 10),
                sad: get(c, 11),
                angry: get(c, 12),
                comment: get(c, 2),
                share: get(c, 3),
            }));
        }
        if complete(&TWITTER) {
            return Ok(Self::Twitter(TwitterEngagements {
                retweet: get(c, 0),
                like: get(c, 1),
                comment: get(c, 2),
                share: get(c, 3),
            }));
        }
        if complete(&REDDIT) {
            return Ok(Self::Reddit(RedditEngagements {
                upvote: get(c, 4),
                downvote: get(c, 5),
                comment: get(c, 2),
                award: get(c, 6),
            }));
        }
        // Name what is missing from the closest shape.
        let shapes: [(&str, &[usize]); 3] = [
            ("twitter", &TWITTER),
            ("reddit", &REDDIT),
            ("facebook", &FACEBOOK),
        ];
        let mut best = shapes[0];
        let mut best_missing = usize::MAX;
        for shape in shapes {
            let missing = shape.1.iter().filter(|&&i| c[i].is_none()).count();
            let present = shape.1.len() - missing;
            if present > 0 && missing < best_missing {
                best = shape;
                best_missing = missing;
            }
        }
        let missing: Vec<&str> = best
            .1
            .iter()
            .filter(|&&i| c[i].is_none())
            .map(|&i| KEYS[i])
            .collect();
        Err(format!(
            "engagements match no shape (twitter {{retweet, like, comment, share}}, reddit {{upvote, downvote, comment, award}}, facebook {{like, love, care, haha, wow, sad, angry, comment, share}}); closest is {} but it lacks `{}`",
            best.0,
            missing.join("`, `")
        ))
    }

    /// The number of comments, whatever the shape.
    pub fn comment(&self) -> u64 {
        match self {
            Self::Twitter(e) => e.comment,
            Self::Reddit(e) => e.comment,
            Self::Facebook(e) => e.comment,
        }
    }
}

/// One count: a non-negative integer; the error names the field.
struct Count(&'static str);

impl<'de> de::DeserializeSeed<'de> for Count {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_any(self)
    }
}

impl de::Visitor<'_> for Count {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a non-negative integer for engagement `{}`", self.0)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| {
            E::custom(format_args!(
                "engagement `{}` must be non-negative, got {v}",
                self.0
            ))
        })
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        if v.is_finite() && v.fract() == 0.0 && (0.0..1.8e19).contains(&v) {
            Ok(v as u64)
        } else if v < 0.0 {
            Err(E::custom(format_args!(
                "engagement `{}` must be non-negative, got {v}",
                self.0
            )))
        } else {
            Err(E::custom(format_args!(
                "engagement `{}` must be a whole number, got {v}",
                self.0
            )))
        }
    }
}

struct EngagementsVisitor;

impl<'de> de::Visitor<'de> for EngagementsVisitor {
    type Value = Engagements;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of engagement counts")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Engagements, A::Error> {
        let mut counts: Counts = [None; 13];
        while let Some(key) = map.next_key::<KeyOf>()? {
            match key.0 {
                Some(i) => {
                    if counts[i].is_some() {
                        return Err(de::Error::duplicate_field(KEYS[i]));
                    }
                    counts[i] = Some(map.next_value_seed(Count(KEYS[i]))?);
                }
                None => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Engagements::from_counts(&counts).map_err(de::Error::custom)
    }
}

/// A key of the engagements map: the slot index, or `None` for an unknown key
/// (ignored, as pydantic ignores extra fields). Borrowed, never allocated.
struct KeyOf(Option<usize>);

impl<'de> Deserialize<'de> for KeyOf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = KeyOf;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an engagement name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyOf, E> {
                Ok(KeyOf(KEYS.iter().position(|k| *k == v)))
            }
        }
        d.deserialize_identifier(V)
    }
}

impl<'de> Deserialize<'de> for Engagements {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EngagementsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn de(s: &str) -> Result<Engagements, String> {
        serde_json::from_str(s).map_err(|e| e.to_string())
    }

    #[test]
    fn picks_each_shape_and_round_trips() -> Result<(), String> {
        let t = de(r#"{"retweet":1,"like":2,"comment":3,"share":4}"#)?;
        assert!(matches!(
            t,
            Engagements::Twitter(TwitterEngagements {
                retweet: 1,
                like: 2,
                comment: 3,
                share: 4
            })
        ));
        let r = de(r#"{"upvote":5,"downvote":0,"comment":1,"award":0}"#)?;
        assert!(matches!(
            r,
            Engagements::Reddit(RedditEngagements { upvote: 5, .. })
        ));
        let f = de(
            r#"{"like":1,"love":2,"care":3,"haha":4,"wow":5,"sad":6,"angry":7,"comment":8,"share":9.0}"#,
        )?;
        assert!(matches!(
            f,
            Engagements::Facebook(FacebookEngagements {
                angry: 7,
                share: 9,
                ..
            })
        ));
        for e in [t, r, f] {
            let s = serde_json::to_string(&e).map_err(|e| e.to_string())?;
            assert_eq!(de(&s)?, e);
        }
        Ok(())
    }

    #[test]
    fn errors_name_the_field() {
        let e = de(r#"{"retweet":1,"like":-2,"comment":3,"share":4}"#)
            .err()
            .unwrap_or_default();
        assert!(e.contains("`like` must be non-negative"), "{e}");
        let e = de(r#"{"retweet":1,"like":2,"comment":3}"#)
            .err()
            .unwrap_or_default();
        assert!(
            e.contains("closest is twitter") && e.contains("`share`"),
            "{e}"
        );
        let e = de(r#"{"upvote":1.5,"downvote":0,"comment":0,"award":0}"#)
            .err()
            .unwrap_or_default();
        assert!(e.contains("`upvote` must be a whole number"), "{e}");
    }
}
