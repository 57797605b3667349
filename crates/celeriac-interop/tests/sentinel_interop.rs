//! Python Celery and Celeriac over Redis Sentinel, both ways, each side
//! configured as its users would: a master, one replica and one sentinel
//! (the helpers of `redis_sentinel.rs`), broker and result backend both
//! `sentinel://127.0.0.1:PORT` following the master named `mymaster`
//! (Celery's `broker_transport_options` and
//! `result_backend_transport_options` `{'master_name': …}`, Celeriac's
//! `--master-name` / `AppConfig::master_name`).
//!
//! - A Python producer (`tests/python/sentinel_app.py`) sends 20
//!   `tasks.add` to a Celeriac worker and reads every result through its
//!   sentinel result backend.
//! - A Celeriac producer (`App`) sends 20 `tasks.add` to a Python
//!   `celery worker` and reads every result through its sentinel backend.
//!
//! Needs `redis-server` and the venv (`scripts/test.sh` provides both).

#[path = "../../celeriac/tests/support/sentinel.rs"]
mod sentinel;
#[path = "../../celeriac/tests/support/mod.rs"]
mod support;

mod procs;

use std::process::{Command, Stdio};
use std::time::Duration;

use celeriac::{App, AppConfig, SendOptions};
use procs::Proc;
use sentinel::{Group, MASTER};
use serde_json::{json, Map, Value};

const TASKS: usize = 20;
/// How long one result may take.
const WAIT: Duration = Duration::from_secs(60);

/// Where both sides find the master: the sentinel, as Celery spells it.
fn sentinel_url(group: &Group) -> String {
    format!("sentinel://127.0.0.1:{}", group.sentinel.port)
}

fn unique(prefix: &str) -> String {
    let n: u64 = rand::random();
    format!("{prefix}-{n:016x}")
}

/// `tasks.add(i, 10 * i)` for every `i`.
fn expected() -> Vec<Value> {
    (0..TASKS).map(|i| json!(11 * i)).collect()
}

fn python_env(cmd: &mut Command, url: &str) {
    cmd.current_dir(procs::repo_root().join("tests/python"))
        .env("CELERIAC_TEST_SENTINEL_URL", url)
        .env("CELERIAC_TEST_MASTER_NAME", MASTER);
}

#[tokio::test(flavor = "multi_thread")]
async fn python_producer_celeriac_worker_over_sentinel() {
    let group = Group::start().await;
    let url = sentinel_url(&group);
    let queue = unique("py2rs-sentinel");
    let _worker = procs::rust_worker(&url, &["--master-name", MASTER, "-Q", &queue], false);
    let mut cmd = Command::new(procs::python());
    cmd.args(["sentinel_app.py", "send", &queue, &TASKS.to_string()]);
    python_env(&mut cmd, &url);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run sentinel_app.py");
    assert!(
        out.status.success(),
        "sentinel_app.py send: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(out["values"], Value::Array(expected()), "{out}");
    // Celeriac stored them on the master the sentinel names.
    let ids: Vec<&str> = out["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(ids.len(), TASKS);
    let mut master = sentinel::connection(group.master.port)
        .await
        .expect("connect to the master");
    let keys: Vec<String> = ids
        .iter()
        .map(|id| format!("celery-task-meta-{id}"))
        .collect();
    let docs: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&keys)
        .query_async(&mut master)
        .await
        .expect("MGET");
    assert!(
        docs.iter()
            .all(|d| d.as_deref().is_some_and(|d| d.contains("\"SUCCESS\""))),
        "{docs:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn celeriac_producer_python_worker_over_sentinel() {
    let group = Group::start().await;
    let url = sentinel_url(&group);
    let queue = unique("rs2py-sentinel");
    let mut cmd = Command::new(procs::python());
    cmd.args([
        "-m",
        "celery",
        "-A",
        "sentinel_app",
        "worker",
        "-l",
        "WARNING",
    ])
    .args([
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ])
    .args(["-P", "solo", "-Q", &queue])
    .args(["-n", &format!("{}@interop", unique("py"))])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    python_env(&mut cmd, &url);
    let _worker = Proc(cmd.spawn().expect("start the Python Celery worker"));
    let app = App::builder()
        .config(AppConfig {
            broker_url: url.clone(),
            backend_url: url,
            master_name: Some(MASTER.to_owned()),
            ..AppConfig::default()
        })
        .build()
        .await
        .expect("an app behind the sentinel");
    let mut sent = Vec::new();
    for i in 0..TASKS {
        let result = app
            .send_task(
                "tasks.add",
                vec![json!(i), json!(10 * i)],
                Map::new(),
                SendOptions::new().queue(queue.clone()),
            )
            .await
            .expect("send");
        sent.push(result);
    }
    let mut values = Vec::new();
    for result in &sent {
        values.push(result.get(WAIT).await.expect("Python ran it"));
    }
    assert_eq!(values, expected());
}
