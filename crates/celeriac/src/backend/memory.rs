//! `memory://`: an in-process result backend for tests and single-process use.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{ChordPart, ChordPartResult, ChordProgress, ResultBackend};
use crate::protocol::{ResultMeta, TaskState};
use crate::Result;

/// An in-memory result backend with expiry.
#[derive(Default)]
pub struct MemoryBackend {
    results: Mutex<HashMap<String, (ResultMeta, Instant)>>,
    values: Mutex<HashMap<String, (String, Option<Instant>)>>,
    chords: Mutex<HashMap<String, ChordCount>>,
    stored: Notify,
}

/// One chord's counters: its size, the parts counted (ordered by header
/// index, then arrival), which were seen, and whether it completed.
#[derive(Default)]
struct ChordCount {
    size: Option<u64>,
    parts: BTreeMap<(i64, usize), ChordPartResult>,
    seen: HashSet<String>,
    done: bool,
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

    async fn set_chord_size(&self, group_id: &str, size: u64) -> Result<()> {
        lock(&self.chords).insert(
            group_id.to_owned(),
            ChordCount {
                size: Some(size),
                ..ChordCount::default()
            },
        );
        Ok(())
    }

    async fn chord_part_return(
        &self,
        part: &ChordPart<'_>,
        _expires: Duration,
    ) -> Result<ChordProgress> {
        let mut chords = lock(&self.chords);
        let count = chords.entry(part.group_id.to_owned()).or_default();
        if count.done {
            return Ok(ChordProgress::Done);
        }
        let index = part.index.unwrap_or(i64::MAX);
        if count.seen.insert(format!("{}:{index}", part.task_id)) {
            let arrival = count.parts.len();
            count.parts.insert(
                (index, arrival),
                ChordPartResult {
                    task_id: part.task_id.to_owned(),
                    state: part.state.clone(),
                    result: part.result.clone(),
                },
            );
        }
        if count.size != Some(count.parts.len() as u64) {
            return Ok(ChordProgress::Waiting);
        }
        count.done = true;
        Ok(ChordProgress::Complete {
            results: count.parts.values().cloned().collect(),
            claim: part.group_id.to_owned(),
        })
    }

    async fn chord_done(&self, group_id: &str, _claim: &str) -> Result<()> {
        if let Some(count) = lock(&self.chords).get_mut(group_id) {
            count.parts.clear();
            count.seen.clear();
        }
        Ok(())
    }
}
