//! Running one task: its own tokio task (or blocking thread), its time
//! limits, and panics turned into errors. (Leases of held messages are
//! renewed by the consumer's lease keeper, not here.)
//!
//! What is possible for sync tasks: they run on tokio's blocking pool, and a
//! thread cannot be killed safely. At the hard limit the worker stops
//! waiting, records `TimeLimitExceeded` and moves on; the thread finishes
//! in the background and its result is discarded. The soft limit sets
//! [`Context::is_cancelled`], which a long sync task should check. Async
//! tasks are cancelled at their next `.await` at the hard limit and can
//! await [`Context::cancelled`] for the soft one.

use std::time::Duration;

use serde_json::Value;

use super::consumer::Shared;
use crate::protocol::TaskMessage;
use crate::task::{Context, Task, TaskCall, TaskError};

/// Run the task with its limits; panics and time limits become errors.
pub(super) async fn execute(
    shared: &Shared,
    task: &dyn Task,
    message: &TaskMessage,
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
    shared.state.start(&headers.id, handle.abort_handle());
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
