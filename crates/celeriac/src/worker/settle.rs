//! Settling a task: storing its outcome, re-sending it for a retry,
//! acknowledging, or setting it aside as a dead letter. Backend and broker
//! outages are retried with backoff here so that a result is not lost to a
//! brief Redis restart.

use std::time::Duration;

use super::consumer::Shared;
use crate::broker::{Delivery, OutgoingMessage};
use crate::protocol::{time, ResultMeta, TaskMessage, TaskState};
use crate::task::TaskError;

/// Re-send the task with one more retry and an ETA; returns the RETRY state,
/// or `None` when the broker could not take the new message.
pub(super) async fn retry(
    shared: &Shared,
    message: &TaskMessage,
    priority: u8,
    delivery: &Delivery,
    err: &TaskError,
    countdown: Duration,
) -> Option<ResultMeta> {
    let headers = &message.headers;
    // A countdown past what can be written waits until the last writable time.
    let eta = time::from_now(countdown).unwrap_or_else(time::latest);
    let mut next = message.clone();
    next.headers.retries += 1;
    next.headers.eta = Some(time::format(eta));
    let outgoing = OutgoingMessage {
        queue: delivery.queue.clone(),
        priority,
        not_before: Some(eta),
        payload: next.to_envelope(&delivery.queue, Some(priority)).to_vec(),
    };
    tracing::info!(task = %headers.task, id = %headers.id, retries = next.headers.retries, ?countdown, "retrying task");
    if let Err(e) = shared.app.broker().publish(outgoing).await {
        tracing::warn!(error = %e, "could not re-send a task for retry; keeping the original message");
        return None;
    }
    let mut meta = failure_meta(&headers.id, &headers.task, err);
    meta.status = TaskState::Retry;
    Some(meta)
}

pub(super) fn failure_meta(task_id: &str, task_name: &str, err: &TaskError) -> ResultMeta {
    // Python prints a non-builtin class with its module, as here.
    let qualified = if err.exc_module == crate::task::BUILTINS {
        err.exc_type.clone()
    } else {
        format!("{}.{}", err.exc_module, err.exc_type)
    };
    let traceback = format!(
        "Traceback (most recent call last):\n  Rust task \"{task_name}\"\n{}{qualified}: {}\n",
        err.traceback.as_deref().unwrap_or(""),
        err.exc_message
    );
    ResultMeta::failure_in_module(
        task_id,
        &err.exc_module,
        &err.exc_type,
        &err.exc_message,
        Some(traceback),
    )
}

/// Whether an outcome in `status` is stored for `message`: `ignore_result`
/// drops the final states (SUCCESS, FAILURE, REVOKED), not progress.
pub(super) fn result_kept(message: &TaskMessage, status: &TaskState) -> bool {
    !(message.headers.ignore_result && status.is_ready())
}

pub(super) async fn store(shared: &Shared, message: &TaskMessage, mut meta: ResultMeta) {
    let headers = &message.headers;
    if !result_kept(message, &meta.status) {
        links_after_store(shared, message, &meta).await;
        return;
    }
    meta.name = Some(headers.task.clone());
    meta.worker = Some(shared.options.hostname.clone());
    meta.retries = Some(headers.retries);
    meta.parent_id = headers.parent_id.clone();
    // Celery stores the group a member belongs to (`group_id`).
    if meta.group_id.is_none() {
        meta.group_id = headers.group.clone();
    }
    let expires = shared.app.config().result_expires;
    // A backend outage must not lose the result: retry with backoff.
    let mut pause = Duration::from_millis(100);
    for attempt in 0..8 {
        match shared.app.backend().store(&meta, expires).await {
            Ok(()) => {
                links_after_store(shared, message, &meta).await;
                return;
            }
            Err(err) if attempt < 7 => {
                tracing::warn!(error = %err, retry_in = ?pause, "could not store a result");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(err) => {
                tracing::error!(error = %err, id = %headers.id, "giving up storing a result")
            }
        }
    }
}

/// What follows a stored final state (Celery's `mark_as_failure` and
/// `on_chord_part_return`): the errbacks after FAILURE, then the chord
/// count of a header part. A failure here is logged: the task's own
/// outcome is already stored.
async fn links_after_store(shared: &Shared, message: &TaskMessage, meta: &ResultMeta) {
    if !meta.status.is_ready() {
        return;
    }
    if meta.status == TaskState::Failure {
        if let Err(err) = crate::canvas::after_failure(&shared.app, message).await {
            tracing::error!(id = %message.headers.id, error = %err, "could not send the errbacks");
        }
    }
    if let Err(err) = crate::canvas::chord_part_done(&shared.app, message, meta).await {
        tracing::error!(id = %message.headers.id, error = %err, "could not count a chord part");
    }
}

/// Move an unreadable message to the dead-letter store; log once.
pub(super) async fn dead_letter(shared: &Shared, delivery: &Delivery, reason: &str) {
    shared
        .stats
        .dead_lettered
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!(queue = %delivery.queue, %reason, "moving a message to the dead-letter store");
    if let Err(err) = shared
        .app
        .broker()
        .dead_letters()
        .dead_letter(delivery, reason)
        .await
    {
        tracing::warn!(error = %err, "could not dead-letter a message; it returns after the visibility timeout");
    }
}

/// A readable task that can never run here (unknown name, bad arguments):
/// FAILURE for whoever waits on it, and the message to the dead letters.
pub(super) async fn refuse(
    shared: &Shared,
    message: &TaskMessage,
    delivery: &Delivery,
    error: &TaskError,
) {
    let headers = &message.headers;
    shared.stats.finished(&headers.task, false);
    store(
        shared,
        message,
        failure_meta(&headers.id, &headers.task, error),
    )
    .await;
    dead_letter(shared, delivery, &error.to_string()).await;
}

pub(super) async fn settle_ack(shared: &Shared, tag: &str) {
    let mut pause = Duration::from_millis(100);
    for attempt in 0..8 {
        match shared.app.broker().ack(tag).await {
            Ok(()) => return,
            Err(err) if attempt < 7 => {
                tracing::warn!(error = %err, retry_in = ?pause, "could not acknowledge a message");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(err) => {
                tracing::error!(error = %err, "giving up acknowledging; the message will be redelivered")
            }
        }
    }
}
