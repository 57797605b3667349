//! Graceful shutdown of `celeriac worker` on SIGTERM.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use celeriac::SendOptions;
use serde_json::{json, Map, Value};
use support::{eventually, recorded, Env};

/// SIGTERM in the middle of a batch: the worker finishes what runs, gives
/// back what it holds but has not started, and exits 0; a second worker
/// then does the rest. Nothing is lost and nothing runs twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_batch_loses_nothing() {
    let env = Env::new();
    let runs = env.path("runs.txt");
    let runs_arg = runs.to_string_lossy().into_owned();
    let mut a = env.test_worker("a@test", &["-c", "4", "--prefetch", "16"]);
    let app = env.app().await;

    let total = 100;
    let calls = (0..total).map(|i| {
        (
            "tasks.slow_record".to_owned(),
            vec![json!(runs_arg), json!(i), json!(0.05)],
            Map::new(),
            SendOptions::new(),
        )
    });
    let ids = app.send_batch(calls).await.expect("publish");
    eventually("a few tasks done", Duration::from_secs(20), || {
        recorded(&runs).len() >= 8
    });
    a.terminate();
    let status = a.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "worker a exited with {status}");
    let done_by_a = recorded(&runs).len();
    assert!(
        done_by_a < total,
        "the batch finished before SIGTERM; nothing was tested"
    );
    assert!(
        a.log_text().contains("all tasks finished"),
        "{}",
        a.log_text()
    );

    let _b = env.test_worker("b@test", &["-c", "8"]);
    for (i, id) in ids.iter().enumerate() {
        let value: Value = app
            .async_result(id.clone())
            .get(Duration::from_secs(30))
            .await
            .expect("every task finishes");
        assert_eq!(value, json!(i));
    }
    let lines = recorded(&runs);
    let unique: HashSet<&str> = lines.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(lines.len(), total, "a task ran twice or not at all");
    assert_eq!(unique.len(), total);
}

/// With acks_late and a shutdown deadline shorter than the running tasks,
/// the worker aborts them and gives their messages back at once (not after
/// the hour-long visibility timeout), so another worker completes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_past_the_shutdown_deadline_are_given_back() {
    let env = Env::new();
    let args = [
        "--acks-late",
        "-c",
        "2",
        "--prefetch",
        "2",
        "--shutdown-timeout",
        "0.2",
    ];
    let mut a = env.worker("a@test", &args);
    let app = env.app().await;
    let calls = (0..2).map(|_| {
        (
            "tasks.sleep".to_owned(),
            vec![json!(3)],
            Map::new(),
            SendOptions::new(),
        )
    });
    let ids = app.send_batch(calls).await.expect("publish");
    support::eventually_async(
        "worker a holds both tasks",
        Duration::from_secs(10),
        || async { app.broker().queues().depth("celery").await.expect("depth") == 0 },
    )
    .await;
    a.terminate();
    let status = a.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "worker a exited with {status}");
    assert_eq!(
        app.broker().queues().depth("celery").await.expect("depth"),
        2
    );

    let _b = env.worker("b@test", &["--acks-late"]);
    for id in &ids {
        let result = app.async_result(id.clone());
        let value: Value = result.get(Duration::from_secs(20)).await.expect("result");
        assert_eq!(value, json!(3));
        let meta = result.info().await.expect("read").expect("stored");
        assert_eq!(meta.worker.as_deref(), Some("b@test"));
    }
}

/// A second SIGTERM exits at once, even with a long task running; the
/// acks_late task is not lost: another worker runs it after the (short)
/// visibility timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_now_and_loses_nothing_acks_late() {
    let env = Env::new();
    let runs = env.path("runs.txt");
    let runs_arg = runs.to_string_lossy().into_owned();
    let mut a = env.test_worker(
        "a@test",
        &[
            "-c",
            "1",
            "--acks-late",
            "--visibility-timeout",
            "1",
            "--shutdown-timeout",
            "60",
            "--loglevel",
            "celeriac=debug",
        ],
    );
    let app = env.app().await;
    let long = app
        .send_task(
            "tasks.slow_record",
            vec![json!(runs_arg), json!("long"), json!(30.0)],
            Map::new(),
            SendOptions::new(),
        )
        .await
        .expect("publish");
    eventually("the long task started", Duration::from_secs(20), || {
        a.log_text().contains("task started")
    });
    a.terminate();
    eventually(
        "the first signal is acknowledged",
        Duration::from_secs(10),
        || a.log_text().contains("send the signal again"),
    );
    let started = std::time::Instant::now();
    a.terminate();
    let status = a.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(130), "{}", a.log_text());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "did not exit at once"
    );
    assert!(
        recorded(&runs).is_empty(),
        "the 30 s task cannot have finished"
    );

    let _b = env.test_worker("b@test", &["-c", "1", "--visibility-timeout", "1"]);
    let value: Value = long
        .get(Duration::from_secs(60))
        .await
        .expect("finished elsewhere");
    assert_eq!(value, json!("long"));
}
