//! Bad input is always a 4xx with a JSON message naming the problem,
//! never a 5xx: a table of malformed bodies, wrong types, unknown fields,
//! bad options, bad ids and bad query strings.

mod support;

use celeriac_http::HttpConfig;
use serde_json::Value;
use support::Cluster;

struct Case {
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: &'static str,
    status: u16,
    /// Text the error message must contain.
    mentions: &'static str,
}

const fn case(
    method: &'static str,
    path: &'static str,
    body: &'static str,
    status: u16,
    mentions: &'static str,
) -> Case {
    Case {
        method,
        path,
        content_type: Some("application/json"),
        body,
        status,
        mentions,
    }
}

const CASES: &[Case] = &[
    // The seed's sum.
    case("POST", "/producer/api/sum", "{\"number\": ", 400, "EOF"),
    case("POST", "/producer/api/sum", "not json", 400, "expected"),
    case(
        "POST",
        "/producer/api/sum",
        "{\"number\": \"ten\"}",
        422,
        "number",
    ),
    case(
        "POST",
        "/producer/api/sum",
        "{\"number\": -1}",
        422,
        "number",
    ),
    case(
        "POST",
        "/producer/api/sum",
        "{\"number\": 1.5}",
        422,
        "number",
    ),
    case(
        "POST",
        "/producer/api/sum",
        "{\"number\": null}",
        422,
        "number",
    ),
    case("POST", "/producer/api/sum", "{}", 422, "number"),
    case("POST", "/producer/api/sum", "[]", 422, "SumRequest"),
    case(
        "POST",
        "/producer/api/sum",
        "{\"number\": 3, \"extra\": 1}",
        422,
        "extra",
    ),
    case("POST", "/producer/api/sum", "", 400, "EOF"),
    Case {
        method: "POST",
        path: "/producer/api/sum",
        content_type: Some("text/plain"),
        body: "{\"number\": 3}",
        status: 415,
        mentions: "Content-Type",
    },
    Case {
        method: "POST",
        path: "/producer/api/sum",
        content_type: None,
        body: "{\"number\": 3}",
        status: 415,
        mentions: "Content-Type",
    },
    // The generic send.
    case("POST", "/api/tasks/tasks.add", "{\"args\": 5}", 422, "args"),
    case(
        "POST",
        "/api/tasks/tasks.add",
        "{\"kwargs\": [1]}",
        422,
        "kwargs",
    ),
    case(
        "POST",
        "/api/tasks/tasks.add",
        "{\"kwarg\": {}}",
        422,
        "kwarg",
    ),
    case("POST", "/api/tasks/tasks.add", "{\"args\": [1,", 400, "EOF"),
    case(
        "POST",
        "/api/tasks/tasks.add",
        "{\"options\": {\"priority\": 10}}",
        422,
        "priority",
    ),
    case(
        "POST",
        "/api/tasks/tasks.add",
        "{\"options\": {\"priority\": -1}}",
        422,
        "priority",
    ),
    case(
        "POST",
        "/api/tasks/tasks.add",
        "{\"options\": {\"countdown\": -5}}",
        422,
        "countdown",
    ),
    case(
        "POST",
        "/api/tasks/tasks.add",
        "{\"options\": {\"countdown\": 1e300}}",
        422,
        "countdown",
    ),
    case(
        "POST",
        "/api/tasks/tasks.add",
        "{\"options\": {\"countdown\": \"soon\"}}",
        422,
        "countdown",
    ),
    case(
        "POST",
        "/api/tasks/tasks.add",
        "{\"options\": {\"eta\": \"tomorrow\"}}",
        422,
        "eta",
    ),
    case(
        "POST",
        "/api/tasks/tasks.add",
        "{\"options\": {\"eta\": \"2030-01-01T00:00:00Z\", \"countdown\": 3}}",
        422,
        "both",
    ),
    case(
        "POST",
        "/api/tasks/tasks.add",
        "{\"options\": {\"expires\": {}}}",
        422,
        "expires",
    ),
    case(
        "POST",
        "/api/tasks/tasks.add",
        "{\"options\": {\"expires\": \"never\"}}",
        422,
        "expires",
    ),
    case(
        "POST",
        "/api/tasks/tasks.add",
        "{\"options\": {\"queue\": \"\"}}",
        422,
        "queue",
    ),
    case(
        "POST",
        "/api/tasks/tasks.add",
        "{\"options\": {\"task_id\": \"a b\"}}",
        422,
        "task id",
    ),
    case(
        "POST",
        "/api/tasks/tasks.add",
        "{\"options\": {\"retries\": 3}}",
        422,
        "retries",
    ),
    case("POST", "/api/tasks/no.such.task", "{}", 404, "unknown task"),
    // Ids, queries, routes.
    case("GET", "/api/tasks/a%20b", "", 400, "task id"),
    case("GET", "/api/tasks/%FF%FE", "", 400, "UTF-8"),
    case("GET", "/api/tasks?limit=many", "", 400, "limit"),
    case("GET", "/api/tasks?colour=red", "", 400, "colour"),
    case(
        "POST",
        "/api/tasks/some-id/revoke?terminate=maybe",
        "",
        400,
        "terminate",
    ),
    case("POST", "/api/tasks/never-seen/retry", "", 404, "never-seen"),
    case("POST", "/api/dead-letters/nope/requeue", "", 404, "nope"),
    case("GET", "/api/dead-letters?limit=-1", "", 400, "limit"),
    case("GET", "/api/events/stream?x=1", "", 400, "x"),
    case("GET", "/api/no-such-route", "", 404, "route"),
    case("DELETE", "/api/tasks", "", 405, "method"),
    case("GET", "/dashboard/assets/../../etc/passwd", "", 404, ""),
    case("GET", "/dashboard/assets/nope.js", "", 404, "asset"),
];

