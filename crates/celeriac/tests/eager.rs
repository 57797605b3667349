//! Eager mode (Celery's `task_always_eager`): registered tasks run at once
//! in the sending process and `get()` answers without a worker; others are
//! sent as usual. And a task body unit-tested directly with a detached
//! `Context`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use celeriac::{task, App, Context, Error, SendOptions, TaskError};
use serde_json::{json, Map};

#[task(name = "tasks.add")]
fn add(x: i64, y: i64) -> Result<i64, TaskError> {
    Ok(x + y)
}

#[task(name = "tasks.fail")]
async fn fail(message: String) -> Result<(), TaskError> {
    Err(TaskError::new("ValueError", message))
}

static FLAKY: AtomicU32 = AtomicU32::new(0);

#[task(name = "tasks.flaky", max_retries = 5)]
fn flaky() -> Result<u32, TaskError> {
    match FLAKY.fetch_add(1, Ordering::SeqCst) {
        n if n < 2 => Err(TaskError::new("IOError", "again").retry(Some(Duration::from_secs(60)))),
        n => Ok(n),
    }
}

#[task(name = "tasks.whoami", bind)]
fn whoami(ctx: &Context) -> Result<String, TaskError> {
    Ok(format!("{} {}", ctx.task_name(), ctx.task_id()))
}

const NOW: Duration = Duration::from_millis(50);

#[tokio::test]
async fn eager_tasks_answer_without_a_worker() -> Result<(), Error> {
    let app = App::builder()
        .broker_url("memory://eager")
        .backend_url("memory://eager")
        .always_eager(true)
        .task(add)
        .task(fail)
        .task(flaky)
        .build()
        .await?;
    // No worker runs: the result is there at once.
    assert_eq!(add::delay(&app, 2, 3).await?.get(NOW).await?, 5);
    match fail::delay(&app, "nope".into()).await?.get(NOW).await {
        Err(Error::TaskFailed {
            exc_type,
            exc_message,
            ..
        }) => {
            assert_eq!(
                (exc_type.as_str(), exc_message.as_str()),
                ("ValueError", "nope")
            );
        }
        other => panic!("expected the failure, got {other:?}"),
    }
    // Retries run again at once, without their countdown.
    assert_eq!(flaky::delay(&app).await?.get(NOW).await?, 2);
    // Nothing went through the broker; an unregistered task still does.
    assert_eq!(app.broker().queues().depth("celery").await?, 0);
    app.send_task(
        "tasks.elsewhere",
        vec![json!(1)],
        Map::new(),
        SendOptions::new(),
    )
    .await?;
    assert_eq!(app.broker().queues().depth("celery").await?, 1);
    Ok(())
}

#[test]
fn a_task_body_is_a_plain_function_in_unit_tests() {
    assert_eq!(add::run(40, 2).ok(), Some(42));
    let ctx = Context::detached("id-1", "tasks.whoami");
    assert_eq!(whoami::run(&ctx).ok().as_deref(), Some("tasks.whoami id-1"));
}
