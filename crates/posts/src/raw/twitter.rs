//! Twitter raw format: JSON Lines of API v2 tweet lookups.
//!
//! Each line: `{"data": {id, author_id, created_at, text, conversation_id?,
//! public_metrics?, entities?: {urls: [{expanded_url}]}, referenced_tweets?},
//! "includes": {"users": [...]}}`. A bare tweet object (no `data` wrapper) is
//! accepted too.
//!
//! Mapping: `retweet` ← `retweet_count`, `like` ← `like_count`, `comment` ←
//! `reply_count`, `share` ← `quote_count`. A tweet with a `replied_to`
//! reference is a `comment` whose `post_id` is its conversation's root and
//! whose `parent_id` is the tweet it answers (none when that is the root).

use super::{order_threads, Hasher, Loaded, RawError};
use crate::models::datetime::parse_datetime;
use crate::models::{
    check_http_url, ContentItem, Engagements, ItemType, Platform, TwitterEngagements,
};
use serde::Deserialize;
use std::path::Path;

const P: Platform = Platform::Twitter;

#[derive(Deserialize)]
struct Line {
    data: Option<Tweet>,
    #[serde(flatten)]
    bare: Option<Tweet>,
}

#[derive(Deserialize)]
struct Tweet {
    #[serde(deserialize_with = "id_string")]
    id: String,
    #[serde(default, deserialize_with = "opt_id_string")]
    author_id: Option<String>,
    #[serde(default, deserialize_with = "opt_id_string")]
    conversation_id: Option<String>,
    created_at: String,
    text: String,
    #[serde(default)]
    public_metrics: Metrics,
    #[serde(default)]
    entities: Option<Entities>,
    #[serde(default)]
    referenced_tweets: Vec<Reference>,
}

#[derive(Deserialize, Default)]
struct Metrics {
    #[serde(default)]
    retweet_count: u64,
    #[serde(default)]
    reply_count: u64,
    #[serde(default)]
    like_count: u64,
    #[serde(default)]
    quote_count: u64,
}

#[derive(Deserialize)]
struct Entities {
    #[serde(default)]
    urls: Vec<Url>,
}

#[derive(Deserialize)]
struct Url {
    #[serde(default)]
    expanded_url: Option<String>,
}

#[derive(Deserialize)]
struct Reference {
    #[serde(rename = "type")]
    kind: String,
    #[serde(deserialize_with = "id_string")]
    id: String,
}

/// Ids arrive as strings in API v2, as numbers in some dumps.
fn id_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        S(String),
        N(u64),
    }
    Ok(match Id::deserialize(d)? {
        Id::S(s) => s,
        Id::N(n) => n.to_string(),
    })
}

fn opt_id_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    id_string(d).map(Some)
}

/// Loads a Twitter JSONL file; blank lines are skipped.
///
/// # Errors
/// [`RawError`] naming the file and line of a malformed line.
pub fn load(path: &Path, hasher: &Hasher) -> Result<Loaded, RawError> {
    let data = std::fs::read(path).map_err(|e| RawError::new(path, None, e))?;
    let mut out = Vec::new();
    let mut skipped = 0;
    let text = super::utf8_text(path, &data)?;
    for (i, raw) in text.split('\n').enumerate() {
        let line = i as u64 + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(raw).map_err(|e| {
            RawError::new(path, Some(line), format_args!("not a tweet object: {e}"))
        })?;
        let Some(t) = parsed.data.or(parsed.bare) else {
            return Err(RawError::new(path, Some(line), "no `data` tweet object"));
        };
        let text = t.text.trim();
        if text.is_empty() {
            skipped += 1;
            continue;
        }
        let created_at = parse_datetime(&t.created_at).map_err(|e| {
            RawError::new(path, Some(line), format_args!("field `created_at`: {e}"))
        })?;
        let replied_to = t
            .referenced_tweets
            .iter()
            .find(|r| r.kind == "replied_to")
            .map(|r| r.id.as_str());
        let (kind, root, parent) = match replied_to {
            Some(p) => {
                let root = t.conversation_id.clone().unwrap_or_else(|| p.to_string());
                let parent = (p != root).then(|| hasher.item_id(P, p));
                (ItemType::Comment, root, parent)
            }
            None => (ItemType::Post, t.id.clone(), None),
        };
        let urls: Vec<String> = t
            .entities
            .iter()
            .flat_map(|e| &e.urls)
            .filter_map(|u| u.expanded_url.clone())
            .filter(|u| check_http_url(u).is_ok())
            .collect();
        let m = &t.public_metrics;
        let item = ContentItem {
            id: hasher.item_id(P, &t.id),
            post_id: (kind == ItemType::Comment).then(|| hasher.item_id(P, &root)),
            parent_id: parent,
            title: None,
            text: text.to_string(),
            author_name_hash: hasher.author(P, t.author_id.as_deref().unwrap_or("unknown")),
            kind,
            embedded_urls: (!urls.is_empty()).then_some(urls),
            created_at,
            engagements: Engagements::Twitter(TwitterEngagements {
                retweet: m.retweet_count,
                like: m.like_count,
                comment: m.reply_count,
                share: m.quote_count,
            }),
        };
        out.push((root, item));
    }
    Ok(Loaded {
        items: order_threads(out),
        skipped,
    })
}
