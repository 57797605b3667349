//! The original Python producer, unchanged in spirit, against a Celeriac
//! worker on a private Redis: a `tasks.py` declaring the three tasks as the
//! seed's did (`Celery('tasks', backend=REDIS_DB, broker=REDIS_DB)`,
//! `@app.task`), and a `worker.py`-style driver calling them with `.delay()`
//! and reading the explicit key with redis-py, then deleting it.
//!
//! Needs `redis-server` and a Python with `celery` and `redis`
//! (`CELERIAC_TEST_PYTHON`, else `.venv/bin/python`; `scripts/test.sh`
//! provides both).

#[path = "../../celeriac/tests/support/mod.rs"]
mod support;
mod tasks_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use celeriac::{App, Worker, WorkerOptions};
use posts::tasks::{self, PostsConfig};
use serde_json::{json, Value};
use support::RedisServer;
use tasks_support::{make_db, row_count, POSTS};

/// The seed's `tasks.py`, with the bodies left out: only the names and
/// signatures matter to a producer.
const TASKS_PY: &str = include_str!("python/tasks.py");

/// The original worker's pytest suite, rewritten from its behaviour.
const TEST_ORIGINAL_WORKER_PY: &str = include_str!("python/test_original_worker.py");

/// The seed's `worker.py` flow, printing what it saw as JSON.
const WORKER_PY: &str = r#"
import json
from datetime import datetime

import redis
import sqlite3  # the original's callers catch sqlite3.OperationalError
from tasks import REDIS_DB, count_top_named_entities, query_posts_db, substring_matches_by_platform

out = {}
sql = "SELECT platform, post_blob FROM posts WHERE created_at BETWEEN '2017-05-31' AND '2017-06-01';"
out["rows"] = query_posts_db.delay(sql).get(timeout=30)
out["counts"] = substring_matches_by_platform.delay("trump", "2017-05-31", "2017-06-01").get(timeout=30)
out["counts_kw"] = substring_matches_by_platform.apply_async(
    kwargs={"match": "merkel", "from_": "2017-05-31", "to": "2017-06-01 23:59:59"}
).get(timeout=30)

result_key = "my_worker:top_named_entities"
out["success"] = count_top_named_entities.delay(3, "2017-05-31", "2017-06-01", result_key).get(timeout=30)
r = redis.Redis.from_url(REDIS_DB)
top_entities = r.get(result_key)
r.delete(result_key)
out["deleted"] = r.get(result_key) is None
record = json.loads(top_entities.decode("utf-8"))
out["record"] = record
out["age"] = (datetime.utcnow() - datetime.fromisoformat(record["timestamp"])).total_seconds()

for name, bad in [("invalid", "SELECT foo FROM bar;"), ("drop", "DROP TABLE posts"),
                  ("insert", "INSERT INTO posts (post_id) VALUES ('x')")]:
    try:
        query_posts_db.delay(bad).get(timeout=30)
        out[name] = None
    except Exception as e:
        out[name] = [type(e).__module__ + "." + type(e).__name__, str(e)]

print(json.dumps(out))
"#;

fn python() -> PathBuf {
    std::env::var_os("CELERIAC_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"))
}

/// Run `python <args>` in a temp dir holding the producer's `tasks.py`
/// and `files`, against a Celeriac worker running the three posts tasks on
/// a private Redis and a fresh posts database; returns the output and the
/// database's path.
async fn run_python_against_a_worker(
    files: &[(&str, &str)],
    args: &[&str],
) -> (std::process::Output, tempfile::TempDir, PathBuf) {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let db = dir.path().join("posts.db");
    make_db(&db).unwrap_or_else(|e| panic!("make db: {e}"));
    let app = tasks::register(
        App::builder().broker_url(&url).backend_url(&url),
        &PostsConfig::new(&db),
    )
    .build()
    .await
    .unwrap_or_else(|e| panic!("app: {e}"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(
        Worker::new(app.clone(), WorkerOptions::default()).run(async move {
            let _ = stopped.await;
        }),
    );

    for (name, text) in [("tasks.py", TASKS_PY)].iter().chain(files) {
        std::fs::write(dir.path().join(name), text).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let python = python();
    let mut command = Command::new(&python);
    command
        .args(args)
        .current_dir(dir.path())
        .env("REDIS_DB", &url)
        .env("POSTS_DB_PATH", &db)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let output = tokio::task::spawn_blocking(move || {
        command
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let _ = stop.send(());
    let _ = worker.await;
    drop(redis);
    (output, dir, db)
}

/// The original worker's own tests (a pytest copy: rows, invalid SQL as
/// `sqlite3.OperationalError`, substring counts, the key written, read,
/// deleted and fresh by `datetime.utcnow()`) pass against a Celeriac worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_workers_pytest_suite_passes() {
    let (output, _dir, _db) = run_python_against_a_worker(
        &[("test_original_worker.py", TEST_ORIGINAL_WORKER_PY)],
        &[
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "test_original_worker.py",
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pytest failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("4 passed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_python_producer_drives_a_celeriac_worker() {
    let (output, _dir, db) =
        run_python_against_a_worker(&[("worker.py", WORKER_PY)], &["worker.py"]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "worker.py failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("worker.py printed {stdout:?}: {e}"));

    // query_posts_db: the four posts of the window, [platform, post_blob].
    let rows = out["rows"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 4, "{out}");
    assert_eq!(rows[0][0], "facebook");
    let blob: Value = serde_json::from_str(rows[0][1].as_str().unwrap_or("")).unwrap_or_default();
    assert_eq!(blob["text"], POSTS[0].2);

    assert_eq!(
        out["counts"],
        json!({"facebook": 1, "reddit": 1, "twitter": 1, "total_rows": 4})
    );
    assert_eq!(
        out["counts_kw"],
        json!({"facebook": 2, "reddit": 1, "total_rows": 6})
    );

    assert_eq!(out["success"], json!(true));
    assert_eq!(out["deleted"], json!(true));
    let top = out["record"]["top_named_entities"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(top.len(), 3, "{out}");
    assert!(
        top.iter()
            .all(|pair| pair[0].is_string() && pair[1].is_u64()),
        "{out}"
    );
    let age = out["age"].as_f64().unwrap_or(f64::MAX);
    assert!((0.0..30.0).contains(&age), "timestamp age {age}");

    assert_eq!(
        out["invalid"],
        json!(["sqlite3.OperationalError", "no such table: bar"]),
        "{out}"
    );
    for refused in ["drop", "insert"] {
        assert_eq!(out[refused][0], "sqlite3.OperationalError", "{out}");
        assert!(
            out[refused][1].as_str().unwrap_or("").contains("read-only"),
            "{out}"
        );
    }
    assert_eq!(row_count(&db), POSTS.len() as i64, "the database changed");
}
