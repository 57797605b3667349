//! What the handlers do, kept out of them so they stay thin: each handler
//! extracts its input, calls one function here, and wraps the answer.
//!
//! 1. [`send`]: validate options, send a task, remember it in the monitor.
//! 2. [`task_view`]: a task's document merged with what the monitor saw.
//! 3. [`revoke`] and [`retry`].
//! 4. [`dead_letters`] and [`requeue`].
//! 5. Groups (`service/groups.rs`): [`send_group`], [`group_view`].
//! 6. Scheduled tasks (`service/scheduled.rs`): [`mod@scheduled`].

mod groups;
mod scheduled;
pub(crate) use groups::{group_view, send_group};
pub(crate) use scheduled::scheduled;

use std::time::Duration;

use celeriac::protocol::time;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::monitor::tasks::SentCall;
use crate::server::Shared;
use crate::views::{DeadLetterView, RevokeResponse, SendOptions, TaskSent, TaskView};

/// Longest countdown or relative expiry accepted: ten years.
const MAX_SECONDS: f64 = 10.0 * 365.0 * 24.0 * 3600.0;

fn seconds(field: &str, value: f64) -> Result<Duration, ApiError> {
    if !value.is_finite() || !(0.0..=MAX_SECONDS).contains(&value) {
        return Err(ApiError::unprocessable(format!(
            "{field} must be a number of seconds from 0 to {MAX_SECONDS}, got {value}"
        )));
    }
    Duration::try_from_secs_f64(value)
        .map_err(|_| ApiError::unprocessable(format!("{field} is out of range: {value}")))
}

