//! The posts database (SQLite): schema, opening, and reading rows.
//!
//! 1. [`SCHEMA`]/[`create_schema`]: the original seeder's table and its three
//!    indexes, exactly (databases written by the Python seeder read as they are).
//! 2. [`open_or_create`] (read-write, WAL) and [`open_read_only`]
//!    (`SQLITE_OPEN_READ_ONLY` plus `query_only`) for the query tasks.
//! 3. [`PostRow`] and [`read_posts`]: typed rows; timestamps are stored as
//!    `YYYY-MM-DD HH:MM:SS` ([`format_timestamp`]) and read in any spelling
//!    [`parse_datetime`](crate::models::datetime::parse_datetime) accepts.

use crate::models::{datetime, ContentItem};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;

/// The `posts` table, as the original seeder created it.
pub const CREATE_TABLE: &str = "CREATE TABLE posts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  post_id TEXT,
  session_timestamp TIMESTAMP,
  session_user_id TEXT,
  platform TEXT,
  type TEXT,
  author_name_hash TEXT,
  created_at TIMESTAMP,
  post_blob TEXT
)";

/// The three indexes: `created_at`, `post_id`, `session_user_id`.
pub const CREATE_INDEXES: [&str; 3] = [
    "CREATE INDEX IF NOT EXISTS idx_posts_created_at ON posts (created_at)",
    "CREATE INDEX IF NOT EXISTS idx_posts_post_id ON posts (post_id)",
    "CREATE INDEX IF NOT EXISTS idx_posts_session_user_id ON posts (session_user_id)",
];

/// The whole schema as one script (table, then indexes).
pub const SCHEMA: &str = "CREATE TABLE posts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  post_id TEXT,
  session_timestamp TIMESTAMP,
  session_user_id TEXT,
  platform TEXT,
  type TEXT,
  author_name_hash TEXT,
  created_at TIMESTAMP,
  post_blob TEXT
);
CREATE INDEX IF NOT EXISTS idx_posts_created_at ON posts (created_at);
CREATE INDEX IF NOT EXISTS idx_posts_post_id ON posts (post_id);
CREATE INDEX IF NOT EXISTS idx_posts_session_user_id ON posts (session_user_id);";

/// Errors of the posts database helpers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// SQLite refused an operation.
    #[error("posts database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database has no `posts` table.
    #[error("posts database {0} has no `posts` table (run `post-history seed` first)")]
    NoPostsTable(String),
    /// The database file does not exist (read-only opens never create one).
    #[error("posts database {0} does not exist (run `post-history seed` first)")]
    Missing(String),
}

fn sqlite_err(path: &Path) -> impl Fn(rusqlite::Error) -> DbError + '_ {
    move |source| DbError::Sqlite {
        path: path.display().to_string(),
        source,
    }
}

/// Opens (creating if needed) a posts database for writing, in WAL mode,
/// without creating the table. Touches nothing else.
///
/// # Errors
/// [`DbError::Sqlite`] if the file cannot be opened or put in WAL mode.
pub fn open_or_create(path: &Path) -> Result<Connection, DbError> {
    let conn = open_raw(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sqlite_err(path))?;
    Ok(conn)
}

/// Opens a database read-write without changing its journal mode or anything
/// else (the seeder uses it to check for an existing table first).
///
/// # Errors
/// [`DbError::Sqlite`] if the file cannot be opened.
pub fn open_raw(path: &Path) -> Result<Connection, DbError> {
    let conn = Connection::open(path).map_err(sqlite_err(path))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sqlite_err(path))?;
    Ok(conn)
}

/// Opens an existing posts database read-only (`SQLITE_OPEN_READ_ONLY`, and
/// `PRAGMA query_only` as a second lock), for the query tasks. Any statement
/// that writes fails with SQLite's "attempt to write a readonly database".
///
/// # Errors
/// [`DbError::Missing`] if the file does not exist; [`DbError::Sqlite`] otherwise.
pub fn open_read_only(path: &Path) -> Result<Connection, DbError> {
    if !path.exists() {
        return Err(DbError::Missing(path.display().to_string()));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(sqlite_err(path))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sqlite_err(path))?;
    conn.pragma_update(None, "query_only", true)
        .map_err(sqlite_err(path))?;
    Ok(conn)
}

/// Whether the database has a `posts` table.
///
/// # Errors
/// SQLite's error if `sqlite_master` cannot be read (e.g. not a database).
pub fn posts_table_exists(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'posts'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// Creates the `posts` table and its three indexes.
///
/// # Errors
/// SQLite's error, e.g. if the table already exists.
pub fn create_schema(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)
}

