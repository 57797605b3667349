//! `celeriac control` and `celeriac status` against real worker processes,
//! on Redis (Celery's pidbox) and on SQLite (the file's event table): each
//! method's reply as Celery prints it, its effect on the worker, refusals
//! and mistakes with exit status 2, and `shutdown` stopping the worker.

#[path = "../../celeriac/tests/support/mod.rs"]
mod redis_support;
mod support;

use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use support::{stderr, stdout, Env};

const NODE: &str = "controlled@test";

/// `celeriac ARGS…` on `broker`.
fn run(env: &Env, broker: &str, args: &[&str]) -> Output {
    env.command(args)
        .env("CELERIAC_BROKER_URL", broker)
        .env("CELERIAC_RESULT_BACKEND", broker)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run celeriac")
}

/// `celeriac control ARGS… -d NODE -t 10`: returns once NODE answered.
fn control(env: &Env, broker: &str, args: &[&str]) -> Output {
    let mut all = vec!["control"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-d", NODE, "-t", "10"]);
    run(env, broker, &all)
}

/// `celeriac inspect METHOD --json -d NODE -t 10`: NODE's reply.
fn inspect(env: &Env, broker: &str, method: &str) -> Value {
    let out = run(
        env,
        broker,
        &["inspect", method, "--json", "-d", NODE, "-t", "10"],
    );
    assert!(out.status.success(), "inspect {method}: {}", stderr(&out));
    let replies: Value = serde_json::from_slice(&out.stdout).expect("json");
    replies[NODE].clone()
}

/// The reply block `celery control` prints for NODE.
fn assert_ok(out: &Output, reply: &str) {
    assert!(out.status.success(), "{}\n{}", stdout(out), stderr(out));
    let text = stdout(out);
    assert!(
        text.contains(&format!("->  {NODE}: OK\n        {reply}\n")),
        "{text}"
    );
}

fn queue_names(reply: &Value) -> Vec<String> {
    reply
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|q| q["name"].as_str().map(str::to_owned))
        .collect()
}

