//! acks_late on SQLite: a worker killed with SIGKILL while holding tasks.

mod support;

use std::time::Duration;

use celeriac::protocol::TaskState;
use celeriac::SendOptions;
use serde_json::{json, Map, Value};
use support::{eventually_async, recorded, Env};

/// Tasks reserved by a worker that dies (`kill -9`) are delivered again
/// once their lease (the visibility timeout, 1 s here) runs out, and
/// complete on another worker, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_of_a_killed_worker_complete_elsewhere_after_the_visibility_timeout() {
    let env = Env::new();
    let runs = env.path("runs.txt");
    let runs_arg = runs.to_string_lossy().into_owned();
    let late = [
        "--acks-late",
        "--visibility-timeout",
        "1",
        "-c",
        "2",
        "--prefetch",
        "4",
    ];
    let mut a = env.test_worker("a@test", &late);
    let app = env.app().await;

    // Four slow tasks: two run on A, two wait in its prefetch.
    let calls = (0..4).map(|i| {
        (
            "tasks.slow_record".to_owned(),
            vec![json!(runs_arg), json!(i), json!(1.5)],
            Map::new(),
            SendOptions::new(),
        )
    });
    let ids = app.send_batch(calls).await.expect("publish");
    eventually_async(
        "worker a reserved every task",
        Duration::from_secs(10),
        || async { app.broker().queues().depth("celery").await.expect("depth") == 0 },
    )
    .await;
    a.kill9();
    for id in &ids {
        let state = app.async_result(id.clone()).state().await.expect("state");
        assert_eq!(
            state,
            TaskState::Pending,
            "task {id} finished before the kill"
        );
    }

    let _b = env.test_worker("b@test", &late);
    for (i, id) in ids.iter().enumerate() {
        let result = app.async_result(id.clone());
        let value: Value = result.get(Duration::from_secs(20)).await.expect("result");
        assert_eq!(value, json!(i));
        let meta = result.info().await.expect("read").expect("stored");
        assert_eq!(meta.worker.as_deref(), Some("b@test"));
    }
    let lines = recorded(&runs);
    assert_eq!(
        lines.len(),
        ids.len(),
        "each task ran exactly once: {lines:?}"
    );
}
