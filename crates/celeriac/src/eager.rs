//! Eager mode (Celery's `task_always_eager`): with
//! [`AppConfig::task_always_eager`](crate::AppConfig::task_always_eager),
//! `delay`/`apply_async`/`send_task` of a task registered in this app run it
//! at once, in this process, and store its outcome in the result backend, so
//! `get()` answers without a broker or a worker — for unit tests of code
//! that sends tasks. Tasks not registered here are sent as usual.
//!
//! A retry request runs the task again at once (no countdown), up to its
//! `max_retries` (Celery's default 3); callbacks, chains and chords are not
//! followed (run a worker for those: `memory://` makes that cheap).

use std::sync::Arc;

use crate::protocol::{ResultMeta, TaskMessage, TaskState};
use crate::task::{Context, Task, TaskError};
use crate::{App, Result};

/// Retries an eager task may ask for when it sets no maximum.
const DEFAULT_MAX_RETRIES: u32 = 3;

/// Run `message`'s task now and store its outcome; `false` when the task
/// is not registered here (the caller then sends it).
///
/// # Errors
/// When the outcome cannot be stored.
pub(crate) async fn run(app: &App, message: &TaskMessage) -> Result<bool> {
    let headers = &message.headers;
    let Some(task) = app.task(&headers.task).cloned() else {
        return Ok(false);
    };
    let max_retries = task.options().max_retries.unwrap_or(DEFAULT_MAX_RETRIES);
    let expires = app.config().result_expires;
    let mut retries = 0;
    let outcome = loop {
        let ctx = Context::new(
            &headers.id,
            &headers.task,
            retries,
            "eager",
            Some(Arc::clone(app.backend())),
            expires,
            app.app_state().clone(),
        );
        match call(task.as_ref(), ctx, message).await {
            Err(err) if err.retry.is_some() && retries < max_retries => retries += 1,
            other => break other,
        }
    };
    let mut meta = match outcome {
        Ok(value) => ResultMeta::new(&headers.id, TaskState::Success, value),
        Err(err) => ResultMeta::failure_in_module(
            &headers.id,
            &err.exc_module,
            &err.exc_type,
            &err.exc_message,
            err.traceback.clone(),
        ),
    };
    meta.name = Some(headers.task.clone());
    meta.retries = Some(retries);
    app.backend().store(&meta, expires).await?;
    Ok(true)
}

/// One call of the task's body; a panic becomes a `Panic` failure.
async fn call(
    task: &dyn Task,
    ctx: Context,
    message: &TaskMessage,
) -> std::result::Result<serde_json::Value, TaskError> {
    task.call(ctx, message.args.clone(), message.kwargs.clone())?
        .run_to_end()
        .await
}
