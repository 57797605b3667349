//! The Redis result backend against a real `redis-server`: results stored
//! together by concurrent tasks (one script call for many) each land under
//! their own key, large ones too, and a stored SUCCESS is never replaced.

mod support;

use std::sync::Arc;
use std::time::Duration;

use celeriac::backend::redis::RedisBackend;
use celeriac::backend::ResultBackend;
use celeriac::protocol::{ResultMeta, TaskState};
use serde_json::json;

const EXPIRES: Duration = Duration::from_secs(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_stores_each_land_under_their_own_key() {
    let server = support::RedisServer::start();
    let backend = Arc::new(RedisBackend::open(&server.url(0), "").await.expect("open"));
    // More than one call's worth, with a few documents large enough that
    // a call is split by size.
    let stores = (0..600).map(|i| {
        let backend = Arc::clone(&backend);
        tokio::spawn(async move {
            let value = if i % 150 == 0 {
                json!("x".repeat(3 << 20))
            } else {
                json!(i)
            };
            let meta = ResultMeta::new(&format!("task-{i}"), TaskState::Success, value);
            backend.store(&meta, EXPIRES).await
        })
    });
    for stored in futures::future::join_all(stores).await {
        stored.expect("store task").expect("stored");
    }
    for i in 0..600 {
        let meta = backend
            .fetch(&format!("task-{i}"))
            .await
            .expect("fetch")
            .unwrap_or_else(|| panic!("task-{i} was stored"));
        assert_eq!(meta.status, TaskState::Success);
        if i % 150 == 0 {
            assert_eq!(meta.result.as_str().map(str::len), Some(3 << 20));
        } else {
            assert_eq!(meta.result, json!(i));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_is_kept_whatever_is_stored_after_it() {
    let server = support::RedisServer::start();
    let backend = Arc::new(RedisBackend::open(&server.url(0), "").await.expect("open"));
    let done = ResultMeta::new("final", TaskState::Success, json!(42));
    backend.store(&done, EXPIRES).await.expect("success");
    // A late duplicate's outcome, sent at the same moment as other results.
    let late = ResultMeta::failure("final", "IOError", "late duplicate", None);
    let other = ResultMeta::new("other", TaskState::Started, json!({"pid": 1}));
    let (a, b) = tokio::join!(
        backend.store(&late, EXPIRES),
        backend.store(&other, EXPIRES)
    );
    a.expect("late store answered");
    b.expect("other stored");
    let kept = backend.fetch("final").await.expect("fetch").expect("kept");
    assert_eq!((kept.status, kept.result), (TaskState::Success, json!(42)));
    let other = backend
        .fetch("other")
        .await
        .expect("fetch")
        .expect("stored");
    assert_eq!(other.status, TaskState::Started);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_sees_a_result_stored_while_it_waits() {
    let server = support::RedisServer::start();
    let backend = Arc::new(RedisBackend::open(&server.url(0), "").await.expect("open"));
    let waiter = {
        let backend = Arc::clone(&backend);
        tokio::spawn(async move { backend.wait("later", Duration::from_secs(10)).await })
    };
    // Stored whether the waiter has subscribed yet or not: it subscribes,
    // then reads, so either way it sees the result.
    let meta = ResultMeta::new("later", TaskState::Success, json!("done"));
    backend.store(&meta, EXPIRES).await.expect("store");
    let seen = waiter
        .await
        .expect("waiter")
        .expect("wait")
        .expect("a result");
    assert_eq!(seen.result, json!("done"));
}
