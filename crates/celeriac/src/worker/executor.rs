//! One message, from bytes to a stored result.
//!
//! 1. Decode the envelope and task message; a malformed one is rejected,
//!    logged once, and the worker goes on.
//! 2. Expired → REVOKED. ETA not due → deferred in the broker (never held in
//!    memory or in a lease, so it cannot be redelivered while it waits).
//! 3. Unknown task → FAILURE `NotRegistered`.
//! 4. Wait for an execution slot (or give the message back on shutdown),
//!    acknowledge now unless acks_late, run with time limits and lease
//!    renewal, catch panics.
//! 5. Store the outcome (SUCCESS, FAILURE, or RETRY and re-send), then
//!    acknowledge if acks_late.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};
use tokio::sync::OwnedSemaphorePermit;

use super::consumer::Shared;
use crate::app::{ACKS_LATE_HEADER, MAX_RETRIES_HEADER};
use crate::broker::{Delivery, OutgoingMessage};
use crate::protocol::{time, Envelope, ResultMeta, TaskMessage, TaskState};
use crate::task::{Context, Task, TaskCall, TaskError};

/// Retries a task may ask for when neither it nor the call sets a maximum
/// (Celery's default).
const DEFAULT_MAX_RETRIES: u32 = 3;

pub(super) async fn handle(
    shared: Arc<Shared>,
    delivery: Delivery,
    _prefetch: OwnedSemaphorePermit,
) {
    process(&shared, &delivery).await;
    shared.release(&delivery.tag);
}

