//! Celeriac and Python Celery 5.x on one real Redis, both ways: a Python
//! client driving a Celeriac worker, a Celeriac client driving a Python
//! worker, failures crossing over, and each side restoring what the other
//! held when killed -9.
//!
//! Needs `redis-server` and a Python with `celery` (the README's test
//! command provides both; `CELERIAC_TEST_PYTHON` names the interpreter).

#[path = "../../celeriac/tests/support/mod.rs"]
mod support;

mod procs;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use celeriac::{App, Error, SendOptions};
use procs::Proc;
use redis::Commands;
use serde_json::{json, Map, Value};
use support::{wait_until, RedisServer};

use procs::{python, python_worker, repo_root};

fn rust_worker(url: &str, extra: &[&str]) -> Proc {
    procs::rust_worker(url, extra, true)
}

fn python_client(url: &str, args: &[&str]) -> Value {
    procs::python_json("interop_client.py", args, url)
}

async fn rust_app(url: &str) -> App {
    App::builder()
        .broker_url(url)
        .backend_url(url)
        .build()
        .await
        .expect("connect")
}

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn python_client_drives_a_celeriac_worker() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let _worker = rust_worker(&url, &["-c", "4"]);
    let seen = python_client(&url, &["basics"]);
    assert_eq!(seen["add"], json!(5));
    assert_eq!(seen["kwargs"], json!(42));
    assert_eq!(seen["unicode_equal"], json!(true));
    assert_eq!(seen["megabyte_equal"], json!(true));
    assert_eq!(seen["echo_kwargs"], json!({"a": 1, "b": [1, 2]}));
    // Python rebuilt the Rust task's error as its own ValueError.
    assert_eq!(
        seen["failure"],
        json!({"type": "ValueError", "message": "rust says no"})
    );
    assert_eq!(seen["unknown"]["type"], json!("NotRegistered"));
    assert!(seen["unknown"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("tasks.nope")));
    for key in ["countdown_elapsed", "eta_elapsed"] {
        let elapsed = seen[key].as_f64().expect(key);
        assert!((1.4..10.0).contains(&elapsed), "{key}: {elapsed}");
    }
}

#[test]
fn priorities_sent_by_python_run_highest_first() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    // Queue everything before any worker runs, then drain one at a time.
    python_client(
        &url,
        &[
            "send-records",
            "order",
            "9:p9",
            "0:p0",
            "6:p6",
            "3:p3",
            "0:p0b",
            "5:p5",
        ],
    );
    let _worker = rust_worker(&url, &["-c", "1", "--prefetch", "1"]);
    let mut conn = redis.connection();
    wait_until(WAIT, || conn.llen::<_, usize>("order").unwrap_or(0) == 6);
    let order: Vec<String> = conn.lrange("order", 0, -1).expect("order");
    assert_eq!(
        order,
        ["\"p0\"", "\"p0b\"", "\"p3\"", "\"p5\"", "\"p6\"", "\"p9\""]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn celeriac_client_drives_a_python_worker() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let _worker = python_worker(&url, &[], &["-P", "solo"]);
    let app = rust_app(&url).await;
    let sum = app
        .send_task(
            "tasks.add",
            vec![json!(2), json!(3)],
            Map::new(),
            SendOptions::new(),
        )
        .await
        .expect("send");
    assert_eq!(sum.get(WAIT).await.expect("python computed it"), json!(5));

    let mut kwargs = Map::new();
    kwargs.insert("msg".into(), json!("python says no"));
    let failed = app
        .send_task("tasks.fail", vec![], kwargs, SendOptions::new())
        .await
        .expect("send");
    match failed.get(WAIT).await {
        Err(Error::TaskFailed {
            exc_type,
            exc_message,
            traceback,
            ..
        }) => {
            assert_eq!(exc_type, "ValueError");
            assert_eq!(exc_message, "python says no");
            assert!(traceback.is_some_and(|t| t.contains("raise ValueError")));
        }
        other => panic!("expected Python's ValueError, got {other:?}"),
    }
    let text = "ünïcödé ✓";
    let echoed = app
        .send_task(
            "tasks.echo",
            vec![json!(text)],
            Map::new(),
            SendOptions::new(),
        )
        .await
        .expect("send");
    assert_eq!(echoed.get(WAIT).await.expect("echo"), json!(text));
}

