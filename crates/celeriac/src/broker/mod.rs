//! Brokers: where task messages wait until a worker takes them.
//!
//! In other systems this is the "queue" or "transport" (kombu's
//! `Channel`). The trait is deliberately small: publish, reserve, and settle
//! a reservation ([`Broker::ack`], [`Broker::requeue`], [`Broker::defer`]).
//! Every implementation gives at-least-once delivery: a reserved message that
//! is neither acked nor given back returns to its queue after the visibility
//! timeout (kombu's "unacked restore").
//!
//! | Celery/kombu term        | here                         |
//! |--------------------------|------------------------------|
//! | `basic_publish`          | [`Broker::publish`]          |
//! | `basic_get`/`BRPOP`      | [`Broker::reserve`]          |
//! | `basic_ack`              | [`Broker::ack`]              |
//! | `basic_reject(requeue)`  | [`Broker::requeue`]          |
//! | ETA held in worker memory| [`Broker::defer`] (stored)   |
//! | `unacked` + restore      | leases with a visibility timeout |
//!
//! Priorities follow Celery on Redis: 0 is the highest, 9 the lowest.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::Result;
pub use dead_letters::DeadLetterInfo;

#[cfg(feature = "amqp")]
pub mod amqp;
pub mod dead_letters;
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "sqlite")]
pub mod sqlite;

/// A message to put on a queue.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    /// Destination queue.
    pub queue: String,
    /// 0 (highest) to 9 (lowest).
    pub priority: u8,
    /// Deliver no earlier than this (countdown/eta); `None` = now.
    pub not_before: Option<DateTime<Utc>>,
    /// The serialized kombu envelope.
    pub payload: Vec<u8>,
}

impl DelayedInfo {
    /// The entry for `payload`, its id and name read leniently.
    pub(crate) fn read(queue: String, eta: DateTime<Utc>, payload: Vec<u8>) -> Self {
        let identity = crate::protocol::identify(&payload);
        DelayedInfo {
            task_id: identity.as_ref().map(|i| i.id.clone()),
            task: identity.and_then(|i| i.task),
            queue,
            eta,
            payload,
        }
    }
}

/// A reserved message. Settle it with `ack`, `requeue` or `defer`; if the
/// holder dies instead, it is delivered again after the visibility timeout.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Identifies this reservation for `ack`/`requeue` (kombu's delivery tag).
    pub tag: String,
    /// The queue it came from.
    pub queue: String,
    /// The serialized kombu envelope, exactly as published.
    pub payload: Vec<u8>,
    /// True when delivered before and not acknowledged (a restore).
    pub redelivered: bool,
}

/// A recorded revocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Revocation {
    /// The revoked task.
    pub task_id: String,
    /// When it was revoked, Unix seconds.
    pub at: f64,
    /// Stop it if it is running.
    pub terminate: bool,
}

impl Revocation {
    /// The stored member form: the id, with `|terminate` appended if asked.
    pub(crate) fn member(task_id: &str, terminate: bool) -> String {
        if terminate {
            format!("{task_id}|terminate")
        } else {
            task_id.to_owned()
        }
    }

    /// Read the stored member form back.
    pub(crate) fn from_member(member: &str, at: f64) -> Self {
        match member.strip_suffix("|terminate") {
            Some(id) => Revocation {
                task_id: id.to_owned(),
                at,
                terminate: true,
            },
            None => Revocation {
                task_id: member.to_owned(),
                at,
                terminate: false,
            },
        }
    }
}

