//! Hardening of the shipped binary, against real processes:
//!
//! 1. a default `celeriac worker` does not run the test-only tasks: a
//!    `tasks.record` call fails `NotRegistered` (FAILURE stored) and writes
//!    no file; with `--with-test-tasks DIR` they write only inside DIR;
//! 2. `celeriac serve` refuses `tasks.record`, and refuses to start with a
//!    blank or short `CELERIAC_API_TOKEN`;
//! 3. control characters in a task name are escaped in the worker's log
//!    and in `celeriac dlq list`;
//! 4. both HTTP servers close a silent and a half-sent connection within
//!    `--header-timeout`.

mod serve_support;
mod support;

use std::io::Read as _;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use celeriac::SendOptions;
use serde_json::{json, Map, Value};
use serve_support::ServeProcess;
use support::{eventually, stderr, stdout, Env};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_worker_answers_tasks_record_with_not_registered() {
    let env = Env::new();
    let runs = env.path("runs.txt");
    let _worker = env.worker("default@test", &["-c", "1"]);
    let app = env.app().await;
    let sent = app
        .send_task(
            "tasks.record",
            vec![json!(runs.to_string_lossy()), json!("x")],
            Map::new(),
            SendOptions::new(),
        )
        .await
        .expect("publish");
    let err = sent
        .get(LIMIT)
        .await
        .expect_err("tasks.record must not run on a default worker");
    let text = err.to_string();
    assert!(text.contains("NotRegistered"), "{text}");
    let meta = sent.info().await.expect("read").expect("a stored result");
    assert_eq!(meta.status, celeriac::TaskState::Failure);
    assert!(!runs.exists(), "tasks.record wrote {}", runs.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_tasks_write_only_inside_their_directory() {
    let env = Env::new();
    let outside = tempfile::tempdir().expect("temp dir");
    let escaped = outside.path().join("cron-entry");
    let inside = env.path("runs.txt");
    let _worker = env.test_worker("tests@test", &["-c", "1"]);
    let app = env.app().await;
    let send = |path: String| {
        let app = app.clone();
        async move {
            app.send_task(
                "tasks.record",
                vec![json!(path), json!("v")],
                Map::new(),
                SendOptions::new(),
            )
            .await
            .expect("publish")
        }
    };
    for path in [
        escaped.to_string_lossy().into_owned(),
        format!("{}/../{}", env.path("").display(), "x.txt"),
        "/etc/passwd".to_owned(),
    ] {
        let err = send(path.clone())
            .await
            .get(LIMIT)
            .await
            .expect_err("refused");
        assert!(err.to_string().contains("PermissionError"), "{path}: {err}");
    }
    assert!(!escaped.exists());
    let value: Value = send(inside.to_string_lossy().into_owned())
        .await
        .get(LIMIT)
        .await
        .expect("a path inside the directory is written");
    assert_eq!(value, json!("v"));
    assert_eq!(support::recorded(&inside).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_does_not_accept_the_test_tasks() {
    let env = Env::new();
    let serve = ServeProcess::start(env.command(["serve"]), &env.path("serve.log"));
    let client = reqwest::Client::new();
    for name in ["tasks.record", "tasks.slow_record"] {
        let response = client
            .post(format!("{}/api/tasks/{name}", serve.url))
            .json(&json!({"args": ["/tmp/x", 1]}))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 404, "{name}");
        let body: Value = response.json().await.expect("json");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("unknown task")),
            "{body}"
        );
    }
}

/// Wait for `child` to exit within `limit`; kill it and fail otherwise.
fn exit_within(mut child: Child, limit: Duration) -> (Option<i32>, String) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            let mut err = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut err);
            }
            return (status.code(), err);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {limit:?}: it started with a weak token");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serve_refuses_blank_and_short_tokens() {
    let env = Env::new();
    for token in [" ", "   \t", "short", "123456789012345"] {
        let child = env
            .command(["serve", "--port", "0"])
            .env("CELERIAC_API_TOKEN", token)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let (code, err) = exit_within(child, LIMIT);
        assert_eq!(code, Some(2), "{token:?}: {err}");
        assert!(
            err.contains("CELERIAC_API_TOKEN") && err.contains("at least 16 characters"),
            "{token:?}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_in_task_names_are_escaped_in_logs_and_dlq_list() {
    let env = Env::new();
    let worker = env.worker("escape@test", &["-c", "1"]);
    let app = env.app().await;
    let evil = "tasks.evil\n2030-01-01T00:00:00Z ERROR forged\u{1b}]0;owned\u{7}\u{1b}[2J";
    let sent = app
        .send_task(evil, vec![], Map::new(), SendOptions::new())
        .await
        .expect("publish");
    let _ = sent.get(LIMIT).await.expect_err("not registered");

    eventually("the worker logs the unknown task", LIMIT, || {
        worker.log_text().contains("tasks.evil")
    });
    let log = worker.log_text();
    assert!(!log.contains('\u{1b}') && !log.contains('\u{7}'), "{log:?}");
    assert!(
        !log.lines().any(|l| l.starts_with("2030-01-01")),
        "a forged log line: {log}"
    );
    assert!(log.contains("tasks.evil\\n2030"), "{log}");

    let mut listed = String::new();
    eventually("the dead letter is listed", LIMIT, || {
        let out = env.run(["dlq", "list"]);
        listed = stdout(&out);
        listed.contains("tasks.evil") || stderr(&out).contains("tasks.evil")
    });
    assert!(
        !listed.contains('\u{1b}') && !listed.contains('\u{7}'),
        "{listed:?}"
    );
    assert_eq!(
        listed.lines().count(),
        1,
        "one dead letter, one line: {listed:?}"
    );
    assert!(listed.contains("\\u{1b}"), "{listed:?}");
}

#[test]
fn serve_closes_silent_and_half_sent_connections() {
    let env = Env::new();
    let timeout = Duration::from_millis(400);
    let serve = ServeProcess::start(
        env.command(["serve", "--header-timeout", "0.4", "--idle-timeout", "5"]),
        &env.path("serve.log"),
    );
    support::assert_slow_clients_are_closed(serve.url.trim_start_matches("http://"), timeout);
}
