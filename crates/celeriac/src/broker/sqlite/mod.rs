//! `sqlite://PATH`: the embedded broker.
//!
//! One table holds every message. A message is ready when `visible_at` has
//! passed: that one column covers both delayed messages (ETA) and expired
//! leases, so restoring a dead worker's messages needs no separate sweep.
//!
//! 1. `publish`: one INSERT (a batch is one transaction).
//! 2. `reserve`: one `UPDATE … RETURNING` statement takes up to `max` ready
//!    messages, highest priority first, and leases them for the visibility
//!    timeout; atomic, so two processes never get the same lease.
//! 3. `ack` deletes; `requeue` makes visible now; `defer` makes visible later;
//!    `extend` pushes the lease forward. All match on the delivery tag, so a
//!    stale holder (whose lease expired and was given to another worker)
//!    cannot settle someone else's reservation.
//! 4. Liveness (`liveness.rs`): each reservation records its consumer; a
//!    consumer's row in `celeriac_consumers` is refreshed every 2 s, and
//!    the messages of a consumer not seen for 10 s are made visible at once,
//!    so a killed worker's tasks run again within seconds, not after the
//!    visibility timeout.
//! 5. Dead letters (`dead_letters.rs`): metadata and capped payloads in two
//!    tables. Revocations (`revoked.rs`) in `celeriac_revoked`; queue
//!    depth, names, delayed messages and purge (`queues.rs`) read the
//!    messages table.
//!
//! Waiting for messages polls (1 ms doubling to 50 ms) because SQLite has no
//! cross-process notification; publishers in the same process wake waiters
//! at once.

mod dead_letters;
mod liveness;
mod queues;
mod revoked;

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::params_from_iter;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{
    priority_step, Broker, DeadLetters, Delivery, OutgoingMessage, QueueAdmin, Revocations,
};
use crate::error::Error;
use crate::sqlite_db::{now_secs, SqliteDb};
use crate::Result;

pub(crate) use dead_letters::store_dead_letter;

/// The SQLite broker.
pub struct SqliteBroker {
    db: Arc<SqliteDb>,
    visibility_timeout: Duration,
    arrived: Arc<Notify>,
    /// This broker's consumer id, recorded with each reservation.
    consumer: String,
    /// The liveness task, started by the first reservation.
    liveness: OnceLock<tokio::task::JoinHandle<()>>,
    /// Serializes the first announcement.
    announcing: tokio::sync::Mutex<()>,
    /// Reservations so far: which queue goes first in the next one.
    rotation: std::sync::atomic::AtomicUsize,
}

impl Drop for SqliteBroker {
    fn drop(&mut self) {
        if let Some(task) = self.liveness.get() {
            task.abort();
            liveness::forget(&self.db, self.consumer.clone());
        }
    }
}

