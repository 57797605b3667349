//! The ranking server over real HTTP: the original ranking case, missing
//! and malformed entity records, background refresh, 400/413, CORS,
//! `/health` and `/openapi.json`. Entities come from a memory result
//! backend here; `ranking_redis.rs` runs the same server on Redis.

use std::sync::Arc;
use std::time::{Duration, Instant};

use celeriac::backend::ResultBackend;
use celeriac::shutdown::{Shutdown, ShutdownTrigger};
use celeriac::App;
use posts::ranking::{server, EntityCache, MatchOptions};
use posts::tasks::SCHEDULED_TOP_ENTITIES_KEY;
use serde_json::{json, Value};

/// The original ranking server's test request (`test_data.BASIC_EXAMPLE`).
fn basic_example() -> Value {
    json!({
        "session": {
            "user_id": "193a9e01-8849-4e1f-a42a-a859fa7f2ad3",
            "user_name_hash": "6511c5688bbb87798128695a283411a26da532df06e6e931a53416e379ddda0e",
            "platform": "reddit",
            "cohort": "AB",
            "current_time": "2024-01-20 18:41:20"
        },
        "items": [
            {
                "id": "should-rank-high",
                "title": "this is the post title, available only on reddit",
                "text": "this is the worst thing I have ever seen!",
                "author_name_hash": "60b46b7370f80735a06b7aa8c4eb6bd588440816b086d5ef7355cf202a118305",
                "embedded_urls": [],
                "type": "post",
                "created_at": "2023-12-06 17:02:11",
                "engagements": {"upvote": 34, "downvote": 27, "comment": 20, "award": 0}
            },
            {
                "id": "should-rank-low",
                "post_id": "de83fc78-d648-444e-b20d-853bf05e4f0e",
                "parent_id": "",
                "text": "this is amazing! foo!",
                "author_name_hash": "60b46b7370f80735a06b7aa8c4eb6bd588440816b086d5ef7355cf202a118305",
                "embedded_urls": [],
                "type": "comment",
                "created_at": "2023-12-08 11:32:12",
                "engagements": {"upvote": 15, "downvote": 2, "comment": 22, "award": 2}
            },
            {
                "id": "should-rank-high-2",
                "post_id": "de83fc78-d648-444e-b20d-853bf05e4f0e",
                "parent_id": "s5ad13266-8abk4-5219-kre5-2811022l7e43dv",
                "text": "this thing is ok.",
                "author_name_hash": "60b46b7370f80735a06b7aa8c4eb6bd588440816b086d5ef7355cf202a118305",
                "embedded_urls": [],
                "type": "comment",
                "created_at": "2023-12-08 11:35:00",
                "engagements": {"upvote": 3, "downvote": 5, "comment": 10, "award": 0}
            }
        ]
    })
}

const ORIGINAL_ORDER: [&str; 3] = ["should-rank-high", "should-rank-low", "should-rank-high-2"];
const RANKED: [&str; 3] = ["should-rank-high", "should-rank-high-2", "should-rank-low"];

struct Server {
    base: String,
    backend: Arc<dyn ResultBackend>,
    client: reqwest::Client,
    stop: ShutdownTrigger,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.fire();
    }
}

async fn start(name: &str, options: server::ServerOptions) -> Server {
    let url = format!("memory://{name}");
    let app = App::builder()
        .broker_url(&url)
        .backend_url(&url)
        .build()
        .await
        .unwrap_or_else(|e| panic!("app: {e}"));
    let backend = Arc::clone(app.backend());
    let cache = Arc::new(EntityCache::new(
        SCHEDULED_TOP_ENTITIES_KEY,
        MatchOptions::default(),
    ));
    let (stop, shutdown) = Shutdown::new();
    Arc::clone(&cache).spawn_refresher(
        Arc::clone(&backend),
        Duration::from_millis(50),
        on(&shutdown),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let base = format!(
        "http://{}",
        listener
            .local_addr()
            .unwrap_or_else(|e| panic!("addr: {e}"))
    );
    tokio::spawn(server::serve(
        listener,
        server::router(cache, &options),
        options.timeouts,
        on(&shutdown),
    ));
    Server {
        base,
        backend,
        client: reqwest::Client::new(),
        stop,
    }
}

/// A future resolving when `shutdown` fires.
fn on(shutdown: &Shutdown) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut shutdown = shutdown.clone();
    async move { shutdown.requested().await }
}

