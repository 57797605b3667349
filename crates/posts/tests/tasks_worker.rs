//! The three post-history tasks run by a real `celeriac::Worker` (memory
//! broker and backend), called by name with Celery-style arguments: results,
//! the read-only rules of `tasks.query_posts_db`, the stored top-entities
//! record, keyword arguments under the Python names.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use celeriac::{App, Error, SendOptions, Worker, WorkerOptions};
use posts::tasks::{self, PostsConfig};
use serde_json::{json, Map, Value};

mod tasks_support;
use tasks_support::{make_db, row_count, POSTS};

struct Setup {
    app: App,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn setup(name: &str, configure: impl FnOnce(&mut PostsConfig)) -> Setup {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let db = dir.path().join("posts.db");
    make_db(&db).unwrap_or_else(|e| panic!("make db: {e}"));
    let mut config = PostsConfig::new(&db);
    configure(&mut config);
    let url = format!("memory://{name}");
    let app = tasks::register(App::builder().broker_url(&url).backend_url(&url), &config)
        .build()
        .await
        .unwrap_or_else(|e| panic!("app: {e}"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        Worker::new(app.clone(), WorkerOptions::default()).run(async move {
            let _ = stopped.await;
        }),
    );
    Setup {
        app,
        stop: Some(stop),
        _dir: dir,
        db,
    }
}

async fn call(app: &App, name: &str, args: Vec<Value>) -> Result<Value, Error> {
    call_kw(app, name, args, Map::new()).await
}

async fn call_kw(
    app: &App,
    name: &str,
    args: Vec<Value>,
    kwargs: Map<String, Value>,
) -> Result<Value, Error> {
    app.send_task(name, args, kwargs, SendOptions::new())
        .await?
        .get(Duration::from_secs(30))
        .await
}

/// The failure's `(type, message)`; the type is qualified with its module
/// when that is not `builtins` (`sqlite3.OperationalError`), as Python
/// names it.
fn failure(outcome: Result<Value, Error>) -> (String, String) {
    match outcome {
        Err(Error::TaskFailed {
            exc_type,
            exc_module,
            exc_message,
            ..
        }) => match exc_module.as_deref() {
            Some("builtins") => (exc_type, exc_message),
            Some(module) => (format!("{module}.{exc_type}"), exc_message),
            None => panic!("the failure of {exc_type} names no module"),
        },
        other => panic!("expected a task failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_posts_db_returns_rows() -> Result<(), Error> {
    let s = setup("q-rows", |_| {}).await;
    let rows = call(
        &s.app,
        tasks::QUERY_POSTS_DB,
        vec![json!(
            "SELECT platform, post_blob ->> '$.text', id, 1.5, NULL, x'CAFE' FROM posts \
             WHERE created_at BETWEEN '2017-05-31' AND '2017-06-01' ORDER BY id"
        )],
    )
    .await?;
    let rows = rows.as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(
        rows[0],
        json!(["facebook", POSTS[0].2, 1, 1.5, null, "cafe"])
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_sql_fails_with_sqlites_message() {
    let s = setup("q-invalid", |_| {}).await;
    let (kind, message) = failure(
        call(
            &s.app,
            tasks::QUERY_POSTS_DB,
            vec![json!("SELECT foo FROM bar;")],
        )
        .await,
    );
    assert_eq!(kind, "sqlite3.OperationalError");
    assert_eq!(message, "no such table: bar");
    let (kind, message) =
        failure(call(&s.app, tasks::QUERY_POSTS_DB, vec![json!("SELEC 1")]).await);
    assert_eq!(kind, "sqlite3.OperationalError");
    assert!(message.contains("syntax error"), "{message}");
    let (kind, message) = failure(
        call(
            &s.app,
            tasks::QUERY_POSTS_DB,
            vec![json!("SELECT 1; SELECT 2")],
        )
        .await,
    );
    assert_eq!(kind, "sqlite3.ProgrammingError");
    assert_eq!(message, "You can only execute one statement at a time.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_refused_and_change_nothing() {
    let s = setup("q-writes", |_| {}).await;
    let before = row_count(&s.db);
    assert_eq!(before, POSTS.len() as i64);
    for sql in [
        "DROP TABLE posts",
        "INSERT INTO posts (post_id) VALUES ('x')",
        "DELETE FROM posts",
        "UPDATE posts SET platform = 'myspace'",
        "CREATE TABLE t (x)",
        "VACUUM INTO '/tmp/celeriac-posts-copy.db'",
        "-- comment first\nATTACH DATABASE ':memory:' AS other",
        "PRAGMA journal_mode = DELETE",
    ] {
        let (kind, message) = failure(call(&s.app, tasks::QUERY_POSTS_DB, vec![json!(sql)]).await);
        assert_eq!(kind, "sqlite3.OperationalError", "{sql}: {message}");
        assert!(message.contains("read-only"), "{sql}: {message}");
        assert_eq!(row_count(&s.db), before, "{sql} changed the database");
    }
    assert!(!Path::new("/tmp/celeriac-posts-copy.db").exists());
    let tables = rusqlite::Connection::open(&s.db)
        .and_then(|c| {
            c.query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 't'",
                [],
                |r| r.get::<_, i64>(0),
            )
        })
        .unwrap_or(-1);
    assert_eq!(tables, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_bounded() {
    let s = setup("q-bounded", |c| c.max_rows = 3).await;
    let (kind, message) = failure(
        call(
            &s.app,
            tasks::QUERY_POSTS_DB,
            vec![json!("SELECT * FROM posts")],
        )
        .await,
    );
    assert_eq!(kind, "ValueError");
    assert!(message.contains("more than 3 rows"), "{message}");
    let ok = call(
        &s.app,
        tasks::QUERY_POSTS_DB,
        vec![json!("SELECT id FROM posts ORDER BY id LIMIT 3")],
    )
    .await;
    assert_eq!(ok.ok(), Some(json!([[1], [2], [3]])));

    let s = setup("q-slow", |c| c.query_timeout = Duration::from_millis(200)).await;
    let forever = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) \
                   SELECT count(*) FROM r";
    let (kind, message) = failure(call(&s.app, tasks::QUERY_POSTS_DB, vec![json!(forever)]).await);
    assert_eq!(kind, "sqlite3.OperationalError");
    assert!(message.starts_with("interrupted"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn substring_matches_count_per_platform() -> Result<(), Error> {
    let s = setup("substring", |_| {}).await;
    let counts = call(
        &s.app,
        tasks::SUBSTRING_MATCHES_BY_PLATFORM,
        vec![json!("trump"), json!("2017-05-31"), json!("2017-06-01")],
    )
    .await?;
    // 2017-06-01 00:00:00 > "2017-06-01" as text: the midnight post is out,
    // as it was with the original's SQL.
    assert_eq!(
        counts,
        json!({"facebook": 1, "reddit": 1, "twitter": 1, "total_rows": 4})
    );
    let mut kwargs = Map::new();
    kwargs.insert("match".into(), json!("merkel"));
    kwargs.insert("from_".into(), json!("2017-05-31"));
    kwargs.insert("to".into(), json!("2017-06-01 23:59:59"));
    let counts = call_kw(&s.app, tasks::SUBSTRING_MATCHES_BY_PLATFORM, vec![], kwargs).await?;
    assert_eq!(counts, json!({"facebook": 2, "reddit": 1, "total_rows": 6}));
    // Like the original, `match` is not lowercased.
    let counts = call(
        &s.app,
        tasks::SUBSTRING_MATCHES_BY_PLATFORM,
        vec![json!("Trump"), json!("2017-05-31"), json!("2017-06-01")],
    )
    .await?;
    assert_eq!(counts, json!({"total_rows": 4}));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_entities_are_counted_once_per_post_and_stored() -> Result<(), Error> {
    let s = setup("top", |_| {}).await;
    let (from, to) = ("2017-05-31", "2017-06-01");
    // The reference: each post's distinct entities, counted by hand.
    let mut expected: HashMap<String, u64> = HashMap::new();
    for &(_, created_at, text) in &POSTS {
        if created_at >= from && created_at <= to {
            for e in posts::entities::distinct_entities(text) {
                *expected.entry(e).or_insert(0) += 1;
            }
        }
    }
    let mut expected: Vec<(String, u64)> = expected.into_iter().collect();
    expected.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    expected.truncate(3);
    assert!(
        expected.iter().any(|(e, _)| e == "Angela Merkel"),
        "{expected:?}"
    );
    // A post naming Paris twice counts once.
    assert!(expected.iter().all(|(_, n)| *n <= 3), "{expected:?}");

    let key = "my_worker:test:top_named_entities";
    let done = call(
        &s.app,
        tasks::COUNT_TOP_NAMED_ENTITIES,
        vec![json!(3), json!(from), json!(to), json!(key)],
    )
    .await?;
    assert_eq!(done, json!(true));
    let stored = s
        .app
        .backend()
        .get_value(key)
        .await?
        .unwrap_or_else(|| panic!("no value under {key}"));
    let record: Value = serde_json::from_str(&stored).unwrap_or_default();
    let expected_json: Vec<Value> = expected.iter().map(|(e, n)| json!([e, n])).collect();
    assert_eq!(record["top_named_entities"], json!(expected_json));
    let stamp = record["timestamp"].as_str().unwrap_or("");
    // Naive UTC, as the original's `datetime.utcnow().isoformat()`.
    let when = chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%dT%H:%M:%S%.f")
        .unwrap_or_else(|e| panic!("timestamp {stamp:?}: {e}"));
    let age = chrono::Utc::now().naive_utc() - when;
    assert!((0..30).contains(&age.num_seconds()), "{stamp}");

    // Keyword arguments under the Python names; k = None means all.
    let mut kwargs = Map::new();
    kwargs.insert("k".into(), Value::Null);
    kwargs.insert("from_".into(), json!(from));
    kwargs.insert("to".into(), json!(to));
    kwargs.insert("result_key".into(), json!(key));
    call_kw(&s.app, tasks::COUNT_TOP_NAMED_ENTITIES, vec![], kwargs).await?;
    let stored = s.app.backend().get_value(key).await?.unwrap_or_default();
    let record: Value = serde_json::from_str(&stored).unwrap_or_default();
    let all = record["top_named_entities"].as_array().map_or(0, Vec::len);
    assert!(all > 3, "{record}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_calls_name_the_argument() {
    let s = setup("bad-calls", |_| {}).await;
    let (kind, message) = failure(
        call(
            &s.app,
            tasks::COUNT_TOP_NAMED_ENTITIES,
            vec![json!(3), json!("2017-05-31")],
        )
        .await,
    );
    assert_eq!(kind, "TypeError");
    assert!(message.contains("'to'"), "{message}");
    let (kind, message) = failure(
        call_kw(
            &s.app,
            tasks::SUBSTRING_MATCHES_BY_PLATFORM,
            vec![json!("x"), json!("a"), json!("b")],
            Map::from_iter([("match".to_owned(), json!("y"))]),
        )
        .await,
    );
    assert_eq!(kind, "TypeError");
    assert!(message.contains("'match'"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_database_is_a_clear_failure() {
    let s = setup("missing-db", |c| c.db_path = "/nonexistent/posts.db".into()).await;
    let (kind, message) =
        failure(call(&s.app, tasks::QUERY_POSTS_DB, vec![json!("SELECT 1")]).await);
    assert_eq!(kind, "sqlite3.OperationalError");
    assert!(message.contains("/nonexistent/posts.db"), "{message}");
}

#[test]
fn the_scheduled_entry_covers_the_last_window() -> Result<(), Box<dyn std::error::Error>> {
    let entry =
        tasks::top_entities_entry(Duration::from_secs(300), Duration::from_secs(86_400), 10)?;
    assert_eq!(entry.task(), tasks::COUNT_TOP_NAMED_ENTITIES);
    let tick = chrono::DateTime::parse_from_rfc3339("2024-01-20T18:40:00Z")?.to_utc();
    let (args, _) = entry.render(tick)?;
    let expected = json!([
        10,
        "2024-01-19 18:40:00",
        "2024-01-20 18:40:00",
        tasks::SCHEDULED_TOP_ENTITIES_KEY
    ]);
    assert_eq!(Value::Array(args), expected);
    assert_eq!(entry.schedule().to_string(), "every 5m");
    // The shipped schedule file declares the same run.
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/beat.toml");
    let shipped = celeriac::beat::load_file(&file)?;
    let same = shipped
        .iter()
        .find(|e| e.task() == tasks::COUNT_TOP_NAMED_ENTITIES)
        .map(|e| (e.schedule().to_string(), e.render(tick).map(|(a, _)| a)));
    assert_eq!(
        same.map(|(s, a)| (s, a.ok().map(Value::Array))),
        Some(("every 5m".to_owned(), Some(expected)))
    );
    Ok(())
}

/// The adversarial table: each hostile query is refused or bounded, with
/// the Python class the original's callers would catch, the database file
/// unchanged, no file created, and the process's peak memory far below what
/// the unbounded queries took (≈ 2.9 GB each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_queries_are_refused_or_bounded() {
    let s = setup("q-hostile", |_| {}).await;
    let before = std::fs::read(&s.db).unwrap_or_else(|e| panic!("{e}"));
    let probe = s.db.with_file_name("hostile-probe.db");
    let probe_sql = probe.display().to_string();
    let huge_concat =
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r LIMIT 1000000) \
                       SELECT group_concat(printf('%0100d', i)) FROM r";
    let cases: Vec<(String, &str, &str)> = vec![
        (
            format!(";ATTACH '{probe_sql}' AS x"),
            "sqlite3.OperationalError",
            "ATTACH",
        ),
        (
            format!("  /* c */ ATTACH DATABASE '{probe_sql}' AS x"),
            "sqlite3.OperationalError",
            "ATTACH",
        ),
        (
            "PRAGMA temp_store_directory = '/tmp'".into(),
            "sqlite3.OperationalError",
            "temp_store_directory",
        ),
        (
            "PRAGMA cache_size = 100000000".into(),
            "sqlite3.OperationalError",
            "cache_size",
        ),
        (
            "PRAGMA user_version = 7".into(),
            "sqlite3.OperationalError",
            "user_version",
        ),
        (
            "SELECT load_extension('/tmp/x.so')".into(),
            "sqlite3.OperationalError",
            "load_extension",
        ),
        (
            "SELECT randomblob(1e9)".into(),
            "sqlite3.DataError",
            "too big",
        ),
        (
            "SELECT zeroblob(1e9)".into(),
            "sqlite3.DataError",
            "too big",
        ),
        (
            "SELECT length(zeroblob(1e9))".into(),
            "sqlite3.DataError",
            "too big",
        ),
        (
            "SELECT hex(zeroblob(10000000))".into(),
            "sqlite3.DataError",
            "too big",
        ),
        (huge_concat.into(), "sqlite3.DataError", "too big"),
        (
            format!("VACUUM INTO '{probe_sql}'"),
            "sqlite3.OperationalError",
            "read-only",
        ),
        (
            "SELECT 1; ATTACH 'x' AS y".into(),
            "sqlite3.OperationalError",
            "ATTACH",
        ),
    ];
    for (sql, class, says) in &cases {
        let outcome = call(&s.app, tasks::QUERY_POSTS_DB, vec![json!(sql)]).await;
        assert!(outcome.is_err(), "{sql} ran: {outcome:?}");
        let (kind, message) = failure(outcome);
        assert_eq!(&kind, class, "{sql}: {message}");
        assert!(message.contains(says), "{sql}: {message}");
    }
    // Bounded rather than refused: SQLite gives up on a 1 GB printf width.
    let wide = call(
        &s.app,
        tasks::QUERY_POSTS_DB,
        vec![json!("SELECT printf('%.*c', 1000000000, 'x')")],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(wide, json!([[null]]));
    // What reading needs still works: describing the table, JSON, dates.
    let columns = call(
        &s.app,
        tasks::QUERY_POSTS_DB,
        vec![json!("PRAGMA table_info(posts)")],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(columns.as_array().map(Vec::len), Some(9), "{columns}");
    let texts = call(
        &s.app,
        tasks::QUERY_POSTS_DB,
        vec![json!(
            "SELECT count(*), max(length(post_blob ->> '$.text')), date(min(created_at)) FROM posts"
        )],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(texts[0][0], json!(POSTS.len()));
    let earliest = POSTS.iter().map(|p| &p.1[..10]).min().unwrap_or_default();
    assert_eq!(texts[0][2], json!(earliest));

    assert_eq!(
        std::fs::read(&s.db).unwrap_or_default(),
        before,
        "the database file changed"
    );
    assert!(!probe.exists(), "a hostile query created {probe_sql}");
    // The budget holds with several tasks at once: the memory-hungry cases
    // sent together, four times over, to a worker running them side by side.
    let heavy: Vec<&str> = cases
        .iter()
        .filter(|(_, class, _)| *class == "sqlite3.DataError")
        .map(|(sql, _, _)| sql.as_str())
        .collect();
    let mut together = tokio::task::JoinSet::new();
    for sql in heavy.iter().cycle().take(heavy.len() * 4) {
        let (app, sql) = (s.app.clone(), json!(sql));
        together.spawn(async move { call(&app, tasks::QUERY_POSTS_DB, vec![sql]).await });
    }
    while let Some(outcome) = together.join_next().await {
        let outcome = outcome.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(failure(outcome).0, "sqlite3.DataError");
    }
    let peak_kib = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    assert!(peak_kib < 512 * 1024, "peak RSS {peak_kib} KiB");
}
