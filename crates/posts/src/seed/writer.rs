//! Writing seeded rows into the posts database, fast and without surprises.
//!
//! 1. Before anything is written, an existing `posts` table is checked: with
//!    neither `--drop-table` nor `--upsert` it is an error and the file is
//!    left byte-for-byte as it was (not even the journal mode changes).
//! 2. Bulk load: one transaction, 32-row INSERT statements, `synchronous=OFF`.
//!    A brand-new file gets 64 KiB pages, is loaded with the journal off and
//!    gets its indexes after the rows (faster), then switches to WAL; an
//!    existing file stays in WAL with its rollback protection. A plain load
//!    keeps a small page cache that spills as it goes (see `load`).
//! 3. Upsert: a row is identified by `(post_id, session_user_id)`; it is
//!    updated in place (found through the `post_id` index) or inserted. The
//!    schema is not changed, so databases from the Python seeder, which may
//!    hold duplicates, still work.

use super::batch::{DbRow, RowBatch};
use super::{IfExists, SeedError};
use crate::db;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rusqlite::{params, Connection};
use std::path::Path;

/// Rows inserted and rows updated.
pub(crate) type Counts = (u64, u64);

fn sql_err(path: &Path) -> impl Fn(rusqlite::Error) -> SeedError + '_ {
    move |source| SeedError::Db {
        path: path.to_path_buf(),
        source,
    }
}

const INSERT: &str = "INSERT INTO posts (post_id, session_timestamp, session_user_id, platform, type, author_name_hash, created_at, post_blob) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
const UPDATE: &str = "UPDATE posts SET session_timestamp = ?2, platform = ?4, type = ?5, author_name_hash = ?6, created_at = ?7, post_blob = ?8 WHERE post_id = ?1 AND session_user_id = ?3";

/// The page cache of a plain load, in KiB.
const CACHE_KIB: i64 = 16_384;

/// Rows per multi-row INSERT statement (8 parameters each).
const CHUNK: usize = 32;

/// `INSERT INTO posts (…) VALUES (?, …), (?, …), …` for `rows` rows.
fn multi_insert(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO posts (post_id, session_timestamp, session_user_id, platform, type, author_name_hash, created_at, post_blob) VALUES ",
    );
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?,?,?,?,?)");
    }
    sql
}

/// Binds one row at parameter offset `at` (0-based) of a multi-row INSERT.
fn bind(stmt: &mut rusqlite::Statement<'_>, at: usize, r: &DbRow<'_>) -> rusqlite::Result<()> {
    let fields = [
        r.post_id,
        r.session_timestamp,
        r.session_user_id,
        r.platform,
        r.kind,
        r.author_name_hash,
        r.created_at,
        r.post_blob,
    ];
    for (k, v) in fields.into_iter().enumerate() {
        stmt.raw_bind_parameter(at + k + 1, v)?;
    }
    Ok(())
}

