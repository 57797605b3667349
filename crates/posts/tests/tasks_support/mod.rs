//! Shared by the post-task tests: a small posts database with known
//! posts around the original's window (2017-05-31 to 2017-06-01).

#![allow(dead_code, unreachable_pub)]

use std::path::Path;

use serde_json::json;

/// (platform, created_at, text)
pub const POSTS: [(&str, &str, &str); 7] = [
    (
        "facebook",
        "2017-05-31 08:00:00",
        "Angela Merkel met Emmanuel Macron in Paris. Merkel said Paris was lovely.",
    ),
    (
        "facebook",
        "2017-05-31 09:30:00",
        "TRUMP says the Federal Reserve is wrong; Angela Merkel disagrees.",
    ),
    (
        "reddit",
        "2017-05-31 12:00:00",
        "Why does Donald Trump keep tweeting about the Federal Reserve?",
    ),
    (
        "twitter",
        "2017-05-31 23:59:59",
        "Emmanuel Macron and Donald Trump shook hands in Brussels.",
    ),
    (
        "twitter",
        "2017-06-01 00:00:00",
        "Midnight: nothing to see, trump card played.",
    ),
    (
        "reddit",
        "2017-06-01 10:00:00",
        "Outside the window: Angela Merkel and Donald Trump in Berlin.",
    ),
    (
        "facebook",
        "2017-05-30 23:00:00",
        "Before the window: Donald Trump.",
    ),
];

pub fn make_db(path: &Path) -> rusqlite::Result<()> {
    let conn = rusqlite::Connection::open(path)?;
    posts::db::create_schema(&conn)?;
    for (i, (platform, created_at, text)) in POSTS.iter().enumerate() {
        let blob = json!({"id": format!("p{i}"), "text": text}).to_string();
        conn.execute(
            "INSERT INTO posts (post_id, session_timestamp, session_user_id, platform, type, \
             author_name_hash, created_at, post_blob) VALUES (?1, ?2, 'u', ?3, 'post', 'a', ?2, ?4)",
            rusqlite::params![format!("p{i}"), created_at, platform, blob],
        )?;
    }
    Ok(())
}

pub fn row_count(path: &Path) -> i64 {
    rusqlite::Connection::open(path)
        .and_then(|c| c.query_row("SELECT count(*) FROM posts", [], |r| r.get(0)))
        .unwrap_or(-1)
}
