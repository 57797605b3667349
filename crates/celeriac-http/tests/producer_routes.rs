//! Producer routes come from the application's declarations
//! ([`ProducerRoute`] in `HttpConfig::producer_routes`): a declared route
//! sends its task with the body's fields as positional arguments, checks
//! them (422 naming the field), answers 404 for names not declared and 405
//! for a publishing `GET`; the OpenAPI document and the route list follow
//! the declarations exactly; invalid or duplicate declarations refuse to
//! start.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use celeriac_http::{ArgType, Error, HttpConfig, ProducerRoute};
use serde_json::{json, Value};
use support::{seed_routes, Cluster};

/// `POST /producer/api/repeat {"text", "times"}` sends
/// `tasks.repeat(text, times)`; `POST /producer/api/ping` sends
/// `tasks.wait_and_return()`.
fn custom_routes() -> Vec<ProducerRoute> {
    vec![
        ProducerRoute::new("repeat", "tasks.repeat")
            .arg("text", ArgType::String)
            .arg("times", ArgType::UnsignedInteger)
            .description("Repeat a text."),
        ProducerRoute::new("ping-2", "tasks.wait_and_return"),
    ]
}

async fn custom_cluster(with_worker: bool) -> Cluster {
    let config = HttpConfig {
        producer_routes: custom_routes(),
        ..HttpConfig::default()
    };
    Cluster::start_with(config, with_worker).await
}

/// Status and error message of a `POST path` with `body` as JSON text.
async fn post(cluster: &Cluster, path: &str, body: &str) -> (u16, String) {
    let response = cluster
        .client
        .post(format!("{}{path}", cluster.url))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or(text);
    (status, message)
}