fn check_name(what: &str, name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(ApiError::unprocessable(format!(
            "{what} must be 1 to 200 characters, got {} characters",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

/// Turn the API's options into the library's, checking each.
///
/// # Errors
/// A 422 naming the option.
pub(crate) fn send_options(o: &SendOptions) -> Result<celeriac::SendOptions, ApiError> {
    let mut options = celeriac::SendOptions::new();
    if o.countdown.is_some() && o.eta.is_some() {
        return Err(ApiError::unprocessable(
            "options.countdown and options.eta cannot both be given",
        ));
    }
    if let Some(s) = o.countdown {
        options = options.countdown(seconds("options.countdown", s)?);
    }
    if let Some(text) = &o.eta {
        let at = time::parse(text).ok_or_else(|| {
            ApiError::unprocessable(format!(
                "options.eta {text:?} is not an ISO 8601 time, e.g. 2030-01-20T18:00:00Z"
            ))
        })?;
        options = options.eta(at);
    }
    match &o.expires {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) => {
            let s = n.as_f64().unwrap_or(f64::NAN);
            options = options.expires_in(seconds("options.expires", s)?);
        }
        Some(Value::String(text)) => {
            let at = time::parse(text).ok_or_else(|| {
                ApiError::unprocessable(format!("options.expires {text:?} is not an ISO 8601 time"))
            })?;
            options = options.expires_at(at);
        }
        Some(_) => {
            return Err(ApiError::unprocessable(
                "options.expires must be seconds (a number) or an ISO 8601 time (a string)",
            ))
        }
    }
    if let Some(p) = o.priority {
        if p > 9 {
            return Err(ApiError::unprocessable(format!(
                "options.priority must be 0 (highest) to 9 (lowest), got {p}"
            )));
        }
        options = options.priority(p);
    }
    if let Some(q) = &o.queue {
        check_name("options.queue", q)?;
        options = options.queue(q.trim());
    }
    if let Some(id) = &o.task_id {
        crate::extract::task_id(id).map_err(|e| ApiError::unprocessable(e.message))?;
        options = options.task_id(id);
    }
    Ok(options)
}

/// Check that `name` may be sent through the API.
///
/// # Errors
/// 422 for a malformed name, 404 for one this process does not know
/// (unless allowed).
fn check_sendable(shared: &Shared, name: &str) -> Result<(), ApiError> {
    check_name("the task name", name)?;
    if shared.app.task(name).is_none() && !shared.config.allow_unregistered_tasks {
        return Err(ApiError::not_found(format!(
            "unknown task {name:?}; registered tasks: {}",
            shared.app.task_names().join(", ")
        )));
    }
    Ok(())
}

/// Send task `name` and remember it.
///
/// # Errors
/// 404 for a name this process does not know (unless allowed), 422 for bad
/// options, 503 when the broker is down.
pub(crate) async fn send(
    shared: &Shared,
    name: &str,
    args: Vec<Value>,
    kwargs: Map<String, Value>,
    options: &SendOptions,
) -> Result<TaskSent, ApiError> {
    check_sendable(shared, name)?;
    send_unchecked(shared, name, args, kwargs, options).await
}

/// The queue a call of `name` goes to: the one asked for, else the task's
/// own, else the app's default.
fn queue_for(shared: &Shared, name: &str, options: &SendOptions) -> String {
    let registered_queue = shared.app.task(name).and_then(|t| t.options().queue);
    options
        .queue
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_owned)
        .or(registered_queue)
        .unwrap_or_else(|| shared.app.config().default_queue.clone())
}

/// [`send`] without the registry check (the seed's routes send by name,
/// as its `delay()` does).
///
/// # Errors
/// As [`send`], but never 404.
pub(crate) async fn send_unchecked(
    shared: &Shared,
    name: &str,
    args: Vec<Value>,
    kwargs: Map<String, Value>,
    options: &SendOptions,
) -> Result<TaskSent, ApiError> {
    let queue = queue_for(shared, name, options);
    let lib_options = send_options(options)?;
    let reprs = (
        crate::pyrepr::repr_args(&args),
        crate::pyrepr::repr(&Value::Object(kwargs.clone())),
    );
    let call = SentCall {
        args: args.clone(),
        kwargs: kwargs.clone(),
        priority: options.priority,
    };
    let sent = shared
        .app
        .send_task(name, args, kwargs, lib_options)
        .await?;
    shared
        .monitor
        .record_sent(sent.id(), name, &queue, call, reprs);
    Ok(TaskSent {
        task_id: sent.id().to_owned(),
        name: name.to_owned(),
        queue,
        retry_of: None,
    })
}

/// The task's document merged with what the monitor knows.
///
/// # Errors
/// 400 for a malformed id, 503 when the backend is down.
pub(crate) async fn task_view(shared: &Shared, id: &str) -> Result<TaskView, ApiError> {
    let id = crate::extract::task_id(id)?;
    let meta = shared.app.async_result(id).info().await?;
    shared.monitor.apply_meta(id, meta.as_ref());
    Ok(shared.monitor.view_with(id, meta.as_ref()))
}

/// Revoke a task. One that has not finished is marked REVOKED at once, in
/// the monitor and (when nothing is stored yet) in the backend, so that
/// pollers stop waiting; workers skip it when it comes up.
///
/// # Errors
/// 400 for a malformed id, 503 when the broker is down.
pub(crate) async fn revoke(
    shared: &Shared,
    id: &str,
    terminate: bool,
) -> Result<RevokeResponse, ApiError> {
    let id = crate::extract::task_id(id)?;
    shared.app.revoke(&[id.to_owned()], terminate).await?;
    let result = shared.app.async_result(id);
    let meta = result.info().await?;
    let started = shared
        .monitor
        .task(id)
        .is_some_and(|r| r.view.started_at.is_some());
    if meta.is_none() && (!started || terminate) {
        let mut doc = celeriac::protocol::ResultMeta::new(
            id,
            celeriac::TaskState::Revoked,
            serde_json::json!({"exc_type": "TaskRevokedError", "exc_message": ["revoked"], "exc_module": "celery.exceptions"}),
        );
        doc.name = shared.monitor.task(id).and_then(|r| r.view.name);
        shared
            .app
            .backend()
            .store(&doc, shared.app.config().result_expires)
            .await?;
    }
    let ready = meta.as_ref().is_some_and(|m| m.status.is_ready());
    let state = if ready {
        shared.monitor.apply_meta(id, meta.as_ref());
        meta.map(|m| m.status.to_string()).unwrap_or_default()
    } else {
        shared.monitor.mark_revoked(id)
    };
    Ok(RevokeResponse {
        task_id: id.to_owned(),
        terminate,
        state,
    })
}

/// Send a task again with the same name and arguments, under a new id.
///
/// # Errors
/// 404 when the monitor does not know the task, 409 when its arguments
/// are only known as a repr that is not a plain literal.
pub(crate) async fn retry(shared: &Shared, id: &str) -> Result<TaskSent, ApiError> {
    let id = crate::extract::task_id(id)?;
    let Some(record) = shared.monitor.task(id) else {
        return Err(ApiError::not_found(format!(
            "task {id} is not among the recent tasks this server saw, so its arguments are unknown"
        )));
    };
    let Some(name) = record.view.name.clone() else {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            format!("the name of task {id} is unknown"),
        ));
    };
    let Some(call) = record.call_for_retry() else {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            format!("the arguments of task {id} are only known as a Python repr that cannot be read back: {}", record.view.argsrepr.unwrap_or_default()),
        ));
    };
    let options = SendOptions {
        queue: record.view.queue.clone(),
        priority: call.priority,
        ..SendOptions::default()
    };
    let mut sent = send(shared, &name, call.args, call.kwargs, &options).await?;
    sent.retry_of = Some(id.to_owned());
    Ok(sent)
}

/// The newest dead letters: metadata only (task id and name were read
/// from each message when it was dead-lettered; payloads stay unread).
///
/// # Errors
/// 503 when the broker is down.
pub(crate) async fn dead_letters(
    shared: &Shared,
    limit: usize,
) -> Result<Vec<DeadLetterView>, ApiError> {
    let letters = shared
        .app
        .broker()
        .dead_letters()
        .newest(limit.min(1000))
        .await?;
    Ok(letters
        .into_iter()
        .map(|d| {
            let mut preview = d.preview;
            if d.size > preview.len() as u64 {
                preview.push('…');
            }
            DeadLetterView {
                task_id: d.task_id,
                task: d.task,
                id: d.id,
                queue: d.queue,
                reason: d.reason,
                at: d.at,
                preview,
            }
        })
        .collect())
}

/// Put a dead letter back on its queue.
///
/// # Errors
/// 404 when there is no such dead letter, 503 when the broker is down.
pub(crate) async fn requeue(shared: &Shared, id: &str) -> Result<(), ApiError> {
    let id = crate::extract::task_id(id)?;
    if shared.app.broker().dead_letters().requeue(id).await? {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("no dead letter has id {id}")))
    }
}
