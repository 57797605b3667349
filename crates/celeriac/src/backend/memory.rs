//! `memory://`: an in-process result backend for tests and single-process use.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::ResultBackend;
use crate::protocol::{ResultMeta, TaskState};
use crate::Result;

/// An in-memory result backend with expiry.
#[derive(Default)]
pub struct MemoryBackend {
    results: Mutex<HashMap<String, (ResultMeta, Instant)>>,
    values: Mutex<HashMap<String, (String, Option<Instant>)>>,
    stored: Notify,
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl ResultBackend for MemoryBackend {
    async fn store(&self, meta: &ResultMeta, expires: Duration) -> Result<()> {
        {
            let mut results = lock(&self.results);
            let final_already = results
                .get(&meta.task_id)
                .is_some_and(|(m, _)| m.status == TaskState::Success);
            if !final_already {
                results.insert(
                    meta.task_id.clone(),
                    (meta.clone(), crate::deadline(expires)),
                );
            }
        }
        self.stored.notify_waiters();
        Ok(())
    }

    async fn fetch(&self, task_id: &str) -> Result<Option<ResultMeta>> {
        let results = lock(&self.results);
        Ok(results
            .get(task_id)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(m, _)| m.clone()))
    }

    async fn wait(&self, task_id: &str, timeout: Duration) -> Result<Option<ResultMeta>> {
        let deadline = crate::deadline(timeout);
        loop {
            let notified = self.stored.notified();
            let current = self.fetch(task_id).await?;
            if current.as_ref().is_some_and(|m| m.status.is_ready()) || Instant::now() >= deadline {
                return Ok(current);
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    async fn forget(&self, task_id: &str) -> Result<()> {
        lock(&self.results).remove(task_id);
        Ok(())
    }

    async fn set_value(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<()> {
        let until = ttl.map(crate::deadline);
        lock(&self.values).insert(key.to_owned(), (value.to_owned(), until));
        Ok(())
    }

    async fn get_value(&self, key: &str) -> Result<Option<String>> {
        let values = lock(&self.values);
        Ok(values
            .get(key)
            .filter(|(_, until)| until.is_none_or(|u| u > Instant::now()))
            .map(|(v, _)| v.clone()))
    }

    async fn delete_value(&self, key: &str) -> Result<bool> {
        Ok(lock(&self.values).remove(key).is_some())
    }
}