#[tokio::test]
async fn a_declared_route_sends_its_task_with_the_fields_in_order() {
    let cluster = custom_cluster(true).await;
    let published = cluster
        .post_json("/producer/api/repeat", json!({"times": 3, "text": "ab"}))
        .await;
    assert_eq!(published["message"], "job published");
    let id = published["job_id"].as_str().expect("job_id").to_owned();

    // The sent message carries the fields as positional args, in declared order.
    let view = cluster.get_json(&format!("/api/tasks/{id}")).await;
    assert_eq!(view["name"], "tasks.repeat", "{view}");
    assert_eq!(view["args"], json!(["ab", 3]), "{view}");
    assert_eq!(view["kwargs"], json!({}), "{view}");
    // The in-process worker ran it with those args.
    let path = format!("/producer/api/repeat/{id}");
    let start = std::time::Instant::now();
    let last = loop {
        let status = cluster.get_json(&path).await;
        if status["ready"] == true {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "not ready: {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(last, json!({"ready": true, "result": "ab-ab-ab"}));

    // A route without fields reads no body.
    let (status, message) = post(&cluster, "/producer/api/ping-2", "").await;
    assert_eq!(status, 200, "{message}");
}

#[tokio::test]
async fn bad_fields_are_refused_naming_the_field() {
    let cluster = custom_cluster(false).await;
    let cases = [
        (r#"{"text": "ab"}"#, 422, "missing field `times`"),
        (r#"{"times": 2}"#, 422, "missing field `text`"),
        (r#"{"text": 5, "times": 2}"#, 422, "`text` must be a string"),
        (
            r#"{"text": "a", "times": "2"}"#,
            422,
            "`times` must be an integer",
        ),
        (r#"{"text": "a", "times": -2}"#, 422, "`times`"),
        (
            r#"{"text": "a", "times": 2, "x": 1}"#,
            422,
            "unknown field `x`",
        ),
        (r#"["a", 2]"#, 422, "RepeatRequest"),
        (r#"{"text": "#, 400, "EOF"),
    ];
    for (body, want, mentions) in cases {
        let (status, message) = post(&cluster, "/producer/api/repeat", body).await;
        assert_eq!(status, want, "{body}: {message}");
        assert!(message.contains(mentions), "{body}: {message}");
    }
    let response = cluster
        .client
        .post(format!("{}/producer/api/repeat", cluster.url))
        .header("content-type", "text/plain")
        .body(r#"{"text": "a", "times": 2}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 415);
    let tasks = cluster.get_json("/api/tasks").await;
    assert_eq!(tasks["tasks"], json!([]), "a refused body sent a task");
}

#[tokio::test]
async fn undeclared_routes_are_404_and_a_publishing_get_is_405() {
    let cluster = custom_cluster(false).await;
    // The seed's routes are not declared here.
    for path in ["/producer/api/sum", "/producer/api/wait_and_return"] {
        let (status, message) = post(&cluster, path, r#"{"number": 3}"#).await;
        assert_eq!(status, 404, "{path}: {message}");
    }
    let status = cluster
        .client
        .get(format!(
            "{}/producer/api/sum/00000000-0000-0000-0000-000000000000",
            cluster.url
        ))
        .send()
        .await
        .expect("request")
        .status();
    assert_eq!(status, 404);
    for name in ["repeat", "ping-2"] {
        let response = cluster
            .client
            .get(format!("{}/producer/api/{name}", cluster.url))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 405, "{name}");
        assert_eq!(
            response
                .headers()
                .get("allow")
                .and_then(|v| v.to_str().ok()),
            Some("POST")
        );
        let body: Value = response.json().await.expect("json");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|m| m.contains("use POST")),
            "{body}"
        );
    }
    // An unknown job id on a declared route reads as not ready.
    let status = cluster
        .get_json("/producer/api/repeat/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!(status, json!({"ready": false, "result": null}));
}

/// The `/producer/` paths of a document.
fn producer_paths(document: &Value) -> BTreeSet<String> {
    document["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .filter(|p| p.starts_with("/producer/"))
        .cloned()
        .collect()
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_declared_routes() {
    let cluster = custom_cluster(false).await;
    let document = cluster.get_json("/openapi.json").await;
    let want: BTreeSet<String> = [
        "/producer/api/repeat",
        "/producer/api/repeat/{job_id}",
        "/producer/api/ping-2",
        "/producer/api/ping-2/{job_id}",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(producer_paths(&document), want);
    let publish = &document["paths"]["/producer/api/repeat"];
    let schema = &publish["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(schema["title"], "RepeatRequest", "{schema}");
    assert_eq!(schema["required"], json!(["text", "times"]), "{schema}");
    assert_eq!(schema["additionalProperties"], false, "{schema}");
    assert_eq!(schema["properties"]["text"]["type"], "string");
    assert_eq!(schema["properties"]["times"]["type"], "integer");
    assert_eq!(schema["properties"]["times"]["minimum"], 0);
    for status in ["200", "401", "403", "400", "413", "415", "422"] {
        assert!(publish["post"]["responses"][status].is_object(), "{status}");
    }
    assert!(publish["get"]["responses"]["405"].is_object(), "{publish}");
    let no_body = &document["paths"]["/producer/api/ping-2"]["post"];
    assert!(no_body["requestBody"].is_null(), "{no_body}");
    let status = &document["paths"]["/producer/api/repeat/{job_id}"]["get"];
    assert_eq!(status["parameters"][0]["name"], "job_id");

    // The library's document and route list follow the declarations too.
    let none = serde_json::to_value(celeriac_http::openapi(&[])).expect("json");
    assert!(producer_paths(&none).is_empty());
    let seed = serde_json::to_value(celeriac_http::openapi(&seed_routes())).expect("json");
    assert_eq!(producer_paths(&seed).len(), 4);
    assert!(seed["paths"]["/producer/api/sum"]["post"]["requestBody"].is_object());
    let listed: Vec<(&str, String)> = celeriac_http::routes(&custom_routes())
        .into_iter()
        .filter(|(_, path)| path.starts_with("/producer/"))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("POST", "/producer/api/repeat".to_owned()),
            ("GET", "/producer/api/repeat/{job_id}".to_owned()),
            ("POST", "/producer/api/ping-2".to_owned()),
            ("GET", "/producer/api/ping-2/{job_id}".to_owned()),
        ]
    );
}

#[tokio::test]
async fn invalid_and_duplicate_routes_refuse_to_start() {
    let configs = [
        (vec![ProducerRoute::new("", "t")], "empty"),
        (vec![ProducerRoute::new("Sum", "t")], "'S'"),
        (vec![ProducerRoute::new("a/b", "t")], "'/'"),
        (
            vec![ProducerRoute::new("x", "t"), ProducerRoute::new("x", "u")],
            "declared twice",
        ),
    ];
    for (routes, mentions) in configs {
        let config = HttpConfig {
            producer_routes: routes,
            ..HttpConfig::default()
        };
        let err = config.check().expect_err(mentions);
        assert!(
            matches!(
                err,
                Error::InvalidProducerRoute { .. } | Error::DuplicateProducerRoute { .. }
            ),
            "{err}"
        );
        assert!(err.to_string().contains(mentions), "{err}");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let app = celeriac::App::builder()
            .broker_url("memory://bad-producer-routes")
            .backend_url("memory://bad-producer-routes")
            .build()
            .await
            .expect("app");
        let outcome = tokio::time::timeout(
            Duration::from_secs(5),
            celeriac_http::serve(listener, app, config, std::future::pending()),
        )
        .await
        .expect("serve returns at once");
        assert!(outcome.is_err(), "{mentions}");
    }
}
