//! Celeriac and Python Celery on one RabbitMQ (the private node
//! `scripts/test.sh` starts: `CELERIAC_TEST_AMQP_URL`), results on a real
//! Redis: values, failures, priorities and countdowns both ways; a worker
//! killed -9 while holding unacknowledged messages, both ways; 20,000 tasks
//! with a worker killed every 2 s.
//!
//! Every test uses queues of its own (a uuid in the name), so they can run
//! side by side on the one node.

#[path = "../../celeriac/tests/support/mod.rs"]
mod support;

mod procs;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use celeriac::{App, SendOptions};
use procs::Proc;
use redis::Commands;
use serde_json::{json, Map, Value};
use support::{wait_until, RedisServer};

fn amqp_url() -> String {
    std::env::var("CELERIAC_TEST_AMQP_URL")
        .expect("CELERIAC_TEST_AMQP_URL is not set: run through scripts/test.sh --env-only -- …")
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid_like())
}

fn uuid_like() -> String {
    let n: u64 = rand::random();
    format!("{n:016x}")
}

/// The Celeriac test worker on RabbitMQ, results on `redis`.
fn rust_worker(redis: &str, queue: &str, extra: &[&str]) -> Proc {
    let mut args = vec!["--backend", redis, "-Q", queue];
    args.extend_from_slice(extra);
    procs::rust_worker(&amqp_url(), &args, false)
}

/// A Python Celery worker of `tests/python/amqp_app.py` on RabbitMQ.
fn python_worker(redis: &str, queue: &str, env: &[(&str, &str)], extra: &[&str]) -> Proc {
    let mut cmd = Command::new(procs::python());
    cmd.args(["-m", "celery", "-A", "amqp_app", "worker", "-l", "WARNING"])
        .args([
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ])
        .args(["-Q", queue, "-n", &format!("py-{}@interop", uuid_like())])
        .args(extra)
        .current_dir(procs::repo_root().join("tests/python"))
        .env("CELERIAC_TEST_REDIS_URL", redis)
        .env("CELERIAC_TEST_AMQP_URL", amqp_url())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc(cmd.spawn().expect("start the Python Celery worker"))
}

/// Run `amqp_client.py ARGS` and parse its JSON line.
fn python_client(redis: &str, env: &[(&str, &str)], args: &[&str]) -> Value {
    let mut cmd = Command::new(procs::python());
    cmd.arg("amqp_client.py")
        .args(args)
        .current_dir(procs::repo_root().join("tests/python"))
        .env("CELERIAC_TEST_REDIS_URL", redis)
        .env("CELERIAC_TEST_AMQP_URL", amqp_url());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run amqp_client.py");
    assert!(
        out.status.success(),
        "amqp_client.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON line")
}

async fn app(redis: &str, max_priority: Option<u8>) -> App {
    let broker = match max_priority {
        Some(n) => format!("{}?queue_max_priority={n}", amqp_url()),
        None => amqp_url(),
    };
    App::builder()
        .broker_url(broker)
        .backend_url(redis)
        .build()
        .await
        .expect("connect to RabbitMQ and Redis")
}

fn list(conn: &mut redis::Connection, key: &str) -> Vec<String> {
    conn.lrange(key, 0, -1).expect("lrange")
}

