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

impl<T: DeserializeOwned> AsyncResult<T> {
    /// The tasks this one sent when it finished (callbacks, the next link
    /// of a chain), read from the stored result's `children`; empty while
    /// it has not finished.
    ///
    /// # Errors
    /// When the backend cannot be reached.
    pub async fn children(&self) -> Result<Vec<AsyncResult<Value>>> {
        let Some(meta) = self.backend.fetch(&self.id).await? else {
            return Ok(Vec::new());
        };
        let mut ids = Vec::new();
        for child in &meta.children {
            collect_ids(child, &mut ids);
        }
        Ok(ids
            .into_iter()
            .map(|id| AsyncResult::new(id, Arc::clone(&self.backend)))
            .collect())
    }
}

/// The task ids in one of Celery's result tuples: `[[id, parent], null]`
/// for a task, `[[group_id, parent], [members…]]` for a group (its members'
/// ids).
fn collect_ids(tuple: &Value, ids: &mut Vec<String>) {
    let Some([head, members]) = tuple
        .as_array()
        .and_then(|t| <&[Value; 2]>::try_from(t.as_slice()).ok())
    else {
        return;
    };
    match members {
        Value::Array(members) => members.iter().for_each(|m| collect_ids(m, ids)),
        _ => {
            if let Some(id) = head.get(0).and_then(Value::as_str) {
                ids.push(id.to_owned());
            }
        }
    }
}

/// The results of a group's members, in order (Celery's `GroupResult`).
#[derive(Clone)]
pub struct GroupResult {
    id: String,
    results: Vec<AsyncResult<Value>>,
    backend: Arc<dyn ResultBackend>,
}

/// Where Celery saves a group: `celery-taskset-meta-<id>`.
fn group_key(group_id: &str) -> String {
    format!("celery-taskset-meta-{group_id}")
}

impl std::fmt::Debug for GroupResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupResult")
            .field("id", &self.id)
            .field("results", &self.results)
            .finish()
    }
}

impl GroupResult {
    pub(crate) fn new(
        id: String,
        results: Vec<AsyncResult<Value>>,
        backend: Arc<dyn ResultBackend>,
    ) -> Self {
        GroupResult {
            id,
            results,
            backend,
        }
    }

    /// Save the group's membership in the result backend for `expires`,
    /// where Celery's `GroupResult.save()` does (`celery-taskset-meta-<id>`
    /// = `{"result": [[id, null], [[[member, null], null], …]]}`), so
    /// [`GroupResult::restore`] and Python's `GroupResult.restore(id)` find
    /// it.
    ///
    /// # Errors
    /// When the backend cannot be written.
    pub async fn save(&self, expires: Duration) -> Result<()> {
        let members: Vec<Value> = self
            .results
            .iter()
            .map(|r| serde_json::json!([[r.id(), null], null]))
            .collect();
        let document = serde_json::json!({"result": [[self.id, null], members]});
        self.backend
            .set_value(&group_key(&self.id), &document.to_string(), Some(expires))
            .await
    }

    /// The group saved under `group_id` (by [`GroupResult::save`] or by
    /// Python's `GroupResult.save()`), or `None`.
    ///
    /// # Errors
    /// When the backend cannot be reached or the saved document is not a
    /// group.
    pub async fn restore(
        backend: Arc<dyn ResultBackend>,
        group_id: &str,
    ) -> Result<Option<GroupResult>> {
        let Some(text) = backend.get_value(&group_key(group_id)).await? else {
            return Ok(None);
        };
        let document: Value =
            serde_json::from_str(&text).map_err(|e| Error::json("saved group", e))?;
        let mut ids = Vec::new();
        collect_ids(&document["result"], &mut ids);
        let results = ids
            .into_iter()
            .map(|id| AsyncResult::new(id, Arc::clone(&backend)))
            .collect();
        Ok(Some(GroupResult::new(
            group_id.to_owned(),
            results,
            backend,
        )))
    }

    /// The group id (every member's `group` header).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The members' results, in the group's order.
    pub fn results(&self) -> &[AsyncResult<Value>] {
        &self.results
    }

    /// How many members have succeeded (Celery's `completed_count`).
    ///
    /// # Errors
    /// When the backend cannot be reached.
    pub async fn completed_count(&self) -> Result<usize> {
        let mut done = 0;
        for result in &self.results {
            if result.state().await? == TaskState::Success {
                done += 1;
            }
        }
        Ok(done)
    }

    /// Whether every member has finished.
    ///
    /// # Errors
    /// When the backend cannot be reached.
    pub async fn ready(&self) -> Result<bool> {
        for result in &self.results {
            if !result.ready().await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Wait for every member, up to `timeout` in all, and return their
    /// values in order (Celery's `join`/`get`).
    ///
    /// # Errors
    /// The first failed member's [`Error::TaskFailed`] (in group order),
    /// [`Error::Timeout`], or a backend error.
    pub async fn join(&self, timeout: Duration) -> Result<Vec<Value>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut values = Vec::with_capacity(self.results.len());
        for result in &self.results {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            values.push(result.get(left).await.map_err(|e| match e {
                Error::Timeout(_) => Error::Timeout(timeout),
                other => other,
            })?);
        }
        Ok(values)
    }
}
