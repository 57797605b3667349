//! The whole post-history system on a private Redis: sample data → seeded
//! posts database → the scheduled job sent by a beat and run by a
//! `celeriac::Worker` → the record under
//! `my_worker:scheduled:top_named_entities` → the ranking server, reading it
//! through the Redis result backend, reorders a feed accordingly.
//!
//! Needs `redis-server` (`scripts/test.sh` installs it).

#[path = "../../celeriac/tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use celeriac::beat::Beat;
use celeriac::shutdown::Shutdown;
use celeriac::{App, Worker, WorkerOptions};
use posts::models::{from_json, ContentItem};
use posts::ranking::server::{self, RankServerConfig};
use posts::ranking::{parse_entities, EntityMatcher, MatchOptions};
use posts::tasks::{self, PostsConfig, SCHEDULED_TOP_ENTITIES_KEY};
use redis::Commands as _;
use serde_json::{json, Value};
use support::RedisServer;

/// Generate, preprocess and seed a small posts database ending now.
fn seed(dir: &std::path::Path) -> std::path::PathBuf {
    let raw = dir.join("raw");
    let normalized = dir.join("normalized");
    posts::sample::generate(
        &raw,
        &posts::sample::SampleOptions {
            seed: 7,
            total_items: 3000,
        },
    )
    .unwrap_or_else(|e| panic!("sample data: {e}"));
    posts::raw::preprocess(&raw, &normalized, &posts::raw::PreprocessOptions::default())
        .unwrap_or_else(|e| panic!("preprocess: {e}"));
    let db = dir.join("posts.db");
    posts::seed::seed(
        &posts::seed::SeedOptions {
            data_dir: normalized,
            db_path: db.clone(),
            n_users: 100,
            seed: 7,
            ..Default::default()
        },
        chrono::Utc::now(),
    )
    .unwrap_or_else(|e| panic!("seed: {e}"));
    db
}

/// Up to `n` reddit items of the last day, split by whether they mention
/// one of `matcher`'s entities.
fn reddit_items(db: &std::path::Path, matcher: &EntityMatcher) -> (Vec<Value>, Vec<Value>) {
    let conn = posts::db::open_read_only(db).unwrap_or_else(|e| panic!("{e}"));
    let mut stmt = conn
        .prepare("SELECT post_blob FROM posts WHERE platform = 'reddit' ORDER BY created_at DESC")
        .unwrap_or_else(|e| panic!("{e}"));
    let blobs: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .unwrap_or_else(|e| panic!("{e}"));
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for blob in blobs {
        let item: ContentItem = from_json(blob.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let bucket = if matcher.is_match(&item.text) {
            &mut with
        } else {
            &mut without
        };
        if bucket.len() < 2 {
            bucket.push(serde_json::to_value(&item).unwrap_or_default());
        }
    }
    (with, without)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_tasks_key_and_rank_on_redis() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let db = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || seed(&dir)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // A worker with the post tasks, and a beat sending the scheduled job
    // every second (the shipped entry, with a shorter interval).
    let app = tasks::register(
        App::builder().broker_url(&url).backend_url(&url),
        &PostsConfig::new(&db),
    )
    .build()
    .await
    .unwrap_or_else(|e| panic!("app: {e}"));
    let (stop, shutdown) = Shutdown::new();
    let until = |s: &Shutdown| {
        let mut s = s.clone();
        async move { s.requested().await }
    };
    let worker =
        tokio::spawn(Worker::new(app.clone(), WorkerOptions::default()).run(until(&shutdown)));
    let entry = tasks::top_entities_entry(Duration::from_secs(1), Duration::from_secs(86_400), 10)
        .unwrap_or_else(|e| panic!("{e}"));
    let beat = Beat::new(app.clone()).entry(entry).spawn(shutdown.clone());

    // The ranking server, reading the key through the Redis backend.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let base = format!(
        "http://{}",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    let config = RankServerConfig {
        refresh_every: Duration::from_millis(100),
        ..RankServerConfig::default()
    };
    let backend = Arc::clone(app.backend());
    let server_shutdown = shutdown.clone();
    tokio::spawn(async move { server::run(listener, backend, &config, server_shutdown).await });

    // The record appears in Redis under the plain key, as Celery's tasks.py
    // wrote it.
    let mut conn = redis.connection();
    let deadline = Instant::now() + Duration::from_secs(60);
    let record: String = loop {
        if let Ok(Some(text)) = conn.get::<_, Option<String>>(SCHEDULED_TOP_ENTITIES_KEY) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the scheduled job never stored its record"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let record_json: Value = serde_json::from_str(&record).unwrap_or_default();
    let top = record_json["top_named_entities"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(top.len(), 10, "{record}");
    let counts: Vec<u64> = top.iter().filter_map(|p| p[1].as_u64()).collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{record}");

    // A feed [without, with, without]: the middle one goes last.
    let entities = parse_entities(&record).unwrap_or_else(|e| panic!("{e}"));
    let matcher =
        EntityMatcher::new(entities, MatchOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let (with, without) = reddit_items(&db, &matcher);
    assert!(
        !with.is_empty() && without.len() == 2,
        "not enough reddit items"
    );
    let feed = vec![without[0].clone(), with[0].clone(), without[1].clone()];
    let ids: Vec<String> = feed
        .iter()
        .map(|i| i["id"].as_str().unwrap_or("").to_owned())
        .collect();
    let request = json!({
        "session": {
            "user_id": "u", "user_name_hash": "h", "cohort": "AB",
            "platform": "reddit", "current_time": "2024-01-20 18:41:20"
        },
        "items": feed,
    });
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer: Value = client
            .post(format!("{base}/rank"))
            .json(&request)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .unwrap_or_else(|e| panic!("POST /rank: {e}"))
            .json()
            .await
            .unwrap_or(Value::Null);
        if answer["ranked_ids"] == json!([ids[0], ids[2], ids[1]]) {
            break;
        }
        assert!(Instant::now() < deadline, "/rank still answers {answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    stop.fire();
    let _ = tokio::time::timeout(Duration::from_secs(10), worker).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), beat).await;
}