async fn process(shared: &Shared, delivery: &Delivery) {
    let broker = shared.app.broker();
    if delivery.payload.len() > shared.options.max_message_bytes {
        let reason = format!(
            "message of {} bytes is over the {}-byte limit",
            delivery.payload.len(),
            shared.options.max_message_bytes
        );
        dead_letter(shared, delivery, &reason).await;
        return;
    }
    let (message, envelope) = match TaskMessage::from_slice(&delivery.payload) {
        Ok(decoded) => decoded,
        Err(err) => {
            dead_letter(shared, delivery, &err.to_string()).await;
            return;
        }
    };
    let headers = &message.headers;
    let now = Utc::now();
    if headers.expires_time().is_some_and(|at| at <= now) {
        tracing::info!(task = %headers.task, id = %headers.id, "task expired before it ran; revoked");
        let meta = ResultMeta::new(
            &headers.id,
            TaskState::Revoked,
            json!({
                "exc_type": "TaskRevokedError", "exc_message": ["expired"], "exc_module": "celery.exceptions"
            }),
        );
        store(shared, &message, meta).await;
        settle_ack(shared, &delivery.tag).await;
        return;
    }
    if let Some(eta) = headers
        .eta_time()
        .filter(|eta| *eta > now + chrono::Duration::milliseconds(5))
    {
        if let Err(err) = broker.defer(&delivery.tag, eta).await {
            tracing::warn!(error = %err, "could not defer a task with an ETA; it returns after the visibility timeout");
        }
        return;
    }
    let Some(task) = shared.app.task(&headers.task).cloned() else {
        let error = TaskError::new(
            "NotRegistered",
            format!(
                "Task of kind '{}' is not registered on worker {}",
                headers.task, shared.options.hostname
            ),
        );
        refuse(shared, &message, delivery, &error).await;
        return;
    };
    // Decode the arguments before taking a slot: a call that can never run
    // is refused at once, whatever else is running.
    let ctx = Context::new(
        &headers.id,
        &headers.task,
        headers.retries,
        &shared.options.hostname,
        Some(Arc::clone(shared.app.backend())),
        shared.app.config().result_expires,
    );
    let call = match task.call(ctx.clone(), message.args.clone(), message.kwargs.clone()) {
        Ok(call) => call,
        Err(error) => {
            refuse(shared, &message, delivery, &error).await;
            return;
        }
    };
    let defaults = task.options();
    let acks_late = headers
        .extra
        .get(ACKS_LATE_HEADER)
        .and_then(Value::as_bool)
        .or(defaults.acks_late)
        .unwrap_or(shared.options.acks_late);

    let mut shutdown = shared.shutdown.clone();
    tokio::select! {
        biased;
        _ = shared.rate_limits.acquire(&headers.task) => {}
        _ = shutdown.requested() => {
            if let Err(err) = broker.requeue(&delivery.tag).await {
                tracing::warn!(error = %err, "could not give back an unstarted message");
            }
            return;
        }
    }
    let _slot = tokio::select! {
        biased;
        slot = shared.executing.acquire() => match slot {
            Ok(slot) => slot,
            Err(_) => return,
        },
        _ = shutdown.requested() => {
            // Not started: give it back for another worker.
            if let Err(err) = broker.requeue(&delivery.tag).await {
                tracing::warn!(error = %err, "could not give back an unstarted message");
            }
            return;
        }
    };
    if !acks_late {
        settle_ack(shared, &delivery.tag).await;
        shared.hold(&delivery.tag, false);
    }
    if shared.options.track_started {
        let mut meta = ResultMeta::new(
            &headers.id,
            TaskState::Started,
            json!({"hostname": shared.options.hostname}),
        );
        meta.name = Some(headers.task.clone());
        store(shared, &message, meta).await;
    }

    shared
        .stats
        .active
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let started = std::time::Instant::now();
    let outcome = execute(
        shared,
        task.as_ref(),
        &message,
        delivery,
        acks_late,
        ctx,
        call,
    )
    .await;
    shared
        .stats
        .active
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    tracing::debug!(task = %headers.task, id = %headers.id, runtime = ?started.elapsed(), ok = outcome.is_ok(), "task finished");

    let max_retries = headers
        .extra
        .get(MAX_RETRIES_HEADER)
        .and_then(Value::as_u64)
        .map(|n| n as u32)
        .or(defaults.max_retries)
        .unwrap_or(DEFAULT_MAX_RETRIES);
    let meta = match outcome {
        Ok(value) => {
            shared.stats.finished(&headers.task, true);
            ResultMeta::new(&headers.id, TaskState::Success, value)
        }
        Err(err) if super::retry::wanted(&defaults, &err) && headers.retries < max_retries => {
            let countdown = super::retry::delay(&defaults, &err, headers.retries);
            match retry(shared, &message, &envelope, delivery, &err, countdown).await {
                Some(meta) => meta,
                None => {
                    // Not re-sent: keep the original. Given back now if we
                    // can, else redelivered after the visibility timeout.
                    if acks_late {
                        let _ = broker.requeue(&delivery.tag).await;
                    }
                    return;
                }
            }
        }
        Err(err) => {
            shared.stats.finished(&headers.task, false);
            tracing::warn!(task = %headers.task, id = %headers.id, error = %err, "task failed");
            failure_meta(&headers.id, &headers.task, &err)
        }
    };
    store(shared, &message, meta).await;
    if acks_late {
        settle_ack(shared, &delivery.tag).await;
    }
}

