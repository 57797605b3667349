//! One message, from bytes to a stored result.
//!
//! 1. Decode; a malformed, refused (pickle, yaml, bad `eta`) or oversized
//!    message becomes a dead letter, logged once, and the worker goes on;
//!    when its task id can still be read, the task gets a FAILURE naming
//!    the reason, so its caller is not left waiting.
//! 2. Admit: expired or revoked → REVOKED; ETA not due → deferred in the
//!    broker (never held in memory or in a lease, so it cannot be
//!    redelivered while it waits); unknown task or arguments that do not fit
//!    → FAILURE and a dead letter.
//! 3. Wait for the task's rate limit and an execution slot (or give the
//!    message back on shutdown), acknowledge now unless acks_late, run
//!    ([`super::execute`]).
//! 4. Settle ([`super::settle`]): SUCCESS, FAILURE, or RETRY and re-send;
//!    then acknowledge if acks_late.
//!
//! Task events go out at each step when enabled.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::Utc;
use serde_json::{json, Map, Value};
use tokio::sync::OwnedSemaphorePermit;

use super::consumer::Shared;
use super::execute::execute;
use super::settle::{dead_letter, failure_meta, refuse, result_kept, retry, settle_ack, store};
use crate::app::{ACKS_LATE_HEADER, MAX_RETRIES_HEADER};
use crate::broker::Delivery;
use crate::protocol::{
    self, Embed, ProtocolError, ResultMeta, TaskHeaders, TaskMessage, TaskState,
};
use crate::task::{Context, Task, TaskError};

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
    let limit = shared.options.max_message_bytes;
    let decoded = if delivery.payload.len() > limit {
        Err(ProtocolError::TooLarge {
            size: delivery.payload.len(),
            limit,
        })
    } else {
        TaskMessage::decode_within(&delivery.payload, limit)
    };
    let (message, priority) = match decoded {
        Ok((message, priority)) => (Arc::new(message), priority),
        Err(err) => {
            undecodable(shared, delivery, &err).await;
            return;
        }
    };
    let id = message.headers.id.clone();
    // Built only when someone listens: this runs for every message.
    if shared.events.task_events_enabled() {
        let fields = received_fields(&message);
        shared.events.task("task-received", &id, fields).await;
    }
    if let Some(task) = admit(shared, &message, delivery).await {
        run(shared, task, &message, priority.unwrap_or(0), delivery).await;
    }
    shared.state.release(&id);
}

/// A message that cannot be decoded: a FAILURE for its task when its id can
/// still be read (so the caller's `get()` raises at once instead of waiting
/// at PENDING), and the message to the dead letters with the reason.
async fn undecodable(shared: &Shared, delivery: &Delivery, err: &ProtocolError) {
    if let Some(who) = protocol::identify(&delivery.payload) {
        let task = who.task.unwrap_or_default();
        tracing::warn!(task = %crate::printable::printable(&task), id = %crate::printable::printable(&who.id), error = %err, "refusing a message that cannot be decoded");
        let stub = TaskMessage {
            headers: TaskHeaders::new(&task, &who.id),
            args: Vec::new(),
            kwargs: Map::new(),
            embed: Embed::default(),
        };
        store(shared, &stub, err.failure_meta(&who.id)).await;
    }
    dead_letter(shared, delivery, &err.to_string()).await;
}

/// Everything that can settle a message before it runs. The registered
/// task when it may run.
async fn admit(
    shared: &Shared,
    message: &TaskMessage,
    delivery: &Delivery,
) -> Option<Arc<dyn Task>> {
    let headers = &message.headers;
    let now = Utc::now();
    let expired = headers.expires_time().is_some_and(|at| at <= now);
    if expired || shared.state.is_revoked(&headers.id) {
        revoked(shared, message, delivery, expired, false).await;
        return None;
    }
    if let Some(eta) = headers
        .eta_time()
        .filter(|eta| *eta > now + chrono::Duration::milliseconds(5))
    {
        if let Err(err) = shared.app.broker().defer(&delivery.tag, eta).await {
            tracing::warn!(error = %err, "could not defer a task with an ETA; it returns after the visibility timeout");
        }
        return None;
    }
    let task = shared
        .app
        .task(&headers.task)
        .cloned()
        .or_else(|| crate::canvas::builtins::task(&shared.app, &headers.task));
    let Some(task) = task else {
        let error = TaskError::new(
            "NotRegistered",
            format!(
                "Task of kind '{}' is not registered on worker {}",
                headers.task, shared.options.hostname
            ),
        );
        shared
            .events
            .task(
                "task-rejected",
                &headers.id,
                vec![("requeue", false.into())],
            )
            .await;
        refuse(shared, message, delivery, &error).await;
        return None;
    };
    Some(task)
}

