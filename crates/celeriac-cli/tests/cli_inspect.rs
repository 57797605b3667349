//! `celeriac inspect` against real worker processes, through remote
//! control on every broker: Redis (Celery's pidbox) and SQLite (the file's
//! event table) answer the same methods — ping, registered, active, stats
//! with a destination, scheduled (a countdown task, in Celery's reply
//! shape), reserved, active_queues, revoked, conf — and no reply is an
//! error.

#[path = "../../celeriac/tests/support/mod.rs"]
mod redis_support;
mod support;

use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use support::{eventually, stderr, stdout, Env};

const NODE: &str = "inspected@test";

fn run(env: &Env, broker: &str, args: &[&str]) -> Output {
    env.command(args)
        .env("CELERIAC_BROKER_URL", broker)
        .env("CELERIAC_RESULT_BACKEND", broker)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run celeriac")
}

fn inspect(env: &Env, broker: &str, args: &[&str]) -> Output {
    let mut all = vec!["inspect"];
    all.extend_from_slice(args);
    run(env, broker, &all)
}

/// NODE's reply to `inspect METHOD --json -d NODE` (which returns as soon
/// as it answered).
fn reply(env: &Env, broker: &str, method: &str) -> Value {
    let out = inspect(env, broker, &[method, "--json", "-d", NODE, "-t", "10"]);
    assert!(out.status.success(), "inspect {method}: {}", stderr(&out));
    let replies: Value = serde_json::from_slice(&out.stdout).expect("json");
    replies[NODE].clone()
}

fn call(env: &Env, broker: &str, args: &[&str]) -> String {
    let mut all = vec!["call"];
    all.extend_from_slice(args);
    let sent = run(env, broker, &all);
    assert!(sent.status.success(), "{}", stderr(&sent));
    stdout(&sent).trim().to_owned()
}

fn inspect_scenario(env: &Env, broker: &str) {
    let _worker = env.worker_on(broker, NODE, &["-c", "2"]);

    let out = inspect(env, broker, &["ping", "-t", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("->  {NODE}: OK\n        pong\n\n1 node online.\n")
    );

    let registered = inspect(env, broker, &["registered", "-d", NODE, "-t", "10"]);
    assert!(registered.status.success(), "{}", stderr(&registered));
    assert!(
        stdout(&registered).contains("        * tasks.add\n"),
        "{}",
        stdout(&registered)
    );

    // A task running now is listed by `active`.
    let running = call(env, broker, &["tasks.sleep", "--args", "[30]"]);
    eventually("the sleep is active", Duration::from_secs(20), || {
        reply(env, broker, "active")
            .as_array()
            .is_some_and(|tasks| tasks.iter().any(|t| t["id"] == running.as_str()))
    });
    let stats = reply(env, broker, "stats");
    assert_eq!(stats["pool"]["max-concurrency"], 2, "{stats}");
    assert_eq!(stats["celeriac"]["active"], 1, "{stats}");

    // A countdown task waits for its ETA: `scheduled` lists it in
    // Celery's shape, {eta, priority, request}.
    let later = call(
        env,
        broker,
        &["tasks.add", "--args", "[20, 22]", "--countdown", "3600"],
    );
    let scheduled = reply(env, broker, "scheduled");
    let entry = scheduled
        .as_array()
        .and_then(|list| list.iter().find(|e| e["request"]["id"] == later.as_str()))
        .unwrap_or_else(|| panic!("{later} not scheduled: {scheduled}"));
    assert!(
        entry["eta"]
            .as_str()
            .is_some_and(|eta| eta.ends_with("+00:00")),
        "{entry}"
    );
    assert_eq!(entry["priority"], 0, "{entry}");
    let request = &entry["request"];
    assert_eq!(request["name"], "tasks.add", "{entry}");
    assert_eq!(request["args"], serde_json::json!([20, 22]), "{entry}");
    assert_eq!(request["kwargs"], serde_json::json!({}), "{entry}");
    assert_eq!(request["hostname"], NODE, "{entry}");
    assert_eq!(request["time_start"], Value::Null, "{entry}");
    assert_eq!(request["delivery_info"]["routing_key"], "celery", "{entry}");
    let human = inspect(env, broker, &["scheduled", "-d", NODE, "-t", "10"]);
    assert!(
        stdout(&human).contains(&format!("\"id\":\"{later}\"")),
        "{}",
        stdout(&human)
    );

    // The rest answer in their Celery shapes.
    assert_eq!(reply(env, broker, "reserved"), serde_json::json!([]));
    let queues = reply(env, broker, "active_queues");
    assert_eq!(queues[0]["name"], "celery", "{queues}");
    assert!(reply(env, broker, "revoked").is_array());
    assert_eq!(reply(env, broker, "conf")["worker_concurrency"], 2);

    let out = inspect(
        env,
        broker,
        &[
            "ping",
            "--destination",
            "nobody@nowhere",
            "--timeout",
            "0.5",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no nodes of nobody@nowhere replied to ping within 0.5 s"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn inspect_on_redis_asks_the_workers() {
    let redis = redis_support::RedisServer::start();
    inspect_scenario(&Env::new(), &redis.url(0));
}

#[test]
fn inspect_on_sqlite_asks_the_workers_through_the_file() {
    let env = Env::new();
    inspect_scenario(&env, &env.url.clone());
}

#[test]
fn inspect_without_workers_says_so() {
    let env = Env::new();
    let out = inspect(&env, &env.url, &["ping", "--timeout", "0.2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no nodes replied to ping"),
        "{}",
        stderr(&out)
    );
    let out = inspect(&env, &env.url, &["ping", "--timeout", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--timeout"), "{}", stderr(&out));
    let out = inspect(&env, &env.url, &["bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid value 'bogus'"),
        "{}",
        stderr(&out)
    );
}
