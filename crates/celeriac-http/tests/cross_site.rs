//! What a page on another site can make a browser send is refused: bodies
//! that are not `application/json` (415), state-changing requests that are
//! cross-site by `Sec-Fetch-Site` or `Origin` (403), and the seed's
//! publishing `GET` (405, saying to use `POST`). Same-origin requests (the
//! dashboard's) and non-browser clients still pass, and no refused request
//! sends a task.

mod support;

use celeriac_http::HttpConfig;
use serde_json::{json, Value};
use support::Cluster;

/// The error message of an answer, with its status.
async fn answer(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or(text);
    (status, message)
}

/// How many tasks the server has sent.
async fn sent(cluster: &Cluster) -> usize {
    cluster.get_json("/api/tasks").await["tasks"]
        .as_array()
        .map_or(0, Vec::len)
}

#[tokio::test]
async fn bodies_must_be_json_to_be_read() {
    let cluster = Cluster::start_with(HttpConfig::default(), false).await;
    let cases = [
        (
            "/api/tasks/tasks.add",
            Some("text/plain"),
            "{\"args\": [1, 2]}",
        ),
        ("/api/tasks/tasks.add", None, "{\"args\": [1, 2]}"),
        (
            "/api/tasks/tasks.add",
            Some("application/x-www-form-urlencoded"),
            "{\"args\": [1, 2]}",
        ),
        ("/producer/api/sum", Some("text/plain"), "{\"number\": 3}"),
        (
            "/producer/api/sum",
            Some("multipart/form-data; boundary=x"),
            "{\"number\": 3}",
        ),
    ];
    for (path, content_type, body) in cases {
        let mut request = cluster
            .client
            .post(format!("{}{path}", cluster.url))
            .body(body);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let (status, message) = answer(request.send().await.expect("request")).await;
        assert_eq!(status, 415, "{path} {content_type:?}: {message}");
        assert!(
            message.contains("Content-Type: application/json"),
            "{path} {content_type:?}: {message}"
        );
    }
    assert_eq!(sent(&cluster).await, 0, "a refused body sent a task");

    // JSON with its content type (parameters allowed) is read; an empty body
    // needs no content type (the options default).
    let (status, message) = answer(
        cluster
            .client
            .post(format!("{}/api/tasks/tasks.add", cluster.url))
            .header("content-type", "application/json; charset=utf-8")
            .body("{\"args\": [1, 2]}")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, 200, "{message}");
    let (status, message) = answer(
        cluster
            .client
            .post(format!("{}/api/tasks/tasks.fail", cluster.url))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, 200, "{message}");
    assert_eq!(sent(&cluster).await, 2);
}

#[tokio::test]
async fn cross_site_state_changes_are_refused() {
    let cluster = Cluster::start_with(HttpConfig::default(), false).await;
    let own_origin = cluster.url.clone();
    let routes = [
        "/api/tasks/tasks.add",
        "/producer/api/sum",
        "/producer/api/wait_and_return",
        "/api/tasks/some-id/revoke",
        "/api/dead-letters/some-id/requeue",
        "/dashboard/login",
    ];
    let refused: [&[(&str, &str)]; 5] = [
        &[("origin", "http://evil.example")],
        &[("origin", "null")],
        &[("origin", "http://127.0.0.1:1")],
        &[("sec-fetch-site", "cross-site")],
        &[
            ("origin", own_origin.as_str()),
            ("sec-fetch-site", "cross-site"),
        ],
    ];
    for path in routes {
        for headers in refused {
            let mut request = cluster
                .client
                .post(format!("{}{path}", cluster.url))
                .json(&json!({"number": 3, "args": [1, 2]}));
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let (status, message) = answer(request.send().await.expect("request")).await;
            assert_eq!(status, 403, "POST {path} {headers:?}: {message}");
            assert!(
                message.starts_with("cross-site request refused"),
                "POST {path} {headers:?}: {message}"
            );
        }
    }
    assert_eq!(sent(&cluster).await, 0, "a cross-site request sent a task");

    // The dashboard's own requests (same origin) and a cross-site GET pass.
    let (status, message) = answer(
        cluster
            .client
            .post(format!("{}/api/tasks/tasks.add", cluster.url))
            .header("origin", own_origin.as_str())
            .header("sec-fetch-site", "same-origin")
            .json(&json!({"args": [1, 2]}))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, 200, "{message}");
    let status = cluster
        .client
        .get(format!("{}/api/workers", cluster.url))
        .header("origin", "http://evil.example")
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .expect("request")
        .status();
    assert_eq!(status, 200);
    assert_eq!(sent(&cluster).await, 1);
}

#[tokio::test]
async fn with_cors_any_origin_other_sites_may_send() {
    let cluster = Cluster::start_with(
        HttpConfig {
            cors_any_origin: true,
            ..HttpConfig::default()
        },
        false,
    )
    .await;
    let (status, message) = answer(
        cluster
            .client
            .post(format!("{}/api/tasks/tasks.add", cluster.url))
            .header("origin", "http://other.example")
            .json(&json!({"args": [1, 2]}))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, 200, "{message}");
}

#[tokio::test]
async fn get_never_publishes_wait_and_return() {
    let cluster = Cluster::start().await;
    let response = cluster
        .client
        .get(format!("{}/producer/api/wait_and_return", cluster.url))
        .send()
        .await
        .expect("request");
    let allow = response
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (status, message) = answer(response).await;
    assert_eq!(status, 405, "{message}");
    assert_eq!(allow.as_deref(), Some("POST"));
    assert!(message.contains("use POST"), "{message}");
    assert_eq!(sent(&cluster).await, 0, "the GET sent a task");

    // POST, with no body at all, publishes with the seed's answer.
    let response = cluster
        .client
        .post(format!("{}/producer/api/wait_and_return", cluster.url))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let published: Value = response.json().await.expect("json");
    assert_eq!(published["message"], "job published");
    assert!(published["job_id"].is_string(), "{published}");
    assert_eq!(sent(&cluster).await, 1);
}

#[tokio::test]
async fn a_weak_token_refuses_to_start() {
    for token in ["   ", "short-token", " 123456789012345 "] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let app = celeriac::App::builder()
            .broker_url("memory://weak-token")
            .backend_url("memory://weak-token")
            .build()
            .await
            .expect("app");
        let config = HttpConfig {
            api_token: Some(token.to_owned()),
            ..HttpConfig::default()
        };
        let outcome = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            celeriac_http::serve(listener, app, config, std::future::pending()),
        )
        .await
        .expect("serve returns at once");
        let err = outcome.expect_err(token);
        assert!(
            matches!(err, celeriac_http::Error::WeakToken { min: 16, .. }),
            "{token:?}: {err}"
        );
    }
}
