//! The worker page's API and the task table's server-side query, on the
//! in-memory broker with an in-process worker: remote control carried by
//! the event bus (no pidbox there), task events switched on by `serve`
//! for a worker started without them, and the backend's final document
//! winning over progress.

mod support;

use std::time::Duration;

use celeriac::{Worker, WorkerOptions};
use celeriac_http::HttpConfig;
use serde_json::{json, Value};
use support::{eventually, Cluster};

const LIMIT: Duration = Duration::from_secs(20);
const WORKER: &str = "test-worker@here";

async fn status_of(cluster: &Cluster, request: reqwest::RequestBuilder) -> (u16, Value) {
    let _ = cluster;
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_page_reads_and_controls_a_worker_over_the_event_bus() {
    let cluster = Cluster::start().await;
    eventually("the worker's heartbeat is seen", LIMIT, || async {
        let workers = cluster.get_json("/api/workers").await;
        workers.as_array().is_some_and(|w| !w.is_empty())
    })
    .await;
    let detail = cluster.get_json(&format!("/api/workers/{WORKER}")).await;
    assert_eq!(detail["control"], "events", "{detail}");
    assert!(detail.get("control_error").is_none(), "{detail}");
    let names: Vec<&str> = detail["registered"]
        .as_array()
        .expect("registered")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"tasks.add"), "{detail}");
    assert_eq!(detail["queues"], json!(["celery"]));
    assert_eq!(detail["stats"]["pool"]["max-concurrency"], 4);

    // A rate limit set from the page is what the worker answers afterwards.
    let reply = cluster
        .post_json(
            &format!("/api/workers/{WORKER}/rate-limit"),
            json!({"task_name": "tasks.add", "rate_limit": "5/m"}),
        )
        .await;
    assert_eq!(reply["reply"]["ok"], "new rate limit set successfully");
    let detail = cluster.get_json(&format!("/api/workers/{WORKER}")).await;
    let add = detail["registered"]
        .as_array()
        .expect("registered")
        .iter()
        .find(|t| t["name"] == "tasks.add")
        .cloned()
        .unwrap_or_default();
    assert_eq!(add["rate_limit"], "5/m", "{detail}");

    // Bad input is a 4xx naming it; a worker never seen is a 404.
    let url = |path: &str| format!("{}{path}", cluster.url);
    for (body, says) in [
        (
            json!({"task_name": "tasks.add", "rate_limit": "fast"}),
            "rate_limit",
        ),
        (
            json!({"task_name": "tasks.nope", "rate_limit": "1/s"}),
            "unknown task",
        ),
    ] {
        let (status, answer) = status_of(
            &cluster,
            cluster
                .client
                .post(url(&format!("/api/workers/{WORKER}/rate-limit")))
                .json(&body),
        )
        .await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap_or("").contains(says),
            "{answer}"
        );
    }
    let (status, _) = status_of(
        &cluster,
        cluster
            .client
            .post(url("/api/workers/nobody@nowhere/rate-limit"))
            .json(&json!({"task_name": "tasks.add", "rate_limit": "1/s"})),
    )
    .await;
    assert_eq!(status, 404, "a worker never seen");
    let (status, _) = status_of(
        &cluster,
        cluster.client.get(url("/api/workers/nobody@nowhere")),
    )
    .await;
    assert_eq!(status, 404);

    // Shutdown: the worker says so and goes offline.
    let reply = cluster
        .post_json(&format!("/api/workers/{WORKER}/shutdown"), json!({}))
        .await;
    assert_eq!(reply["reply"]["ok"], "shutting down");
    eventually("the worker goes offline", LIMIT, || async {
        let workers = cluster.get_json("/api/workers").await;
        workers
            .as_array()
            .into_iter()
            .flatten()
            .any(|w| w["hostname"] == WORKER && w["online"] == false)
    })
    .await;
    // Seen, but gone: nobody answers within the timeout.
    let (status, answer) = status_of(
        &cluster,
        cluster
            .client
            .post(url(&format!("/api/workers/{WORKER}/rate-limit")))
            .json(&json!({"task_name": "tasks.add", "rate_limit": "1/s"})),
    )
    .await;
    assert_eq!(status, 504, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_turns_on_task_events_of_a_worker_started_without_them() {
    let cluster = Cluster::start_with(HttpConfig::default(), false).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = WorkerOptions {
        concurrency: 2,
        send_events: false,
        hostname: "quiet@here".into(),
        ..WorkerOptions::default()
    };
    let worker = tokio::spawn(Worker::new(cluster.app.clone(), options).run(async move {
        let _ = stopped.await;
    }));
    // Sent around the server: only task events can tell it about a task.
    eventually("the worker is seen", LIMIT, || async {
        let workers = cluster.get_json("/api/workers").await;
        workers.as_array().is_some_and(|w| !w.is_empty())
    })
    .await;
    // Seeing the worker and its turning events on race (serve asks when it
    // sees it come online): a task run before that is never announced, so
    // send another until one shows. None would without serve's request.
    let start = std::time::Instant::now();
    'sending: loop {
        assert!(
            start.elapsed() < LIMIT,
            "not within {LIMIT:?}: a task shows, succeeded, from events"
        );
        let sent = cluster
            .app
            .send_task(
                "tasks.add",
                vec![json!(40), json!(2)],
                serde_json::Map::new(),
                celeriac::SendOptions::default(),
            )
            .await
            .expect("send");
        assert_eq!(sent.get(LIMIT).await.expect("the task ran"), json!(42));
        let id = sent.id().to_owned();
        let shown = std::time::Instant::now();
        while shown.elapsed() < std::time::Duration::from_secs(2) {
            let page = cluster.get_json(&format!("/api/tasks?q={id}")).await;
            if page["tasks"][0]["state"] == "SUCCESS" && page["tasks"][0]["worker"] == "quiet@here"
            {
                break 'sending;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let _ = stop.send(());
    let _ = tokio::time::timeout(LIMIT, worker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_reported_progress_lists_its_result_once_done() {
    let cluster = Cluster::start().await;
    let sent = cluster
        .post_json("/api/tasks/tasks.sum_to_n_job", json!({"args": [1000]}))
        .await;
    let id = sent["task_id"].as_str().expect("id").to_owned();
    let mut saw_progress = false;
    let start = std::time::Instant::now();
    loop {
        let page = cluster.get_json(&format!("/api/tasks?q={id}")).await;
        let task = &page["tasks"][0];
        if task["state"] == "PROGRESS" {
            saw_progress = true;
        }
        if task["state"] == "SUCCESS" {
            // Never the last progress: the event's repr, then the document.
            assert!(
                !task["result"].is_object(),
                "progress shown as the result: {task}"
            );
            if task["result"] == json!(500_500) {
                break;
            }
        }
        assert!(start.elapsed() < LIMIT, "no final result: {task}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(saw_progress, "the task was seen in PROGRESS first");
    let one = cluster.get_json(&format!("/api/tasks/{id}")).await;
    assert_eq!(one["result"], json!(500_500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_table_is_filtered_searched_sorted_and_paged_by_the_server() {
    let cluster = Cluster::start().await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let sent = cluster
            .post_json("/api/tasks/tasks.add", json!({"args": [7_000_000 + i, 1]}))
            .await;
        ids.push(sent["task_id"].as_str().expect("id").to_owned());
    }
    let failed = cluster
        .post_json(
            "/api/tasks/tasks.fail",
            json!({"args": ["needle-in-error"]}),
        )
        .await;
    eventually("every task finished", LIMIT, || async {
        let page = cluster.get_json("/api/tasks?state=SUCCESS,FAILURE").await;
        page["total"] == 13
    })
    .await;
    // Search by an argument value, by a result, by an error text, by id.
    let page = cluster.get_json("/api/tasks?q=(7000005,").await;
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["tasks"][0]["id"], ids[5].as_str());
    let page = cluster.get_json("/api/tasks?q=7000012").await;
    assert_eq!(
        page["tasks"][0]["id"],
        ids[11].as_str(),
        "7000011 + 1 as result"
    );
    let page = cluster.get_json("/api/tasks?q=NEEDLE-in").await;
    assert_eq!(page["tasks"][0]["id"], failed["task_id"]);
    assert!(
        page["tasks"][0]["runtime"].is_number(),
        "a failure has a runtime"
    );
    // Filters.
    let page = cluster
        .get_json("/api/tasks?state=failure&worker=test-worker@here")
        .await;
    assert_eq!(page["total"], 1);
    let page = cluster
        .get_json("/api/tasks?name=add&since=0&until=4102444800")
        .await;
    assert_eq!(page["total"], 12);
    let page = cluster
        .get_json("/api/tasks?since=2100-01-01T00:00:00Z")
        .await;
    assert_eq!(page["total"], 0);
    // Paging, newest first, and sorting.
    let page = cluster
        .get_json("/api/tasks?name=add&limit=5&offset=5")
        .await;
    assert_eq!(
        (
            page["total"].clone(),
            page["tasks"].as_array().map(Vec::len)
        ),
        (json!(12), Some(5))
    );
    assert_eq!(page["tasks"][0]["id"], ids[6].as_str());
    let page = cluster
        .get_json("/api/tasks?sort=name&order=asc&limit=1")
        .await;
    assert_eq!(page["tasks"][0]["name"], "tasks.add");
    let page = cluster
        .get_json("/api/tasks?sort=name&order=desc&limit=1")
        .await;
    assert_eq!(page["tasks"][0]["name"], "tasks.fail");
    // Bad parameters are a 400 naming them, never a 500.
    for query in [
        "since=yesterday",
        "limit=0",
        "limit=100000",
        "sort=colour",
        "order=up",
        "offset=-1",
        "until=NaN",
    ] {
        let (status, answer) = status_of(
            &cluster,
            cluster
                .client
                .get(format!("{}/api/tasks?{query}", cluster.url)),
        )
        .await;
        assert_eq!(status, 400, "{query}: {answer}");
    }
}
