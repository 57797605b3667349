//! [`AsyncResult`]: a handle on a sent task's state and result.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::backend::ResultBackend;
use crate::protocol::{ResultMeta, TaskState};
use crate::{Error, Result};

/// The result of a sent task, typed by what the task returns
/// (`serde_json::Value` for untyped `send_task`).
pub struct AsyncResult<T = Value> {
    id: String,
    backend: Arc<dyn ResultBackend>,
    output: PhantomData<fn() -> T>,
}

impl<T> Clone for AsyncResult<T> {
    fn clone(&self) -> Self {
        AsyncResult {
            id: self.id.clone(),
            backend: Arc::clone(&self.backend),
            output: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResult").field("id", &self.id).finish()
    }
}

impl<T: DeserializeOwned> AsyncResult<T> {
    pub(crate) fn new(id: String, backend: Arc<dyn ResultBackend>) -> Self {
        AsyncResult {
            id,
            backend,
            output: PhantomData,
        }
    }

    /// Reinterpret the result as another type.
    pub fn typed<U: DeserializeOwned>(self) -> AsyncResult<U> {
        AsyncResult::new(self.id, self.backend)
    }

    /// The task id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The current state; PENDING when nothing is stored.
    ///
    /// # Errors
    /// When the backend cannot be reached.
    pub async fn state(&self) -> Result<TaskState> {
        Ok(self
            .backend
            .fetch(&self.id)
            .await?
            .map_or(TaskState::Pending, |m| m.status))
    }

    /// The whole stored document (state, result or progress meta, traceback).
    ///
    /// # Errors
    /// When the backend cannot be reached.
    pub async fn info(&self) -> Result<Option<ResultMeta>> {
        self.backend.fetch(&self.id).await
    }

    /// True when the task finished: SUCCESS, FAILURE or REVOKED.
    ///
    /// # Errors
    /// When the backend cannot be reached.
    pub async fn ready(&self) -> Result<bool> {
        Ok(self.state().await?.is_ready())
    }

    /// Wait up to `timeout` for the task to finish and return its value.
    ///
    /// # Errors
    /// [`Error::TaskFailed`] with the remote error's type and message,
    /// [`Error::TaskRevoked`], [`Error::Timeout`], or a decode error when the
    /// stored value is not a `T`.
    pub async fn get(&self, timeout: Duration) -> Result<T> {
        match self.backend.wait(&self.id, timeout).await? {
            Some(meta) if meta.status.is_ready() => outcome(meta),
            _ => Err(Error::Timeout(timeout)),
        }
    }

    /// Delete the stored result.
    ///
    /// # Errors
    /// When the backend cannot be reached.
    pub async fn forget(&self) -> Result<()> {
        self.backend.forget(&self.id).await
    }
}

/// Turn a ready document into the value or the remote error.
fn outcome<T: DeserializeOwned>(meta: ResultMeta) -> Result<T> {
    match meta.status {
        TaskState::Success => serde_json::from_value(meta.result)
            .map_err(|e| Error::json(format!("result of task {}", meta.task_id), e)),
        TaskState::Revoked => Err(Error::TaskRevoked {
            task_id: meta.task_id,
        }),
        _ => Err(Error::task_failed(meta)),
    }
}

impl Error {
    /// The [`Error::TaskFailed`] a FAILURE document `meta` stands for: the
    /// remote exception's type, module and message, and the traceback
    /// (`Exception` with the raw result when the document holds no
    /// exception).
    pub fn task_failed(meta: ResultMeta) -> Error {
        let (exc_type, exc_module, exc_message) = match meta.exception() {
            Some(exc) => {
                let message = exc.message_text();
                (exc.exc_type, exc.exc_module, message)
            }
            None => ("Exception".to_owned(), None, meta.result.to_string()),
        };
        Error::TaskFailed {
            task_id: meta.task_id,
            exc_type,
            exc_module,
            exc_message,
            traceback: meta.traceback,
        }
    }
}