impl SqliteBroker {
    /// Open (creating if needed) the broker tables in the file at `path`.
    ///
    /// # Errors
    /// When the file cannot be opened or is not a SQLite database.
    pub fn open(path: &Path, visibility_timeout: Duration) -> Result<Self> {
        Ok(SqliteBroker {
            db: SqliteDb::open(path)?,
            visibility_timeout,
            arrived: Arc::new(Notify::new()),
            consumer: uuid::Uuid::new_v4().simple().to_string(),
            liveness: OnceLock::new(),
            announcing: tokio::sync::Mutex::new(()),
            rotation: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Write this consumer's liveness row before its first reservation,
    /// then keep it fresh (and sweep dead consumers) in the background.
    async fn start_liveness(&self) -> Result<()> {
        if self.liveness.get().is_some() {
            return Ok(());
        }
        let _once = self.announcing.lock().await;
        if self.liveness.get().is_some() {
            return Ok(());
        }
        liveness::announce(&self.db, &self.consumer).await?;
        let _ = self.liveness.set(tokio::spawn(liveness::keep_alive(
            Arc::clone(&self.db),
            self.consumer.clone(),
            Arc::clone(&self.arrived),
        )));
        Ok(())
    }
}

fn split_tag(tag: &str) -> Option<i64> {
    tag.split(':').next()?.parse().ok()
}

fn secs(t: DateTime<Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

#[async_trait]
impl Broker for SqliteBroker {
    async fn publish(&self, message: OutgoingMessage) -> Result<()> {
        self.publish_batch(vec![message]).await
    }

    async fn publish_batch(&self, messages: Vec<OutgoingMessage>) -> Result<()> {
        self.db
            .write(move |conn| {
                let mut insert = conn.prepare_cached(
                    "INSERT INTO celeriac_messages (queue, priority, visible_at, payload) \
                     VALUES (?1, ?2, ?3, ?4)",
                )?;
                let now = now_secs();
                for m in &messages {
                    let visible = m.not_before.map_or(now, secs);
                    insert.execute(rusqlite::params![
                        m.queue,
                        priority_step(m.priority),
                        visible,
                        m.payload
                    ])?;
                }
                Ok(())
            })
            .await
            .map_err(|e| Error::broker("publishing to SQLite", e))?;
        self.arrived.notify_waiters();
        Ok(())
    }

    async fn reserve(
        &self,
        queues: &[String],
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>> {
        if queues.is_empty() || max == 0 {
            return Ok(Vec::new());
        }
        self.start_liveness().await?;
        let deadline = crate::deadline(wait);
        let mut nap = Duration::from_millis(1);
        let placeholders = (0..queues.len())
            .map(|i| format!("?{}", i + 6))
            .collect::<Vec<_>>()
            .join(",");
        // Between queues of one priority, the queue named first (?6) goes
        // first; the queues rotate from one reservation to the next (kombu's
        // queue cycle), so a backlog on one cannot starve another.
        let rotate = if queues.len() > 1 {
            "queue <> ?6, "
        } else {
            ""
        };
        let sql = format!(
            "UPDATE celeriac_messages \
             SET visible_at = ?1, tag = id || ':' || ?2, reserved = reserved + 1, consumer = ?5 \
             WHERE id IN (SELECT id FROM celeriac_messages \
                 WHERE queue IN ({placeholders}) AND visible_at <= ?3 \
                 ORDER BY priority, {rotate}id LIMIT ?4) \
             RETURNING tag, queue, payload, reserved, priority, id"
        );
        let sql: Arc<str> = sql.into();
        loop {
            let notified = self.arrived.notified();
            let lease = self.visibility_timeout.as_secs_f64();
            let sql = Arc::clone(&sql);
            let mut queues = queues.to_vec();
            let turn = self
                .rotation
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let first = turn % queues.len();
            queues.rotate_left(first);
            let consumer = self.consumer.clone();
            let got = self
                .db
                .write(move |conn| {
                    let now = now_secs();
                    let nonce = uuid::Uuid::new_v4().simple().to_string();
                    let mut params: Vec<rusqlite::types::Value> = vec![
                        (now + lease).into(),
                        nonce.into(),
                        now.into(),
                        (max as i64).into(),
                        consumer.into(),
                    ];
                    params.extend(queues.into_iter().map(rusqlite::types::Value::from));
                    // ?1..?5 are the lease fields; the IN list is ?6 onwards.
                    let mut stmt = conn.prepare_cached(&sql)?;
                    let rows = stmt.query_map(params_from_iter(params), |row| {
                        let order: (i64, i64) = (row.get(4)?, row.get(5)?);
                        let delivery = Delivery {
                            tag: row.get(0)?,
                            queue: row.get(1)?,
                            payload: row.get(2)?,
                            redelivered: row.get::<_, i64>(3)? > 1,
                        };
                        Ok((order, delivery))
                    })?;
                    let mut rows = rows.collect::<rusqlite::Result<Vec<_>>>()?;
                    // RETURNING does not promise the subquery's order.
                    rows.sort_unstable_by_key(|(order, _)| *order);
                    Ok(rows.into_iter().map(|(_, d)| d).collect::<Vec<_>>())
                })
                .await
                .map_err(|e| Error::broker("reserving from SQLite", e))?;
            if !got.is_empty() {
                return Ok(got);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let _ = tokio::time::timeout((deadline - now).min(nap), notified).await;
            nap = (nap * 2).min(Duration::from_millis(50));
        }
    }

    async fn ack(&self, tag: &str) -> Result<()> {
        let Some(id) = split_tag(tag) else {
            return Ok(());
        };
        let tag = tag.to_owned();
        self.db
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM celeriac_messages WHERE id = ?1 AND tag = ?2")?
                    .execute(rusqlite::params![id, tag])
            })
            .await
            .map_err(|e| Error::broker("acknowledging in SQLite", e))?;
        Ok(())
    }

    async fn requeue(&self, tag: &str) -> Result<()> {
        self.set_visible(tag, 0.0, true).await?;
        self.arrived.notify_waiters();
        Ok(())
    }

    async fn defer(&self, tag: &str, until: DateTime<Utc>) -> Result<()> {
        self.set_visible(tag, secs(until), true).await
    }

    async fn extend(&self, tag: &str) -> Result<()> {
        let until = now_secs() + self.visibility_timeout.as_secs_f64();
        self.set_visible(tag, until, false).await
    }

    async fn extend_many(&self, tags: &[String]) -> Result<()> {
        let until = now_secs() + self.visibility_timeout.as_secs_f64();
        let pairs: Vec<(i64, String)> = tags
            .iter()
            .filter_map(|t| Some((split_tag(t)?, t.clone())))
            .collect();
        self.db
            .write(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "UPDATE celeriac_messages SET visible_at = ?3 WHERE id = ?1 AND tag = ?2",
                )?;
                for (id, tag) in &pairs {
                    stmt.execute(rusqlite::params![id, tag, until])?;
                }
                Ok(())
            })
            .await
            .map_err(|e| Error::broker("extending SQLite reservations", e))
    }

    fn visibility_timeout(&self) -> Duration {
        self.visibility_timeout
    }

    fn dead_letters(&self) -> &dyn DeadLetters {
        self
    }

    fn revocations(&self) -> &dyn Revocations {
        self
    }

    fn queues(&self) -> &dyn QueueAdmin {
        self
    }
}

impl SqliteBroker {
    /// Move a reservation's visibility; `release` also forgets the
    /// reservation (so the next delivery is not counted as a redelivery).
    async fn set_visible(&self, tag: &str, at: f64, release: bool) -> Result<()> {
        let Some(id) = split_tag(tag) else {
            return Ok(());
        };
        let tag = tag.to_owned();
        self.db
            .write(move |conn| {
                let sql = if release {
                    "UPDATE celeriac_messages SET visible_at = ?3, tag = NULL, reserved = 0, \
                     consumer = NULL WHERE id = ?1 AND tag = ?2"
                } else {
                    "UPDATE celeriac_messages SET visible_at = ?3 WHERE id = ?1 AND tag = ?2"
                };
                conn.prepare_cached(sql)?
                    .execute(rusqlite::params![id, tag, at])
            })
            .await
            .map_err(|e| Error::broker("updating a SQLite reservation", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(queue: &str, priority: u8, body: &str) -> OutgoingMessage {
        OutgoingMessage {
            queue: queue.into(),
            priority,
            not_before: None,
            payload: body.as_bytes().to_vec(),
        }
    }

    #[tokio::test]
    async fn priorities_leases_and_acks() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::broker("tempdir", e))?;
        let broker = SqliteBroker::open(&dir.path().join("b.db"), Duration::from_millis(100))?;
        broker
            .publish_batch(vec![message("q", 9, "low"), message("q", 0, "high")])
            .await?;
        let queues = vec!["q".to_string()];
        let first = broker.reserve(&queues, 1, Duration::ZERO).await?;
        assert_eq!(first[0].payload, b"high");
        broker.ack(&first[0].tag).await?;
        let second = broker.reserve(&queues, 1, Duration::ZERO).await?;
        assert_eq!(second[0].payload, b"low");
        assert!(!second[0].redelivered);
        // Not acked: it comes back, marked redelivered, after the lease.
        let again = broker.reserve(&queues, 1, Duration::from_secs(3)).await?;
        assert_eq!(again[0].payload, b"low");
        assert!(again[0].redelivered);
        // The stale holder's ack must not remove the new reservation.
        broker.ack(&second[0].tag).await?;
        assert_eq!(broker.queues().depth("q").await?, 0);
        Broker::requeue(&broker, &again[0].tag).await?;
        assert_eq!(broker.queues().depth("q").await?, 1);
        Ok(())
    }
}
