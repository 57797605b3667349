//! The API end to end on the memory broker: the seed's producer routes,
//! the generic task API, workers, queues, dead letters, metrics, the live
//! stream, and graceful shutdown with a stream open.

mod support;

use std::time::Duration;

use celeriac::broker::OutgoingMessage;
use futures::StreamExt;
use serde_json::{json, Value};
use support::{eventually, Cluster};

const WAIT: Duration = Duration::from_secs(15);

/// GET `path` until `done` holds for the answer; returns the answer.
async fn poll(cluster: &Cluster, path: &str, mut done: impl FnMut(&Value) -> bool) -> Value {
    let start = std::time::Instant::now();
    loop {
        let value = cluster.get_json(path).await;
        if done(&value) {
            return value;
        }
        assert!(
            start.elapsed() < WAIT,
            "{path} not done within {WAIT:?}: {value}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_ready(cluster: &Cluster, path: &str) -> Value {
    poll(cluster, path, |v| v["ready"] == true).await
}

#[tokio::test]
async fn the_seeds_producer_routes_keep_their_shapes() {
    let cluster = Cluster::start().await;
    let published = cluster
        .post_json("/producer/api/wait_and_return", json!(null))
        .await;
    assert_eq!(published["message"], "job published");
    let id = published["job_id"].as_str().expect("job id").to_owned();
    let done = wait_ready(&cluster, &format!("/producer/api/wait_and_return/{id}")).await;
    assert_eq!(done, json!({"ready": true, "result": "Hello World!"}));

    let published = cluster
        .post_json("/producer/api/sum", json!({"number": 100}))
        .await;
    let id = published["job_id"].as_str().expect("job id").to_owned();
    let done = wait_ready(&cluster, &format!("/producer/api/sum/{id}")).await;
    assert_eq!(done, json!({"ready": true, "result": 5050}));

    // An id nobody knows is simply not ready, as Celery's AsyncResult says.
    let unknown = cluster
        .get_json("/producer/api/sum/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!(unknown, json!({"ready": false, "result": null}));
}

#[tokio::test]
async fn generic_tasks_report_state_progress_result_and_traceback() {
    let cluster = Cluster::start().await;
    let sent = cluster
        .post_json(
            "/api/tasks/tasks.add",
            json!({"args": [2], "kwargs": {"y": 3}}),
        )
        .await;
    assert_eq!(sent["name"], "tasks.add");
    assert_eq!(sent["queue"], "celery");
    let id = sent["task_id"].as_str().expect("id").to_owned();
    let view = wait_ready(&cluster, &format!("/api/tasks/{id}")).await;
    assert_eq!(view["state"], "SUCCESS");
    assert_eq!(view["result"], 5);
    assert_eq!(view["args"], json!([2]));
    assert_eq!(view["argsrepr"], "(2,)");

    // Progress is visible while the task runs.
    let sent = cluster
        .post_json("/api/tasks/tasks.sum_to_n_job", json!({"args": [1000]}))
        .await;
    let id = sent["task_id"].as_str().expect("id").to_owned();
    let mut seen = Vec::new();
    poll(&cluster, &format!("/api/tasks/{id}"), |view| {
        if let Some(p) = view["progress"]["percent"].as_f64() {
            seen.push(p);
        }
        view["state"] == "SUCCESS"
    })
    .await;
    assert!(
        seen.iter().any(|p| *p > 0.0 && *p < 100.0),
        "progress between 0 and 100 % was seen: {seen:?}"
    );

    // A failure carries its error and traceback; it can be retried.
    let sent = cluster
        .post_json("/api/tasks/tasks.fail", json!({"args": ["boom"]}))
        .await;
    let id = sent["task_id"].as_str().expect("id").to_owned();
    let view = wait_ready(&cluster, &format!("/api/tasks/{id}")).await;
    assert_eq!(view["state"], "FAILURE");
    assert_eq!(view["result"]["exc_type"], "ValueError");
    assert!(view["traceback"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(view["retryable"], true);
    let again = cluster
        .post_json(&format!("/api/tasks/{id}/retry"), json!(null))
        .await;
    assert_eq!(again["retry_of"], id);
    assert_ne!(again["task_id"], id);
    assert_eq!(again["name"], "tasks.fail");

    // Unknown ids read PENDING, unknown to anyone.
    let unknown = cluster.get_json("/api/tasks/no-such-task").await;
    assert_eq!(unknown["state"], "PENDING");
    assert_eq!(unknown["known"], false);

    // The list shows them newest first, and filters.
    let list = cluster
        .get_json("/api/tasks?state=failure&name=fail&limit=10")
        .await;
    assert!(list["total"].as_u64().is_some_and(|n| n >= 1));
    assert!(list["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .all(|t| t["state"] == "FAILURE"));
}

#[tokio::test]
async fn a_revoked_countdown_task_never_runs() {
    let cluster = Cluster::start().await;
    let sent = cluster
        .post_json(
            "/api/tasks/tasks.add",
            json!({"args": [1, 1], "options": {"countdown": 1.0}}),
        )
        .await;
    let id = sent["task_id"].as_str().expect("id").to_owned();
    let revoked = cluster
        .post_json(&format!("/api/tasks/{id}/revoke"), json!(null))
        .await;
    assert_eq!(revoked["state"], "REVOKED");
    let view = cluster.get_json(&format!("/api/tasks/{id}")).await;
    assert_eq!(view["state"], "REVOKED");
    assert_eq!(view["ready"], true);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let view = cluster.get_json(&format!("/api/tasks/{id}")).await;
    assert_eq!(view["state"], "REVOKED", "{view}");
}

#[tokio::test]
async fn workers_queues_dead_letters_and_metrics() {
    let cluster = Cluster::start().await;
    // The worker's first heartbeat comes after 2 s.
    eventually("the worker is listed", WAIT, || async {
        let workers = cluster.get_json("/api/workers").await;
        workers.as_array().is_some_and(|w| {
            w.iter()
                .any(|w| w["hostname"] == "test-worker@here" && w["online"] == true)
        })
    })
    .await;

    let queues = cluster.get_json("/api/queues").await;
    assert!(queues
        .as_array()
        .expect("queues")
        .iter()
        .any(|q| q["name"] == "celery" && q["depth"].is_u64()));

    // A message no worker can read becomes a dead letter, and can be requeued.
    cluster
        .app
        .broker()
        .publish(OutgoingMessage {
            queue: "celery".into(),
            priority: 0,
            not_before: None,
            payload: b"{not json".to_vec(),
        })
        .await
        .expect("publish");
    let letters = poll(&cluster, "/api/dead-letters", |l| {
        l.as_array().is_some_and(|l| !l.is_empty())
    })
    .await;
    let letter = &letters[0];
    assert_eq!(letter["queue"], "celery");
    assert!(letter["preview"]
        .as_str()
        .is_some_and(|p| p.contains("not json")));
    let dead_id = letter["id"].as_str().expect("id");
    let requeued = cluster
        .post_json(&format!("/api/dead-letters/{dead_id}/requeue"), json!(null))
        .await;
    assert_eq!(requeued["id"], dead_id);

    let sent = cluster
        .post_json("/api/tasks/tasks.add", json!({"args": [1, 2]}))
        .await;
    let id = sent["task_id"].as_str().expect("id").to_owned();
    wait_ready(&cluster, &format!("/api/tasks/{id}")).await;
    let metrics = cluster
        .client
        .get(format!("{}/metrics", cluster.url))
        .send()
        .await
        .expect("metrics");
    assert!(metrics
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain")));
    let text = metrics.text().await.expect("text");
    for needle in [
        "celeriac_tasks_total{name=\"tasks.add\",state=\"SUCCESS\"}",
        "celeriac_task_runtime_seconds_count{name=\"tasks.add\"}",
        "celeriac_tasks_sent_total{name=\"tasks.add\"}",
        "celeriac_queue_depth{queue=\"celery\"}",
        "celeriac_workers_online 1",
    ] {
        assert!(text.contains(needle), "{needle} in\n{text}");
    }

    let overview = cluster.get_json("/api/overview").await;
    assert_eq!(overview["transport"], "memory");
    assert!(overview["registered"]
        .as_array()
        .expect("names")
        .iter()
        .any(|n| n == "tasks.add"));
    assert_eq!(cluster.get_json("/health").await["status"], "ok");

    let doc = cluster.get_json("/openapi.json").await;
    for path in [
        "/producer/api/sum",
        "/api/tasks/{task}",
        "/api/tasks/{task}/revoke",
        "/api/workers",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
}

#[tokio::test]
async fn the_live_stream_pushes_task_changes_and_ends_on_shutdown() {
    let mut cluster = Cluster::start().await;
    let response = cluster
        .client
        .get(format!("{}/api/events/stream", cluster.url))
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let sent = cluster
        .post_json("/api/tasks/tasks.add", json!({"args": [20, 22]}))
        .await;
    let id = sent["task_id"].as_str().expect("id").to_owned();
    let mut text = String::new();
    let found = tokio::time::timeout(WAIT, async {
        while let Some(Ok(chunk)) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text
                .split("\n\n")
                .any(|e| e.contains("event: task") && e.contains(&id) && e.contains("SUCCESS"))
            {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "stream so far:\n{text}");
    // Shutdown is not held up by the open stream.
    cluster.stop_server().await.expect("clean shutdown");
}
