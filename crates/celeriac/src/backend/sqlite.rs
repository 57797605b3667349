//! `sqlite://PATH`: the embedded result backend.
//!
//! Results and explicit keys live in two tables of the same file as the
//! broker. `wait` polls (2 ms doubling to 50 ms), which SPEC §4 allows for
//! the embedded backend; stores made in this process wake waiters at once.
//! Expired rows are swept now and then by the writer, never read.
//! Chords are counted in two tables of their own ([`chord`]).

mod chord;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::OptionalExtension;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{ChordPart, ChordProgress, ResultBackend};
use crate::error::Error;
use crate::protocol::ResultMeta;
use crate::sqlite_db::{now_secs, SqliteDb};
use crate::Result;

/// Sweep expired rows once every this many stores.
const SWEEP_EVERY: u64 = 4096;

/// The SQLite result backend.
pub struct SqliteBackend {
    db: Arc<SqliteDb>,
    stored: Notify,
    stores: AtomicU64,
}

impl SqliteBackend {
    /// Open (creating if needed) the result tables in the file at `path`.
    ///
    /// # Errors
    /// When the file cannot be opened or is not a SQLite database.
    pub fn open(path: &Path) -> Result<Self> {
        let db = SqliteDb::open(path)?;
        db.write_blocking(
            |conn| conn.execute_batch(chord::SCHEMA),
            Duration::from_secs(30),
        )
        .map_err(|e| Error::backend("creating the SQLite chord tables", e))?;
        Ok(SqliteBackend {
            db,
            stored: Notify::new(),
            stores: AtomicU64::new(0),
        })
    }
}

