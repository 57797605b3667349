//! Events for the embedded broker: a capped table, polled by subscribers.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;

use super::{EventBus, EventStream};
use crate::protocol::Event;
use crate::sqlite_db::{now_secs, SqliteDb};
use crate::{Error, Result};

/// Rows kept; older events are pruned.
const KEEP: i64 = 10_000;
/// How often subscribers look for new rows.
const POLL: Duration = Duration::from_millis(200);

/// Events in the embedded SQLite file.
pub struct SqliteEvents {
    db: Arc<SqliteDb>,
    published: AtomicU64,
}

impl SqliteEvents {
    /// Open (creating if needed) the events table in the file at `path`.
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub fn open(path: &Path) -> Result<Self> {
        Ok(SqliteEvents {
            db: SqliteDb::open(path)?,
            published: AtomicU64::new(0),
        })
    }
}

#[async_trait]
impl EventBus for SqliteEvents {
    async fn publish(&self, event: &Event) -> Result<()> {
        let text = serde_json::to_string(&event.fields).map_err(|e| Error::json("event", e))?;
        let prune = self
            .published
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(1000);
        self.db
            .write(move |conn| {
                conn.prepare_cached("INSERT INTO celeriac_events (at, event) VALUES (?1, ?2)")?
                    .execute(rusqlite::params![now_secs(), text])?;
                if prune {
                    conn.prepare_cached(
                        "DELETE FROM celeriac_events WHERE id <= (SELECT MAX(id) FROM celeriac_events) - ?1",
                    )?
                    .execute([KEEP])?;
                }
                Ok(())
            })
            .await
            .map_err(|e| Error::broker("publishing an event to SQLite", e))
    }

    async fn subscribe(&self) -> Result<EventStream> {
        let db = Arc::clone(&self.db);
        let start: i64 = db
            .read(|conn| {
                conn.query_row(
                    "SELECT COALESCE(MAX(id), 0) FROM celeriac_events",
                    [],
                    |r| r.get(0),
                )
            })
            .await
            .map_err(|e| Error::broker("subscribing to SQLite events", e))?;
        let stream = futures::stream::unfold((db, start), |(db, last)| async move {
            loop {
                let rows = db
                    .read(move |conn| {
                        let mut stmt = conn.prepare_cached(
                            "SELECT id, event FROM celeriac_events WHERE id > ?1 ORDER BY id LIMIT 1000",
                        )?;
                        let rows = stmt.query_map([last], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
                        rows.collect::<rusqlite::Result<Vec<_>>>()
                    })
                    .await
                    .unwrap_or_default();
                if let Some((newest, _)) = rows.last() {
                    let newest = *newest;
                    let events: Vec<Event> = rows
                        .into_iter()
                        .filter_map(|(_, text)| serde_json::from_str(&text).ok())
                        .map(|fields| Event { fields })
                        .collect();
                    return Some((futures::stream::iter(events), (db, newest)));
                }
                tokio::time::sleep(POLL).await;
            }
        })
        .flatten();
        Ok(stream.boxed())
    }
}