impl Server {
    async fn rank(&self, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/rank", self.base))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /rank: {e}"));
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn ranked_ids(&self) -> Vec<String> {
        let (status, body) = self.rank(&basic_example()).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_value(body["ranked_ids"].clone()).unwrap_or_default()
    }

    async fn set_entities(&self, value: Option<&str>) {
        let outcome = match value {
            Some(v) => {
                self.backend
                    .set_value(SCHEDULED_TOP_ENTITIES_KEY, v, None)
                    .await
            }
            None => self
                .backend
                .delete_value(SCHEDULED_TOP_ENTITIES_KEY)
                .await
                .map(|_| ()),
        };
        outcome.unwrap_or_else(|e| panic!("backend: {e}"));
    }

    /// Poll `/rank` until it answers `want` (the cache refreshes every 50 ms).
    async fn wait_for_order(&self, want: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.ranked_ids().await;
            if got == want {
                return;
            }
            assert!(Instant::now() < deadline, "still {got:?}, want {want:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn record(entities: &[&str]) -> String {
    json!({
        "top_named_entities": entities.iter().enumerate().map(|(i, e)| json!([e, 10 - i])).collect::<Vec<_>>(),
        "timestamp": "2024-01-20T18:41:20.000000+00:00"
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_case_and_the_missing_and_malformed_keys() {
    let s = start("rank-original", server::ServerOptions::default()).await;
    // No key yet: the original order, 200.
    s.wait_for_order(&ORIGINAL_ORDER).await;

    // The middle item mentions a top entity: it goes last, the others keep
    // their order.
    s.set_entities(Some(&record(&["foo", "bar", "baz"]))).await;
    s.wait_for_order(&RANKED).await;

    // Malformed records mean "no entities", not an error.
    for bad in [
        "not json at all",
        r#"{"top_named_entities": 5}"#,
        r#"{"top_named_entities": [[1, 2]]}"#,
        r#"["foo"]"#,
    ] {
        s.set_entities(Some(&record(&["foo"]))).await;
        s.wait_for_order(&RANKED).await;
        s.set_entities(Some(bad)).await;
        s.wait_for_order(&ORIGINAL_ORDER).await;
    }

    // The key deleted: back to the original order.
    s.set_entities(Some(&record(&["amazing"]))).await;
    s.wait_for_order(&RANKED).await;
    s.set_entities(None).await;
    s.wait_for_order(&ORIGINAL_ORDER).await;

    // Plain strings (the original test's fake record) work too.
    s.set_entities(Some(r#"{"top_named_entities": ["foo", "bar", "baz"]}"#))
        .await;
    s.wait_for_order(&RANKED).await;

    let health: Value = s
        .client
        .get(format!("{}/health", s.base))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .unwrap_or_else(|e| panic!("GET /health: {e}"))
        .json()
        .await
        .unwrap_or(Value::Null);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["entities"], 3);
    assert_eq!(health["source"], "record");
    assert_eq!(health["key"], SCHEDULED_TOP_ENTITIES_KEY);
}

/// `/rank` decodes a body with the first of three decoders that takes it
/// (the hand-written scanner, the serde view, the plain models); each
/// answers the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_decoder_ranks_the_same() {
    let s = start("rank-decoders", server::ServerOptions::default()).await;
    s.set_entities(Some(&record(&["foo"]))).await;
    s.wait_for_order(&RANKED).await;
    let plain = basic_example();
    // Only the serde view takes these: a survey, an unknown key, a float count.
    let mut with_survey = plain.clone();
    with_survey["survey"] = json!({
        "party_id": "independent", "party_lean": "democrat", "sex": "male", "age": 2,
        "education": 3, "ideology": 4, "income": 5, "ethnicity": "white_or_caucasian",
        "socmed_use": 6, "browser_perc": 0.25, "mobile_perc": 0.75
    });
    let mut unknown_key = plain.clone();
    unknown_key["items"][0]["extra"] = json!({"a": [1, 2]});
    let mut float_count = plain.clone();
    float_count["items"][1]["engagements"]["upvote"] = json!(15.0);
    for body in [&plain, &with_survey, &unknown_key, &float_count] {
        let (status, answer) = s.rank(body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer,
            json!({"ranked_ids": RANKED, "new_items": null}),
            "{body}"
        );
    }
    // Only the plain decode takes this one: invalid UTF-8 inside a string
    // the models ignore (serde_json's `from_slice` does not check it).
    let text = serde_json::to_string(&plain).unwrap_or_default();
    let mut raw = text
        .replacen(
            "{\"author_name_hash\"",
            "{\"ignored\":\"\u{1}\",\"author_name_hash\"",
            1,
        )
        .into_bytes();
    let at = raw
        .iter()
        .position(|&b| b == 1)
        .unwrap_or_else(|| panic!("no marker in {text}"));
    raw[at] = 0xff;
    let response = s
        .client
        .post(format!("{}/rank", s.base))
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST /rank: {e}"));
    assert_eq!(response.status().as_u16(), 200);
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(answer["ranked_ids"], json!(RANKED));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_name_the_field_and_large_ones_get_413() {
    let s = start(
        "rank-errors",
        server::ServerOptions {
            max_body_bytes: 64 * 1024,
            ..server::ServerOptions::default()
        },
    )
    .await;

    let mut missing_text = basic_example();
    if let Some(item) = missing_text["items"][1].as_object_mut() {
        item.remove("text");
    }
    let (status, body) = s.rank(&missing_text).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "items[1]", "{body}");
    let detail = body["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("text") && detail.contains("items[1]"),
        "{detail}"
    );

    let mut negative = basic_example();
    negative["items"][2]["engagements"]["upvote"] = json!(-1);
    let (status, body) = s.rank(&negative).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["field"]
            .as_str()
            .unwrap_or("")
            .starts_with("items[2].engagements"),
        "{body}"
    );

    let mut bad_platform = basic_example();
    bad_platform["session"]["platform"] = json!("myspace");
    let (status, body) = s.rank(&bad_platform).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "session.platform", "{body}");

    let response = s
        .client
        .post(format!("{}/rank", s.base))
        .header("content-type", "application/json")
        .body("{\"session\": ")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 400);

    let mut huge = basic_example();
    huge["items"][0]["text"] = json!("x".repeat(100 * 1024));
    let (status, body) = s.rank(&huge).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["detail"].as_str().unwrap_or("").contains("too large"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_open_and_the_openapi_document_describes_rank() {
    let s = start("rank-cors", server::ServerOptions::default()).await;
    let preflight = s
        .client
        .request(reqwest::Method::OPTIONS, format!("{}/rank", s.base))
        .header("origin", "https://extension.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allow = |name: &str| {
        preflight
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(allow("access-control-allow-origin"), "*");
    assert!(allow("access-control-allow-methods").contains("POST"));

    let response = s
        .client
        .post(format!("{}/rank", s.base))
        .header("origin", "https://extension.example")
        .json(&basic_example())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let origin = response
        .headers()
        .get("access-control-allow-origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(origin.as_deref(), Some("*"));

    let doc: Value = s
        .client
        .get(format!("{}/openapi.json", s.base))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .unwrap_or_else(|e| panic!("GET /openapi.json: {e}"))
        .json()
        .await
        .unwrap_or(Value::Null);
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with("3."),
        "{doc}"
    );
    assert!(doc["paths"]["/rank"]["post"].is_object(), "{doc}");
    let schemas = &doc["components"]["schemas"];
    for name in [
        "RankingRequest",
        "ContentItem",
        "RankingResponse",
        "Session",
    ] {
        assert!(schemas[name].is_object(), "no schema {name}: {schemas}");
    }
}