#[async_trait]
impl ResultBackend for SqliteBackend {
    async fn store(&self, meta: &ResultMeta, expires: Duration) -> Result<()> {
        let text = serde_json::to_string(meta).map_err(|e| Error::json("result", e))?;
        let task_id = meta.task_id.clone();
        let status = meta.status.as_str().to_owned();
        let sweep = self
            .stores
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY);
        self.db
            .write(move |conn| {
                let now = now_secs();
                conn.prepare_cached(
                    "INSERT INTO celeriac_results (task_id, status, meta, expires_at) \
                     VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (task_id) DO UPDATE SET status = excluded.status, \
                     meta = excluded.meta, expires_at = excluded.expires_at \
                     WHERE celeriac_results.status <> 'SUCCESS'",
                )?
                .execute(rusqlite::params![
                    task_id,
                    status,
                    text,
                    now + expires.as_secs_f64()
                ])?;
                if sweep {
                    conn.prepare_cached("DELETE FROM celeriac_results WHERE expires_at < ?1")?
                        .execute([now])?;
                    conn.prepare_cached("DELETE FROM celeriac_kv WHERE expires_at < ?1")?
                        .execute([now])?;
                }
                Ok(())
            })
            .await
            .map_err(|e| Error::backend("storing a result in SQLite", e))?;
        self.stored.notify_waiters();
        Ok(())
    }

    async fn fetch(&self, task_id: &str) -> Result<Option<ResultMeta>> {
        let task_id = task_id.to_owned();
        let text = self
            .db
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT meta FROM celeriac_results WHERE task_id = ?1 AND expires_at > ?2",
                )?
                .query_row(rusqlite::params![task_id, now_secs()], |r| {
                    r.get::<_, String>(0)
                })
                .optional()
            })
            .await
            .map_err(|e| Error::backend("reading a result from SQLite", e))?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| Error::json("stored result", e)))
            .transpose()
    }

    async fn wait(&self, task_id: &str, timeout: Duration) -> Result<Option<ResultMeta>> {
        let deadline = crate::deadline(timeout);
        let mut nap = Duration::from_millis(2);
        loop {
            let notified = self.stored.notified();
            let current = self.fetch(task_id).await?;
            let now = Instant::now();
            if current.as_ref().is_some_and(|m| m.status.is_ready()) || now >= deadline {
                return Ok(current);
            }
            let _ = tokio::time::timeout((deadline - now).min(nap), notified).await;
            nap = (nap * 2).min(Duration::from_millis(50));
        }
    }

    async fn forget(&self, task_id: &str) -> Result<()> {
        let task_id = task_id.to_owned();
        self.db
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM celeriac_results WHERE task_id = ?1")?
                    .execute([task_id])
            })
            .await
            .map_err(|e| Error::backend("forgetting a result in SQLite", e))?;
        Ok(())
    }

    async fn set_value(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<()> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.db
            .write(move |conn| {
                let expires = ttl.map(|t| now_secs() + t.as_secs_f64());
                conn.prepare_cached(
                    "INSERT INTO celeriac_kv (key, value, expires_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
                     expires_at = excluded.expires_at",
                )?
                .execute(rusqlite::params![key, value, expires])
            })
            .await
            .map_err(|e| Error::backend("setting a key in SQLite", e))?;
        Ok(())
    }

    async fn get_value(&self, key: &str) -> Result<Option<String>> {
        let key = key.to_owned();
        self.db
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT value FROM celeriac_kv WHERE key = ?1 \
                     AND (expires_at IS NULL OR expires_at > ?2)",
                )?
                .query_row(rusqlite::params![key, now_secs()], |r| r.get(0))
                .optional()
            })
            .await
            .map_err(|e| Error::backend("reading a key from SQLite", e))
    }

    async fn delete_value(&self, key: &str) -> Result<bool> {
        let key = key.to_owned();
        self.db
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM celeriac_kv WHERE key = ?1")?
                    .execute([key])
            })
            .await
            .map(|n| n > 0)
            .map_err(|e| Error::backend("deleting a key in SQLite", e))
    }

    async fn set_chord_size(&self, group_id: &str, size: u64) -> Result<()> {
        let group_id = group_id.to_owned();
        let expires = CHORD_EXPIRES_SECS;
        self.db
            .write(move |conn| chord::set_size(conn, &group_id, size, expires))
            .await
            .map_err(|e| Error::backend("recording a chord's size in SQLite", e))
    }

    async fn chord_part_return(
        &self,
        part: &ChordPart<'_>,
        expires: Duration,
    ) -> Result<ChordProgress> {
        let owned = chord::OwnedPart {
            group_id: part.group_id.to_owned(),
            task_id: part.task_id.to_owned(),
            index: part.index,
            state: part.state.as_str().to_owned(),
            result: serde_json::to_string(part.result).map_err(|e| Error::json("chord part", e))?,
        };
        let expires = expires.as_secs_f64();
        self.db
            .write(move |conn| chord::part_return(conn, &owned, expires))
            .await
            .map_err(|e| Error::backend("counting a chord part in SQLite", e))
    }

    async fn chord_done(&self, group_id: &str, _claim: &str) -> Result<()> {
        let group_id = group_id.to_owned();
        self.db
            .write(move |conn| chord::done(conn, &group_id))
            .await
            .map_err(|e| Error::backend("cleaning up a chord in SQLite", e))
    }
}

/// How long a chord's rows are kept after its size is recorded.
const CHORD_EXPIRES_SECS: f64 = 24.0 * 3600.0;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::TaskState;
    use serde_json::json;

    #[tokio::test]
    async fn success_is_never_overwritten() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::backend("tempdir", e))?;
        let backend = SqliteBackend::open(&dir.path().join("r.db"))?;
        let hour = Duration::from_secs(3600);
        backend
            .store(&ResultMeta::new("t1", TaskState::Success, json!(5)), hour)
            .await?;
        backend
            .store(
                &ResultMeta::failure("t1", "ValueError", "late duplicate", None),
                hour,
            )
            .await?;
        let meta = backend.fetch("t1").await?.expect("stored");
        assert_eq!((meta.status, meta.result), (TaskState::Success, json!(5)));
        assert!(backend.fetch("other").await?.is_none());
        Ok(())
    }

    #[tokio::test]
    async fn keys_expire_and_delete() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::backend("tempdir", e))?;
        let backend = SqliteBackend::open(&dir.path().join("r.db"))?;
        backend.set_value("k", "v", None).await?;
        backend.set_value("gone", "v", Some(Duration::ZERO)).await?;
        assert_eq!(backend.get_value("k").await?.as_deref(), Some("v"));
        assert_eq!(backend.get_value("gone").await?, None);
        assert!(backend.delete_value("k").await?);
        assert!(!backend.delete_value("k").await?);
        Ok(())
    }
}
