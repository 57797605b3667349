//! The post-history worker's tasks, under the names the original Python
//! producer sends (`tasks.py` of the seed), so `.delay()` from Celery works
//! unchanged against a Celeriac worker.
//!
//! 1. `tasks.query_posts_db(query)` → rows ([`query`]): read-only (the
//!    database is opened `SQLITE_OPEN_READ_ONLY` with `PRAGMA query_only`,
//!    and any statement SQLite does not call read-only is refused before it
//!    runs), one statement, at most [`PostsConfig::max_rows`] rows and
//!    [`PostsConfig::max_result_bytes`] bytes, at most
//!    [`PostsConfig::query_timeout`]; invalid SQL fails with SQLite's message.
//! 2. `tasks.substring_matches_by_platform(match, from_, to)` →
//!    `{<platform>: count, …, "total_rows": n}` ([`substring`]).
//! 3. `tasks.count_top_named_entities(k, from_, to, result_key)` → `true`,
//!    storing `{"top_named_entities": [[entity, count], …], "timestamp": …}`
//!    under `result_key` in the app's result backend ([`top_entities`]).
//! 4. The scheduled job: [`top_entities_entry`] (every 300 s, the last 24 h,
//!    into [`SCHEDULED_TOP_ENTITIES_KEY`]); the same entry ships as
//!    `config/beat.toml`.
//!
//! [`register`] adds the three to an [`AppBuilder`]. Keyword arguments use
//! the Python parameter names (`query`, `match`, `from_`, `to`, `k`,
//! `result_key`); `match` is a Rust keyword, so the tasks implement
//! [`Task`] by hand rather than through `#[task]`. All three are synchronous
//! and run on the worker's blocking pool.
//!
//! Time windows are compared as text, as the original's SQL did:
//! `created_at BETWEEN from_ AND to`, with `created_at` stored as
//! `YYYY-MM-DD HH:MM:SS`, so `to = "2017-06-01"` stops at midnight.

mod guard;
pub mod query;
pub mod substring;
pub mod top_entities;

use std::path::PathBuf;
use std::time::Duration;

use celeriac::beat::{BeatError, Schedule, ScheduleEntry};
use celeriac::{AppBuilder, Context, TaskError};
use serde_json::{json, Value};

use crate::db::DbError;

/// Name of the ad hoc query task.
pub const QUERY_POSTS_DB: &str = query_posts_db::NAME;
/// Name of the substring-count task.
pub const SUBSTRING_MATCHES_BY_PLATFORM: &str = substring_matches_by_platform::NAME;
/// Name of the top-entities task.
pub const COUNT_TOP_NAMED_ENTITIES: &str = count_top_named_entities::NAME;
/// The key the scheduled job writes and the ranking server reads.
pub const SCHEDULED_TOP_ENTITIES_KEY: &str = "my_worker:scheduled:top_named_entities";
/// The environment variable naming the posts database (as in the original).
pub const POSTS_DB_ENV: &str = "POSTS_DB_PATH";
/// The posts database when neither `--posts-db` nor [`POSTS_DB_ENV`] says.
pub const DEFAULT_POSTS_DB: &str = "posts.db";
/// Default row cap of `tasks.query_posts_db`.
pub const DEFAULT_MAX_ROWS: usize = 10_000;
/// Default cap on the JSON size of a `tasks.query_posts_db` result (16 MiB).
pub const DEFAULT_MAX_RESULT_BYTES: usize = 16 << 20;
/// Default time limit of one `tasks.query_posts_db` statement.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// What the post-history tasks need to know.
#[derive(Debug, Clone, PartialEq)]
pub struct PostsConfig {
    /// The posts database (SQLite file, the seeder's schema).
    pub db_path: PathBuf,
    /// `tasks.query_posts_db` fails rather than return more rows than this
    /// (results travel through the result backend; the original warned to
    /// keep them small).
    pub max_rows: usize,
    /// Likewise for the result's size as JSON, in bytes.
    pub max_result_bytes: usize,
    /// A `tasks.query_posts_db` statement still running after this long is
    /// interrupted and the task fails.
    pub query_timeout: Duration,
}

impl Default for PostsConfig {
    fn default() -> Self {
        PostsConfig::new(DEFAULT_POSTS_DB)
    }
}

impl PostsConfig {
    /// The defaults, with the database at `db_path`.
    pub fn new(db_path: impl Into<PathBuf>) -> Self {
        PostsConfig {
            db_path: db_path.into(),
            max_rows: DEFAULT_MAX_ROWS,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            query_timeout: DEFAULT_QUERY_TIMEOUT,
        }
    }

