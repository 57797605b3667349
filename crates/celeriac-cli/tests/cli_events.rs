//! `celeriac events` against real worker processes on Redis and on SQLite:
//! `--dump` prints each event as `celery events --dump` does (the task's
//! received, started and succeeded lines, heartbeats), `--dump --json` one
//! JSON object per event, and the live view shows the worker and the task
//! with its state once a worker was told to send task events.

#[path = "../../celeriac/tests/support/mod.rs"]
mod redis_support;
mod support;

use std::path::PathBuf;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use support::{eventually, stderr, stdout, Env};

const NODE: &str = "watched@test";
const WAIT: Duration = Duration::from_secs(30);

/// `celeriac events ARGS…` running, its stdout going to a file; killed on
/// drop.
struct Watcher {
    child: Child,
    out: PathBuf,
}

impl Watcher {
    fn start(env: &Env, broker: &str, name: &str, args: &[&str]) -> Watcher {
        let out = env.path(&format!("{name}.out"));
        let child = env
            .command(["events"])
            .args(args)
            .env("CELERIAC_BROKER_URL", broker)
            .env("CELERIAC_RESULT_BACKEND", broker)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("output file"))
            .stderr(std::fs::File::create(env.path(&format!("{name}.err"))).expect("error file"))
            .spawn()
            .expect("spawn celeriac events");
        Watcher { child, out }
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- celeriac events output ---\n{}", self.text());
        }
    }
}

fn run(env: &Env, broker: &str, args: &[&str]) -> Output {
    env.command(args)
        .env("CELERIAC_BROKER_URL", broker)
        .env("CELERIAC_RESULT_BACKEND", broker)
        .stdin(Stdio::null())
        .output()
        .expect("run celeriac")
}

/// Send `tasks.add(2, 3)` and wait for its result; its id.
fn add(env: &Env, broker: &str) -> String {
    let sent = run(env, broker, &["call", "tasks.add", "--args", "[2, 3]"]);
    assert!(sent.status.success(), "{}", stderr(&sent));
    let id = stdout(&sent).trim().to_owned();
    let got = run(env, broker, &["result", &id, "--wait", "--timeout", "20"]);
    assert!(got.status.success(), "{}", stderr(&got));
    id
}

fn dump_scenario(env: &Env, broker: &str) {
    let _worker = env.worker_on(broker, NODE, &["-E"]);
    let dump = Watcher::start(env, broker, "dump", &["--dump"]);
    let json = Watcher::start(env, broker, "json", &["--dump", "--json"]);
    eventually("both dumps listening", WAIT, || {
        dump.text().starts_with("-> evdump: starting capture...\n")
            && std::fs::read_to_string(env.path("json.err"))
                .is_ok_and(|e| e.contains("-> evdump: starting capture..."))
    });
    let id = add(env, broker);
    let task = format!("tasks.add({id}) args=(2, 3) kwargs={{}}");
    eventually("the task's three events dumped", WAIT, || {
        let text = dump.text();
        ["received", "started", "succeeded"]
            .iter()
            .all(|kind| text.contains(&format!("] task {kind}: {task}")))
    });
    let text = dump.text();
    let succeeded = text
        .lines()
        .find(|l| l.contains("] task succeeded: "))
        .expect("a succeeded line");
    assert!(
        succeeded.starts_with(&format!("{NODE} [")) && succeeded.contains("result=5, runtime="),
        "{succeeded}"
    );
    eventually("a heartbeat dumped", WAIT, || {
        dump.text()
            .lines()
            .any(|l| l.starts_with(&format!("{NODE} [")) && l.contains("] heartbeat: active="))
    });
    // --json: the event's own fields, one object per line.
    eventually("the succeeded event as JSON", WAIT, || {
        json.text().lines().any(|line| {
            serde_json::from_str::<serde_json::Value>(line).is_ok_and(|e| {
                e["type"] == "task-succeeded" && e["uuid"] == id.as_str() && e["result"] == "5"
            })
        })
    });
}

#[test]
fn events_dump_on_sqlite() {
    let env = Env::new();
    dump_scenario(&env, &env.url.clone());
}

#[test]
fn events_dump_on_redis() {
    let redis = redis_support::RedisServer::start();
    dump_scenario(&Env::new(), &redis.url(0));
}

fn live_scenario(env: &Env, broker: &str) {
    // No -E: the worker sends task events only once told to.
    let _worker = env.worker_on(broker, NODE, &[]);
    let live = Watcher::start(env, broker, "live", &["-F", "0.2"]);
    eventually("the worker in the live view", WAIT, || {
        live.text().contains("Workers: 1 online, 1 known")
    });
    assert!(
        live.text().contains("no task events yet"),
        "{}",
        live.text()
    );
    let enabled = run(
        env,
        broker,
        &["control", "enable_events", "-d", NODE, "-t", "10"],
    );
    assert!(enabled.status.success(), "{}", stderr(&enabled));
    let id = add(env, broker);
    eventually("the task's row reads SUCCESS", WAIT, || {
        live.text().lines().any(|l| {
            l.contains(&id) && l.contains("tasks.add") && l.contains("SUCCESS") && l.contains(NODE)
        })
    });
}

#[test]
fn events_live_view_on_sqlite() {
    let env = Env::new();
    live_scenario(&env, &env.url.clone());
}

#[test]
fn events_live_view_on_redis() {
    let redis = redis_support::RedisServer::start();
    live_scenario(&Env::new(), &redis.url(0));
}

#[test]
fn events_refuses_bad_flags() {
    let env = Env::new();
    let out = run(&env, &env.url, &["events", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--dump"), "{}", stderr(&out));
    let out = run(&env, &env.url, &["events", "-F", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--frequency"), "{}", stderr(&out));
}
