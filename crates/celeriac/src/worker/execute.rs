//! Running one task: its time limits, termination by `revoke`, and panics
//! turned into errors. (Leases of held messages are renewed by the
//! consumer's lease keeper, not here.)
//!
//! An async task runs inside its handler's own tokio task (a second spawn
//! per message cost more than the no-op tasks it ran); `catch_unwind` and an
//! `Abortable` give what a separate task gave: a panic becomes an error, and
//! `revoke --terminate` or the hard limit drops the future at its next
//! `.await`. Sync tasks run on the worker's threads ([`super::SyncPool`]),
//! and a thread cannot be killed safely: at the hard limit (or on
//! terminate) the worker stops waiting, records the outcome and moves on;
//! the thread finishes in the background, its result discarded, while a
//! replacement takes its place. The soft limit sets
//! [`Context::is_cancelled`], which a long sync task should check; async
//! tasks can await [`Context::cancelled`] for it.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::future::{AbortHandle, Abortable, BoxFuture};
use futures::FutureExt;
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
    // The message's own limits, else those set by remote `time_limit`,
    // else the task's declared ones (Celery's order).
    let defaults = task.options();
    let (soft_default, hard_default) = shared
        .time_limits
        .get(&headers.task)
        .unwrap_or((defaults.soft_time_limit, defaults.time_limit));
    let hard = headers.timelimit.0.or(hard_default).filter(|s| *s > 0.0);
    let soft = headers.timelimit.1.or(soft_default).filter(|s| *s > 0.0);
    let running: BoxFuture<'static, Caught> = match call {
        TaskCall::Blocking(f) => match &shared.pool.threads {
            Some(pool) => {
                let running = pool.run(f);
                async move { running.await.unwrap_or_else(|| Ok(Err(cancelled()))) }.boxed()
            }
            None => blocking_pool(f),
        },
        TaskCall::Async(fut) => AssertUnwindSafe(fut).catch_unwind().boxed(),
    };
    let (abort, registration) = AbortHandle::new_pair();
    let running = Abortable::new(running, registration);
    shared.state.start(&headers.id, abort);
    let soft_timer = soft.map(|seconds| {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(limit(seconds)).await;
            ctx.cancel();
        })
    });
    let joined = match hard {
        Some(seconds) => {
            match tokio::time::timeout(limit(seconds), running).await {
                Ok(joined) => joined,
                // Dropped: an async task stops at its await; a sync task's
                // thread cannot be killed and runs on, its result discarded.
                Err(_) => Ok(Ok(Err(TaskError::new(
                    "TimeLimitExceeded",
                    format!("TimeLimitExceeded({seconds})"),
                )))),
            }
        }
        None => running.await,
    };
    if let Some(t) = soft_timer {
        t.abort();
    }
    match joined {
        Ok(Ok(result)) => result,
        Ok(Err(payload)) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "task panicked".to_owned());
            Err(TaskError::new("Panic", message))
        }
        Err(futures::future::Aborted) => Err(cancelled()),
    }
}

/// Outer `Err`: the task panicked (the payload); inner: its own result.
type Caught = Result<Result<Value, TaskError>, Box<dyn std::any::Any + Send>>;

/// A sync body on tokio's blocking pool ([`super::SyncPool::Blocking`]).
fn blocking_pool(
    body: Box<dyn FnOnce() -> Result<Value, TaskError> + Send + 'static>,
) -> BoxFuture<'static, Caught> {
    let thread = tokio::task::spawn_blocking(body);
    async move {
        match thread.await {
            Ok(result) => Ok(result),
            Err(e) if e.is_panic() => Err(e.into_panic()),
            Err(_) => Ok(Err(cancelled())),
        }
    }
    .boxed()
}

/// A limit in seconds from a message; one too large for a `Duration`
/// (e.g. `1e300`) means no limit, not a panic.
fn limit(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
}

fn cancelled() -> TaskError {
    TaskError::new("Cancelled", "the task was cancelled")
}
