//! Dead-consumer detection on SQLite, as `celeriac.alive.<id>` does on Redis.
//!
//! 1. Each consuming broker has a random consumer id. Before its first
//!    reservation it writes its row in `celeriac_consumers` (id, last seen),
//!    and every reservation records that id in `celeriac_messages.consumer`.
//! 2. A background task refreshes the row every [`ALIVE_EVERY`] and, in the
//!    same transaction, sweeps: rows older than [`ALIVE_TTL`] are deleted,
//!    and every message whose consumer has no row left is made visible at
//!    once. The sweep is one write transaction (`BEGIN IMMEDIATE` excludes
//!    other processes), so two sweepers cannot both restore a message, and
//!    a restored message is reserved by one `UPDATE … RETURNING` only.
//! 3. Dropping the broker (a clean shutdown) deletes its row; anything it
//!    still held is then given back by the next sweep of another consumer.
//!
//! A killed worker's messages therefore return within about
//! `ALIVE_TTL + ALIVE_EVERY` (12 s) instead of the visibility timeout. A
//! consumer whose refreshes stall longer than [`ALIVE_TTL`] is taken for
//! dead; it logs a warning when it finds its row gone, and the messages it
//! held may run twice (delivery stays at least once).

use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::Notify;

use crate::sqlite_db::{now_secs, SqliteDb};

/// How often a consumer refreshes its row (and sweeps).
pub(super) const ALIVE_EVERY: Duration = Duration::from_secs(2);
/// A consumer not seen for this long is dead.
pub(super) const ALIVE_TTL: Duration = Duration::from_secs(10);

/// Mark `consumer` seen now; true when its row was missing.
fn refresh(conn: &Connection, consumer: &str, now: f64) -> rusqlite::Result<bool> {
    let updated = conn
        .prepare_cached("UPDATE celeriac_consumers SET seen_at = ?2 WHERE consumer = ?1")?
        .execute(rusqlite::params![consumer, now])?;
    if updated > 0 {
        return Ok(false);
    }
    conn.prepare_cached("INSERT INTO celeriac_consumers (consumer, seen_at) VALUES (?1, ?2)")?
        .execute(rusqlite::params![consumer, now])?;
    Ok(true)
}

/// Forget consumers not seen within [`ALIVE_TTL`] and make every message
/// held by a consumer without a row visible now; how many were restored.
pub(super) fn sweep(conn: &Connection, now: f64) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM celeriac_consumers WHERE seen_at < ?1")?
        .execute([now - ALIVE_TTL.as_secs_f64()])?;
    // `consumer >= ''` is every non-NULL text: a range on the partial index
    // `celeriac_messages_held`, so only held messages are read.
    conn.prepare_cached(
        "UPDATE celeriac_messages SET visible_at = ?1, consumer = NULL \
         WHERE consumer >= '' AND consumer IS NOT NULL \
         AND consumer NOT IN (SELECT consumer FROM celeriac_consumers)",
    )?
    .execute([now])
}

/// One round: refresh `consumer`, then sweep. Returns (row was missing,
/// messages restored).
async fn round(db: &SqliteDb, consumer: &str) -> Result<(bool, usize), crate::error::BoxError> {
    let consumer = consumer.to_owned();
    db.write(move |conn| {
        let now = now_secs();
        let missing = refresh(conn, &consumer, now)?;
        Ok((missing, sweep(conn, now)?))
    })
    .await
}

/// Write the row of `consumer` now (before it reserves anything).
pub(super) async fn announce(db: &SqliteDb, consumer: &str) -> crate::Result<()> {
    round(db, consumer)
        .await
        .map(|_| ())
        .map_err(|e| crate::Error::broker("announcing a consumer in SQLite", e))
}

/// Refresh and sweep every [`ALIVE_EVERY`], forever (aborted on drop).
pub(super) async fn keep_alive(db: Arc<SqliteDb>, consumer: String, arrived: Arc<Notify>) {
    loop {
        tokio::time::sleep(ALIVE_EVERY).await;
        match round(&db, &consumer).await {
            Ok((missing, restored)) => {
                if missing {
                    tracing::warn!(
                        consumer,
                        "this consumer was taken for dead (no refresh for {ALIVE_TTL:?}); \
                         messages it held may be delivered again"
                    );
                }
                if restored > 0 {
                    tracing::info!(count = restored, "restored the messages of a dead worker");
                    arrived.notify_waiters();
                }
            }
            Err(e) => tracing::debug!(error = %e, "could not refresh consumer liveness"),
        }
    }
}

/// Delete the row of `consumer` (clean shutdown), waiting at most 2 s.
pub(super) fn forget(db: &SqliteDb, consumer: String) {
    let outcome = db.write_blocking(
        move |conn| {
            conn.prepare_cached("DELETE FROM celeriac_consumers WHERE consumer = ?1")?
                .execute([&consumer])
        },
        Duration::from_secs(2),
    );
    if let Err(e) = outcome {
        tracing::debug!(error = %e, "could not remove the consumer's liveness row");
    }
}
