//! Two `celeriac worker` processes and a producer on one SQLite file.

mod support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use celeriac::SendOptions;
use serde_json::{json, Map, Value};
use support::{eventually, recorded, Env};

const TASKS: usize = 10_000;

/// Every task runs exactly once and every result is there and right, with
/// two worker processes competing for one file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_run_ten_thousand_tasks_once_each() {
    let env = Env::new();
    let runs = env.path("runs.txt");
    let runs_arg = runs.to_string_lossy().into_owned();
    let _a = env.test_worker("a@test", &["-c", "16"]);
    let _b = env.test_worker("b@test", &["-c", "16"]);
    let app = env.app().await;

    let mut ids = Vec::with_capacity(TASKS);
    for chunk in (0..TASKS).collect::<Vec<_>>().chunks(1000) {
        let calls = chunk.iter().map(|i| {
            (
                "tasks.record".to_owned(),
                vec![json!(runs_arg), json!(i)],
                Map::new(),
                SendOptions::new(),
            )
        });
        ids.extend(app.send_batch(calls).await.expect("publish"));
    }

    // Every result present and correct.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut by_worker: HashMap<String, usize> = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let result = app.async_result(id.clone());
        let value: Value = result.get(left).await.expect("task result");
        assert_eq!(value, json!(i), "result of task {i} ({id})");
        let meta = result.info().await.expect("read").expect("stored");
        *by_worker
            .entry(meta.worker.unwrap_or_default())
            .or_default() += 1;
    }
    assert_eq!(by_worker.values().sum::<usize>(), TASKS);
    assert!(
        by_worker.contains_key("a@test") && by_worker.contains_key("b@test"),
        "both workers should have taken tasks: {by_worker:?}"
    );

    // None run twice: one line per execution, one execution per task.
    eventually("all executions recorded", Duration::from_secs(10), || {
        recorded(&runs).len() >= TASKS
    });
    let lines = recorded(&runs);
    let executed: HashSet<&str> = lines.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(lines.len(), TASKS, "some task ran more than once");
    assert_eq!(
        executed,
        ids.iter().map(String::as_str).collect::<HashSet<_>>()
    );
    let app_depth = app.broker().queues().depth("celery").await.expect("depth");
    assert_eq!(app_depth, 0);
}