/// Checks the target, then writes every row of `batches` in one transaction.
/// Returning early (an error) drops `batches`, which stops its producer.
pub(crate) fn load(
    path: &Path,
    mode: IfExists,
    total: u64,
    progress: bool,
    batches: impl IntoIterator<Item = RowBatch>,
) -> Result<Counts, SeedError> {
    let err = sql_err(path);
    let fresh = std::fs::metadata(path)
        .map(|m| m.len() == 0)
        .unwrap_or(true);
    let conn = Connection::open(path).map_err(&err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(&err)?;
    let exists = db::posts_table_exists(&conn).map_err(&err)?;
    if exists && mode == IfExists::Fail {
        return Err(SeedError::TableExists(path.to_path_buf()));
    }
    let upsert = exists && mode == IfExists::Upsert;
    // Indexes after the rows when the table is new and nothing looks rows up.
    let late_indexes = !upsert;
    if fresh {
        // 64 KiB pages (the largest): a sixteenth of the page writes of
        // the default 4 KiB (the rows are ~750 bytes), cheaper table scans
        // for the index builds and for the range queries of the tasks.
        conn.pragma_update(None, "page_size", 65_536)
            .map_err(&err)?;
        conn.pragma_update(None, "journal_mode", "OFF")
            .map_err(&err)?;
    } else {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(&err)?;
    }
    conn.pragma_update(None, "synchronous", "OFF")
        .map_err(&err)?;
    if late_indexes {
        // A modest page cache: pages spill to the file as the load goes
        // (there is no rollback journal to write first), so memory stays
        // small and the commit has little left to do. SQLite sorts each
        // index in runs of the cache size (at least 250 pages); a load too
        // big for one run has its runs sorted on helper threads while this
        // one scans the table (`temp_store` stays FILE: MEMORY would keep
        // one big sort on this thread).
        conn.pragma_update(None, "cache_size", -CACHE_KIB)
            .map_err(&err)?;
        let helpers = std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1));
        conn.pragma_update(None, "threads", helpers.clamp(1, 4) as i64)
            .map_err(&err)?;
    } else {
        // Upserts look rows up through the post_id index: a big cache
        // (allocated lazily, so small loads stay small).
        conn.pragma_update(None, "cache_size", -262_144)
            .map_err(&err)?;
    }

    let bar = if progress {
        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} seeding [{bar:40}] {pos}/{len} rows ({per_sec}, {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }

    let tx = conn.unchecked_transaction().map_err(&err)?;
    if exists && mode == IfExists::Drop {
        tx.execute_batch("DROP TABLE posts").map_err(&err)?;
    }
    if upsert {
        // Lookups go through the post_id index; make sure it is there.
        db::create_indexes(&tx).map_err(&err)?;
    } else {
        tx.execute_batch(db::CREATE_TABLE).map_err(&err)?;
    }
    let mut counts: Counts = (0, 0);
    {
        let mut insert = tx.prepare(INSERT).map_err(&err)?;
        let mut update = if upsert {
            Some(tx.prepare(UPDATE).map_err(&err)?)
        } else {
            None
        };
        let mut n = 0u64;
        // Plain loads insert CHUNK rows per statement: AUTOINCREMENT reads
        // and writes `sqlite_sequence` once per statement, not per row.
        let mut chunked = if upsert {
            None
        } else {
            Some(tx.prepare(&multi_insert(CHUNK)).map_err(&err)?)
        };
        let mut put = |batch: &RowBatch| -> rusqlite::Result<()> {
            let rows: Vec<_> = batch.rows().collect();
            let mut rest = &rows[..];
            if let Some(stmt) = chunked.as_mut() {
                while rest.len() >= CHUNK {
                    let (head, tail) = rest.split_at(CHUNK);
                    for (i, r) in head.iter().enumerate() {
                        bind(stmt, i * 8, r)?;
                    }
                    stmt.raw_execute()?;
                    counts.0 += CHUNK as u64;
                    rest = tail;
                }
            }
            for r in rest {
                let p = params![
                    r.post_id,
                    r.session_timestamp,
                    r.session_user_id,
                    r.platform,
                    r.kind,
                    r.author_name_hash,
                    r.created_at,
                    r.post_blob
                ];
                let updated = match update.as_mut() {
                    Some(u) => u.execute(p)?,
                    None => 0,
                };
                if updated > 0 {
                    counts.1 += 1;
                } else {
                    insert.execute(p)?;
                    counts.0 += 1;
                }
            }
            n += batch.len() as u64;
            bar.set_position(n);
            Ok(())
        };
        for batch in batches {
            put(&batch).map_err(&err)?;
        }
    }
    if late_indexes {
        db::create_indexes(&tx).map_err(&err)?;
    }
    tx.commit().map_err(&err)?;
    bar.finish_and_clear();
    if fresh {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(&err)?;
    }
    conn.close().map_err(|(_, e)| err(e))?;
    Ok(counts)
}
