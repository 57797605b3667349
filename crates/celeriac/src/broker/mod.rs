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
//!
//! What a broker does besides delivering is split into capabilities, each a
//! trait of its own reached through an accessor on [`Broker`]
//! ([`Broker::dead_letters`], [`Broker::revocations`], [`Broker::queues`]).
//! A transport provides a capability from its own storage ("own") or keeps
//! the trait's defaults, which emulate it:
//!
//! | capability                                   | memory | sqlite | redis | amqp |
//! |----------------------------------------------|--------|--------|-------|------|
//! | [`DeadLetters`]                              | own    | own    | own   | own (queue `celeriac.dead_letter`) |
//! | [`Revocations`]                              | own    | own    | own   | own (stream `celeriac.revoked`) |
//! | [`QueueAdmin::depth`], [`QueueAdmin::purge`] | own    | own    | own   | own  |
//! | [`QueueAdmin::names`], [`QueueAdmin::delayed`] | own  | own    | own   | default: none |
//! | [`QueueAdmin::flush_delayed`]                | default: 0 | default: 0 | own | default: 0 |

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::Result;
pub use capabilities::{DeadLetters, QueueAdmin, Revocations};
pub use dead_letters::DeadLetterInfo;

#[cfg(feature = "amqp")]
pub mod amqp;
mod capabilities;
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

    /// The visibility timeout: how long a reservation lasts without `extend`.
    fn visibility_timeout(&self) -> Duration;

    /// Its dead letters ([`DeadLetters`]): where [`DeadLetters::dead_letter`]
    /// settles a message a worker gives up on.
    fn dead_letters(&self) -> &dyn DeadLetters;

    /// Its revocations ([`Revocations`]), shared by every worker.
    fn revocations(&self) -> &dyn Revocations;

    /// Its queue statistics and administration ([`QueueAdmin`]): depth,
    /// names, delayed messages, purge.
    fn queues(&self) -> &dyn QueueAdmin;
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