/// Creates those of the three indexes whose column has no index yet (a
/// database from the Python seeder may name them differently).
///
/// # Errors
/// SQLite's error.
pub fn create_indexes(conn: &Connection) -> rusqlite::Result<()> {
    for (sql, column) in CREATE_INDEXES
        .iter()
        .zip(["created_at", "post_id", "session_user_id"])
    {
        if !has_index_on(conn, column)? {
            conn.execute(sql, [])?;
        }
    }
    Ok(())
}

/// Whether some index of `posts` starts with `column`.
///
/// # Errors
/// SQLite's error.
pub fn has_index_on(conn: &Connection, column: &str) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare(
        "SELECT count(*) FROM pragma_index_list('posts') AS l, pragma_index_info(l.name) AS i \
         WHERE i.seqno = 0 AND i.name = ?1",
    )?;
    stmt.query_row([column], |r| r.get::<_, i64>(0))
        .map(|n| n > 0)
}

/// The database spelling of a timestamp: `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn format_timestamp(dt: &DateTime<Utc>) -> String {
    datetime::format_db(dt)
}

/// One row of the `posts` table.
#[derive(Debug, Clone, PartialEq)]
pub struct PostRow {
    /// The row id.
    pub id: i64,
    /// The item's id.
    pub post_id: String,
    /// When the session that showed the item happened.
    pub session_timestamp: DateTime<Utc>,
    /// The user whose session showed the item.
    pub session_user_id: String,
    /// `facebook`, `reddit` or `twitter`.
    pub platform: String,
    /// `post` or `comment`.
    pub kind: String,
    /// The author's hash.
    pub author_name_hash: String,
    /// When the item was created (synthetic under a user pool).
    pub created_at: DateTime<Utc>,
    /// The item as ContentItem JSON.
    pub post_blob: String,
}

impl PostRow {
    /// Parses [`post_blob`](Self::post_blob) into a [`ContentItem`].
    ///
    /// # Errors
    /// [`ModelError`](crate::models::ModelError) naming the bad field.
    pub fn item(&self) -> Result<ContentItem, crate::models::ModelError> {
        crate::models::from_json(self.post_blob.as_bytes())
    }

    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        fn ts(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<DateTime<Utc>> {
            let s: String = r.get(i)?;
            datetime::parse_datetime(&s).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    i,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })
        }
        Ok(Self {
            id: r.get(0)?,
            post_id: r.get(1)?,
            session_timestamp: ts(r, 2)?,
            session_user_id: r.get(3)?,
            platform: r.get(4)?,
            kind: r.get(5)?,
            author_name_hash: r.get(6)?,
            created_at: ts(r, 7)?,
            post_blob: r.get(8)?,
        })
    }
}

/// The column list [`PostRow`] reads, for `SELECT {POST_COLUMNS} FROM posts …`.
pub const POST_COLUMNS: &str = "id, post_id, session_timestamp, session_user_id, platform, type, author_name_hash, created_at, post_blob";

/// Reads every row, in `id` order.
///
/// # Errors
/// [`DbError::NoPostsTable`] or SQLite's error (including a timestamp that
/// does not parse).
pub fn read_posts(conn: &Connection) -> Result<Vec<PostRow>, DbError> {
    let path = conn.path().unwrap_or("").to_string();
    let err = |source| DbError::Sqlite {
        path: path.clone(),
        source,
    };
    if !posts_table_exists(conn).map_err(err)? {
        return Err(DbError::NoPostsTable(path));
    }
    let mut stmt = conn
        .prepare(&format!("SELECT {POST_COLUMNS} FROM posts ORDER BY id"))
        .map_err(err)?;
    let rows = stmt.query_map([], PostRow::from_row).map_err(err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_and_read_only() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("p.db");
        assert!(matches!(open_read_only(&path), Err(DbError::Missing(_))));
        let conn = open_or_create(&path)?;
        assert!(!posts_table_exists(&conn)?);
        create_schema(&conn)?;
        assert!(posts_table_exists(&conn)?);
        let n: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type='index' AND tbl_name='posts' AND name LIKE 'idx_posts_%'",
            [],
            |r| r.get(0),
        )?;
        assert_eq!(n, 3);
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        assert_eq!(mode, "wal");
        drop(conn);
        let ro = open_read_only(&path)?;
        let err = ro
            .execute("DELETE FROM posts", [])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("readonly") || err.contains("read-only") || err.contains("query_only"),
            "{err}"
        );
        assert!(read_posts(&ro)?.is_empty());
        Ok(())
    }
}
