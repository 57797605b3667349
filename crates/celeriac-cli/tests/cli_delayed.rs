//! `celeriac delayed` on a real Redis: a countdown task waits in the
//! delayed store, is listed with its ETA, and `flush` hands it back to its
//! queue (where a Python worker would take it and hold it until due).

#[path = "../../celeriac/tests/support/mod.rs"]
mod redis_support;
mod support;

use std::process::Output;

use redis::Commands;
use support::{stderr, stdout, Env};

fn on(env: &Env, broker: &str, args: &[&str]) -> Output {
    env.command(args.iter().copied())
        .env("CELERIAC_BROKER_URL", broker)
        .env("CELERIAC_RESULT_BACKEND", broker)
        .output()
        .expect("celeriac")
}

#[test]
fn delayed_tasks_are_listed_and_handed_back_to_their_queue() {
    let redis = redis_support::RedisServer::start();
    let broker = redis.url(0);
    let env = Env::new();
    let sent = on(
        &env,
        &broker,
        &[
            "call",
            "tasks.add",
            "--args",
            "[1, 2]",
            "--countdown",
            "3600",
            "--queue",
            "later",
        ],
    );
    assert!(sent.status.success(), "{}", stderr(&sent));
    let id = stdout(&sent).trim().to_owned();

    let listed = on(&env, &broker, &["delayed", "list", "--json"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let item: serde_json::Value = serde_json::from_str(stdout(&listed).trim())
        .unwrap_or_else(|e| panic!("{e}: {}", stdout(&listed)));
    assert_eq!(item["id"], id.as_str());
    assert_eq!(item["task"], "tasks.add");
    assert_eq!(item["queue"], "later");

    let refused = on(&env, &broker, &["delayed", "flush"]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "flush needs -f without a terminal"
    );
    let mut conn = redis.connection();
    assert_eq!(conn.llen::<_, i64>("later").unwrap_or(-1), 0);

    let flushed = on(&env, &broker, &["delayed", "flush", "-f"]);
    assert!(flushed.status.success(), "{}", stderr(&flushed));
    assert!(
        stdout(&flushed).starts_with("1 delayed message(s)"),
        "{}",
        stdout(&flushed)
    );
    assert_eq!(
        conn.llen::<_, i64>("later").unwrap_or(-1),
        1,
        "back in kombu's queue list"
    );
    let relisted = on(&env, &broker, &["delayed", "list"]);
    assert_eq!(stdout(&relisted).trim(), "");
}
