//! `memory://`: beat state inside this process.
//!
//! 1. One state map per memory broker name (as the memory broker is shared
//!    by name), so several beats in one process — tests — share claims.
//! 2. A mutex makes the claim atomic. The beat then publishes through the
//!    app's broker; a crash between the two loses nothing that a crash would
//!    not lose anyway, since the memory broker dies with the process.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::store::{Claim, LastRun, Store};
use super::BeatError;

type State = Arc<Mutex<HashMap<String, LastRun>>>;

/// Beat state for one `memory://name` broker.
pub(crate) struct MemoryStore {
    state: State,
}

impl MemoryStore {
    /// The store shared by every beat on `memory://name`.
    pub(crate) fn named(name: &str) -> MemoryStore {
        static REGISTRY: LazyLock<Mutex<HashMap<String, State>>> = LazyLock::new(Default::default);
        let mut map = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        MemoryStore {
            state: Arc::clone(map.entry(name.to_owned()).or_default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LastRun>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn last_or_init(
        &self,
        entry: &str,
        baseline: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, BeatError> {
        let mut state = self.lock();
        let last = state.entry(entry.to_owned()).or_insert(LastRun {
            tick: baseline,
            task_id: None,
        });
        Ok(last.tick)
    }

    async fn last(&self, entry: &str) -> Result<Option<LastRun>, BeatError> {
        Ok(self.lock().get(entry).cloned())
    }

    async fn claim(&self, claim: Claim<'_>) -> Result<bool, BeatError> {
        let mut state = self.lock();
        if state.get(claim.entry).is_some_and(|l| l.tick >= claim.tick) {
            return Ok(false);
        }
        state.insert(
            claim.entry.to_owned(),
            LastRun {
                tick: claim.tick,
                task_id: Some(claim.task_id.to_owned()).filter(|id| !id.is_empty()),
            },
        );
        Ok(true)
    }

    fn publishes(&self) -> bool {
        false
    }
}
