//! `celeriac inspect` against real worker processes: on Redis through
//! remote control (ping, stats, registered, active, destinations), and on
//! SQLite from heartbeats (ping, stats) with a clear error for the rest.

#[path = "../../celeriac/tests/support/mod.rs"]
mod redis_support;
mod serve_support;
mod support;

use std::process::Output;
use std::time::Duration;

use serve_support::spawn_worker;
use support::{eventually, stderr, stdout, Env};

fn inspect(env: &Env, broker: &str, args: &[&str]) -> Output {
    env.command(["inspect"])
        .args(args)
        .env("CELERIAC_BROKER_URL", broker)
        .env("CELERIAC_RESULT_BACKEND", broker)
        .output()
        .expect("celeriac inspect")
}

#[test]
fn inspect_on_redis_asks_the_workers() {
    let redis = redis_support::RedisServer::start();
    let broker = redis.url(0);
    let env = Env::new();
    let _worker = spawn_worker(&env, "inspected@test", &broker, &["-c", "2"]);

    let out = inspect(&env, &broker, &["ping"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("->  inspected@test: OK"), "{text}");
    assert!(
        text.contains("pong") && text.contains("1 node online."),
        "{text}"
    );

    let out = inspect(&env, &broker, &["registered", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let replies: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(replies["inspected@test"]
        .as_array()
        .is_some_and(|names| names.iter().any(|n| n == "tasks.add")));

    // A task running now is listed by `active`.
    let sent = env
        .command(["call", "tasks.sleep", "--args", "[30]"])
        .env("CELERIAC_BROKER_URL", &broker)
        .env("CELERIAC_RESULT_BACKEND", &broker)
        .output()
        .expect("call");
    let id = stdout(&sent).trim().to_owned();
    eventually("the sleep is active", Duration::from_secs(20), || {
        stdout(&inspect(&env, &broker, &["active", "--json"])).contains(&id)
    });

    let out = inspect(
        &env,
        &broker,
        &["stats", "--json", "--destination", "inspected@test"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        stats["inspected@test"]["pool"]["max-concurrency"] == 2,
        "{stats}"
    );

    let out = inspect(
        &env,
        &broker,
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
        stderr(&out).contains("no nodes replied"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn inspect_on_sqlite_answers_from_heartbeats() {
    let env = Env::new();
    let _worker = spawn_worker(&env, "beating@test", &env.url, &[]);

    let out = inspect(&env, &env.url, &["ping"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("->  beating@test: OK"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("heartbeats"), "{}", stderr(&out));

    let out = inspect(&env, &env.url, &["stats", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(stats["beating@test"]["sw_ident"], "celeriac");
    assert_eq!(stats["beating@test"]["source"], "heartbeat");

    let out = inspect(&env, &env.url, &["active"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("needs a Redis broker"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn inspect_without_workers_says_so() {
    let env = Env::new();
    let out = inspect(&env, &env.url, &["ping", "--timeout", "0.2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no nodes replied"),
        "{}",
        stderr(&out)
    );
    let out = inspect(&env, &env.url, &["ping", "--timeout", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--timeout"), "{}", stderr(&out));
}
