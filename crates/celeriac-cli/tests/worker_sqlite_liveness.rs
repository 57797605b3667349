//! Dead-worker detection on the SQLite broker, at the default visibility
//! timeout (an hour): two worker processes on one file, one killed with
//! SIGKILL while holding acks_late tasks; the other runs them within
//! seconds, each exactly once.

mod support;

use std::time::{Duration, Instant};

use celeriac::protocol::TaskState;
use celeriac::SendOptions;
use serde_json::{json, Map, Value};
use support::{eventually_async, recorded, Env};

/// Tasks held by worker A (two running, two waiting in its prefetch)
/// when it is killed. A's consumer row stops being refreshed; B's sweep
/// finds it stale after 10 s and makes A's messages visible again, long
/// before the one-hour visibility timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_of_a_killed_worker_run_elsewhere_within_seconds_at_defaults() {
    let env = Env::new();
    let runs = env.path("runs.txt");
    let runs_arg = runs.to_string_lossy().into_owned();
    // No --visibility-timeout: the default (3600 s) applies. Concurrency
    // and prefetch are pinned so that A holds every task whatever the
    // number of cores, and B can run them all at once.
    let mut a = env.test_worker("a@liveness", &["--acks-late", "-c", "2", "--prefetch", "4"]);
    let app = env.app().await;

    let calls = (0..4).map(|i| {
        (
            "tasks.slow_record".to_owned(),
            vec![json!(runs_arg), json!(i), json!(6.0)],
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
    let _b = env.test_worker("b@liveness", &["--acks-late", "-c", "4", "--prefetch", "4"]);
    a.kill9();
    let killed = Instant::now();
    for id in &ids {
        let state = app.async_result(id.clone()).state().await.expect("state");
        assert_eq!(
            state,
            TaskState::Pending,
            "task {id} finished before the kill"
        );
    }

    for (i, id) in ids.iter().enumerate() {
        let result = app.async_result(id.clone());
        let left = Duration::from_secs(30).saturating_sub(killed.elapsed());
        let value: Value = result
            .get(left)
            .await
            .unwrap_or_else(|e| panic!("task {i} not done within 30 s of the kill: {e}"));
        assert_eq!(value, json!(i));
        let meta = result.info().await.expect("read").expect("stored");
        assert_eq!(meta.worker.as_deref(), Some("b@liveness"));
    }
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let lines = recorded(&runs);
    let mut distinct: Vec<&String> = lines.iter().map(|(id, _)| id).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        (lines.len(), distinct.len()),
        (ids.len(), ids.len()),
        "each task ran exactly once: {lines:?}"
    );
    println!("all {} tasks done {took:?} after the kill", ids.len());
}
