//! No message silently loses work: a real Python Celery 5 producer sends
//! every body encoding it can choose (gzip/zlib/bzip2 compression, msgpack)
//! and messages a worker must refuse (pickle, yaml, lzma, NaN, oversized,
//! bad `eta`/`expires`, a garbage body with a readable id) to a Celeriac
//! worker on a real Redis. Each case either runs and `.get()` returns the
//! right value, or `.get()` raises the named exception within 5 s and the
//! message is dead-lettered with its reason; a refused task never runs.
//!
//! Needs `redis-server` and the venv's Celery with msgpack
//! (`scripts/test.sh --env-only -- cargo test -p celeriac-interop --test encodings`).

#[path = "../../celeriac/tests/support/mod.rs"]
mod support;

mod procs;

use procs::{python, repo_root};
use std::process::{Command, Stdio};
use std::time::Duration;

use celeriac::protocol::Compression;
use celeriac::{App, AppConfig, SendOptions};
use redis::Commands;
use serde_json::{json, Map, Value};
use support::{wait_until, RedisServer};

fn encodings_client(url: &str) -> Value {
    procs::python_json("encodings_client.py", &["run"], url)
}

/// Cases that run: what `.get()` returns.
fn runs() -> Vec<(&'static str, Value)> {
    vec![
        ("gzip", json!(5)),
        ("zlib", json!(9)),
        ("bzip2", json!(13)),
        ("msgpack", json!({"a": [1, 2.5, "é"], "b": null})),
        // Python bytes survive msgpack → JSON result → bytes again.
        ("msgpack_bytes", json!("hi \u{ff}")),
        ("msgpack_gzip", json!(30)),
        // Retried: the re-sent message keeps its bzip2 compression.
        ("retry_bzip2_msgpack", json!(1)),
        // kombu clamps a priority out of range and ignores a non-number.
        ("priority_300", json!(3)),
        ("priority_text", json!(4)),
    ]
}

