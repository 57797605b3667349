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

use crate::protocol::ResultMeta;
use crate::Result;

pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "sqlite")]
pub mod sqlite;

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
}
