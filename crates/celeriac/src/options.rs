//! Per-call sending options (Celery's `apply_async` keywords).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::canvas::Signature;
use crate::protocol::Embed;
use crate::task::TaskOptions;

/// Options for one call; unset fields fall back to the task's defaults.
///
/// ```
/// use std::time::Duration;
/// let options = celeriac::SendOptions::new()
///     .countdown(Duration::from_secs(10))
///     .queue("reports")
///     .priority(0);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    pub(crate) task_id: Option<String>,
    pub(crate) countdown: Option<Duration>,
    pub(crate) eta: Option<DateTime<Utc>>,
    pub(crate) expires: Option<DateTime<Utc>>,
    pub(crate) retries: u32,
    pub(crate) parent_id: Option<String>,
    pub(crate) root_id: Option<String>,
    pub(crate) task: TaskOptions,
    /// Workflow links carried in the message body (callbacks, errbacks,
    /// the rest of a chain, a chord body).
    pub(crate) embed: Embed,
    /// The group this call belongs to, and its position in it.
    pub(crate) group: Option<(String, Option<i64>)>,
}

impl SendOptions {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// Use this task id instead of a fresh uuid.
    pub fn task_id(mut self, id: impl Into<String>) -> Self {
        self.task_id = Some(id.into());
        self
    }

    /// Run no earlier than `delay` from now.
    pub fn countdown(mut self, delay: Duration) -> Self {
        self.countdown = Some(delay);
        self
    }

    /// Run no earlier than `at`.
    pub fn eta(mut self, at: DateTime<Utc>) -> Self {
        self.eta = Some(at);
        self
    }

    /// Do not run after `at`; the task is then marked REVOKED.
    pub fn expires_at(mut self, at: DateTime<Utc>) -> Self {
        self.expires = Some(at);
        self
    }

    /// Do not run after `after` from now.
    pub fn expires_in(self, after: Duration) -> Self {
        // Too far ahead to write: as good as never expiring.
        let at =
            crate::protocol::time::from_now(after).unwrap_or_else(crate::protocol::time::latest);
        self.expires_at(at)
    }

    /// Priority 0 (highest) to 9 (lowest).
    pub fn priority(mut self, priority: u8) -> Self {
        self.task.priority = Some(priority);
        self
    }

    /// Send to this queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.task.queue = Some(queue.into());
        self
    }

    /// Hard time limit in seconds.
    pub fn time_limit(mut self, seconds: f64) -> Self {
        self.task.time_limit = Some(seconds);
        self
    }

    /// Soft time limit in seconds.
    pub fn soft_time_limit(mut self, seconds: f64) -> Self {
        self.task.soft_time_limit = Some(seconds);
        self
    }

    /// Do not store the result.
    pub fn ignore_result(mut self, ignore: bool) -> Self {
        self.task.ignore_result = Some(ignore);
        self
    }

    /// Acknowledge after completion for this call (carried in a header that
    /// Celeriac workers honour and Python workers ignore).
    pub fn acks_late(mut self, late: bool) -> Self {
        self.task.acks_late = Some(late);
        self
    }

    /// Maximum retries for this call (header, as [`SendOptions::acks_late`]).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.task.max_retries = Some(retries);
        self
    }

    /// The retry count to send (used when re-sending a retried task).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Mark the task as sent by `parent_id` in the workflow rooted at `root_id`.
    pub fn parent(mut self, parent_id: impl Into<String>, root_id: impl Into<String>) -> Self {
        self.parent_id = Some(parent_id.into());
        self.root_id = Some(root_id.into());
        self
    }

    /// Call `callback` with the result when the task succeeds (Celery's
    /// `link`); several calls add several callbacks.
    pub fn link(mut self, callback: Signature) -> Self {
        push_signature(&mut self.embed.callbacks, callback);
        self
    }

    /// Call `errback` when the task fails (Celery's `link_error`): with the
    /// failed task's id as its only argument unless it is immutable.
    pub fn link_error(mut self, errback: Signature) -> Self {
        push_signature(&mut self.embed.errbacks, errback);
        self
    }

    /// Fill unset options from a task's defaults.
    pub fn with_defaults(mut self, defaults: &TaskOptions) -> Self {
        let t = &mut self.task;
        t.queue = t.queue.take().or_else(|| defaults.queue.clone());
        t.priority = t.priority.or(defaults.priority);
        t.acks_late = t.acks_late.or(defaults.acks_late);
        t.max_retries = t.max_retries.or(defaults.max_retries);
        t.time_limit = t.time_limit.or(defaults.time_limit);
        t.soft_time_limit = t.soft_time_limit.or(defaults.soft_time_limit);
        t.ignore_result = t.ignore_result.or(defaults.ignore_result);
        t.rate_limit = t.rate_limit.take().or_else(|| defaults.rate_limit.clone());
        t.default_retry_delay = t.default_retry_delay.or(defaults.default_retry_delay);
        t.retry_backoff = t.retry_backoff.or(defaults.retry_backoff);
        t.retry_backoff_max = t.retry_backoff_max.or(defaults.retry_backoff_max);
        t.retry_jitter = t.retry_jitter.or(defaults.retry_jitter);
        if t.autoretry_for.is_empty() {
            t.autoretry_for = defaults.autoretry_for.clone();
        }
        self
    }
}

/// Append `sig` to an embed list (absent = empty).
fn push_signature(list: &mut Option<serde_json::Value>, sig: Signature) {
    let value = sig.to_value();
    match list {
        Some(serde_json::Value::Array(items)) => items.push(value),
        _ => *list = Some(serde_json::Value::Array(vec![value])),
    }
}