    /// The defaults, with the database named by `POSTS_DB_PATH` (else
    /// [`DEFAULT_POSTS_DB`]).
    pub fn from_env() -> Self {
        match std::env::var_os(POSTS_DB_ENV) {
            Some(path) if !path.is_empty() => PostsConfig::new(path),
            _ => PostsConfig::default(),
        }
    }
}

/// How a post-history task fails. Each becomes a [`TaskError`] of the
/// Python exception class the original worker would have raised for the
/// same input ([`TasksError::exception_class`]), so a Python caller's
/// `except sqlite3.OperationalError` catches it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TasksError {
    /// The posts database cannot be opened (missing, not a database).
    #[error(transparent)]
    Db(#[from] DbError),
    /// SQLite refused the statement or failed running it; the message is
    /// SQLite's own (e.g. `no such table: bar`).
    #[error("{message}")]
    Sql {
        /// SQLite's message.
        message: String,
        /// SQLite's primary result code, which picks the Python class.
        code: Option<rusqlite::ErrorCode>,
    },
    /// The statement would write (INSERT, DROP, …), attach a file, change a
    /// setting or call a function outside the allow-list; nothing was run.
    #[error("{0}")]
    Refused(String),
    /// The query text holds more than one statement; nothing was run.
    #[error("You can only execute one statement at a time.")]
    MultipleStatements,
    /// The result is larger than the configured cap.
    #[error("{0}")]
    TooLarge(String),
    /// The statement ran past [`PostsConfig::query_timeout`] (or the task's
    /// soft time limit) and was interrupted.
    #[error("interrupted: the query ran past {0:?} (tasks.query_posts_db time limit)")]
    Timeout(Duration),
    /// The task could not store its result under its key.
    #[error("storing the result under {key:?}: {reason}")]
    Store {
        /// The key.
        key: String,
        /// What went wrong.
        reason: String,
    },
}

/// Python's `sqlite3` module, where the original worker's database errors
/// come from.
const SQLITE3: &str = "sqlite3";

impl TasksError {
    /// The Python exception class a caller sees, as `(module, class)`. The
    /// original ran every query through Python's `sqlite3`, so database
    /// errors keep the class `sqlite3` derives from SQLite's result code
    /// ([`sqlite3_class`]): invalid SQL, a missing table or database, an
    /// interrupted statement and a refused write (the original would have
    /// met "attempt to write a readonly database" on a read-only file) are
    /// `sqlite3.OperationalError`; a file that is not a database is
    /// `sqlite3.DatabaseError`; two statements are
    /// `sqlite3.ProgrammingError`, as `cursor.execute` raises. The caps the
    /// original did not have are builtins: `ValueError` for an oversized
    /// result, `ConnectionError` when the key cannot be stored.
    pub fn exception_class(&self) -> (&'static str, &'static str) {
        match self {
            TasksError::Db(DbError::Sqlite { source, .. }) => {
                sqlite3_class(source.sqlite_error_code())
            }
            TasksError::Db(_) | TasksError::Refused(_) | TasksError::Timeout(_) => {
                (SQLITE3, "OperationalError")
            }
            TasksError::Sql { code, .. } => sqlite3_class(*code),
            TasksError::MultipleStatements => (SQLITE3, "ProgrammingError"),
            TasksError::TooLarge(_) => (celeriac::task::BUILTINS, "ValueError"),
            TasksError::Store { .. } => (celeriac::task::BUILTINS, "ConnectionError"),
        }
    }

    /// SQLite's error as a [`TasksError::Sql`], keeping only SQLite's message
    /// (not rusqlite's "… in <sql> at offset N" decoration).
    pub(crate) fn sql(err: rusqlite::Error) -> TasksError {
        let code = match &err {
            rusqlite::Error::SqlInputError { error, .. } => Some(error.code),
            other => other.sqlite_error_code(),
        };
        let message = match &err {
            rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
            rusqlite::Error::SqliteFailure(_, Some(msg)) => msg.clone(),
            other => other.to_string(),
        };
        TasksError::Sql { message, code }
    }

    fn into_task_error(self) -> TaskError {
        let (module, class) = self.exception_class();
        TaskError::new(class, self.to_string()).in_module(module)
    }
}

