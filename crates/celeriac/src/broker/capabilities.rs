//! The capability traits: what a broker can do besides delivering
//! messages ([`DeadLetters`], [`Revocations`], [`QueueAdmin`]), each
//! reached through an accessor on [`Broker`](super::Broker). The broker
//! module's documentation says which transport provides or emulates which.

use std::time::Duration;

use async_trait::async_trait;

use super::dead_letters::DeadLetterInfo;
use super::{DelayedInfo, Delivery, Revocation};
use crate::Result;

/// Dead letters: messages a worker gave up on (refused, undecodable, for
/// an unknown task), kept in the broker with the reason, so that an
/// operator can list, read, requeue or drop them (`celeriac dlq`, the
/// dashboard). Every transport provides them.
///
/// Read it through [`Broker::dead_letters`](super::Broker::dead_letters):
/// `broker.dead_letters().requeue(id)`. On a concrete broker with both
/// traits in scope, `requeue` is ambiguous with [`Broker::requeue`](super::Broker::requeue)
/// and needs qualifying.
#[async_trait]
pub trait DeadLetters: Send + Sync {
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
    async fn count(&self) -> Result<u64>;

    /// A page of dead letters, newest first: `offset` skipped, at most
    /// `limit`. Metadata only; payloads are not read.
    ///
    /// # Errors
    /// When the broker cannot be reached.
    async fn page(&self, offset: usize, limit: usize) -> Result<Vec<DeadLetterInfo>>;

    /// The newest dead letters, at most `limit` (metadata only).
    ///
    /// # Errors
    /// When the broker cannot be reached.
    async fn newest(&self, limit: usize) -> Result<Vec<DeadLetterInfo>> {
        self.page(0, limit).await
    }

    /// One dead letter with its stored payload (capped at
    /// [`MAX_STORED_PAYLOAD`](super::dead_letters::MAX_STORED_PAYLOAD)); `None` when no dead letter
    /// has that id.
    ///
    /// # Errors
    /// When the broker cannot be reached.
    async fn fetch(&self, id: &str) -> Result<Option<(DeadLetterInfo, Vec<u8>)>>;

    /// Put a dead letter's original message back on its queue (highest
    /// priority) and forget the dead letter, atomically; false when no
    /// dead letter has that id.
    ///
    /// # Errors
    /// When the broker cannot be reached, and [`crate::Error::InvalidArgument`]
    /// when its payload was truncated when stored (it is kept then).
    async fn requeue(&self, id: &str) -> Result<bool>;

    /// Delete every dead letter; returns how many there were.
    ///
    /// # Errors
    /// When the broker cannot be reached.
    async fn purge(&self) -> Result<u64>;
}

/// Revocations: task ids every worker must skip, stored in the broker so
/// that workers started later see them too (`celeriac revoke`,
/// [`App::revoke`](crate::App::revoke)). Every transport provides them.
#[async_trait]
pub trait Revocations: Send + Sync {
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
}

/// Queue statistics and administration, for monitors and operators (the
/// dashboard, `celeriac purge`, `celeriac delayed`, `inspect scheduled`),
/// never part of delivery. A transport that cannot list or purge keeps the
/// defaults: no names, no delayed messages, nothing to flush, and an error
/// for a purge.
#[async_trait]
pub trait QueueAdmin: Send + Sync {
    /// Messages waiting in a queue (ready ones; delayed and reserved excluded).
    ///
    /// # Errors
    /// When the broker cannot be reached.
    async fn depth(&self, queue: &str) -> Result<u64>;

    /// Every queue the broker holds or routes to, for monitors (read only,
    /// never part of delivery): SQLite's distinct queues of waiting
    /// messages, Redis's kombu bindings (`_kombu.binding.*`, pidbox and
    /// event queues left out) and its queue lists, memory's queues. The
    /// default knows none.
    ///
    /// # Errors
    /// When the broker cannot be reached.
    async fn names(&self) -> Result<Vec<String>> {
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
}
