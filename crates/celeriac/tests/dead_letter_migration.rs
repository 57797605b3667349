//! Dead letters written by older versions (one JSON record with its payload:
//! the Redis list `celeriac.dead_letter`, the SQLite table
//! `celeriac_dead_letters`) are migrated to the metadata/payload layout and
//! stay listed, shown and requeueable.

mod support;

use std::time::Duration;

use celeriac::broker::Broker;
use celeriac::protocol::DeadLetter;
use redis::Commands;

fn old_letters() -> Vec<DeadLetter> {
    let message = celeriac::protocol::TaskMessage {
        headers: celeriac::protocol::TaskHeaders::new("tasks.old", "old-task-id"),
        args: vec![],
        kwargs: Default::default(),
        embed: Default::default(),
    };
    let mut first = DeadLetter::new(
        "q",
        "NotRegistered",
        &message.to_envelope("q", None).to_vec(),
    );
    first.at = "2024-01-01T00:00:00.000000+00:00".into();
    let mut second = DeadLetter::new("q", "malformed envelope", &[0xff, 0x00]);
    second.at = "2024-01-02T00:00:00.000000+00:00".into();
    vec![first, second]
}

/// What every broker must show after migrating `old` (oldest first).
async fn check_migrated(b: &dyn Broker, old: &[DeadLetter]) {
    assert_eq!(b.dead_letters().count().await.expect("count"), 2);
    let page = b.dead_letters().newest(10).await.expect("page");
    let ids: Vec<&str> = page.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(
        ids,
        [old[1].id.as_str(), old[0].id.as_str()],
        "newest first"
    );
    assert_eq!(page[1].task_id.as_deref(), Some("old-task-id"));
    assert_eq!(page[1].at, old[0].at);
    let (_, payload) = b
        .dead_letters()
        .fetch(&old[1].id)
        .await
        .expect("fetch")
        .expect("found");
    assert_eq!(payload, vec![0xff, 0x00]);
    assert!(b.dead_letters().requeue(&old[0].id).await.expect("requeue"));
    let back = b
        .reserve(&["q".to_owned()], 1, Duration::from_secs(2))
        .await
        .expect("reserve");
    assert_eq!(back[0].payload, old[0].payload_bytes());
    assert_eq!(b.dead_letters().count().await.expect("count"), 1);
}

#[tokio::test]
async fn redis_list_records_are_migrated_on_first_read() {
    let server = support::RedisServer::start();
    let mut conn = server.connection();
    let old = old_letters();
    for letter in &old {
        let () = conn
            .lpush("celeriac.dead_letter", letter.to_json())
            .expect("lpush");
    }
    let broker =
        celeriac::broker::redis::RedisBroker::open(&server.url(0), "", Duration::from_secs(60))
            .await
            .expect("connect");
    check_migrated(&broker, &old).await;
    assert!(!conn
        .exists::<_, bool>("celeriac.dead_letter")
        .expect("exists"));
    // A record an old worker adds later is migrated too.
    let late = DeadLetter::new("q", "late", b"late");
    let () = conn
        .lpush("celeriac.dead_letter", late.to_json())
        .expect("lpush");
    assert_eq!(broker.dead_letters().count().await.expect("count"), 2);
    assert_eq!(broker.dead_letters().purge().await.expect("purge"), 2);
}

#[tokio::test]
async fn sqlite_table_records_are_migrated_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old.db");
    let old = old_letters();
    {
        // The tables as older versions made them.
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch(
            "CREATE TABLE celeriac_messages (id INTEGER PRIMARY KEY AUTOINCREMENT, \
             queue TEXT NOT NULL, priority INTEGER NOT NULL, visible_at REAL NOT NULL, \
             reserved INTEGER NOT NULL DEFAULT 0, tag TEXT, payload BLOB NOT NULL); \
             CREATE TABLE celeriac_dead_letters (id TEXT PRIMARY KEY, at REAL NOT NULL, \
             queue TEXT NOT NULL, letter TEXT NOT NULL);",
        )
        .expect("old schema");
        for letter in &old {
            conn.execute(
                "INSERT INTO celeriac_dead_letters (id, at, queue, letter) VALUES (?1, 0, ?2, ?3)",
                rusqlite::params![letter.id, letter.queue, letter.to_json()],
            )
            .expect("old letter");
        }
    }
    let broker =
        celeriac::broker::sqlite::SqliteBroker::open(&path, Duration::from_secs(60)).expect("open");
    check_migrated(&broker, &old).await;
    drop(broker);
    let conn = rusqlite::Connection::open(&path).expect("open");
    let left: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'celeriac_dead_letters'",
            [],
            |r| r.get(0),
        )
        .expect("query");
    assert_eq!(left, 0, "the old table is dropped once migrated");
}