/// The exception class, as `(module, class)`, that Python's `sqlite3`
/// raises for SQLite's primary result `code` (CPython's mapping in
/// `_pysqlite_seterror`): `MemoryError` for SQLITE_NOMEM, else a class of
/// the `sqlite3` module.
pub fn sqlite3_class(code: Option<rusqlite::ErrorCode>) -> (&'static str, &'static str) {
    use rusqlite::ErrorCode as C;
    let class = match code {
        Some(C::OutOfMemory) => return (celeriac::task::BUILTINS, "MemoryError"),
        Some(C::InternalMalfunction | C::NotFound) => "InternalError",
        Some(
            C::Unknown
            | C::PermissionDenied
            | C::OperationAborted
            | C::DatabaseBusy
            | C::DatabaseLocked
            | C::ReadOnly
            | C::OperationInterrupted
            | C::SystemIoFailure
            | C::DiskFull
            | C::CannotOpen
            | C::FileLockingProtocolFailed
            | C::SchemaChanged,
        ) => "OperationalError",
        Some(C::TooBig) => "DataError",
        Some(C::ConstraintViolation | C::TypeMismatch) => "IntegrityError",
        Some(C::ApiMisuse) => "ProgrammingError",
        Some(C::ParameterOutOfRange) => "InterfaceError",
        _ => "DatabaseError",
    };
    (SQLITE3, class)
}

/// Register the three post-history tasks on `builder`, and `config` as the
/// app's state they read (`Context::state::<PostsConfig>()`).
pub fn register(builder: AppBuilder, config: &PostsConfig) -> AppBuilder {
    builder
        .state(config.clone())
        .task(query_posts_db)
        .task(substring_matches_by_platform)
        .task(count_top_named_entities)
}

/// The scheduled job of the original worker, as a beat entry named
/// `top-named-entities`: every `every`, the top `k` entities of the posts
/// created in the `window` before the run's tick, into
/// [`SCHEDULED_TOP_ENTITIES_KEY`]. Runs missed while no beat was up are
/// sent once; a run not started within `every` expires (a newer one is due).
///
/// # Errors
/// [`BeatError`] when `every` is not a valid interval.
pub fn top_entities_entry(
    every: Duration,
    window: Duration,
    k: usize,
) -> Result<ScheduleEntry, BeatError> {
    let from = if window.subsec_nanos() == 0 {
        format!("{{now-{}s}}", window.as_secs())
    } else {
        format!("{{now-{}ms}}", window.as_millis())
    };
    Ok(ScheduleEntry::new(
        "top-named-entities",
        COUNT_TOP_NAMED_ENTITIES,
        Schedule::every(every)?,
    )
    .args(vec![
        json!(k),
        json!(from),
        json!("{now}"),
        json!(SCHEDULED_TOP_ENTITIES_KEY),
    ])
    .expires(every))
}

/// `tasks.query_posts_db(query)`: the rows of one read-only statement
/// (see the module's rules), reading the database of the app's
/// [`PostsConfig`] state.
#[celeriac::task(name = "tasks.query_posts_db", bind)]
pub fn query_posts_db(ctx: &Context, query: String) -> Result<Value, TaskError> {
    let config = ctx.state::<PostsConfig>()?;
    let rows = query::query_posts_db(&config, &query, &|| ctx.is_cancelled())
        .map_err(TasksError::into_task_error)?;
    Ok(Value::Array(rows))
}

/// `tasks.substring_matches_by_platform(match, from_, to)`: posts per
/// platform whose text contains `match`, created in `[from_, to)`.
#[celeriac::task(name = "tasks.substring_matches_by_platform", bind)]
pub fn substring_matches_by_platform(
    ctx: &Context,
    r#match: String,
    from_: String,
    to: String,
) -> Result<Value, TaskError> {
    let config = ctx.state::<PostsConfig>()?;
    let counts = substring::substring_matches_by_platform(&config, &r#match, &from_, &to)
        .map_err(TasksError::into_task_error)?;
    Ok(Value::Object(counts.into_json()))
}

/// `tasks.count_top_named_entities(k, from_, to, result_key)`: the top `k`
/// named entities of the posts created in `[from_, to)`, stored under
/// `result_key` in the result backend.
#[celeriac::task(name = "tasks.count_top_named_entities", bind)]
pub fn count_top_named_entities(
    ctx: &Context,
    k: Option<i64>,
    from_: String,
    to: String,
    result_key: String,
) -> Result<bool, TaskError> {
    let config = ctx.state::<PostsConfig>()?;
    // Python's Counter.most_common: None = all, negative = none.
    let k = k.map(|k| usize::try_from(k).unwrap_or(0));
    top_entities::count_and_store(ctx, &config, k, &from_, &to, &result_key)
        .map_err(TasksError::into_task_error)?;
    Ok(true)
}