/// Highs before lows: every `high-*` entry precedes every `low-*` one,
/// except for what was already delivered before the highs arrived.
fn assert_highs_first(order: &[String], n: usize) {
    assert_eq!(order.len(), 2 * n, "{order:?}");
    let first_low = order.iter().position(|v| v.contains("low")).unwrap_or(0);
    assert!(
        order[..n].iter().all(|v| v.contains("high")),
        "high priority first: {order:?} (first low at {first_low})"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn python_producer_celeriac_worker_values_failures_countdown() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let queue = unique("py2rs");
    let _worker = rust_worker(&url, &queue, &[]);
    let out = python_client(&url, &[], &["roundtrip", &queue]);
    assert_eq!(out["add"], json!(5));
    assert_eq!(out["fail"], json!(["ValueError", "boom"]));
    assert_eq!(out["countdown"][0], json!(7));
    let waited = out["countdown"][1].as_f64().unwrap_or(0.0);
    assert!(
        (1.9..10.0).contains(&waited),
        "countdown 2 s ran after {waited} s"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn celeriac_producer_python_worker_values_failures_countdown() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let queue = unique("rs2py");
    let _worker = python_worker(&url, &queue, &[], &["-P", "solo"]);
    let app = app(&url, None).await;
    let on_queue = || SendOptions::new().queue(queue.clone());
    let add = app
        .send_task(
            "tasks.add",
            vec![json!(2), json!(3)],
            Map::new(),
            on_queue(),
        )
        .await
        .expect("send");
    assert_eq!(
        add.get(Duration::from_secs(30)).await.expect("add"),
        json!(5)
    );
    let fail = app
        .send_task("tasks.fail", vec![json!("boom")], Map::new(), on_queue())
        .await
        .expect("send");
    match fail.get(Duration::from_secs(30)).await {
        Err(celeriac::Error::TaskFailed {
            exc_type,
            exc_message,
            ..
        }) => {
            assert_eq!(
                (exc_type.as_str(), exc_message.as_str()),
                ("ValueError", "boom")
            );
        }
        other => panic!("expected the Python ValueError, got {other:?}"),
    }
    let sent = Instant::now();
    let later = app
        .send_task(
            "tasks.add",
            vec![json!(4), json!(3)],
            Map::new(),
            on_queue().countdown(Duration::from_secs(2)),
        )
        .await
        .expect("send");
    assert_eq!(
        later.get(Duration::from_secs(30)).await.expect("countdown"),
        json!(7)
    );
    assert!(
        sent.elapsed() >= Duration::from_millis(1900),
        "ran before its countdown"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn priorities_both_ways_on_a_max_priority_queue() {
    const N: usize = 10;
    let redis = RedisServer::start();
    let url = redis.url(0);
    let mut conn = redis.connection();
    let ten = [("CELERIAC_PY_QUEUE_MAX_PRIORITY", "10")];

    // Python producer, Celeriac worker started once everything waits.
    let queue = unique("prio-py2rs");
    python_client(
        &url,
        &ten,
        &["priorities", &queue, "order-a", &N.to_string()],
    );
    let _worker = rust_worker(&url, &queue, &["-c", "1", "--prefetch", "1"]);
    wait_until(Duration::from_secs(30), || {
        list(&mut conn, "order-a").len() == 2 * N
    });
    assert_highs_first(&list(&mut conn, "order-a"), N);

    // Celeriac producer (declares the queue with x-max-priority 10, as the
    // Python worker does), Python worker started afterwards.
    let queue = unique("prio-rs2py");
    let app = app(&url, Some(10)).await;
    for (priority, name) in [(1, "low"), (9, "high")] {
        for i in 0..N {
            app.send_task(
                "tasks.record",
                vec![json!("order-b"), json!(format!("{name}-{i}"))],
                Map::new(),
                SendOptions::new()
                    .queue(queue.clone())
                    .priority(priority)
                    .ignore_result(true),
            )
            .await
            .expect("send");
        }
    }
    let _py = python_worker(
        &url,
        &queue,
        &ten,
        &["-P", "solo", "--prefetch-multiplier", "1"],
    );
    wait_until(Duration::from_secs(30), || {
        list(&mut conn, "order-b").len() == 2 * N
    });
    assert_highs_first(&list(&mut conn, "order-b"), N);
}

fn executions(conn: &mut redis::Connection, set_key: &str) -> HashMap<String, u64> {
    conn.hgetall(format!("{set_key}:count")).expect("counts")
}

async fn send_marks(app: &App, queue: &str, set_key: &str, n: usize, seconds: Option<f64>) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let calls = chunk.iter().map(|i| {
            let (task, args) = match seconds {
                Some(s) => ("tasks.slow_mark", vec![json!(set_key), json!(i), json!(s)]),
                None => ("tasks.mark", vec![json!(set_key), json!(i)]),
            };
            (
                task.to_owned(),
                args,
                Map::new(),
                SendOptions::new()
                    .queue(queue.to_owned())
                    .ignore_result(true),
            )
        });
        app.send_batch(calls).await.expect("send");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_celeriac_workers_unacked_messages_go_to_a_python_worker() {
    const N: usize = 30;
    let redis = RedisServer::start();
    let url = redis.url(0);
    let mut conn = redis.connection();
    let queue = unique("kill-rs");
    let app = app(&url, None).await;
    send_marks(&app, &queue, "handover-a", N, Some(0.3)).await;
    // acks_late, one at a time, 20 prefetched: it holds many unacked.
    let mut rust = rust_worker(
        &url,
        &queue,
        &["-c", "1", "--prefetch", "20", "--acks-late"],
    );
    wait_until(Duration::from_secs(30), || {
        conn.scard::<_, usize>("handover-a").unwrap_or(0) >= 2
    });
    rust.kill9();
    let done_by_rust = conn.scard::<_, usize>("handover-a").unwrap_or(0);
    assert!(
        done_by_rust < N,
        "the Rust worker finished everything before the kill"
    );
    let _py = python_worker(&url, &queue, &[], &["-P", "solo"]);
    wait_until(Duration::from_secs(60), || {
        conn.scard::<_, usize>("handover-a").unwrap_or(0) == N
    });
    let ids: std::collections::HashSet<String> = conn.smembers("handover-a").expect("smembers");
    assert!((0..N).all(|i| ids.contains(&i.to_string())), "{ids:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_python_workers_unacked_messages_go_to_a_celeriac_worker() {
    const N: usize = 30;
    let redis = RedisServer::start();
    let url = redis.url(0);
    let mut conn = redis.connection();
    let queue = unique("kill-py");
    let app = app(&url, None).await;
    send_marks(&app, &queue, "handover-b", N, Some(0.3)).await;
    let mut py = python_worker(
        &url,
        &queue,
        &[("CELERIAC_PY_ACKS_LATE", "1")],
        &["-P", "solo", "--prefetch-multiplier", "20"],
    );
    wait_until(Duration::from_secs(60), || {
        conn.scard::<_, usize>("handover-b").unwrap_or(0) >= 2
    });
    py.kill9();
    assert!(conn.scard::<_, usize>("handover-b").unwrap_or(0) < N);
    let _rust = rust_worker(&url, &queue, &["-c", "4"]);
    wait_until(Duration::from_secs(60), || {
        conn.scard::<_, usize>("handover-b").unwrap_or(0) == N
    });
    assert_eq!(executions(&mut conn, "handover-b").len(), N);
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_workers_every_two_seconds_loses_nothing_on_rabbitmq() {
    const N: usize = 20_000;
    let redis = RedisServer::start();
    let url = redis.url(0);
    let mut conn = redis.connection();
    let queue = unique("chaos");
    let args = ["-c", "8", "--prefetch", "64", "--acks-late"];
    let app = app(&url, None).await;
    // Declared before the first kill, so nothing is published unroutable.
    app.broker()
        .declare(std::slice::from_ref(&queue))
        .await
        .expect("declare");
    let mut workers: Vec<Proc> = (0..3).map(|_| rust_worker(&url, &queue, &args)).collect();
    // 20 ms each: 24 slots need ~17 s after the last is sent. The kills
    // start with the publishing (which takes seconds of its own on a busy
    // machine), so they land mid-run however long it takes.
    let sending = {
        let (app, queue) = (app.clone(), queue.clone());
        tokio::spawn(async move { send_marks(&app, &queue, "chaos-amqp", N, Some(0.02)).await })
    };

    let mut kills = 0;
    let mut kills_mid_run = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_secs(2)).await; // the chaos cadence itself, not a synchronisation
        if conn.scard::<_, usize>("chaos-amqp").unwrap_or(0) < N {
            kills_mid_run += 1;
        }
        let victim = kills % workers.len();
        workers[victim] = rust_worker(&url, &queue, &args); // the old one is killed -9 on drop
        kills += 1;
    }
    sending.await.expect("every message was published");
    assert!(
        kills_mid_run >= 3,
        "only {kills_mid_run} kills happened while tasks remained"
    );
    wait_until(Duration::from_secs(120), || {
        conn.scard::<_, usize>("chaos-amqp").unwrap_or(0) == N
    });
    let counts = executions(&mut conn, "chaos-amqp");
    let duplicates: u64 = counts.values().map(|c| c - 1).sum();
    let in_flight_bound = (kills * 64) as u64;
    println!("chaos over RabbitMQ: {N} tasks, {kills} kills ({kills_mid_run} mid-run), 0 lost, {duplicates} duplicate executions (bound {in_flight_bound})");
    assert_eq!(counts.len(), N, "every task ran");
    assert!(
        duplicates <= in_flight_bound,
        "{duplicates} duplicates exceed what was in flight"
    );
}

/// `celery -A amqp_app inspect ping -d NODE -j`: stdout, whether it worked.
fn celery_inspect_ping(redis: &str, node: &str) -> (bool, String) {
    let out = Command::new(procs::python())
        .args([
            "-m", "celery", "-A", "amqp_app", "inspect", "ping", "-t", "2", "-j", "-d", node,
        ])
        .current_dir(procs::repo_root().join("tests/python"))
        .env("CELERIAC_TEST_REDIS_URL", redis)
        .env("CELERIAC_TEST_AMQP_URL", amqp_url())
        .output()
        .expect("run celery inspect");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn celery_inspect_ping_sees_a_celeriac_worker_over_rabbitmq() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let node = format!("rs-{}@interop", uuid_like());
    let _worker = rust_worker(&url, &unique("ping"), &["--hostname", &node]);
    let mut last = String::new();
    wait_until(Duration::from_secs(60), || {
        let (ok, stdout) = celery_inspect_ping(&url, &node);
        last = stdout;
        ok && last.contains("pong")
    });
    let replies: Value = serde_json::from_str(last.trim()).expect("celery's JSON");
    assert_eq!(replies[&node], json!({"ok": "pong"}), "{last}");

    // And the other way: Celeriac's Control reaches the Celeriac worker
    // through the same pidbox (what `celeriac inspect` uses).
    let app = app(&url, None).await;
    let control = app.control().expect("a pidbox on AMQP");
    let answers = control
        .call(
            "ping",
            json!({}),
            Some(vec![node.clone()]),
            Duration::from_secs(5),
            Some(1),
        )
        .await
        .expect("call");
    assert_eq!(answers, vec![(node.clone(), json!({"ok": "pong"}))]);

    // The worker's RabbitMQ consumers stay open: cancel_consumer is
    // refused with the reason, not acknowledged and ignored.
    let refused = control
        .call(
            "cancel_consumer",
            json!({"queue": "celery"}),
            Some(vec![node.clone()]),
            Duration::from_secs(5),
            Some(1),
        )
        .await
        .expect("call");
    let error = refused
        .first()
        .and_then(|(_, reply)| reply["error"].as_str())
        .unwrap_or_default();
    assert!(
        error.contains("not supported on an AMQP broker"),
        "{refused:?}"
    );
}

/// Flower (the real one, from the test venv) on RabbitMQ: it lists a
/// Celeriac worker with its registered tasks (remote control on the
/// `celery.pidbox` fanout exchange) and follows its task by id (events on
/// the `celeryev` topic exchange).
#[tokio::test(flavor = "multi_thread")]
async fn flower_lists_a_celeriac_worker_and_its_tasks_over_rabbitmq() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let queue = unique("flower");
    let node = format!("rs-{}@flower", uuid_like());
    let _worker = rust_worker(&url, &queue, &["--hostname", &node, "--events"]);
    let port = support::free_port();
    let mut flower = Command::new(procs::python());
    flower
        .args([
            "-m",
            "celery",
            "-A",
            "amqp_app",
            "flower",
            "--address=127.0.0.1",
        ])
        .arg(format!("--port={port}"))
        .current_dir(procs::repo_root().join("tests/python"))
        .env("CELERIAC_TEST_REDIS_URL", &url)
        .env("CELERIAC_TEST_AMQP_URL", amqp_url())
        .env("FLOWER_UNAUTHENTICATED_API", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _flower = Proc(flower.spawn().expect("start flower"));
    let fetch = |path: &str| -> Option<Value> {
        let script = format!(
            "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout=10).read().decode())"
        );
        let out = Command::new(procs::python())
            .args(["-c", &script])
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    };
    let mut workers = None;
    wait_until(Duration::from_secs(60), || {
        workers = fetch("/api/workers?refresh=1");
        workers.as_ref().is_some_and(|w| w.get(&node).is_some())
    });
    let workers = workers.expect("workers");
    let ours = &workers[&node];
    assert!(
        ours["registered"]
            .as_array()
            .is_some_and(|r| r.iter().any(|t| t == "tasks.add")),
        "{ours}"
    );
    assert!(
        ours["active_queues"]
            .as_array()
            .is_some_and(|q| q.iter().any(|q| q["name"] == json!(queue))),
        "{ours}"
    );
    // Flower is listening now; task events reach it over RabbitMQ.
    let app = app(&url, None).await;
    let sent = app
        .send_task(
            "tasks.add",
            vec![json!(20), json!(22)],
            Map::new(),
            SendOptions::new().queue(&queue),
        )
        .await
        .expect("send");
    assert_eq!(
        sent.get(Duration::from_secs(30)).await.expect("result"),
        json!(42)
    );
    wait_until(Duration::from_secs(30), || {
        fetch(&format!("/api/task/info/{}", sent.id()))
            .is_some_and(|t| t["state"] == json!("SUCCESS") && t["worker"] == json!(node))
    });
}