/// Mark a task REVOKED (expired, revoked, or terminated while running).
async fn revoked(
    shared: &Shared,
    message: &TaskMessage,
    delivery: &Delivery,
    expired: bool,
    terminated: bool,
) {
    let headers = &message.headers;
    let why = if expired { "expired" } else { "revoked" };
    tracing::info!(task = %headers.task, id = %headers.id, why, "not running the task");
    let meta = ResultMeta::new(
        &headers.id,
        TaskState::Revoked,
        json!({"exc_type": "TaskRevokedError", "exc_message": [why], "exc_module": "celery.exceptions"}),
    );
    store(shared, message, meta).await;
    settle_ack(shared, &delivery.tag).await;
    let fields = vec![
        ("terminated", terminated.into()),
        ("signum", Value::Null),
        ("expired", expired.into()),
    ];
    shared
        .events
        .task("task-revoked", &headers.id, fields)
        .await;
}

async fn run(
    shared: &Shared,
    task: Arc<dyn Task>,
    message: &Arc<TaskMessage>,
    priority: u8,
    delivery: &Delivery,
) {
    let headers = &message.headers;
    // Decode the arguments before taking a slot: a call that can never run
    // is refused at once, whatever else is running.
    let ctx = Context::new(
        &headers.id,
        &headers.task,
        headers.retries,
        &shared.options.hostname,
        Some(Arc::clone(shared.app.backend())),
        shared.app.config().result_expires,
        shared.app.app_state().clone(),
    );
    let call = match task.call(ctx.clone(), message.args.clone(), message.kwargs.clone()) {
        Ok(call) => call,
        Err(error) => {
            failed_event(shared, "task-failed", &headers.id, &error).await;
            refuse(shared, message, delivery, &error).await;
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
    shared.state.hold(message, &delivery.queue, acks_late);

    let broker = shared.app.broker();
    let mut shutdown = shared.shutdown.clone();
    let slot = tokio::select! {
        biased;
        slot = async {
            shared.rate_limits.acquire(&headers.task).await;
            shared.pool.slots.acquire().await
        } => slot.ok(),
        _ = shutdown.requested() => None,
    };
    let Some(slot) = slot else {
        // Not started: give it back for another worker.
        if let Err(err) = broker.requeue(&delivery.tag).await {
            tracing::warn!(error = %err, "could not give back an unstarted message");
        }
        return;
    };
    if shared.state.is_revoked(&headers.id) {
        revoked(shared, message, delivery, false, false).await;
        return;
    }
    if shared.options.track_started {
        let meta = ResultMeta::new(
            &headers.id,
            TaskState::Started,
            json!({"pid": std::process::id(), "hostname": shared.options.hostname}),
        );
        store(shared, message, meta).await;
    }
    tracing::debug!(task = %headers.task, id = %headers.id, "task started");
    shared
        .events
        .task("task-started", &headers.id, Vec::new())
        .await;

    shared.stats.active.fetch_add(1, Ordering::Relaxed);
    let started = std::time::Instant::now();
    // Without acks_late the message is acknowledged as the task starts (as
    // Celery acknowledges when a pool process accepts it). The
    // acknowledgement travels while the task runs, batched with others',
    // and the slot is freed as soon as the body returns: a short task does
    // not keep its slot for a round trip.
    let acknowledge = async {
        if !acks_late {
            settle_ack(shared, &delivery.tag).await;
            shared.hold(&delivery.tag, false);
        }
    };
    let work = async {
        let outcome = execute(shared, task.as_ref(), message, ctx, call).await;
        // Free the slot before storing and acknowledging: the next task need
        // not wait for this one's bookkeeping.
        drop(slot);
        outcome
    };
    let ((), outcome) = tokio::join!(acknowledge, work);
    let runtime = started.elapsed().as_secs_f64();
    shared.stats.active.fetch_sub(1, Ordering::Relaxed);

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
            if shared.events.task_events_enabled() {
                let fields = vec![("result", repr(&value).into()), ("runtime", runtime.into())];
                shared
                    .events
                    .task("task-succeeded", &headers.id, fields)
                    .await;
            }
            // Callbacks and the next chain step go out before the result is
            // stored, as Celery does, so that `children` names them.
            let sent = if message.embed.has_links() {
                crate::canvas::after_success(&shared.app, message, Some(priority), &value).await
            } else {
                Ok(Vec::new())
            };
            match sent {
                Err(err) => {
                    let err = err.to_task_error();
                    tracing::warn!(task = %headers.task, id = %headers.id, error = %err, "could not send the task's callbacks");
                    failure_meta(&headers.id, &headers.task, &err)
                }
                Ok(_) if !result_kept(message, &TaskState::Success) => {
                    // Skip building a document that would not be stored.
                    settle_late(shared, delivery, acks_late).await;
                    return;
                }
                Ok(sent) => {
                    let mut meta = ResultMeta::new(&headers.id, TaskState::Success, value);
                    meta.children = crate::canvas::children(&sent);
                    meta
                }
            }
        }
        Err(_) if shared.state.is_revoked(&headers.id) => {
            // Terminated by `revoke --terminate` while running.
            revoked(shared, message, delivery, false, true).await;
            return;
        }
        Err(err) if super::retry::wanted(&defaults, &err) && headers.retries < max_retries => {
            let countdown = super::retry::delay(&defaults, &err, headers.retries);
            match retry(shared, message, priority, delivery, &err, countdown).await {
                Some(meta) => {
                    failed_event(shared, "task-retried", &headers.id, &err).await;
                    meta
                }
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
            failed_event(shared, "task-failed", &headers.id, &err).await;
            failure_meta(&headers.id, &headers.task, &err)
        }
    };
    store(shared, message, meta).await;
    settle_late(shared, delivery, acks_late).await;
}

/// With acks_late, acknowledge now that the outcome is settled.
async fn settle_late(shared: &Shared, delivery: &Delivery, acks_late: bool) {
    if acks_late {
        settle_ack(shared, &delivery.tag).await;
    }
}

fn received_fields(message: &TaskMessage) -> Vec<(&'static str, Value)> {
    let h = &message.headers;
    vec![
        ("name", h.task.clone().into()),
        ("args", h.argsrepr.clone().unwrap_or_default().into()),
        ("kwargs", h.kwargsrepr.clone().unwrap_or_default().into()),
        ("root_id", h.root_id.clone().into()),
        ("parent_id", h.parent_id.clone().into()),
        // Not in Celery's event; monitors use them to show groups and chords.
        ("group", h.group.clone().into()),
        ("group_index", h.group_index.into()),
        ("chord", chord_body_id(message).into()),
        ("retries", h.retries.into()),
        ("eta", h.eta.clone().into()),
        ("expires", h.expires.clone().into()),
    ]
}

/// The task id of the chord body a header part carries, if any.
fn chord_body_id(message: &TaskMessage) -> Option<String> {
    let options = message.embed.chord.as_ref()?.get("options")?;
    options.get("task_id")?.as_str().map(str::to_owned)
}

async fn failed_event(shared: &Shared, kind: &str, task_id: &str, err: &TaskError) {
    if !shared.events.task_events_enabled() {
        return;
    }
    let fields = vec![
        (
            "exception",
            format!("{}({:?})", err.exc_type, err.exc_message).into(),
        ),
        ("traceback", failure_meta(task_id, "", err).traceback.into()),
    ];
    shared.events.task(kind, task_id, fields).await;
}

/// A short repr of a result for events (Celery truncates too).
fn repr(value: &Value) -> String {
    let text = match value {
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    };
    if text.len() > 256 {
        let mut cut = 256;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &text[..cut])
    } else {
        text
    }
}