fn control_scenario(env: &Env, broker: &str) {
    let mut worker = env.worker_on(broker, NODE, &["-c", "1"]);

    // rate_limit: set, then refused for an unknown task (exit 2), and a
    // bad rate named before anything is sent.
    assert_ok(
        &control(env, broker, &["rate_limit", "tasks.add", "10/m"]),
        "new rate limit set successfully",
    );
    let json = control(env, broker, &["rate_limit", "tasks.add", "0", "--json"]);
    assert!(json.status.success(), "{}", stderr(&json));
    let replies: Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(
        replies[NODE]["ok"], "rate limit disabled successfully",
        "{replies}"
    );
    let unknown = control(env, broker, &["rate_limit", "tasks.nope", "1/s"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stdout(&unknown).contains(&format!(
            "->  {NODE}: ERROR\n        unknown task tasks.nope"
        )),
        "{}",
        stdout(&unknown)
    );
    assert!(
        stderr(&unknown).contains("refused rate_limit"),
        "{}",
        stderr(&unknown)
    );
    let bad = control(env, broker, &["rate_limit", "tasks.add", "fast"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("invalid rate limit \"fast\""),
        "{}",
        stderr(&bad)
    );

    // time_limit: a task that declares none is stopped at the hard limit.
    assert_ok(
        &control(env, broker, &["time_limit", "tasks.sleep", "0.2", "0.5"]),
        "time limits set successfully",
    );
    let slept = run(
        env,
        broker,
        &[
            "call",
            "tasks.sleep",
            "--args",
            "[30]",
            "--wait",
            "--timeout",
            "20",
        ],
    );
    assert_eq!(slept.status.code(), Some(1), "{}", stderr(&slept));
    assert!(
        stderr(&slept).contains("TimeLimitExceeded"),
        "{}",
        stderr(&slept)
    );

    // add_consumer / cancel_consumer: the queue is consumed, then not.
    assert_ok(
        &control(env, broker, &["add_consumer", "extra"]),
        "add consumer extra",
    );
    assert_eq!(
        queue_names(&inspect(env, broker, "active_queues")),
        ["celery", "extra"]
    );
    let on_extra = run(
        env,
        broker,
        &[
            "call",
            "tasks.add",
            "--args",
            "[1, 2]",
            "--queue",
            "extra",
            "--wait",
            "--timeout",
            "20",
        ],
    );
    assert!(on_extra.status.success(), "{}", stderr(&on_extra));
    assert_eq!(stdout(&on_extra).trim(), "3");
    assert_ok(
        &control(env, broker, &["cancel_consumer", "extra"]),
        "no longer consuming from extra",
    );
    assert_eq!(
        queue_names(&inspect(env, broker, "active_queues")),
        ["celery"]
    );

    // pool_grow / pool_shrink: the pool's size follows, one slot is kept.
    assert_ok(
        &control(env, broker, &["pool_grow", "2"]),
        "pool will grow (to 3 slots)",
    );
    assert_eq!(inspect(env, broker, "stats")["pool"]["max-concurrency"], 3);
    assert_ok(
        &control(env, broker, &["pool_shrink", "2"]),
        "pool will shrink (to 1 slot)",
    );
    let floor = control(env, broker, &["pool_shrink"]);
    assert_eq!(floor.status.code(), Some(2));
    assert!(
        stdout(&floor).contains("keeps at least one"),
        "{}",
        stdout(&floor)
    );
    let zero = control(env, broker, &["pool_grow", "0"]);
    assert_eq!(zero.status.code(), Some(2));
    assert!(
        stderr(&zero).contains("N must be a whole number from 1"),
        "{}",
        stderr(&zero)
    );

    // Task events on and off (the worker started without -E).
    assert_ok(
        &control(env, broker, &["enable_events"]),
        "task events enabled",
    );
    assert_ok(
        &control(env, broker, &["disable_events"]),
        "task events disabled",
    );

    // Arguments are checked before anything is sent.
    let extra = control(env, broker, &["shutdown", "now"]);
    assert_eq!(extra.status.code(), Some(2));
    assert!(
        stderr(&extra).contains("control shutdown takes no arguments"),
        "{}",
        stderr(&extra)
    );
    let unknown_method = control(env, broker, &["autoscale"]);
    assert_eq!(unknown_method.status.code(), Some(2));
    assert!(
        stderr(&unknown_method).contains("invalid value 'autoscale'"),
        "{}",
        stderr(&unknown_method)
    );

    // shutdown: answered, then the worker stops on its own.
    assert_ok(&control(env, broker, &["shutdown"]), "shutting down");
    let status = worker.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "worker exit: {status:?}");
    let nobody = run(
        env,
        broker,
        &["control", "enable_events", "-d", NODE, "-t", "0.5"],
    );
    assert_eq!(nobody.status.code(), Some(2));
    assert!(
        stderr(&nobody).contains("no nodes of controlled@test replied to enable_events"),
        "{}",
        stderr(&nobody)
    );
}

#[test]
fn control_on_sqlite() {
    let env = Env::new();
    control_scenario(&env, &env.url.clone());
}

#[test]
fn control_on_redis() {
    let redis = redis_support::RedisServer::start();
    control_scenario(&Env::new(), &redis.url(0));
}

fn status_scenario(env: &Env, broker: &str) {
    let a = env.worker_on(broker, "a@test", &[]);
    let _b = env.worker_on(broker, "b@test", &[]);
    let out = run(env, broker, &["status", "-t", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "->  a@test: OK\n->  b@test: OK\n\n2 nodes online.\n"
    );
    let one = run(
        env,
        broker,
        &["status", "--json", "-d", "a@test", "-t", "10"],
    );
    assert!(one.status.success(), "{}", stderr(&one));
    let replies: Value = serde_json::from_slice(&one.stdout).expect("json");
    assert_eq!(replies, serde_json::json!({"a@test": {"ok": "pong"}}));
    drop(a);
    drop(_b);
    let none = run(env, broker, &["status", "-t", "0.5"]);
    assert_eq!(none.status.code(), Some(2));
    assert!(
        stderr(&none).contains("no nodes replied to ping within 0.5 s (is a worker running on"),
        "{}",
        stderr(&none)
    );
}

#[test]
fn status_on_sqlite() {
    let env = Env::new();
    status_scenario(&env, &env.url.clone());
}

#[test]
fn status_on_redis() {
    let redis = redis_support::RedisServer::start();
    status_scenario(&Env::new(), &redis.url(0));
}
