//! Dead letters on SQLite: metadata in `celeriac_dlq` (JSON, ordered by
//! `at`), capped payloads in `celeriac_dlq_payloads`, under the same id.
//! Listing and counting read the first table only.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension};

use super::{split_tag, SqliteBroker};
use crate::broker::dead_letters::{
    describe, parse_info, sort_key, truncated_refusal, DeadLetterInfo,
};
use crate::broker::{DeadLetters, Delivery};
use crate::error::Error;
use crate::sqlite_db::{now_secs, SqliteDb};
use crate::Result;

#[async_trait]
impl DeadLetters for SqliteBroker {
    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<()> {
        let (info, payload) = describe(&delivery.queue, reason, &delivery.payload);
        let id = split_tag(&delivery.tag);
        let tag = delivery.tag.clone();
        self.db
            .write(move |conn| {
                store_dead_letter(conn, &info, &payload)?;
                if let Some(id) = id {
                    conn.prepare_cached(
                        "DELETE FROM celeriac_messages WHERE id = ?1 AND tag = ?2",
                    )?
                    .execute(rusqlite::params![id, tag])?;
                }
                Ok(())
            })
            .await
            .map_err(|e| Error::broker("dead-lettering in SQLite", e))
    }

    async fn count(&self) -> Result<u64> {
        count(&self.db).await
    }

    async fn page(&self, offset: usize, limit: usize) -> Result<Vec<DeadLetterInfo>> {
        page(&self.db, offset, limit).await
    }

    async fn fetch(&self, id: &str) -> Result<Option<(DeadLetterInfo, Vec<u8>)>> {
        fetch(&self.db, id).await
    }

    async fn requeue(&self, id: &str) -> Result<bool> {
        let found = requeue(&self.db, id).await?;
        self.arrived.notify_waiters();
        Ok(found)
    }

    async fn purge(&self) -> Result<u64> {
        purge(&self.db).await
    }
}

/// Insert one dead letter (both records) inside the caller's transaction.
pub(crate) fn store_dead_letter(
    conn: &Connection,
    info: &DeadLetterInfo,
    payload: &[u8],
) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO celeriac_dlq (id, at, meta) VALUES (?1, ?2, ?3)")?
        .execute(rusqlite::params![
            info.id,
            sort_key(&info.at),
            info.to_json()
        ])?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO celeriac_dlq_payloads (id, payload) VALUES (?1, ?2)",
    )?
    .execute(rusqlite::params![info.id, payload])?;
    Ok(())
}

/// `COUNT(*)` of the metadata table.
async fn count(db: &Arc<SqliteDb>) -> Result<u64> {
    db.read(|conn| {
        conn.prepare_cached("SELECT COUNT(*) FROM celeriac_dlq")?
            .query_row([], |r| r.get::<_, i64>(0))
    })
    .await
    .map(|n| n.max(0) as u64)
    .map_err(|e| Error::broker("counting SQLite dead letters", e))
}

/// Newest first, metadata only.
async fn page(db: &Arc<SqliteDb>, offset: usize, limit: usize) -> Result<Vec<DeadLetterInfo>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    let texts = db
        .read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT meta FROM celeriac_dlq ORDER BY at DESC, id LIMIT ?1 OFFSET ?2",
            )?;
            let rows = stmt.query_map([limit, offset], |r| r.get::<_, String>(0))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })
        .await
        .map_err(|e| Error::broker("listing SQLite dead letters", e))?;
    Ok(texts
        .iter()
        .filter_map(|t| parse_info(t.as_bytes()))
        .collect())
}

/// Metadata and payload of one dead letter.
async fn fetch(db: &Arc<SqliteDb>, id: &str) -> Result<Option<(DeadLetterInfo, Vec<u8>)>> {
    let id = id.to_owned();
    let row = db
        .read(move |conn| {
            conn.prepare_cached(
                "SELECT m.meta, p.payload FROM celeriac_dlq m \
                 LEFT JOIN celeriac_dlq_payloads p ON p.id = m.id WHERE m.id = ?1",
            )?
            .query_row([&id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<Vec<u8>>>(1)?))
            })
            .optional()
        })
        .await
        .map_err(|e| Error::broker("reading a SQLite dead letter", e))?;
    Ok(row.and_then(|(meta, payload)| {
        Some((parse_info(meta.as_bytes())?, payload.unwrap_or_default()))
    }))
}

/// What requeueing found.
enum Requeue {
    Missing,
    Truncated(DeadLetterInfo),
    Done,
}

/// Move a dead letter's payload back to its queue, in one transaction.
async fn requeue(db: &Arc<SqliteDb>, id: &str) -> Result<bool> {
    let id = id.to_owned();
    let outcome = db
        .write(move |conn| {
            let meta: Option<String> = conn
                .prepare_cached("SELECT meta FROM celeriac_dlq WHERE id = ?1")?
                .query_row([&id], |r| r.get(0))
                .optional()?;
            let Some(info) = meta.and_then(|m| parse_info(m.as_bytes())) else {
                return Ok(Requeue::Missing);
            };
            if info.truncated() {
                return Ok(Requeue::Truncated(info));
            }
            let payload: Vec<u8> = conn
                .prepare_cached("SELECT payload FROM celeriac_dlq_payloads WHERE id = ?1")?
                .query_row([&id], |r| r.get(0))
                .optional()?
                .unwrap_or_default();
            conn.prepare_cached(
                "INSERT INTO celeriac_messages (queue, priority, visible_at, payload) \
                 VALUES (?1, 0, ?2, ?3)",
            )?
            .execute(rusqlite::params![info.queue, now_secs(), payload])?;
            delete(conn, &id)?;
            Ok(Requeue::Done)
        })
        .await
        .map_err(|e| Error::broker("requeueing a SQLite dead letter", e))?;
    match outcome {
        Requeue::Missing => Ok(false),
        Requeue::Truncated(info) => Err(truncated_refusal(&info)),
        Requeue::Done => Ok(true),
    }
}

/// Delete every dead letter; how many there were.
async fn purge(db: &Arc<SqliteDb>) -> Result<u64> {
    db.write(|conn| {
        let n = conn.execute("DELETE FROM celeriac_dlq", [])?;
        conn.execute("DELETE FROM celeriac_dlq_payloads", [])?;
        Ok(n as u64)
    })
    .await
    .map_err(|e| Error::broker("purging SQLite dead letters", e))
}

fn delete(conn: &Connection, id: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM celeriac_dlq WHERE id = ?1")?
        .execute([id])?;
    conn.prepare_cached("DELETE FROM celeriac_dlq_payloads WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}
