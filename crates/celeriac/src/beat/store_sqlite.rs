//! `sqlite://`: beat state in the broker's SQLite file.
//!
//! 1. Table `celeriac_beat (name, tick, task_id, claimed_at, claimed_by)`,
//!    created on open, in the same file as the queue, so every beat and
//!    worker process on this host shares it.
//! 2. The claim is one upsert guarded by `WHERE tick < excluded.tick`, and
//!    the message INSERT (the SQLite broker's own statement) runs in the
//!    same transaction under a savepoint: the run is claimed and queued
//!    together or not at all. Writes go through the file's group-commit
//!    writer thread like the broker's.
//! 3. A worker in this process waiting on the queue notices a message the
//!    beat inserted on its next poll (at most 50 ms), not at once.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::store::{from_ms, to_ms, Claim, LastRun, Store};
use super::BeatError;
use crate::broker::{priority_step, OutgoingMessage};
use crate::sqlite_db::{now_secs, SqliteDb};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS celeriac_beat (
    name TEXT PRIMARY KEY,
    tick INTEGER NOT NULL,
    task_id TEXT NOT NULL DEFAULT '',
    claimed_at REAL,
    claimed_by TEXT
)";

/// Beat state in a SQLite file.
pub(crate) struct SqliteStore {
    db: Arc<SqliteDb>,
    publish: bool,
}

impl SqliteStore {
    /// Open the file named by `url` (`sqlite://PATH`) and create the table.
    pub(crate) async fn open(url: &str, publish: bool) -> Result<Self, BeatError> {
        let path = url.strip_prefix("sqlite://").unwrap_or_default();
        if path.is_empty() {
            return Err(crate::Error::InvalidUrl {
                url: url.to_owned(),
                reason: "sqlite:// needs a file path, e.g. sqlite://celeriac.db".into(),
            }
            .into());
        }
        let db = SqliteDb::open(&PathBuf::from(path))?;
        db.write(|conn| conn.execute_batch(SCHEMA))
            .await
            .map_err(|e| BeatError::store("creating the celeriac_beat table", e))?;
        Ok(SqliteStore { db, publish })
    }
}

/// The SQLite broker's publish statement, for a message due now.
fn insert_message(conn: &Connection, m: &OutgoingMessage) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO celeriac_messages (queue, priority, visible_at, payload) \
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        m.queue,
        priority_step(m.priority),
        now_secs(),
        m.payload
    ])?;
    Ok(())
}

fn claim_in(
    conn: &Connection,
    entry: &str,
    tick: i64,
    task_id: &str,
    by: &str,
    message: Option<&OutgoingMessage>,
) -> rusqlite::Result<bool> {
    let won = conn
        .prepare_cached(
            "INSERT INTO celeriac_beat (name, tick, task_id, claimed_at, claimed_by) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (name) DO UPDATE SET tick = excluded.tick, \
                 task_id = excluded.task_id, claimed_at = excluded.claimed_at, \
                 claimed_by = excluded.claimed_by \
             WHERE celeriac_beat.tick < excluded.tick",
        )?
        .execute(params![entry, tick, task_id, now_secs(), by])?
        == 1;
    if won {
        if let Some(message) = message {
            insert_message(conn, message)?;
        }
    }
    Ok(won)
}

#[async_trait]
impl Store for SqliteStore {
    async fn last_or_init(
        &self,
        entry: &str,
        baseline: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, BeatError> {
        let entry = entry.to_owned();
        let baseline = to_ms(baseline);
        let tick = self
            .db
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO celeriac_beat (name, tick) VALUES (?1, ?2) \
                     ON CONFLICT (name) DO NOTHING",
                )?
                .execute(params![entry, baseline])?;
                conn.prepare_cached("SELECT tick FROM celeriac_beat WHERE name = ?1")?
                    .query_row(params![entry], |row| row.get::<_, i64>(0))
            })
            .await
            .map_err(|e| BeatError::store("reading an entry's last run from SQLite", e))?;
        from_ms(tick)
    }

    async fn last(&self, entry: &str) -> Result<Option<LastRun>, BeatError> {
        let entry = entry.to_owned();
        let row = self
            .db
            .read(move |conn| {
                conn.prepare_cached("SELECT tick, task_id FROM celeriac_beat WHERE name = ?1")?
                    .query_row(params![entry], |row| {
                        Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                    })
                    .optional()
            })
            .await
            .map_err(|e| BeatError::store("reading an entry's last run from SQLite", e))?;
        match row {
            Some((tick, task_id)) => Ok(Some(LastRun {
                tick: from_ms(tick)?,
                task_id: Some(task_id).filter(|id| !id.is_empty()),
            })),
            None => Ok(None),
        }
    }

    async fn claim(&self, claim: Claim<'_>) -> Result<bool, BeatError> {
        let entry = claim.entry.to_owned();
        let tick = to_ms(claim.tick);
        let task_id = claim.task_id.to_owned();
        let by = claim.by.to_owned();
        let message = claim.message.filter(|_| self.publish).cloned();
        self.db
            .write(move |conn| {
                // The writer commits a group of jobs together: a savepoint
                // keeps a half-done claim from being committed with them.
                conn.execute_batch("SAVEPOINT celeriac_beat_claim")?;
                let outcome = claim_in(conn, &entry, tick, &task_id, &by, message.as_ref());
                if outcome.is_err() {
                    let _ = conn.execute_batch("ROLLBACK TO celeriac_beat_claim");
                }
                conn.execute_batch("RELEASE celeriac_beat_claim")?;
                outcome
            })
            .await
            .map_err(|e| BeatError::store("claiming a run in SQLite", e))
    }

    fn publishes(&self) -> bool {
        self.publish
    }
}
