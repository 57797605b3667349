//! The ranking challenge's data models, JSON-compatible both ways with the
//! original pydantic models.
//!
//! 1. [`ContentItem`], [`Session`], [`RankingRequest`], [`RankingResponse`],
//!    [`NewItem`], plus [`Platform`] and [`ItemType`].
//! 2. [`engagements`]: the three engagement shapes and their union.
//! 3. [`survey`]: [`SurveyResponse`] and its answer enums, range-checked.
//! 4. [`datetime`]: every datetime spelling the challenge sends.
//! 5. [`from_json`]: parse with errors that carry the JSON path
//!    (`items[3].engagements: engagement `like` must be non-negative, got -1`).
//! 6. [`view`]: [`view::RankingRequestView`], the `/rank` fast path: the
//!    same validation as [`RankingRequest`], keeping only the items' ids and
//!    texts, borrowed.
//!
//! Deserialization is built for the `/rank` hot path: keys are matched as
//! borrowed strings, engagements are read in one pass without buffering, and
//! the datetime parser does not allocate. Unknown fields are ignored, as
//! pydantic does; `None` serializes as `null`, as `model_dump_json` does.

pub mod datetime;
pub mod engagements;
pub mod survey;
pub mod view;

pub use engagements::{Engagements, FacebookEngagements, RedditEngagements, TwitterEngagements};
pub use survey::SurveyResponse;

use chrono::{DateTime, Utc};
use serde::{de, Deserialize, Deserializer, Serialize};
use std::fmt;

/// A social-media platform of the challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Twitter / X.
    Twitter,
    /// Reddit.
    Reddit,
    /// Facebook.
    Facebook,
}

impl Platform {
    /// All platforms, in the order files and seeding visit them.
    pub const ALL: [Platform; 3] = [Platform::Facebook, Platform::Reddit, Platform::Twitter];

    /// The lowercase name used in JSON, file names and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Twitter => "twitter",
            Self::Reddit => "reddit",
            Self::Facebook => "facebook",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of [`Platform::from_str`](std::str::FromStr::from_str).
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown platform `{0}` (expected facebook, reddit or twitter)")]
pub struct UnknownPlatform(pub String);

impl std::str::FromStr for Platform {
    type Err = UnknownPlatform;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "twitter" => Ok(Self::Twitter),
            "reddit" => Ok(Self::Reddit),
            "facebook" => Ok(Self::Facebook),
            _ => Err(UnknownPlatform(s.to_string())),
        }
    }
}

/// Whether a content item is a post or a comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemType {
    /// A top-level post.
    Post,
    /// A comment (on Twitter: a reply shown under a tweet).
    Comment,
}

impl ItemType {
    /// `"post"` or `"comment"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "post",
            Self::Comment => "comment",
        }
    }
}

/// One piece of content in a feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentItem {
    /// A unique id of the item.
    pub id: String,
    /// For a comment, the id of the post it belongs to.
    #[serde(default)]
    pub post_id: Option<String>,
    /// For a threaded comment, the id of the comment it replies to.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// The title (Reddit posts only).
    #[serde(default)]
    pub title: Option<String>,
    /// The text, UTF-8, trimmed.
    pub text: String,
    /// A salted hash of the author's name.
    pub author_name_hash: String,
    /// `post` or `comment` (the JSON key is `type`).
    #[serde(rename = "type")]
    pub kind: ItemType,
    /// URLs embedded in the item: the key is required, the value may be `null`.
    #[serde(deserialize_with = "embedded_urls")]
    pub embedded_urls: Option<Vec<String>>,
    /// When the item was created (UTC).
    #[serde(with = "datetime")]
    pub created_at: DateTime<Utc>,
    /// Engagement counts, in the shape of the item's platform.
    pub engagements: Engagements,
}

/// The user's session a ranking request belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The participant's id.
    pub user_id: String,
    /// A salted hash of the participant's user name.
    pub user_name_hash: String,
    /// The experiment cohort.
    pub cohort: String,
    /// The platform of the feed.
    pub platform: Platform,
    /// The time of the request (UTC).
    #[serde(with = "datetime")]
    pub current_time: DateTime<Utc>,
}

/// A request to rank a feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankingRequest {
    /// The session.
    pub session: Session,
    /// The participant's survey answers, when known.
    #[serde(default)]
    pub survey: Option<SurveyResponse>,
    /// The items to rank.
    pub items: Vec<ContentItem>,
}

/// An item the ranker adds to the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewItem {
    /// The new item's id.
    pub id: String,
    /// Where the item can be fetched.
    #[serde(deserialize_with = "http_url")]
    pub url: String,
}

/// The ranker's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankingResponse {
    /// The ids of the request's items, in ranked order.
    pub ranked_ids: Vec<String>,
    /// Items to add, if any.
    #[serde(default)]
    pub new_items: Option<Vec<NewItem>>,
}

/// Checks an `HttpUrl` as pydantic would, without normalizing it: an
/// `http`/`https` scheme, a host, no whitespace, at most 2083 characters.
pub fn check_http_url(u: &str) -> Result<(), &'static str> {
    // Compared as bytes: `u[..8]` could cut a multi-byte character and panic.
    let lower_starts = |p: &str| {
        u.as_bytes()
            .get(..p.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(p.as_bytes()))
    };
    let rest = if lower_starts("https://") {
        &u[8..]
    } else if lower_starts("http://") {
        &u[7..]
    } else {
        return Err("URL scheme should be 'http' or 'https'");
    };
    if u.len() > 2083 {
        return Err("URL should have at most 2083 characters");
    }
    if u.chars().any(char::is_whitespace) {
        return Err("URL should not contain whitespace");
    }
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = rest[..host_end].rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err("URL should have a host");
    }
    Ok(())
}

fn http_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    check_http_url(&s)
        .map_err(|why| de::Error::custom(format_args!("invalid URL `{s}`: {why}")))?;
    Ok(s)
}

/// Required key, nullable value, each URL checked; errors name the index.
fn embedded_urls<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    struct Urls;
    impl<'de> de::Visitor<'de> for Urls {
        type Value = Option<Vec<String>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("null or a list of URLs")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(self)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(u) = seq.next_element::<String>()? {
                if let Err(why) = check_http_url(&u) {
                    return Err(de::Error::custom(format_args!(
                        "`embedded_urls[{}]` is not a valid URL (`{u}`): {why}",
                        out.len()
                    )));
                }
                out.push(u);
            }
            Ok(Some(out))
        }
    }
    d.deserialize_option(Urls)
}

/// A JSON input that does not fit a model; [`path`](Self::path) says where.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ModelError {
    path: String,
    message: String,
}

impl ModelError {
    /// The JSON path of the offending value, e.g. `items[3].engagements.like`
    /// (`.` for the whole document).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What was wrong there.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Parses JSON into a model; the error names the path of the bad value.
///
/// # Errors
/// [`ModelError`] for malformed JSON or a value the model refuses.
pub fn from_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ModelError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| ModelError {
        path: e.path().to_string(),
        message: e.into_inner().to_string(),
    })?;
    de.end().map_err(|e| ModelError {
        path: ".".to_string(),
        message: e.to_string(),
    })?;
    Ok(value)
}

#[cfg(test)]
mod tests;
