//! The top entities, kept in memory and refreshed in the background.
//!
//! 1. [`EntityCache`] holds the current [`EntityMatcher`] behind an
//!    [`ArcSwap`]: a request loads it without a lock or a round trip.
//! 2. [`EntityCache::refresh`] reads the key (by default
//!    [`SCHEDULED_TOP_ENTITIES_KEY`](crate::tasks::SCHEDULED_TOP_ENTITIES_KEY))
//!    through the result backend's `get_value`; the matcher is rebuilt only
//!    when the stored text changed. [`EntityCache::spawn_refresher`] does so
//!    every few seconds until shutdown.
//! 3. What the key may hold ([`parse_entities`]): the task's record
//!    `{"top_named_entities": [[entity, count], …], …}`; plain strings in
//!    the list are taken as entity names too. A missing key or a record of
//!    any other shape means **no entities** (feeds keep their order), logged
//!    once per change, never an error for the caller. A backend that cannot
//!    be reached keeps the last entities (stale rather than none) and is
//!    logged.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use celeriac::backend::ResultBackend;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::matcher::{EntityMatcher, MatchOptions};

/// Where the current entities came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Nothing read yet.
    NotLoaded,
    /// The key held a valid record.
    Record,
    /// The key does not exist.
    Missing,
    /// The key held something else.
    Malformed,
}

impl Source {
    /// `not_loaded`, `record`, `missing`, `malformed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::NotLoaded => "not_loaded",
            Source::Record => "record",
            Source::Missing => "missing",
            Source::Malformed => "malformed",
        }
    }
}

/// The current matcher and what is known about it.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The matcher requests use.
    pub matcher: EntityMatcher,
    /// Where it came from.
    pub source: Source,
    /// When the key was last read successfully.
    pub refreshed_at: Option<DateTime<Utc>>,
}

/// The top entities of one key, refreshed in the background.
#[derive(Debug)]
pub struct EntityCache {
    key: String,
    options: MatchOptions,
    current: ArcSwap<Snapshot>,
    /// The key's text at the last refresh, to rebuild only on change.
    last_text: Mutex<Option<Option<String>>>,
}

impl EntityCache {
    /// An empty cache for `key`, matching with `options`.
    pub fn new(key: impl Into<String>, options: MatchOptions) -> Self {
        EntityCache {
            key: key.into(),
            options,
            current: ArcSwap::from_pointee(Snapshot {
                matcher: EntityMatcher::empty(),
                source: Source::NotLoaded,
                refreshed_at: None,
            }),
            last_text: Mutex::new(None),
        }
    }

    /// The key this cache reads.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The current snapshot (a cheap, lock-free load).
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// Replace the entities with those of `text`, the key's value (`None`
    /// when the key is missing). Returns where they came from.
    pub fn apply(&self, text: Option<&str>) -> Source {
        let now = Some(Utc::now());
        {
            let mut last = self.last_text.lock().unwrap_or_else(|e| e.into_inner());
            let same = last.as_ref().is_some_and(|t| t.as_deref() == text);
            if same {
                let old = self.current.load();
                self.current.store(Arc::new(Snapshot {
                    matcher: old.matcher.clone(),
                    source: old.source,
                    refreshed_at: now,
                }));
                return old.source;
            }
            *last = Some(text.map(str::to_owned));
        }
        let (names, source) = match text {
            None => (Vec::new(), Source::Missing),
            Some(text) => match parse_entities(text) {
                Ok(names) => (names, Source::Record),
                Err(why) => {
                    tracing::warn!(key = %self.key, "ignoring the top entities: {why}");
                    (Vec::new(), Source::Malformed)
                }
            },
        };
        let (matcher, source) = match EntityMatcher::new(names, self.options) {
            Ok(m) => (m, source),
            Err(e) => {
                tracing::warn!(key = %self.key, "ignoring the top entities: {e}");
                (EntityMatcher::empty(), Source::Malformed)
            }
        };
        tracing::info!(
            key = %self.key,
            entities = matcher.entities().len(),
            source = source.as_str(),
            "top entities updated"
        );
        self.current.store(Arc::new(Snapshot {
            matcher,
            source,
            refreshed_at: now,
        }));
        source
    }

