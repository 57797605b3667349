//! Result backends: where task states and results are stored.
//!
//! Celery's "result backend". Besides task results, a backend offers a small
//! key-value store ([`ResultBackend::set_value`]) so that tasks can publish
//! explicit results for a serving path (on Redis these are plain keys).
//!
//! Invariant shared by every implementation: a stored SUCCESS is never
//! overwritten (a late duplicate execution cannot replace a final result).

use std::time::Duration;

use async_trait::async_trait;

use serde_json::Value;

use crate::protocol::{ResultMeta, TaskState};
use crate::Result;

pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "sqlite")]
pub mod sqlite;

/// One finished part of a chord's header, as a worker reports it.
#[derive(Debug, Clone, Copy)]
pub struct ChordPart<'a> {
    /// The chord's group id (the header tasks' `group` header).
    pub group_id: &'a str,
    /// The part's task id.
    pub task_id: &'a str,
    /// The part's position in the header (`group_index`); parts without
    /// one are ordered after those with one.
    pub index: Option<i64>,
    /// The part's final state.
    pub state: &'a TaskState,
    /// Its result: the value, or the exception document of a FAILURE.
    pub result: &'a Value,
}

/// A counted part's outcome, as the chord's body will see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChordPartResult {
    /// The part's task id.
    pub task_id: String,
    /// Its final state.
    pub state: TaskState,
    /// Its value, or exception document.
    pub result: Value,
}

/// Where a chord stands after a part is counted.
#[derive(Debug, Clone, PartialEq)]
pub enum ChordProgress {
    /// Parts are still missing (or the chord's size is not known yet).
    Waiting,
    /// This call counted the last part and holds the claim to send the
    /// body: the results in header order. Call
    /// [`ResultBackend::chord_done`] with `claim` once the body is sent.
    Complete {
        /// The parts' outcomes, in header order.
        results: Vec<ChordPartResult>,
        /// Proof of the claim, for [`ResultBackend::chord_done`].
        claim: String,
    },
    /// The chord already completed (a late duplicate of a part).
    Done,
}

/// A result backend.
///
/// Cancel safety: every method is safe to cancel; a cancelled `store` may or
/// may not have been written, and writing it again is harmless.
#[async_trait]
pub trait ResultBackend: Send + Sync + 'static {
    /// Store a task's state and result for `expires`.
    ///
    /// # Errors
    /// When the backend cannot be reached or written.
    async fn store(&self, meta: &ResultMeta, expires: Duration) -> Result<()>;

    /// The stored document, or `None` (= PENDING) if there is none.
    ///
    /// # Errors
    /// When the backend cannot be reached or the document is unreadable.
    async fn fetch(&self, task_id: &str) -> Result<Option<ResultMeta>>;

    /// Wait until the task is ready (SUCCESS, FAILURE, REVOKED) or `timeout`
    /// passes; returns the last document seen (maybe not ready).
    ///
    /// # Errors
    /// When the backend cannot be reached.
    async fn wait(&self, task_id: &str, timeout: Duration) -> Result<Option<ResultMeta>>;

    /// Delete a task's result.
    ///
    /// # Errors
    /// When the backend cannot be reached.
    async fn forget(&self, task_id: &str) -> Result<()>;

    /// Set an explicit key (e.g. `my_worker:scheduled:top_named_entities`).
    ///
    /// # Errors
    /// When the backend cannot be reached.
    async fn set_value(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<()>;

    /// Read an explicit key.
    ///
    /// # Errors
    /// When the backend cannot be reached.
    async fn get_value(&self, key: &str) -> Result<Option<String>>;

    /// Delete an explicit key; true if it existed.
    ///
    /// # Errors
    /// When the backend cannot be reached.
    async fn delete_value(&self, key: &str) -> Result<bool>;

    /// Record that the chord of `group_id` has `size` header parts (a
    /// producer does this before sending them). Sending the same chord
    /// again starts a new count.
    ///
    /// # Errors
    /// When the backend cannot be reached.
    async fn set_chord_size(&self, group_id: &str, size: u64) -> Result<()>;

    /// Count a finished header part, once per part however often it runs
    /// (a redelivered part counts once), and tell whether the chord is now
    /// complete. Exactly one caller ever gets [`ChordProgress::Complete`]
    /// for a chord, across every worker of any language sharing the
    /// backend. `expires` bounds how long the counters are kept.
    ///
    /// # Errors
    /// When the backend cannot be reached.
    async fn chord_part_return(
        &self,
        part: &ChordPart<'_>,
        expires: Duration,
    ) -> Result<ChordProgress>;

    /// The body of `group_id`'s chord was sent by the holder of `claim`:
    /// drop the counters and remember the chord as done, so a late
    /// duplicate part does not send the body again.
    ///
    /// # Errors
    /// When the backend cannot be reached.
    async fn chord_done(&self, group_id: &str, claim: &str) -> Result<()>;
}
