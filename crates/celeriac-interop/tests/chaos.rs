//! Delivery guarantees under failure, on a real Redis: workers killed -9 in
//! a loop, Redis killed -9 and restarted from its AOF, a flood of malformed
//! messages, ETAs and tasks longer than the visibility timeout.
//!
//! Each test counts executions per task id in Redis (`tasks.mark` keeps a
//! set of ids and a per-id counter), so "lost" and "ran twice" are measured,
//! not assumed.

#[path = "../../celeriac/tests/support/mod.rs"]
mod support;

mod procs;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use celeriac::{App, SendOptions};
use procs::Proc;
use rand::Rng;
use redis::Commands;
use serde_json::{json, Map};
use support::{wait_until, RedisServer};

fn worker(url: &str, extra: &[&str]) -> Proc {
    procs::rust_worker(url, extra, false)
}

async fn app(url: &str) -> App {
    App::builder()
        .broker_url(url)
        .backend_url(url)
        .build()
        .await
        .expect("connect")
}

/// Send `n` marks into `set_key` in batches; returns the ids.
async fn send_marks(app: &App, set_key: &str, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let calls = chunk.iter().map(|i| {
            (
                "tasks.mark".to_owned(),
                vec![json!(set_key), json!(i)],
                Map::new(),
                SendOptions::new().ignore_result(true),
            )
        });
        app.send_batch(calls).await.expect("send");
    }
}

