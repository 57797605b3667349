//! A posts database written the way the original Python seeder wrote it
//! (Python's sqlite3, the original schema, `str(datetime)` timestamps,
//! pydantic-style blobs, appended duplicates) reads correctly with the posts
//! crate, and `--upsert` into it adds no duplicates.

use posts::db::{open_read_only, read_posts};
use posts::models::{Engagements, ItemType};
use posts::seed::{self, IfExists, SeedOptions};
use std::process::Command;

type R = Result<(), Box<dyn std::error::Error>>;

const PY: &str = r#"
import sqlite3, sys, json, datetime
db = sqlite3.connect(sys.argv[1])
db.execute('''CREATE TABLE posts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  post_id TEXT,
  session_timestamp TIMESTAMP,
  session_user_id TEXT,
  platform TEXT,
  type TEXT,
  author_name_hash TEXT,
  created_at TIMESTAMP,
  post_blob TEXT
)''')
for col in ('created_at', 'post_id', 'session_user_id'):
    db.execute(f'CREATE INDEX ix_posts_{col} ON posts ({col})')
def item(i, created, kind, eng, title=None):
    return json.dumps({"id": f"p{i}", "post_id": None if kind == "post" else "p0", "parent_id": None,
        "title": title, "text": f"Angela Merkel visits New York City ({i})", "author_name_hash": "a" * 64,
        "type": kind, "embedded_urls": None if i % 2 else ["https://example.com/x"],
        "created_at": created, "engagements": eng})
session = datetime.datetime(2023, 10, 25, 18, 0, 0)
rows = [
    (0, datetime.datetime(2023, 10, 25, 17, 11, 20), "post", "reddit",
     {"upvote": 5, "downvote": 1, "comment": 2, "award": 0}, "A title"),
    (1, datetime.datetime(2023, 10, 25, 17, 12, 0, 123456), "comment", "reddit",
     {"upvote": 1, "downvote": 0, "comment": 0, "award": 0}, None),
    (2, datetime.datetime(2017, 7, 14, 0, 21, 53), "post", "facebook",
     {"like": 1, "love": 2, "care": 0, "haha": 3, "wow": 0, "sad": 0, "angry": 9, "comment": 0, "share": 4}, None),
    (3, datetime.datetime(2023, 11, 1, 9, 0, 0), "post", "twitter",
     {"retweet": 7, "like": 8, "comment": 0, "share": 1}, None),
]
for (i, created, kind, platform, eng, title) in rows:
    blob = item(i, created.isoformat(), kind, eng, title)
    db.execute('INSERT INTO posts (post_id, session_timestamp, session_user_id, platform, type, author_name_hash, created_at, post_blob) VALUES (?,?,?,?,?,?,?,?)',
               (f"p{i}", str(session), "u1", platform, kind, "a" * 64, str(created), blob))
# The original appended duplicates when re-run with --upsert.
db.execute("INSERT INTO posts (post_id, session_timestamp, session_user_id, platform, type, author_name_hash, created_at, post_blob) SELECT post_id, session_timestamp, session_user_id, platform, type, author_name_hash, created_at, post_blob FROM posts WHERE id = 1")
db.commit()
db.close()
"#;

#[test]
fn python_written_database_reads_as_it_is() -> R {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("py.db");
    let out = Command::new("python3")
        .arg("-c")
        .arg(PY)
        .arg(&db)
        .output()?;
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let conn = open_read_only(&db)?;
    let rows = read_posts(&conn)?;
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0].post_id, "p0");
    assert_eq!(rows[0].created_at.to_rfc3339(), "2023-10-25T17:11:20+00:00");
    assert_eq!(
        rows[0].session_timestamp.to_rfc3339(),
        "2023-10-25T18:00:00+00:00"
    );
    // Python wrote microseconds for this one: `2023-10-25 17:12:00.123456`.
    assert_eq!(rows[1].created_at.timestamp_subsec_micros(), 123_456);
    let items: Vec<_> = rows.iter().map(|r| r.item()).collect::<Result<_, _>>()?;
    assert_eq!(items[0].title.as_deref(), Some("A title"));
    assert_eq!(
        items[0].created_at, rows[0].created_at,
        "naive pydantic datetimes are UTC"
    );
    assert_eq!(items[1].kind, ItemType::Comment);
    assert!(matches!(items[0].engagements, Engagements::Reddit(_)));
    assert!(
        matches!(items[2].engagements, Engagements::Facebook(e) if e.angry == 9 && e.share == 4)
    );
    assert!(matches!(items[3].engagements, Engagements::Twitter(e) if e.retweet == 7));
    assert_eq!(
        items[0].embedded_urls.as_deref(),
        Some(&["https://example.com/x".to_string()][..])
    );
    // Read-only means read-only.
    assert!(conn.execute("DELETE FROM posts", []).is_err());
    drop(conn);

    // Upserting into it keeps its schema and adds no duplicates.
    let norm = dir.path().join("norm");
    std::fs::create_dir_all(&norm)?;
    let reddit_items: Vec<String> = rows
        .iter()
        .filter(|r| r.platform == "reddit")
        .take(2)
        .map(|r| r.post_blob.clone())
        .collect();
    std::fs::write(norm.join("reddit.jsonl"), reddit_items.join("\n"))?;
    let o = SeedOptions {
        data_dir: norm,
        db_path: db.clone(),
        user_pool: false,
        if_exists: IfExists::Upsert,
        platforms: "reddit:1".parse()?,
        salt: "s".into(),
        ..Default::default()
    };
    // The Python rows belong to user "u1"; the test user is new → 2 inserts.
    let r = seed::seed(&o, chrono::Utc::now())?;
    assert_eq!((r.rows_inserted, r.rows_updated), (2, 0));
    let r = seed::seed(&o, chrono::Utc::now())?;
    assert_eq!((r.rows_inserted, r.rows_updated), (0, 2));
    let conn = open_read_only(&db)?;
    assert_eq!(read_posts(&conn)?.len(), 7);
    let py_indexes: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE name LIKE 'ix_posts_%'",
        [],
        |r| r.get(0),
    )?;
    assert_eq!(py_indexes, 3, "the original indexes are kept");
    let all_indexes: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'posts'",
        [],
        |r| r.get(0),
    )?;
    assert_eq!(all_indexes, 3, "no duplicate indexes added");
    Ok(())
}