    /// Read the key through `backend` and apply it.
    ///
    /// # Errors
    /// When the backend cannot be read; the current entities stay.
    pub async fn refresh(&self, backend: &dyn ResultBackend) -> celeriac::Result<Source> {
        let text = backend.get_value(&self.key).await?;
        Ok(self.apply(text.as_deref()))
    }

    /// Refresh now, then every `every` until `shutdown` resolves, on a
    /// spawned task. Backend errors are logged (once until it recovers)
    /// and retried at the next tick.
    pub fn spawn_refresher(
        self: Arc<Self>,
        backend: Arc<dyn ResultBackend>,
        every: Duration,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            tokio::pin!(shutdown);
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tokio::select! {
                    () = &mut shutdown => break,
                    _ = ticks.tick() => {}
                }
                match self.refresh(backend.as_ref()).await {
                    Ok(_) if failing => {
                        tracing::info!(key = %self.key, "reading the top entities works again");
                        failing = false;
                    }
                    Ok(_) => {}
                    Err(e) if !failing => {
                        tracing::warn!(key = %self.key, "cannot read the top entities (keeping the last ones): {e}");
                        failing = true;
                    }
                    Err(_) => {}
                }
            }
        })
    }
}

/// The entity names of a stored record: the first element of each
/// `[entity, count]` pair of `top_named_entities` (or a plain string).
///
/// # Errors
/// A description of what is malformed.
pub fn parse_entities(text: &str) -> Result<Vec<String>, String> {
    let record: Value =
        serde_json::from_str(text).map_err(|e| format!("the value is not JSON: {e}"))?;
    let list = record
        .get("top_named_entities")
        .and_then(Value::as_array)
        .ok_or("the value has no `top_named_entities` list")?;
    list.iter()
        .enumerate()
        .map(|(i, item)| {
            let name = match item {
                Value::String(name) => Some(name),
                Value::Array(pair) => match pair.first() {
                    Some(Value::String(name)) => Some(name),
                    _ => None,
                },
                _ => None,
            };
            name.cloned().ok_or_else(|| {
                format!("`top_named_entities[{i}]` is neither [entity, count] nor a string")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_pairs_and_strings_parse() {
        let names = parse_entities(
            r#"{"top_named_entities": [["Donald Trump", 5], ["EU", 2]], "timestamp": "x"}"#,
        );
        assert_eq!(names, Ok(vec!["Donald Trump".to_owned(), "EU".to_owned()]));
        let names = parse_entities(r#"{"top_named_entities": ["foo", "bar"]}"#);
        assert_eq!(names, Ok(vec!["foo".to_owned(), "bar".to_owned()]));
        assert!(parse_entities("not json").is_err());
        assert!(parse_entities(r#"{"top": []}"#).is_err());
        assert!(parse_entities(r#"{"top_named_entities": [[1, 2]]}"#).is_err());
    }

    #[test]
    fn missing_and_malformed_mean_no_entities() {
        let cache = EntityCache::new("k", MatchOptions::default());
        assert_eq!(cache.snapshot().source, Source::NotLoaded);
        let good = r#"{"top_named_entities": [["foo", 1]]}"#;
        assert_eq!(cache.apply(Some(good)), Source::Record);
        assert!(cache.snapshot().matcher.is_match("foo!"));
        assert_eq!(cache.apply(Some("{oops")), Source::Malformed);
        assert!(cache.snapshot().matcher.is_empty());
        assert_eq!(cache.apply(Some(good)), Source::Record);
        assert_eq!(cache.apply(None), Source::Missing);
        assert!(cache.snapshot().matcher.is_empty());
    }
}
