//! `celeriac revoke`, `celeriac dlq` and `celeriac purge` against real
//! worker processes on an embedded SQLite file (`purge` on Redis too).

#[path = "../../celeriac/tests/support/mod.rs"]
mod redis_support;
mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{eventually, stderr, stdout, Env};

#[test]
fn a_task_revoked_before_any_worker_starts_is_never_run() {
    let env = Env::new();
    let sent = env.run(["call", "tasks.add", "--args", "[1, 2]"]);
    let id = stdout(&sent).trim().to_owned();
    assert!(!id.is_empty(), "{}", stderr(&sent));
    let revoked = env.run(["revoke", &id]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    assert!(stdout(&revoked).contains(&format!("{id} revoked")));

    // A worker started after the revocation still honours it.
    let _worker = env.worker("w@revoke", &["-c", "1"]);
    let result = env.run(["result", &id, "--wait", "--timeout", "20"]);
    let text = stdout(&result);
    assert!(text.contains("REVOKED"), "{text} {}", stderr(&result));
    assert_ne!(
        result.status.code(),
        Some(0),
        "a revoked task is not a success"
    );
}

#[test]
fn dead_letters_can_be_listed_shown_requeued_and_purged() {
    let env = Env::new();
    let _worker = env.worker("w@dlq", &["-c", "1"]);
    let sent = env.run(["call", "tasks.nope"]);
    assert!(sent.status.success(), "{}", stderr(&sent));

    let mut letters: Vec<Value> = Vec::new();
    eventually(
        "the unknown task is dead-lettered",
        Duration::from_secs(20),
        || {
            let out = env.run(["dlq", "list", "--json"]);
            letters = stdout(&out)
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            letters.len() == 1
        },
    );
    let letter = &letters[0];
    assert!(
        letter["reason"]
            .as_str()
            .is_some_and(|r| r.contains("NotRegistered")),
        "{letter}"
    );
    let id = letter["id"].as_str().expect("id").to_owned();

    let shown = env.run(["dlq", "show", &id]);
    let shown: Value = serde_json::from_str(&stdout(&shown)).expect("show prints JSON");
    assert!(shown["payload"]
        .as_str()
        .is_some_and(|p| p.contains("tasks.nope")));

    // The task id `call` printed finds the same letter.
    let task_id = stdout(&sent).trim().to_owned();
    let by_task = env.run(["dlq", "show", &task_id]);
    assert!(by_task.status.success(), "{}", stderr(&by_task));
    let by_task: Value = serde_json::from_str(&stdout(&by_task)).expect("show prints JSON");
    assert_eq!(by_task["id"], json!(id), "{by_task}");
    assert_eq!(by_task["task_id"], json!(task_id), "{by_task}");
    // The human list names the task and its id.
    let listed = stdout(&env.run(["dlq", "list"]));
    assert!(
        listed.contains("tasks.nope") && listed.contains(&task_id),
        "{listed}"
    );

    let missing = env.run(["dlq", "show", "no-such-id"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("no dead letter"));

    // Requeued, it fails again (the task is still unknown) and comes back.
    let requeued = env.run(["dlq", "requeue", &id]);
    assert!(requeued.status.success(), "{}", stderr(&requeued));
    eventually(
        "the requeued message is dead-lettered again",
        Duration::from_secs(20),
        || {
            let out = env.run(["dlq", "list", "--json"]);
            stdout(&out).lines().count() == 1 && !stdout(&out).contains(&id)
        },
    );

    let refused = env.run(["dlq", "purge"]);
    assert_eq!(refused.status.code(), Some(2), "purge needs --yes");
    let purged = env.run(["dlq", "purge", "--yes"]);
    assert!(
        stdout(&purged).contains("1 dead letter(s) purged"),
        "{}",
        stdout(&purged)
    );
}

/// `celeriac ARGS…` with `broker` as broker and backend.
fn run_on(env: &Env, broker: &str, args: &[&str]) -> std::process::Output {
    env.command(args)
        .env("CELERIAC_BROKER_URL", broker)
        .env("CELERIAC_RESULT_BACKEND", broker)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run celeriac")
}

fn purge_scenario(env: &Env, broker: &str) {
    for queue in ["celery", "celery", "reports"] {
        let sent = run_on(
            env,
            broker,
            &["call", "tasks.add", "--args", "[1, 2]", "--queue", queue],
        );
        assert!(sent.status.success(), "{}", stderr(&sent));
    }
    // No terminal to ask on and no -f: refused, nothing deleted.
    let refused = run_on(env, broker, &["purge"]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("-f"), "{}", stderr(&refused));
    let purged = run_on(env, broker, &["purge", "-f"]);
    assert!(purged.status.success(), "{}", stderr(&purged));
    assert_eq!(
        stdout(&purged).trim(),
        "Purged 2 messages from 1 known task queue."
    );
    let spared = run_on(
        env,
        broker,
        &["purge", "-f", "-Q", "celery,reports", "-X", "reports"],
    );
    assert_eq!(
        stdout(&spared).trim(),
        "Purged 0 messages from 1 known task queue."
    );
    let rest = run_on(env, broker, &["purge", "-f", "-Q", "reports"]);
    assert_eq!(
        stdout(&rest).trim(),
        "Purged 1 message from 1 known task queue."
    );
}

#[test]
fn purge_empties_the_named_queues_and_asks_first() {
    let env = Env::new();
    purge_scenario(&env, &env.url);
}

#[test]
fn purge_on_redis() {
    let redis = redis_support::RedisServer::start();
    purge_scenario(&Env::new(), &redis.url(0));
}
