//! The post-history system through the built binary: `post-history demo` on the
//! embedded default and on Redis (posts database, scheduled job, the
//! `worker.py` flow, the ranking server), and `post-history worker --posts-db`
//! running the post tasks for a producer.

#[path = "../../celeriac-cli/tests/support/mod.rs"]
mod support;

#[path = "../../celeriac/tests/support/mod.rs"]
mod redis_support;

use std::time::Duration;

use celeriac::{App, SendOptions};
use posts::tasks::SCHEDULED_TOP_ENTITIES_KEY;
use serde_json::{json, Map, Value};
use support::{stderr, stdout, Env};

/// What every demo run must print and do, on any broker.
fn check_demo_output(text: &str) {
    for needle in [
        "post-history system",
        "preprocessed and seeded (20000 rows)",
        "tasks.query_posts_db(",
        "tasks.substring_matches_by_platform(\"trump\"",
        "tasks.count_top_named_entities(10,",
        "read my_worker:top_named_entities = {\"timestamp\"",
        "deleted my_worker:top_named_entities: yes",
        "ranking server on http://127.0.0.1:",
        "POST /rank, a reddit feed of 6 items",
        "items without a top entity first, each group in feed order: as expected",
    ] {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
}

/// `post-history demo` on the embedded default with `posts_db`; its stdout,
/// after checking it exited 0.
fn run_demo(env: &Env, posts_db: &std::path::Path) -> String {
    let out = env
        .command(["demo", "--wait-secs", "0", "--posts-db"])
        .arg(posts_db)
        .output()
        .unwrap_or_else(|e| panic!("run demo: {e}"));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_the_post_history_system_embedded() {
    let env = Env::new();
    let posts_db = env.path("posts.db");
    let text = run_demo(&env, &posts_db);
    check_demo_output(&text);

    // The explicit keys live in the embedded backend's key-value table: the
    // scheduled record stays, the worker.py key was deleted.
    let app = env.app().await;
    let record = app
        .backend()
        .get_value(SCHEDULED_TOP_ENTITIES_KEY)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no {SCHEDULED_TOP_ENTITIES_KEY} in {}", env.url));
    let record: Value = serde_json::from_str(&record).unwrap_or_default();
    assert_eq!(
        record["top_named_entities"].as_array().map(Vec::len),
        Some(10),
        "{record}"
    );
    let gone = app
        .backend()
        .get_value("my_worker:top_named_entities")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(gone, None);

    // A second run reuses the posts database.
    let text = run_demo(&env, &posts_db);
    assert!(text.contains("20000 rows (already there)"), "{text}");
}

#[test]
fn demo_runs_on_redis() {
    let redis = redis_support::RedisServer::start();
    let env = Env::new();
    // `--broker redis://…` alone: results and keys go to the same Redis.
    let out = env
        .command(["demo", "--wait-secs", "0", "--broker", &redis.url(0)])
        .env_remove("CELERIAC_BROKER_URL")
        .env_remove("CELERIAC_RESULT_BACKEND")
        .env_remove("POSTS_DB_PATH")
        .output()
        .unwrap_or_else(|e| panic!("run demo: {e}"));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    check_demo_output(&text);
    assert!(text.contains("result backend redis://127.0.0.1:"), "{text}");
    let mut conn = redis.connection();
    let record: Option<String> = redis::cmd("GET")
        .arg(SCHEDULED_TOP_ENTITIES_KEY)
        .query(&mut conn)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        record.is_some_and(|r| r.contains("top_named_entities")),
        "no record in Redis"
    );
    let deleted: i64 = redis::cmd("EXISTS")
        .arg("my_worker:top_named_entities")
        .query(&mut conn)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(deleted, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_binary_runs_the_post_tasks() {
    let env = Env::new();
    let posts_db = env.path("posts.db");
    let conn = posts::db::open_or_create(&posts_db).unwrap_or_else(|e| panic!("{e}"));
    conn.execute_batch(&format!(
        "{};
         INSERT INTO posts (platform, created_at, post_blob) VALUES
           ('facebook', '2017-05-31 10:00:00', '{{\"text\": \"Donald Trump met Angela Merkel.\"}}'),
           ('reddit', '2017-05-31 11:00:00', '{{\"text\": \"trump again\"}}'),
           ('reddit', '2017-05-31 12:00:00', '{{\"text\": \"nothing here\"}}');",
        posts::db::SCHEMA
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    drop(conn);
    let posts_db_arg = posts_db.to_string_lossy().into_owned();
    let mut worker = env.worker("posts", &["--posts-db", &posts_db_arg]);

    let app: App = env.app().await;
    let call = |name: &'static str, args: Vec<Value>| {
        let app = app.clone();
        async move {
            app.send_task(name, args, Map::new(), SendOptions::new())
                .await
                .unwrap_or_else(|e| panic!("send {name}: {e}"))
                .get(Duration::from_secs(30))
                .await
        }
    };
    let counts = call(
        "tasks.substring_matches_by_platform",
        vec![json!("trump"), json!("2017-05-31"), json!("2017-06-01")],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counts, json!({"facebook": 1, "reddit": 1, "total_rows": 3}));
    let rows = call(
        "tasks.query_posts_db",
        vec![json!("SELECT count(*) FROM posts")],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows, json!([[3]]));
    let refused = call("tasks.query_posts_db", vec![json!("DELETE FROM posts")]).await;
    assert!(
        matches!(&refused, Err(celeriac::Error::TaskFailed { exc_type, exc_module, .. })
            if exc_type == "OperationalError" && exc_module.as_deref() == Some("sqlite3")),
        "{refused:?}"
    );
    let done = call(
        "tasks.count_top_named_entities",
        vec![
            json!(2),
            json!("2017-05-31"),
            json!("2017-06-01"),
            json!("k"),
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(done, json!(true));
    let stored = app
        .backend()
        .get_value("k")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_default();
    assert!(stored.contains("\"top_named_entities\""), "{stored}");

    worker.terminate();
    assert!(worker.wait_exit(Duration::from_secs(30)).success());
}