fn executions(conn: &mut redis::Connection, set_key: &str) -> HashMap<String, u64> {
    conn.hgetall(format!("{set_key}:count")).expect("counts")
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_workers_every_two_seconds_loses_nothing() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let mut conn = redis.connection();
    const N: usize = 20_000;
    let args = ["-c", "8", "--prefetch", "64", "--acks-late"];
    let mut workers: Vec<Proc> = (0..3).map(|_| worker(&url, &args)).collect();
    let app = app(&url).await;
    send_marks(&app, "chaos", N).await;

    let mut rng = rand::rng();
    let mut kills = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_secs(2)); // the chaos cadence itself, not a synchronisation
        let victim = rng.random_range(0..workers.len());
        workers[victim] = worker(&url, &args); // the old one is killed -9 on drop
        kills += 1;
    }
    wait_until(Duration::from_secs(90), || {
        conn.scard::<_, usize>("chaos").unwrap_or(0) == N
    });
    let counts = executions(&mut conn, "chaos");
    let duplicates: u64 = counts.values().map(|c| c - 1).sum();
    let in_flight_bound = (kills * 64) as u64;
    println!("chaos: {N} tasks, {kills} kills, 0 lost, {duplicates} duplicate executions (bound {in_flight_bound})");
    assert_eq!(counts.len(), N, "every task ran");
    assert!(
        duplicates <= in_flight_bound,
        "{duplicates} duplicates exceed what was in flight"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_killed_and_restarted_from_aof_loses_nothing() {
    let mut redis = RedisServer::start_with_aof();
    let url = redis.url(0);
    let _workers: Vec<Proc> = (0..2)
        .map(|_| {
            worker(
                &url,
                &["-c", "8", "--acks-late", "--visibility-timeout", "30"],
            )
        })
        .collect();
    let app = app(&url).await;
    const N: usize = 5_000;
    send_marks(&app, "aof", N).await;
    let mut conn = redis.connection();
    wait_until(Duration::from_secs(30), || {
        conn.scard::<_, usize>("aof").unwrap_or(0) > N / 5
    });
    redis.restart_after(Duration::from_millis(300), true);
    let resumed = Instant::now();
    let mut conn = redis.connection();
    let before: usize = conn.scard("aof").unwrap_or(0);
    wait_until(Duration::from_secs(20), || {
        conn.scard::<_, usize>("aof").unwrap_or(0) > before
    });
    println!("workers resumed {:?} after the restart", resumed.elapsed());
    wait_until(Duration::from_secs(60), || {
        conn.scard::<_, usize>("aof").unwrap_or(0) == N
    });
}

/// Ten-plus kinds of bad message, as raw queue items.
fn malformed(i: usize) -> (Vec<u8>, &'static str) {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let env = |headers: serde_json::Value, body: String, content_type: &str| {
        json!({
            "body": body, "content-encoding": "utf-8", "content-type": content_type,
            "headers": headers,
            "properties": {"delivery_tag": format!("bad-{i}"), "body_encoding": "base64",
                           "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0}
        })
        .to_string()
        .into_bytes()
    };
    let headers = |task: &str| json!({"task": task, "id": format!("bad-task-{i}"), "lang": "py"});
    let good_body = b64(br#"[["chaos-bad", 1], {}, {}]"#);
    match i % 12 {
        0 => (b"this is not json".to_vec(), "not JSON"),
        1 => (b"[1, 2, 3]".to_vec(), "JSON but not an envelope"),
        2 => (br#"{"body": "x"}"#.to_vec(), "envelope without properties"),
        3 => (
            env(
                headers("tasks.mark"),
                "%%% not base64 %%%".into(),
                "application/json",
            ),
            "bad base64",
        ),
        4 => (
            env(headers("tasks.mark"), b64(b"{not json"), "application/json"),
            "body not JSON",
        ),
        5 => (
            env(
                headers("tasks.mark"),
                b64(br#"{"a": 1}"#),
                "application/json",
            ),
            "body not an array",
        ),
        6 => (
            env(json!({"lang": "py"}), good_body, "application/json"),
            "protocol v1 (no task header)",
        ),
        7 => (
            env(
                headers("tasks.does_not_exist"),
                good_body,
                "application/json",
            ),
            "unknown task",
        ),
        8 => (
            env(
                headers("tasks.mark"),
                b64(br#"[[1, 2, 3, 4], {}, {}]"#),
                "application/json",
            ),
            "too many arguments",
        ),
        9 => (
            env(
                headers("tasks.sleep"),
                b64(br#"[["not a number"], {}, {}]"#),
                "application/json",
            ),
            "wrong argument type",
        ),
        10 => (
            env(
                headers("tasks.mark"),
                good_body,
                "application/x-python-serialize",
            ),
            "pickle content type",
        ),
        _ => (
            env(
                headers("tasks.echo"),
                b64(format!(r#"[["{}"], {{}}, {{}}]"#, "x".repeat(70_000)).as_bytes()),
                "application/json",
            ),
            "over the size limit",
        ),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_messages_are_dead_lettered_and_valid_ones_still_run() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let mut conn = redis.connection();
    const VALID: usize = 10_000;
    const BAD: usize = 10_000;
    // Interleave bad and good messages on the queue before the worker starts.
    let app = app(&url).await;
    send_marks(&app, "valid", VALID).await;
    let mut kinds = std::collections::BTreeSet::new();
    for chunk in (0..BAD).collect::<Vec<_>>().chunks(500) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            let (bytes, kind) = malformed(i);
            kinds.insert(kind);
            pipe.lpush("celery", bytes).ignore();
        }
        let () = pipe.query(&mut conn).expect("push malformed");
    }
    assert!(kinds.len() >= 10, "{kinds:?}");
    let mut w = worker(&url, &["-c", "8", "--max-message-bytes", "65536"]);
    wait_until(Duration::from_secs(60), || {
        conn.scard::<_, usize>("valid").unwrap_or(0) == VALID
            && conn
                .zcard::<_, usize>("celeriac.dead_letter.index")
                .unwrap_or(0)
                == BAD
    });
    assert!(
        w.0.try_wait().expect("status").is_none(),
        "the worker exited"
    );
    // Metadata and payloads are kept apart (celeriac::broker::dead_letters).
    let letters: Vec<String> = conn.hvals("celeriac.dead_letter.meta").expect("letters");
    assert_eq!(
        conn.hlen::<_, usize>("celeriac.dead_letter.payload")
            .expect("payloads"),
        BAD
    );
    let mut reasons: HashMap<String, usize> = HashMap::new();
    for text in &letters {
        let letter: celeriac::broker::DeadLetterInfo =
            serde_json::from_str(text).expect("dead letter json");
        assert!(!letter.reason.is_empty() && letter.size > 0);
        let kind = letter.reason.split(':').next().unwrap_or("").to_owned();
        *reasons.entry(kind).or_default() += 1;
    }
    println!("dead letters by reason: {reasons:?}");
    assert!(reasons.len() >= 8, "distinct reasons: {reasons:?}");
    assert_eq!(conn.llen::<_, usize>("celery").expect("queue"), 0);
    let _ = w.0.kill();
}

#[tokio::test(flavor = "multi_thread")]
async fn long_etas_and_long_tasks_run_exactly_once() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let mut conn = redis.connection();
    let vt = "2";
    let _a = worker(
        &url,
        &["-c", "4", "--acks-late", "--visibility-timeout", vt],
    );
    let _b = worker(
        &url,
        &["-c", "4", "--acks-late", "--visibility-timeout", vt],
    );
    let app = app(&url).await;
    let sent = Instant::now();
    let eta = app
        .send_task(
            "tasks.mark",
            vec![json!("once"), json!("eta")],
            Map::new(),
            SendOptions::new().countdown(Duration::from_secs(4)),
        )
        .await
        .expect("send");
    let long = app
        .send_task(
            "tasks.slow_mark",
            vec![json!("once"), json!("long"), json!(6.0)],
            Map::new(),
            SendOptions::new(),
        )
        .await
        .expect("send");
    eta.get(Duration::from_secs(30)).await.expect("eta task");
    assert!(
        sent.elapsed() >= Duration::from_secs(4),
        "ran before its countdown"
    );
    long.get(Duration::from_secs(30)).await.expect("long task");
    // Let a few more restore sweeps pass (VT/2 each) before counting.
    let settled = Instant::now();
    wait_until(Duration::from_secs(10), || {
        settled.elapsed() > Duration::from_secs(4)
    });
    let counts = executions(&mut conn, "once");
    assert_eq!(counts.get("eta"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("long"), Some(&1), "{counts:?}");
}