/// A message broker.
///
/// Cancel safety: `publish`, `ack`, `requeue` and `defer` are idempotent or
/// harmless to repeat. `reserve` may be cancelled: a message reserved by a
/// cancelled call is not lost, it becomes visible again after the visibility
/// timeout. Workers therefore call it with a short timeout instead of
/// cancelling it.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Put a message on its queue.
    ///
    /// # Errors
    /// When the broker cannot be reached or written.
    async fn publish(&self, message: OutgoingMessage) -> Result<()>;

    /// Put many messages on their queues at once (pipelined/one transaction).
    ///
    /// # Errors
    /// As [`Broker::publish`]; on error some messages may have been published.
    async fn publish_batch(&self, messages: Vec<OutgoingMessage>) -> Result<()> {
        for message in messages {
            self.publish(message).await?;
        }
        Ok(())
    }

    /// Reserve up to `max` messages from `queues` (highest priority first,
    /// then first in, first out), waiting up to `wait` for the first one.
    /// Returns an empty list when nothing arrived in time.
    ///
    /// # Errors
    /// When the broker cannot be reached.
    async fn reserve(&self, queues: &[String], max: usize, wait: Duration)
        -> Result<Vec<Delivery>>;

    /// Acknowledge: the message is done and removed for good.
    ///
    /// # Errors
    /// When the broker cannot be reached; the message is then redelivered
    /// after the visibility timeout (at-least-once).
    async fn ack(&self, tag: &str) -> Result<()>;

    /// Give a reserved message back to the front of its queue, unstarted.
    ///
    /// # Errors
    /// When the broker cannot be reached.
    async fn requeue(&self, tag: &str) -> Result<()>;

    /// Settle a reservation by holding the message until `until` (an ETA
    /// that is not due yet), without keeping it reserved meanwhile.
    ///
    /// # Errors
    /// When the broker cannot be reached.
    async fn defer(&self, tag: &str, until: DateTime<Utc>) -> Result<()>;

    /// Extend the reservation of a message still being worked on, so that a
    /// long task is not redelivered while its worker lives.
    ///
    /// # Errors
    /// When the broker cannot be reached.
    async fn extend(&self, tag: &str) -> Result<()>;

    /// [`Broker::extend`] for many reservations in one round trip.
    ///
    /// # Errors
    /// When the broker cannot be reached.
    async fn extend_many(&self, tags: &[String]) -> Result<()> {
        for tag in tags {
            self.extend(tag).await?;
        }
        Ok(())
    }

    /// Make sure the queues exist (bindings, tables) before consuming.
    ///
    /// # Errors
    /// When the broker cannot be reached.
    async fn declare(&self, _queues: &[String]) -> Result<()> {
        Ok(())
    }

    /// Settle a reservation by moving the message to the dead-letter store
    /// with `reason`, atomically: it is never both lost and acknowledged.
    ///
    /// # Errors
    /// When the broker cannot be reached; the message then stays reserved
    /// and returns after the visibility timeout.
    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<()>;

    /// How many dead letters there are (one O(1) call on Redis).
    ///
    /// # Errors
    /// When the broker cannot be reached.
    async fn dead_letter_count(&self) -> Result<u64>;

    /// A page of dead letters, newest first: `offset` skipped, at most
    /// `limit`. Metadata only; payloads are not read.
    ///
    /// # Errors
    /// When the broker cannot be reached.
    async fn dead_letter_page(&self, offset: usize, limit: usize) -> Result<Vec<DeadLetterInfo>>;

    /// The newest dead letters, at most `limit` (metadata only).
    ///
    /// # Errors
    /// When the broker cannot be reached.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetterInfo>> {
        self.dead_letter_page(0, limit).await
    }

    /// One dead letter with its stored payload (capped at
    /// [`dead_letters::MAX_STORED_PAYLOAD`]); `None` when no dead letter
    /// has that id.
    ///
    /// # Errors
    /// When the broker cannot be reached.
    async fn fetch_dead_letter(&self, id: &str) -> Result<Option<(DeadLetterInfo, Vec<u8>)>>;

    /// Put a dead letter's original message back on its queue (highest
    /// priority) and forget the dead letter, atomically; false when no
    /// dead letter has that id.
    ///
    /// # Errors
    /// When the broker cannot be reached, and [`crate::Error::InvalidArgument`]
    /// when its payload was truncated when stored (it is kept then).
    async fn requeue_dead_letter(&self, id: &str) -> Result<bool>;

    /// Delete every dead letter; returns how many there were.
    ///
    /// # Errors
    /// When the broker cannot be reached.
    async fn purge_dead_letters(&self) -> Result<u64>;

    /// Record task ids as revoked for `ttl`, so every worker, including ones
    /// started later, skips them. `terminate` also asks workers running one
    /// to stop it.
    ///
    /// # Errors
    /// When the broker cannot be reached.
    async fn revoke(&self, task_ids: &[String], terminate: bool, ttl: Duration) -> Result<()>;

    /// Revocations recorded after `since` (Unix seconds): `(task id, when,
    /// terminate)`. Workers poll this to stay in sync.
    ///
    /// # Errors
    /// When the broker cannot be reached.
    async fn revoked_since(&self, since: f64) -> Result<Vec<Revocation>>;

    /// Messages waiting in a queue (ready ones; delayed and reserved excluded).
    ///
    /// # Errors
    /// When the broker cannot be reached.
    async fn queue_depth(&self, queue: &str) -> Result<u64>;

    /// Every queue the broker holds or routes to, for monitors (read only,
    /// never part of delivery): SQLite's distinct queues of waiting
    /// messages, Redis's kombu bindings (`_kombu.binding.*`, pidbox and
    /// event queues left out) and its queue lists, memory's queues. The
    /// default knows none.
    ///
    /// # Errors
    /// When the broker cannot be reached.
    async fn queue_names(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// Messages waiting for their ETA in the broker's own delayed store,
    /// soonest first, at most `limit` (Redis: `celeriac.delayed`; SQLite:
    /// rows not leased whose `visible_at` is ahead; memory: its delayed
    /// map), whether a producer sent them with an ETA or a worker set them
    /// aside until due. The default holds none apart from its queues.
    ///
    /// # Errors
    /// When the broker cannot be reached.
    async fn delayed(&self, limit: usize) -> Result<Vec<DelayedInfo>> {
        let _ = limit;
        Ok(Vec::new())
    }

    /// Hand every message of the delayed store back to its queue now, ETA
    /// and all: any worker then takes it and holds it until it is due, as
    /// Python Celery workers do with ETA messages (so they can serve them
    /// when no Celeriac process is left to move them). Returns how many.
    /// The default has nothing to hand back.
    ///
    /// # Errors
    /// When the broker cannot be reached.
    async fn flush_delayed(&self) -> Result<u64> {
        Ok(0)
    }

    /// Delete every message waiting in `queue` (ready or delayed, every
    /// priority), as `celery purge` does; messages a worker holds are
    /// left alone. Returns how many were deleted. The default cannot purge.
    ///
    /// # Errors
    /// When the broker cannot be reached, or cannot purge.
    async fn purge(&self, queue: &str) -> Result<u64> {
        let _ = queue;
        Err(crate::Error::broker(
            "purging a queue",
            "this broker cannot purge queues",
        ))
    }

    /// The visibility timeout: how long a reservation lasts without `extend`.
    fn visibility_timeout(&self) -> Duration;
}

/// A message waiting for its ETA in a broker's delayed store.
#[derive(Debug, Clone, PartialEq)]
pub struct DelayedInfo {
    /// The task id, when the message can be read.
    pub task_id: Option<String>,
    /// The task name, when the message can be read.
    pub task: Option<String>,
    /// The queue it goes to when due.
    pub queue: String,
    /// When it is due.
    pub eta: DateTime<Utc>,
    /// The message as stored (a kombu envelope), for who wants its
    /// arguments (the worker's `inspect scheduled` reply).
    pub payload: Vec<u8>,
}

/// Map a requested priority to one of the four Redis steps 0/3/6/9: kombu
/// rounds down to the step at or below it (priority 4 lands on step 3).
pub fn priority_step(priority: u8) -> u8 {
    match priority {
        0..=2 => 0,
        3..=5 => 3,
        6..=8 => 6,
        _ => 9,
    }
}

#[cfg(test)]
mod tests {
    use super::priority_step;

    #[test]
    fn priorities_map_down_to_their_step() {
        let steps: Vec<u8> = (0..=10).map(priority_step).collect();
        assert_eq!(steps, vec![0, 0, 0, 3, 3, 3, 6, 6, 6, 9, 9]);
    }
}
