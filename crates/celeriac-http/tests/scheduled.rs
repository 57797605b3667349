//! `GET /api/scheduled` and the dashboard's Scheduled page, on SQLite and
//! Redis (each broker's own delayed store): a task sent with a one-hour
//! countdown is listed with its id, name, queue, ETA, time left and
//! argument reprs, soonest first; `limit` cuts the list and says so; a bad
//! `limit` is a 400 naming it. No worker runs, so nothing takes the tasks.

mod support;

use std::time::Duration;

use celeriac::{App, SendOptions};
use celeriac_http::HttpConfig;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use support::redis::RedisServer;
use support::Cluster;

const HOUR: Duration = Duration::from_secs(3600);

async fn app_on(broker: &str) -> App {
    App::builder()
        .broker_url(broker)
        .backend_url(broker)
        .task(support::add)
        .build()
        .await
        .expect("an app on the test broker")
}

async fn send_later(app: &App, args: Vec<Value>, kwargs: Value, after: Duration) -> String {
    let kwargs: Map<String, Value> = serde_json::from_value(kwargs).expect("kwargs object");
    let sent = app
        .send_task(
            "tasks.add",
            args,
            kwargs,
            SendOptions::new().countdown(after),
        )
        .await
        .expect("the task is sent");
    sent.id().to_owned()
}

/// The whole check, on the broker `app` uses.
async fn countdown_tasks_are_listed(app: App) {
    let cluster = Cluster::start_for(app.clone(), HttpConfig::default(), false).await;
    let sent_at = Utc::now();
    let soon = send_later(&app, vec![json!(2), json!("x")], json!({"k": "<b>"}), HOUR).await;
    let later = send_later(&app, vec![json!(3), json!(4)], json!({}), 2 * HOUR).await;

    let list = cluster.get_json("/api/scheduled").await;
    assert_eq!(list["supported"], true, "{list}");
    assert_eq!(list["truncated"], false, "{list}");
    let tasks = list["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 2, "{list}");
    let first = &tasks[0];
    assert_eq!(first["id"], soon.as_str(), "soonest first: {list}");
    assert_eq!(tasks[1]["id"], later.as_str(), "{list}");
    assert_eq!(first["name"], "tasks.add");
    assert_eq!(first["queue"], "celery");
    assert_eq!(first["argsrepr"], "(2, 'x')");
    assert_eq!(first["kwargsrepr"], "{'k': '<b>'}");
    assert_eq!(first["retries"], 0);
    let eta: DateTime<Utc> = first["eta"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .expect("an ISO-8601 ETA with a date and an offset")
        .with_timezone(&Utc);
    let expected = sent_at + chrono::Duration::seconds(3600);
    assert!(
        (eta - expected).num_seconds().abs() <= 5,
        "ETA {eta} not one hour after {sent_at}"
    );
    let eta_unix = first["eta_unix"].as_f64().expect("eta_unix");
    assert!((eta_unix - eta.timestamp_micros() as f64 / 1e6).abs() < 0.001);
    let countdown = first["countdown"].as_f64().expect("countdown");
    assert!((3500.0..=3600.0).contains(&countdown), "{countdown} s left");

    // A limit keeps the soonest and says more wait.
    let one = cluster.get_json("/api/scheduled?limit=1").await;
    assert_eq!(one["truncated"], true, "{one}");
    assert_eq!(one["tasks"].as_array().map(Vec::len), Some(1), "{one}");
    assert_eq!(one["tasks"][0]["id"], soon.as_str());

    // A bad limit is a 400 that names it.
    for query in ["limit=0", "limit=1001", "limit=abc", "limit=-1", "limt=5"] {
        let response = cluster
            .client
            .get(format!("{}/api/scheduled?{query}", cluster.url))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.expect("a JSON error");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains("lim"), "{query}: {error}");
    }

    // The dashboard links the page; the page carries the section, its
    // script and the CSP the other pages have.
    let index = cluster
        .client
        .get(format!("{}/dashboard", cluster.url))
        .send()
        .await
        .expect("dashboard")
        .text()
        .await
        .expect("dashboard html");
    assert!(index.contains(r#"href="/dashboard/scheduled""#), "nav link");
    let page = cluster
        .client
        .get(format!("{}/dashboard/scheduled", cluster.url))
        .send()
        .await
        .expect("scheduled page");
    assert_eq!(page.status(), 200);
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.text().await.expect("scheduled html");
    assert!(html.contains(r#"id="scheduled-section""#), "section");
    assert!(html.contains("/dashboard/assets/scheduled.js"), "script");
    let script = cluster
        .client
        .get(format!("{}/dashboard/assets/scheduled.js", cluster.url))
        .send()
        .await
        .expect("script");
    assert_eq!(script.status(), 200);
    let script = script.text().await.expect("script text");
    assert!(!script.contains("innerHTML"), "values go in as text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_countdown_tasks_are_listed_soonest_first() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("scheduled.db").display());
    countdown_tasks_are_listed(app_on(&url).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_countdown_tasks_are_listed_soonest_first() {
    let redis = RedisServer::start();
    countdown_tasks_are_listed(app_on(&redis.url()).await).await;
}
