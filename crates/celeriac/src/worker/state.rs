//! What a running worker knows about its tasks, for remote control and
//! revocation.
//!
//! 1. Revoked ids (synced from the broker every second, and set directly by
//!    a remote `revoke`), checked before a task starts.
//! 2. Reserved tasks (decoded, waiting for a slot or a rate limit) and
//!    active ones (running), for `inspect reserved|active` and for
//!    `revoke --terminate`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::AbortHandle;
use serde_json::{json, Value};

use crate::protocol::TaskMessage;

/// One task this worker holds.
pub(crate) struct HeldTask {
    /// Shared with its handler: nothing is copied for the rare `inspect`.
    pub(crate) message: Arc<TaskMessage>,
    pub(crate) queue: String,
    pub(crate) acks_late: bool,
    /// Set once it runs.
    pub(crate) started: Option<f64>,
    pub(crate) abort: Option<AbortHandle>,
}

/// The worker's view of its tasks.
#[derive(Default)]
pub(crate) struct WorkerState {
    revoked: Mutex<HashMap<String, f64>>,
    held: Mutex<HashMap<String, HeldTask>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn now() -> f64 {
    chrono::Utc::now().timestamp_micros() as f64 / 1e6
}

impl WorkerState {
    /// Mark ids revoked; with `terminate`, abort the ones running here.
    /// Returns how many running tasks were terminated.
    pub(crate) fn revoke(&self, ids: &[String], terminate: bool) -> usize {
        let at = now();
        {
            let mut revoked = lock(&self.revoked);
            for id in ids {
                revoked.insert(id.clone(), at);
            }
        }
        if !terminate {
            return 0;
        }
        let held = lock(&self.held);
        let mut stopped = 0;
        for id in ids {
            if let Some(abort) = held.get(id).and_then(|t| t.abort.as_ref()) {
                abort.abort();
                stopped += 1;
            }
        }
        stopped
    }

    pub(crate) fn is_revoked(&self, id: &str) -> bool {
        lock(&self.revoked).contains_key(id)
    }

    /// Forget revocations older than `ttl_secs`.
    pub(crate) fn prune_revoked(&self, ttl_secs: f64) {
        let cutoff = now() - ttl_secs;
        lock(&self.revoked).retain(|_, at| *at > cutoff);
    }

    /// Revoked ids, for `inspect revoked`.
    pub(crate) fn revoked_ids(&self) -> Vec<String> {
        lock(&self.revoked).keys().cloned().collect()
    }

    pub(crate) fn hold(&self, message: &Arc<TaskMessage>, queue: &str, acks_late: bool) {
        lock(&self.held).insert(
            message.headers.id.clone(),
            HeldTask {
                message: Arc::clone(message),
                queue: queue.to_owned(),
                acks_late,
                started: None,
                abort: None,
            },
        );
    }

    pub(crate) fn start(&self, id: &str, abort: AbortHandle) {
        if let Some(task) = lock(&self.held).get_mut(id) {
            task.started = Some(now());
            task.abort = Some(abort);
        }
    }

    pub(crate) fn release(&self, id: &str) {
        lock(&self.held).remove(id);
    }

    /// Celery's request dicts for running (`active = true`) or waiting tasks.
    pub(crate) fn requests(&self, active: bool, hostname: &str) -> Vec<Value> {
        lock(&self.held)
            .values()
            .filter(|t| t.started.is_some() == active)
            .map(|t| {
                let acknowledged = t.started.is_some() && !t.acks_late;
                request_info(&t.message, &t.queue, 0, t.started, acknowledged, hostname)
            })
            .collect()
    }
}

/// Celery's `Request.info()`: what `active`, `reserved` and `scheduled`
/// list for one task.
pub(crate) fn request_info(
    message: &TaskMessage,
    queue: &str,
    priority: u8,
    started: Option<f64>,
    acknowledged: bool,
    hostname: &str,
) -> Value {
    let h = &message.headers;
    json!({
        "id": h.id,
        "name": h.task,
        "args": message.args,
        "kwargs": message.kwargs,
        "type": h.task,
        "hostname": hostname,
        "time_start": started,
        "acknowledged": acknowledged,
        "delivery_info": {"exchange": "", "routing_key": queue, "priority": priority, "redelivered": false},
        "worker_pid": std::process::id(),
    })
}