/// Run the task with its limits; panics and time limits become errors.
async fn execute(
    shared: &Shared,
    task: &dyn Task,
    message: &TaskMessage,
    delivery: &Delivery,
    acks_late: bool,
    ctx: Context,
    call: TaskCall,
) -> Result<Value, TaskError> {
    let headers = &message.headers;
    let defaults = task.options();
    let hard = headers
        .timelimit
        .0
        .or(defaults.time_limit)
        .filter(|s| *s > 0.0);
    let soft = headers
        .timelimit
        .1
        .or(defaults.soft_time_limit)
        .filter(|s| *s > 0.0);
    let mut handle = match call {
        TaskCall::Blocking(f) => tokio::task::spawn_blocking(f),
        TaskCall::Async(fut) => tokio::spawn(fut),
    };
    // Keep the reservation alive while an acks_late task runs, so a task
    // longer than the visibility timeout is not redelivered mid-run.
    let keeper = acks_late.then(|| {
        let broker = Arc::clone(shared.app.broker());
        let tag = delivery.tag.clone();
        let every = (broker.visibility_timeout() / 3).max(Duration::from_millis(50));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(err) = broker.extend(&tag).await {
                    tracing::warn!(error = %err, "could not extend a task's lease");
                }
            }
        })
    });
    let soft_timer = soft.map(|seconds| {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
            ctx.cancel();
        })
    });
    let joined = match hard {
        Some(seconds) => {
            match tokio::time::timeout(Duration::from_secs_f64(seconds), &mut handle).await {
                Ok(joined) => joined,
                Err(_) => {
                    // Async tasks stop at their next await; a sync task's thread
                    // cannot be killed and runs on, its result discarded.
                    handle.abort();
                    Ok(Err(TaskError::new(
                        "TimeLimitExceeded",
                        format!("TimeLimitExceeded({seconds})"),
                    )))
                }
            }
        }
        None => handle.await,
    };
    if let Some(k) = keeper {
        k.abort();
    }
    if let Some(t) = soft_timer {
        t.abort();
    }
    match joined {
        Ok(result) => result,
        Err(err) if err.is_panic() => {
            let payload = err.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "task panicked".to_owned());
            Err(TaskError::new("Panic", message))
        }
        Err(_) => Err(TaskError::new("Cancelled", "the task was cancelled")),
    }
}

/// Re-send the task with one more retry and an ETA; returns the RETRY state,
/// or `None` when the broker could not take the new message.
async fn retry(
    shared: &Shared,
    message: &TaskMessage,
    envelope: &Envelope,
    delivery: &Delivery,
    err: &TaskError,
    countdown: Duration,
) -> Option<ResultMeta> {
    let headers = &message.headers;
    let eta = Utc::now() + chrono::Duration::from_std(countdown).unwrap_or(chrono::TimeDelta::MAX);
    let mut next = message.clone();
    next.headers.retries += 1;
    next.headers.eta = Some(time::format(eta));
    let priority = envelope.properties.priority.unwrap_or(0);
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

fn failure_meta(task_id: &str, task_name: &str, err: &TaskError) -> ResultMeta {
    let traceback = format!(
        "Traceback (most recent call last):\n  Rust task \"{task_name}\"\n{}{}: {}\n",
        err.traceback.as_deref().unwrap_or(""),
        err.exc_type,
        err.exc_message
    );
    ResultMeta::failure(task_id, &err.exc_type, &err.exc_message, Some(traceback))
}

async fn store(shared: &Shared, message: &TaskMessage, mut meta: ResultMeta) {
    let headers = &message.headers;
    if headers.ignore_result && meta.status.is_ready() {
        return;
    }
    meta.name = Some(headers.task.clone());
    meta.worker = Some(shared.options.hostname.clone());
    meta.retries = Some(headers.retries);
    meta.parent_id = headers.parent_id.clone();
    let expires = shared.app.config().result_expires;
    // A backend outage must not lose the result: retry with backoff.
    let mut pause = Duration::from_millis(100);
    for attempt in 0..8 {
        match shared.app.backend().store(&meta, expires).await {
            Ok(()) => return,
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

/// Move an unreadable message to the dead-letter store; log once.
async fn dead_letter(shared: &Shared, delivery: &Delivery, reason: &str) {
    shared
        .stats
        .dead_lettered
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!(queue = %delivery.queue, %reason, "moving a message to the dead-letter store");
    if let Err(err) = shared.app.broker().dead_letter(delivery, reason).await {
        tracing::warn!(error = %err, "could not dead-letter a message; it returns after the visibility timeout");
    }
}

/// A readable task that can never run here (unknown name, bad arguments):
/// FAILURE for whoever waits on it, and the message to the dead letters.
async fn refuse(shared: &Shared, message: &TaskMessage, delivery: &Delivery, error: &TaskError) {
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

async fn settle_ack(shared: &Shared, tag: &str) {
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
