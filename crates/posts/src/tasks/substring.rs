//! `tasks.substring_matches_by_platform(match, from_, to)`: how many posts
//! of each platform in a time window contain a string.
//!
//! One parameterized statement (`created_at BETWEEN ?1 AND ?2`, both ends
//! included, compared as text as the original did) reads each post's
//! platform and text in one pass; a post matches when its text, lowercased,
//! contains `match`. As in the original (`match in x.lower()`), `match`
//! itself is not lowercased: `"trump"` finds "Trump", `"Trump"` finds
//! nothing. Platforms without a match are left out, as pandas' `groupby`
//! left them out; `total_rows` counts every post in the window.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{PostsConfig, TasksError};
use crate::db;

/// The posts in the window: their platform and text.
const SQL: &str = "SELECT platform, post_blob ->> '$.text' FROM posts \
                   WHERE created_at BETWEEN ?1 AND ?2";

/// What `tasks.substring_matches_by_platform` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlatformCounts {
    /// Matching posts per platform (platforms with none are absent).
    pub by_platform: BTreeMap<String, u64>,
    /// Every post in the window, matching or not.
    pub total_rows: u64,
}

impl PlatformCounts {
    /// `{"facebook": 77, …, "total_rows": 379}`, the original's shape.
    pub fn into_json(self) -> Map<String, Value> {
        let mut out: Map<String, Value> = self
            .by_platform
            .into_iter()
            .map(|(platform, n)| (platform, Value::from(n)))
            .collect();
        out.insert("total_rows".to_owned(), Value::from(self.total_rows));
        out
    }
}

/// Count the posts created between `from` and `to` (inclusive) whose
/// lowercased text contains `needle`, per platform.
///
/// # Errors
/// [`TasksError::Db`] when the database cannot be opened, [`TasksError::Sql`]
/// when it cannot be read (e.g. no `posts` table).
pub fn substring_matches_by_platform(
    config: &PostsConfig,
    needle: &str,
    from: &str,
    to: &str,
) -> Result<PlatformCounts, TasksError> {
    let conn = db::open_read_only(&config.db_path)?;
    let mut stmt = conn.prepare(SQL).map_err(TasksError::sql)?;
    let mut rows = stmt.query([from, to]).map_err(TasksError::sql)?;
    let mut counts = PlatformCounts::default();
    while let Some(row) = rows.next().map_err(TasksError::sql)? {
        counts.total_rows += 1;
        let Some(text) = row
            .get_ref(1)
            .map_err(TasksError::sql)?
            .as_str_or_null()
            .ok()
            .flatten()
        else {
            continue;
        };
        if !contains_lowercased(text, needle) {
            continue;
        }
        // A post without a platform matches but has no group (pandas drops
        // NaN keys).
        if let Some(platform) = row
            .get_ref(0)
            .map_err(TasksError::sql)?
            .as_str_or_null()
            .ok()
            .flatten()
        {
            match counts.by_platform.get_mut(platform) {
                Some(n) => *n += 1,
                None => {
                    counts.by_platform.insert(platform.to_owned(), 1);
                }
            }
        }
    }
    Ok(counts)
}

/// Whether `text.to_lowercase()` contains `needle`, without allocating for
/// ASCII text.
fn contains_lowercased(text: &str, needle: &str) -> bool {
    if text.is_ascii() {
        if needle.bytes().any(|b| b.is_ascii_uppercase()) || !needle.is_ascii() {
            // Lowercased ASCII has no uppercase letters, and no non-ASCII.
            return needle.is_empty();
        }
        let (hay, pat) = (text.as_bytes(), needle.as_bytes());
        return pat.is_empty()
            || hay
                .windows(pat.len())
                .any(|w| w.iter().zip(pat).all(|(h, p)| h.to_ascii_lowercase() == *p));
    }
    text.to_lowercase().contains(needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercases_the_text_not_the_needle() {
        assert!(contains_lowercased("Donald TRUMP said", "trump"));
        assert!(!contains_lowercased("Donald Trump said", "Trump"));
        assert!(contains_lowercased("anything", ""));
        assert!(contains_lowercased("Ünïcode TRUMP", "trump"));
        assert!(contains_lowercased("ÜBER", "über"));
        assert!(!contains_lowercased("short", "longer needle"));
    }
}
