//! `celeriac serve` as a real process: on the embedded SQLite broker with a
//! real worker (the seed's sum round trip, workers from heartbeats, task
//! outcomes without task events), a clean exit on SIGTERM, the API token
//! from the environment, and flag errors.

mod serve_support;
mod support;

use std::time::Duration;

use serde_json::json;
use serve_support::{poll_json, spawn_worker, ServeProcess};
use support::{stderr, Env};

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_seed_api_on_sqlite_and_stops_on_sigterm() {
    let env = Env::new();
    let _worker = spawn_worker(&env, "w1@serve", &env.url, &[]);
    let mut serve = ServeProcess::start(env.command(["serve"]), &env.path("serve.log"));
    assert!(serve.banner.contains("listening on http://127.0.0.1:"));
    let client = reqwest::Client::new();

    let health: serde_json::Value = client
        .get(format!("{}/health", serve.url))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(health["status"], "ok");

    let published: serde_json::Value = client
        .post(format!("{}/producer/api/sum", serve.url))
        .json(&json!({"number": 10}))
        .send()
        .await
        .expect("publish")
        .json()
        .await
        .expect("json");
    assert_eq!(published["message"], "job published");
    let id = published["job_id"].as_str().expect("job id").to_owned();
    let done = poll_json(
        &client,
        &format!("{}/producer/api/sum/{id}", serve.url),
        LIMIT,
        |v| v["ready"] == true,
    )
    .await;
    assert_eq!(done, json!({"ready": true, "result": 55}));

    // Without task events (no remote control on SQLite), the monitor still
    // learns the outcome from the result backend.
    poll_json(
        &client,
        &format!("{}/api/tasks?state=SUCCESS", serve.url),
        LIMIT,
        |v| {
            v["tasks"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["id"] == id.as_str()))
        },
    )
    .await;
    // Heartbeats travel through the SQLite file.
    poll_json(&client, &format!("{}/api/workers", serve.url), LIMIT, |v| {
        v.as_array().is_some_and(|w| {
            w.iter()
                .any(|w| w["hostname"] == "w1@serve" && w["online"] == true)
        })
    })
    .await;
    let page = client
        .get(format!("{}/dashboard", serve.url))
        .send()
        .await
        .expect("dashboard");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("Celeriac"));

    let status = serve.terminate(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_token_comes_from_the_environment_and_is_never_printed() {
    let env = Env::new();
    let token = "tok-3f1c9a-never-printed";
    let mut command = env.command(["serve"]);
    command.env("CELERIAC_API_TOKEN", token);
    let mut serve = ServeProcess::start(command, &env.path("serve.log"));
    assert!(serve.banner.contains("API token required"));
    let client = reqwest::Client::new();
    let denied = client
        .get(format!("{}/api/workers", serve.url))
        .send()
        .await
        .expect("request");
    assert_eq!(denied.status(), 401);
    let allowed = client
        .get(format!("{}/api/workers", serve.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    assert_eq!(allowed.status(), 200);
    serve.terminate(Duration::from_secs(10));
    assert!(!serve.banner.contains(token) && !serve.log_text().contains(token));
}

#[test]
fn bad_flags_are_refused_with_a_message() {
    let env = Env::new();
    let out = env.run(["serve", "--body-limit", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--body-limit"), "{}", stderr(&out));

    let out = env.run(["serve", "--bind", "not-an-address"]);
    assert_eq!(out.status.code(), Some(2));

    // A port already taken is named in the error.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let out = env.run(["serve", "--port", &port]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&port), "{}", stderr(&out));
}