/// Wait until every reservation in `unacked_index` is older than `vt`, so a
/// restorer with that visibility timeout will take them.
fn wait_until_expired(conn: &mut redis::Connection, vt: f64) {
    wait_until(WAIT, || {
        let scores: Vec<(String, f64)> = conn
            .zrange_withscores("unacked_index", 0, -1)
            .unwrap_or_default();
        let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
        !scores.is_empty() && scores.iter().all(|(_, s)| now - s > vt + 0.2)
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_worker_restores_what_a_killed_celeriac_worker_held() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let mut conn = redis.connection();
    let app = rust_app(&url).await;
    // One slow task occupies the only slot; the marks wait behind it, held.
    // The slow one goes alone first: handlers of one batch race for the
    // slot, so a mark sent with it could take the slot before it.
    let slow = app
        .send_task(
            "tasks.sleep",
            vec![json!(3)],
            Map::new(),
            SendOptions::new(),
        )
        .await
        .expect("send");
    let mut worker = rust_worker(
        &url,
        &[
            "-c",
            "1",
            "--prefetch",
            "6",
            "--acks-late",
            "--visibility-timeout",
            "2",
        ],
    );
    wait_until(WAIT, || conn.hlen::<_, usize>("unacked").unwrap_or(0) == 1);
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = app
            .send_task(
                "tasks.mark",
                vec![json!("marks"), json!(format!("m{i}"))],
                Map::new(),
                SendOptions::new(),
            )
            .await
            .expect("send");
        ids.push(r);
    }
    wait_until(WAIT, || conn.hlen::<_, usize>("unacked").unwrap_or(0) == 6);
    worker.kill9();
    assert_eq!(
        conn.scard::<_, usize>("marks").expect("scard"),
        0,
        "nothing ran before the kill"
    );
    wait_until_expired(&mut conn, 2.0);

    let _python = python_worker(
        &url,
        &[
            (
                "CELERIAC_PY_TRANSPORT_OPTIONS",
                r#"{"visibility_timeout": 2}"#,
            ),
            ("CELERIAC_PY_ACKS_LATE", "1"),
        ],
        &["-P", "threads", "-c", "4"],
    );
    wait_until(Duration::from_secs(30), || {
        conn.scard::<_, usize>("marks").unwrap_or(0) == 5
    });
    assert_eq!(
        slow.get(WAIT).await.expect("slow task ran in Python"),
        json!(3)
    );
    for r in ids {
        r.get(WAIT).await.expect("mark ran in Python");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_celeriac_worker_restores_what_a_killed_python_worker_held() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let mut conn = redis.connection();
    let app = rust_app(&url).await;
    let slow = app
        .send_task(
            "tasks.sleep",
            vec![json!(30)],
            Map::new(),
            SendOptions::new(),
        )
        .await
        .expect("send");
    for i in 0..3 {
        app.send_task(
            "tasks.mark",
            vec![json!("marks"), json!(format!("m{i}"))],
            Map::new(),
            SendOptions::new(),
        )
        .await
        .expect("send");
    }
    let mut python = python_worker(
        &url,
        &[
            ("CELERIAC_PY_ACKS_LATE", "1"),
            ("CELERIAC_PY_PREFETCH", "4"),
        ],
        // One thread busy with the 30 s task; the other three wait, held.
        &["-P", "threads", "-c", "1"],
    );
    wait_until(WAIT, || conn.hlen::<_, usize>("unacked").unwrap_or(0) == 4);
    python.kill9();
    assert_eq!(
        conn.scard::<_, usize>("marks").expect("scard"),
        0,
        "nothing ran before the kill"
    );
    let started = Instant::now();
    let _worker = rust_worker(
        &url,
        &["-c", "4", "--acks-late", "--visibility-timeout", "2"],
    );
    wait_until(WAIT, || conn.scard::<_, usize>("marks").unwrap_or(0) == 3);
    assert!(started.elapsed() < WAIT);
    // The 30 s task was restored too and is running again, held by us now.
    wait_until(WAIT, || {
        let held: Vec<String> = conn.hkeys("unacked").unwrap_or_default();
        held.len() == 1
    });
    assert_eq!(
        slow.state().await.expect("state"),
        celeriac::TaskState::Pending
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_restart_mid_run_loses_nothing() {
    let mut redis = RedisServer::start_with_aof();
    let url = redis.url(0);
    let mut conn = redis.connection();
    let _worker = rust_worker(
        &url,
        &["-c", "8", "--acks-late", "--visibility-timeout", "5"],
    );
    let app = rust_app(&url).await;
    const N: usize = 2000;
    let calls = (0..N).map(|i| {
        (
            "tasks.mark".to_owned(),
            vec![json!("marks"), json!(i)],
            Map::new(),
            SendOptions::new(),
        )
    });
    app.send_batch(calls).await.expect("send");
    wait_until(WAIT, || {
        conn.scard::<_, usize>("marks").unwrap_or(0) > N / 10
    });
    redis.restart_after(Duration::from_millis(500), true);
    let mut conn = redis.connection();
    let mut last = Instant::now();
    wait_until(Duration::from_secs(60), || {
        if last.elapsed() > Duration::from_secs(5) {
            last = Instant::now();
            eprintln!(
                "marks={:?} queued={:?} unacked={:?} delayed={:?}",
                conn.scard::<_, usize>("marks"),
                conn.llen::<_, usize>("celery"),
                conn.hlen::<_, usize>("unacked"),
                conn.zcard::<_, usize>("celeriac.delayed")
            );
        }
        conn.scard::<_, usize>("marks").unwrap_or(0) == N
    });
}

fn celery_cli(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(python())
        .args(["-m", "celery", "-A", "pytasks"])
        .args(args)
        .current_dir(repo_root().join("tests/python"))
        .env("CELERIAC_TEST_REDIS_URL", url)
        .output()
        .expect("run the celery command")
}

#[test]
fn celery_inspect_and_control_reach_a_celeriac_worker() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let _worker = rust_worker(&url, &["-c", "2", "--hostname", "celeriac@interop"]);
    let mut conn = redis.connection();
    // The worker binds its pidbox once it listens.
    wait_until(WAIT, || {
        conn.sismember(
            "_kombu.binding.celery.pidbox",
            "\x06\x16\x06\x16celeriac@interop.celery.pidbox",
        )
        .unwrap_or(false)
    });
    let ping = celery_cli(
        &url,
        &[
            "inspect",
            "ping",
            "--timeout",
            "5",
            "-d",
            "celeriac@interop",
        ],
    );
    let text = String::from_utf8_lossy(&ping.stdout);
    assert!(
        ping.status.success(),
        "celery inspect ping failed: {text} {}",
        String::from_utf8_lossy(&ping.stderr)
    );
    assert!(
        text.contains("celeriac@interop") && text.contains("pong"),
        "{text}"
    );

    let registered = celery_cli(&url, &["inspect", "registered", "--timeout", "5", "--json"]);
    let text = String::from_utf8_lossy(&registered.stdout);
    assert!(
        text.contains("tasks.add") && text.contains("tasks.mark"),
        "{text}"
    );

    let stats = celery_cli(&url, &["inspect", "stats", "--timeout", "5", "--json"]);
    let text = String::from_utf8_lossy(&stats.stdout);
    assert!(text.contains("max-concurrency"), "{text}");

    let limited = celery_cli(
        &url,
        &[
            "control",
            "rate_limit",
            "tasks.add",
            "10/s",
            "--timeout",
            "5",
        ],
    );
    let text = String::from_utf8_lossy(&limited.stdout);
    assert!(text.contains("new rate limit set successfully"), "{text}");
}

/// `celery … --json`'s reply of the one node asked.
fn celery_json(url: &str, node: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--timeout", "5", "--json", "-d", node]);
    let out = celery_cli(url, &all);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "celery {args:?}: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replies: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("celery {args:?} printed no JSON ({e}): {text}"));
    // `inspect` prints {node: reply}; `control` a list of them.
    match replies {
        Value::Array(list) => list
            .into_iter()
            .find_map(|r| r.get(node).cloned())
            .unwrap_or(Value::Null),
        other => other[node].clone(),
    }
}

/// The `celery control` commands Celeriac workers honour, sent by Python
/// Celery's own CLI, answer in Celery's shapes; `celery inspect scheduled`
/// lists a countdown task as a Celery worker would.
#[tokio::test(flavor = "multi_thread")]
async fn celery_control_changes_a_celeriac_worker() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let node = "celeriac@controlled";
    let _worker = rust_worker(&url, &["-c", "1", "--hostname", node]);
    let mut conn = redis.connection();
    wait_until(WAIT, || {
        conn.sismember(
            "_kombu.binding.celery.pidbox",
            format!("\x06\x16\x06\x16{node}.celery.pidbox"),
        )
        .unwrap_or(false)
    });
    let ok = |reply: Value, text: &str| assert_eq!(reply, json!({"ok": text}));
    ok(
        celery_json(&url, node, &["control", "add_consumer", "extra"]),
        "add consumer extra",
    );
    let queues = celery_json(&url, node, &["inspect", "active_queues"]);
    let names: Vec<&str> = queues
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|q| q["name"].as_str())
        .collect();
    assert_eq!(names, ["celery", "extra"], "{queues}");
    ok(
        celery_json(&url, node, &["control", "cancel_consumer", "extra"]),
        "no longer consuming from extra",
    );
    ok(
        celery_json(
            &url,
            node,
            &["control", "time_limit", "tasks.add", "5", "10"],
        ),
        "time limits set successfully",
    );
    assert_eq!(
        celery_json(&url, node, &["control", "time_limit", "tasks.nope", "5"]),
        json!({"error": "unknown task tasks.nope"})
    );
    ok(
        celery_json(&url, node, &["control", "pool_grow", "2"]),
        "pool will grow (to 3 slots)",
    );
    ok(
        celery_json(&url, node, &["control", "pool_shrink", "2"]),
        "pool will shrink (to 1 slot)",
    );
    ok(
        celery_json(&url, node, &["control", "enable_events"]),
        "task events enabled",
    );

    let app = rust_app(&url).await;
    let later = app
        .send_task(
            "tasks.add",
            vec![json!(20), json!(22)],
            Map::new(),
            SendOptions::new().countdown(Duration::from_secs(3600)),
        )
        .await
        .expect("send");
    let scheduled = celery_json(&url, node, &["inspect", "scheduled"]);
    let entry = scheduled
        .as_array()
        .and_then(|list| list.first())
        .unwrap_or_else(|| panic!("nothing scheduled: {scheduled}"));
    assert!(
        entry["eta"].is_string() && entry["priority"].is_number(),
        "{entry}"
    );
    assert_eq!(entry["request"]["id"], later.id(), "{entry}");
    assert_eq!(entry["request"]["name"], "tasks.add", "{entry}");
    assert_eq!(entry["request"]["args"], json!([20, 22]), "{entry}");
}

#[tokio::test(flavor = "multi_thread")]
async fn celeriac_control_pings_a_python_worker() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let _worker = python_worker(&url, &[], &["-P", "solo"]);
    let app = rust_app(&url).await;
    let control = app.control().expect("redis has remote control");
    let mut replies = Vec::new();
    let deadline = Instant::now() + WAIT;
    while replies.is_empty() && Instant::now() < deadline {
        replies = control
            .call("ping", json!({}), None, Duration::from_secs(1), Some(1))
            .await
            .expect("ping");
    }
    assert_eq!(replies.len(), 1, "the Python worker answered");
    assert_eq!(replies[0].0, "py@interop");
    assert_eq!(replies[0].1, json!({"ok": "pong"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn flower_lists_a_celeriac_worker_and_its_tasks() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let _worker = rust_worker(
        &url,
        &["-c", "2", "--hostname", "celeriac@flower", "--events"],
    );
    let port = support::free_port();
    let mut flower = Command::new(python());
    flower
        .args([
            "-m",
            "celery",
            "-A",
            "pytasks",
            "flower",
            "--address=127.0.0.1",
        ])
        .arg(format!("--port={port}"))
        .current_dir(repo_root().join("tests/python"))
        .env("CELERIAC_TEST_REDIS_URL", &url)
        .env("FLOWER_UNAUTHENTICATED_API", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _flower = Proc(flower.spawn().expect("start flower"));
    let fetch = |path: &str| -> Option<Value> {
        let script = format!(
            "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout=10).read().decode())"
        );
        let out = Command::new(python()).args(["-c", &script]).output().ok()?;
        serde_json::from_slice(&out.stdout).ok()
    };
    let mut workers = None;
    wait_until(Duration::from_secs(40), || {
        workers = fetch("/api/workers?refresh=1");
        workers
            .as_ref()
            .is_some_and(|w| w.get("celeriac@flower").is_some())
    });
    let workers = workers.expect("workers");
    let ours = &workers["celeriac@flower"];
    assert!(
        ours["registered"]
            .as_array()
            .is_some_and(|r| r.iter().any(|t| t == "tasks.add")),
        "{ours}"
    );
    // Flower is listening now; task events reach it: it knows our task by id.
    let app = rust_app(&url).await;
    let sent = app
        .send_task(
            "tasks.add",
            vec![json!(20), json!(22)],
            Map::new(),
            SendOptions::new(),
        )
        .await
        .expect("send");
    assert_eq!(sent.get(WAIT).await.expect("result"), json!(42));
    wait_until(Duration::from_secs(20), || {
        fetch(&format!("/api/task/info/{}", sent.id())).is_some_and(|t| {
            t["state"] == json!("SUCCESS") && t["worker"] == json!("celeriac@flower")
        })
    });
}