#[tokio::test]
async fn bad_input_is_a_4xx_naming_the_problem() {
    let cluster = Cluster::start_with(
        HttpConfig {
            body_limit: 4096,
            ..HttpConfig::default()
        },
        false,
    )
    .await;
    let mut failures = Vec::new();
    for c in CASES {
        let url = format!("{}{}", cluster.url, c.path);
        let method = reqwest::Method::from_bytes(c.method.as_bytes()).expect("method");
        let mut request = cluster.client.request(method, &url).body(c.body);
        if let Some(ct) = c.content_type {
            request = request.header("content-type", ct);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned));
        let named = message.as_deref().is_some_and(|m| {
            !m.is_empty() && m.to_lowercase().contains(&c.mentions.to_lowercase())
        });
        if status != c.status || !named {
            failures.push(format!(
                "{} {} {:?}: got {status} {text}, want {} mentioning {:?}",
                c.method, c.path, c.body, c.status, c.mentions
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let cluster = Cluster::start_with(
        HttpConfig {
            body_limit: 4096,
            ..HttpConfig::default()
        },
        false,
    )
    .await;
    let big = format!("{{\"args\": [\"{}\"]}}", "x".repeat(10_000));
    for path in ["/api/tasks/tasks.add", "/producer/api/sum"] {
        let response = cluster
            .client
            .post(format!("{}{path}", cluster.url))
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 413, "{path}");
        let body: Value = response.json().await.expect("json error");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|m| m.contains("length limit")),
            "{body}"
        );
    }
}

#[tokio::test]
async fn unknown_ids_read_pending_as_in_celery() {
    let cluster = Cluster::start_with(HttpConfig::default(), false).await;
    let view = cluster
        .get_json("/api/tasks/d9b1a6a2-5bd3-4a38-8f0e-2bb1c6a0b0c4")
        .await;
    assert_eq!(view["state"], "PENDING");
    assert_eq!(view["known"], false);
    assert_eq!(view["ready"], false);
}
