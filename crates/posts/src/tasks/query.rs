//! `tasks.query_posts_db(query)`: one read-only SQL statement, rows back.
//!
//! 1. Open the database read-only ([`db::open_read_only`]: the
//!    `SQLITE_OPEN_READ_ONLY` flag and `PRAGMA query_only`), so even a
//!    statement that slipped through could not write.
//! 2. Prepare the statement. More than one statement, `ATTACH`/`DETACH`,
//!    or any statement SQLite does not call read-only
//!    ([`rusqlite::Statement::readonly`]: INSERT, UPDATE, DELETE, DROP,
//!    CREATE, VACUUM, most PRAGMA writes…) is refused before it runs, with a
//!    [`TasksError::Refused`]. Invalid SQL fails with SQLite's own message.
//! 3. Step through the rows, turning each into a JSON array (`INTEGER` →
//!    number, `REAL` → number, `TEXT` → string, `NULL` → null, `BLOB` → hex
//!    string, since JSON has no bytes). More than
//!    [`PostsConfig::max_rows`] rows, or a result over
//!    [`PostsConfig::max_result_bytes`] (estimated as JSON), fails the task
//!    rather than return a silently truncated result.
//! 4. A watchdog interrupts the statement after
//!    [`PostsConfig::query_timeout`], or as soon as the task's soft time limit
//!    passes.

use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;
use serde_json::{Number, Value};

use super::guard;
use super::{PostsConfig, TasksError};
use crate::db;

/// Statements refused even though SQLite calls them read-only: they attach
/// other database files to the connection. (The authorizer refuses them
/// too; this names them in the error before anything is prepared.)
const REFUSED_KEYWORDS: [&str; 2] = ["ATTACH", "DETACH"];

/// Run `sql` on the posts database of `config`, read-only, and return its
/// rows as JSON arrays. `cancelled` is polled while the statement runs
/// (the task's soft time limit); when it returns true the statement stops.
///
/// # Errors
/// [`TasksError::Db`] when the database cannot be opened,
/// [`TasksError::Refused`] for a statement that would write, attach, change
/// a setting or call a function off the allow-list (nothing is run),
/// [`TasksError::MultipleStatements`], [`TasksError::Sql`] with SQLite's
/// message for invalid SQL or a value over the size limit,
/// [`TasksError::TooLarge`] past the caps, [`TasksError::Timeout`].
pub fn query_posts_db(
    config: &PostsConfig,
    sql: &str,
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<Vec<Value>, TasksError> {
    let keyword = first_keyword(sql).to_ascii_uppercase();
    if REFUSED_KEYWORDS.contains(&keyword.as_str()) {
        return Err(refused(&keyword));
    }
    let conn = db::open_read_only(&config.db_path)?;
    let denied = Arc::new(Mutex::new(None));
    guard::restrict(&conn, config.max_result_bytes, Arc::clone(&denied))
        .map_err(TasksError::sql)?;
    let denial = || denied.lock().unwrap_or_else(|e| e.into_inner()).take();
    let mut stmt = conn.prepare(sql).map_err(|e| match e {
        rusqlite::Error::MultipleStatement => TasksError::MultipleStatements,
        other => match denial() {
            Some(reason) => TasksError::Refused(reason),
            None => TasksError::sql(other),
        },
    })?;
    if !stmt.readonly() {
        return Err(refused(if keyword.is_empty() {
            "writing"
        } else {
            &keyword
        }));
    }
    let columns = stmt.column_count();
    let interrupt = conn.get_interrupt_handle();
    let (done, finished) = mpsc::channel::<()>();
    let timeout = config.query_timeout;
    let timed_out = std::thread::scope(|scope| {
        let watchdog = scope.spawn(move || watch(&finished, timeout, cancelled, &interrupt));
        let rows = read_rows(&mut stmt, columns, config);
        drop(done);
        let fired = watchdog.join().unwrap_or(false);
        (rows, fired)
    });
    match timed_out {
        (Err(TasksError::Sql { .. }), true) => Err(TasksError::Timeout(timeout)),
        (rows, _) => rows,
    }
}

/// The refusal of a `keyword` statement, worded as the original's
/// read-only database would have answered it, plus why.
fn refused(keyword: &str) -> TasksError {
    TasksError::Refused(format!(
        "attempt to write a readonly database: tasks.query_posts_db is read-only, \
         refusing a {keyword} statement (nothing was run)"
    ))
}

/// Wait until `finished` closes; interrupt the statement if `timeout` passes
/// or `cancelled` says so first. Returns whether it interrupted.
fn watch(
    finished: &mpsc::Receiver<()>,
    timeout: Duration,
    cancelled: &(dyn Fn() -> bool + Sync),
    interrupt: &rusqlite::InterruptHandle,
) -> bool {
    const POLL: Duration = Duration::from_millis(100);
    let deadline = Instant::now() + timeout;
    loop {
        let now = Instant::now();
        if now >= deadline || cancelled() {
            interrupt.interrupt();
            return true;
        }
        match finished.recv_timeout(POLL.min(deadline - now)) {
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return false,
        }
    }
}

fn read_rows(
    stmt: &mut rusqlite::Statement<'_>,
    columns: usize,
    config: &PostsConfig,
) -> Result<Vec<Value>, TasksError> {
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    let mut bytes = 2usize;
    while let Some(row) = rows.next().map_err(TasksError::sql)? {
        if out.len() == config.max_rows {
            return Err(TasksError::TooLarge(format!(
                "the query returned more than {} rows (tasks.query_posts_db's limit); \
                 add a LIMIT or narrow the WHERE clause",
                config.max_rows
            )));
        }
        let mut values = Vec::with_capacity(columns);
        for i in 0..columns {
            let value = row.get_ref(i).map_err(TasksError::sql)?;
            let (json, size) = to_json(value);
            bytes += size + 1;
            values.push(json);
        }
        bytes += 3;
        if bytes > config.max_result_bytes {
            return Err(TasksError::TooLarge(format!(
                "the result is larger than {} bytes as JSON (tasks.query_posts_db's limit); \
                 select fewer columns or rows",
                config.max_result_bytes
            )));
        }
        out.push(Value::Array(values));
    }
    Ok(out)
}

/// A column value as JSON, with its approximate JSON size in bytes.
fn to_json(value: ValueRef<'_>) -> (Value, usize) {
    match value {
        ValueRef::Null => (Value::Null, 4),
        ValueRef::Integer(i) => (Value::from(i), 20),
        ValueRef::Real(f) => (Number::from_f64(f).map_or(Value::Null, Value::Number), 24),
        ValueRef::Text(t) => {
            let text = String::from_utf8_lossy(t).into_owned();
            let size = text.len() + 2;
            (Value::String(text), size)
        }
        ValueRef::Blob(b) => (Value::String(hex::encode(b)), b.len() * 2 + 2),
    }
}

/// The first keyword of `sql`, after whitespace and comments.
fn first_keyword(sql: &str) -> &str {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, tail)| tail);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, tail)| tail);
        } else {
            break;
        }
    }
    let end = rest
        .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .unwrap_or(rest.len());
    &rest[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_keyword_skips_comments() {
        assert_eq!(first_keyword("  select 1"), "select");
        assert_eq!(first_keyword("-- hi\n/* x */ ATTACH 'a' AS b"), "ATTACH");
        assert_eq!(first_keyword(""), "");
        assert_eq!(first_keyword("/* never closed"), "");
    }
}
