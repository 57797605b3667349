//! Queue statistics and administration on SQLite, for operators rather
//! than the delivery path: each reads or deletes rows of the messages table.

use async_trait::async_trait;
use chrono::DateTime;

use super::SqliteBroker;
use crate::broker::{DelayedInfo, QueueAdmin};
use crate::error::Error;
use crate::sqlite_db::now_secs;
use crate::Result;

#[async_trait]
impl QueueAdmin for SqliteBroker {
    async fn depth(&self, queue: &str) -> Result<u64> {
        let queue = queue.to_owned();
        self.db
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT COUNT(*) FROM celeriac_messages WHERE queue = ?1 AND visible_at <= ?2",
                )?
                .query_row(rusqlite::params![queue, now_secs()], |r| r.get::<_, i64>(0))
            })
            .await
            .map(|n| n.max(0) as u64)
            .map_err(|e| Error::broker("counting a SQLite queue", e))
    }

    async fn names(&self) -> Result<Vec<String>> {
        self.db
            .read(|conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT DISTINCT queue FROM celeriac_messages ORDER BY queue",
                )?;
                let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await
            .map_err(|e| Error::broker("listing SQLite queues", e))
    }

    async fn delayed(&self, limit: usize) -> Result<Vec<DelayedInfo>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .db
            .read(move |conn| {
                // Not leased (a lease sets the tag) and not yet visible:
                // sent with an ETA, or set aside by a worker until due.
                let mut stmt = conn.prepare_cached(
                    "SELECT queue, visible_at, payload FROM celeriac_messages \
                     WHERE tag IS NULL AND visible_at > ?1 ORDER BY visible_at, id LIMIT ?2",
                )?;
                let rows = stmt.query_map(rusqlite::params![now_secs(), limit], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, f64>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                    ))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await
            .map_err(|e| Error::broker("listing SQLite delayed messages", e))?;
        Ok(rows
            .into_iter()
            .filter_map(|(queue, at, payload)| {
                let eta = DateTime::from_timestamp_micros((at * 1e6) as i64)?;
                Some(DelayedInfo::read(queue, eta, payload))
            })
            .collect())
    }

    async fn purge(&self, queue: &str) -> Result<u64> {
        let queue = queue.to_owned();
        self.db
            .write(move |conn| {
                // Held = leased by a live reservation (a tag and a future
                // visible_at); everything else waiting goes.
                conn.prepare_cached(
                    "DELETE FROM celeriac_messages WHERE queue = ?1 \
                     AND (tag IS NULL OR visible_at <= ?2)",
                )?
                .execute(rusqlite::params![queue, now_secs()])
            })
            .await
            .map(|n| n as u64)
            .map_err(|e| Error::broker("purging a SQLite queue", e))
    }
}