/// Cases refused: the exception `.get()` raises (module, class) and words
/// its message and the dead letter's reason must contain.
fn refused() -> Vec<(&'static str, &'static str, &'static str, &'static str)> {
    const KOMBU: &str = "kombu.exceptions";
    const CELERY: &str = "celery.exceptions";
    vec![
        (
            "pickle",
            KOMBU,
            "ContentDisallowed",
            "task_serializer='json'",
        ),
        ("yaml", KOMBU, "ContentDisallowed", "application/x-yaml"),
        ("lzma", KOMBU, "DecodeError", "gzip/zlib or bzip2"),
        ("nan", KOMBU, "DecodeError", "NaN or Infinity"),
        ("infinity", KOMBU, "DecodeError", "NaN or Infinity"),
        ("oversized", KOMBU, "LimitExceeded", "65536-byte limit"),
        ("eta_not_a_date", CELERY, "InvalidTaskError", "not-a-date"),
        ("eta_year_99999", CELERY, "InvalidTaskError", "99999"),
        ("expires_not_a_date", CELERY, "InvalidTaskError", "expires"),
        ("eta_a_number", KOMBU, "DecodeError", "malformed headers"),
        ("garbage_body", KOMBU, "DecodeError", "malformed body"),
        ("corrupt_gzip", KOMBU, "DecodeError", "decompress"),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_python_message_runs_or_fails_visibly_at_once() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let _worker = procs::rust_worker(&url, &["-c", "4", "--max-message-bytes", "65536"], true);
    let seen = encodings_client(&url);
    println!(
        "{}",
        serde_json::to_string_pretty(&seen).unwrap_or_default()
    );

    for (case, value) in runs() {
        let got = &seen[case];
        assert_eq!(got["value"], value, "{case}: {got}");
    }
    assert_eq!(seen["msgpack_bytes"]["bytes"], json!(true), "bytes kept");

    for (case, module, class, words) in refused() {
        let got = &seen[case];
        assert_eq!(
            (got["module"].as_str(), got["type"].as_str()),
            (Some(module), Some(class)),
            "{case}: {got}"
        );
        let message = got["message"].as_str().unwrap_or("");
        assert!(message.contains(words), "{case}: {message}");
        let elapsed = got["elapsed"].as_f64().unwrap_or(f64::MAX);
        assert!(elapsed < 5.0, "{case}: raised after {elapsed} s");
    }

    // Every refused message is dead-lettered with its reason.
    let app = App::builder()
        .broker_url(&url)
        .backend_url(&url)
        .build()
        .await
        .expect("connect");
    let letters = app
        .broker()
        .dead_letters()
        .newest(100)
        .await
        .expect("dead letters");
    assert_eq!(
        letters.len(),
        refused().len(),
        "one dead letter per refusal"
    );
    for (case, _, _, words) in refused() {
        assert!(
            letters.iter().any(|l| l.reason.contains(words)),
            "{case}: no dead letter says {words:?}"
        );
    }

    // None of the refused tasks ran: a task sent after them has run, and
    // the set the refused ones would have marked is still empty.
    let after = app
        .send_task(
            "tasks.mark",
            vec![json!("after"), json!("done")],
            Map::new(),
            SendOptions::new(),
        )
        .await
        .expect("send");
    after.get(Duration::from_secs(20)).await.expect("runs");
    let mut conn = redis.connection();
    wait_until(Duration::from_secs(5), || {
        conn.scard::<_, usize>("after").unwrap_or(0) == 1
    });
    assert_eq!(conn.scard::<_, usize>("never").expect("scard"), 0);
}

/// A Python Celery worker for `tests/python/pytasks.py`, killed on drop.
fn python_worker(url: &str) -> procs::Proc {
    let child = Command::new(python())
        .args(["-m", "celery", "-A", "pytasks", "worker", "-l", "WARNING"])
        .args(["-n", "py@encodings", "-P", "solo", "--without-gossip"])
        .args(["--without-mingle", "--without-heartbeat"])
        .current_dir(repo_root().join("tests/python"))
        .env("CELERIAC_TEST_REDIS_URL", url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the Python Celery worker");
    procs::Proc(child)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_worker_runs_what_a_compressing_celeriac_producer_sends() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let _worker = python_worker(&url);
    for (compression, x) in [(Compression::Zlib, 1), (Compression::Bzip2, 2)] {
        let config = AppConfig {
            broker_url: url.clone(),
            backend_url: url.clone(),
            task_compression: Some(compression),
            ..AppConfig::default()
        };
        let app = App::builder().config(config).build().await.expect("app");
        let big = "y".repeat(10_000);
        let sum = app
            .send_task(
                "tasks.add",
                vec![json!(x), json!(40)],
                Map::new(),
                SendOptions::new(),
            )
            .await
            .expect("send");
        let echo = app
            .send_task(
                "tasks.echo",
                vec![json!(big)],
                Map::new(),
                SendOptions::new(),
            )
            .await
            .expect("send");
        let wait = Duration::from_secs(20);
        assert_eq!(sum.get(wait).await.expect("python ran it"), json!(x + 40));
        assert_eq!(echo.get(wait).await.expect("python ran it"), json!(big));
    }
    // The messages really were compressed: a copy left on a queue nobody reads.
    let config = AppConfig {
        broker_url: url.clone(),
        backend_url: url.clone(),
        task_compression: Some(Compression::Bzip2),
        ..AppConfig::default()
    };
    let app = App::builder().config(config).build().await.expect("app");
    app.send_task(
        "tasks.add",
        vec![json!(1), json!(1)],
        Map::new(),
        SendOptions::new().queue("parked"),
    )
    .await
    .expect("send");
    let raw: Vec<u8> = redis
        .connection()
        .rpop("parked", None)
        .expect("parked message");
    let envelope: Value = serde_json::from_slice(&raw).expect("envelope");
    assert_eq!(
        envelope["headers"]["compression"],
        json!("application/x-bz2")
    );
}
