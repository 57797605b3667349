//! One SQLite file shared by the SQLite broker and result backend.
//!
//! 1. Opens the file once per process (a registry keyed by path), in WAL mode
//!    so readers never block the writer and several processes can share it.
//! 2. Serializes writes through one thread that *group-commits*: it takes
//!    every write waiting in its channel and runs them in one `BEGIN
//!    IMMEDIATE … COMMIT`. Under load this turns thousands of tiny
//!    transactions (publish, reserve, ack, store) into a few large ones, which
//!    is where the SQLite broker's throughput comes from.
//! 3. Serves reads from a small pool of read connections on the blocking pool.
//! 4. Creates the broker and backend tables.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, Weak};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::error::{BoxError, Error};

/// A write job: runs inside the group transaction and returns what to do
/// once the transaction's outcome is known.
type Job = Box<dyn FnOnce(&Connection) -> Completion + Send>;
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;

/// Most jobs folded into one transaction; bounds the latency of the first.
const MAX_GROUP: usize = 512;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS celeriac_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL,
    visible_at REAL NOT NULL,
    reserved INTEGER NOT NULL DEFAULT 0,
    tag TEXT,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS celeriac_messages_ready
    ON celeriac_messages (queue, priority, id);
CREATE TABLE IF NOT EXISTS celeriac_results (
    task_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    meta TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS celeriac_dead_letters (
    id TEXT PRIMARY KEY,
    at REAL NOT NULL,
    queue TEXT NOT NULL,
    letter TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS celeriac_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    event TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS celeriac_revoked (
    member TEXT PRIMARY KEY,
    at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS celeriac_kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    expires_at REAL
);
";

/// An open SQLite database shared inside this process.
pub(crate) struct SqliteDb {
    path: PathBuf,
    writer: mpsc::Sender<Job>,
    readers: Mutex<Vec<Connection>>,
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Weak<SqliteDb>>> {
    static REGISTRY: std::sync::OnceLock<Mutex<HashMap<PathBuf, Weak<SqliteDb>>>> =
        std::sync::OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

impl SqliteDb {
    /// Open (or reuse) the database at `path`, creating the tables.
    pub(crate) fn open(path: &Path) -> Result<Arc<SqliteDb>, Error> {
        let key = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let mut map = registry().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(db) = map.get(&key).and_then(Weak::upgrade) {
            return Ok(db);
        }
        let conn = connect(&key).map_err(|e| Error::broker("opening SQLite database", e))?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| Error::broker("creating SQLite tables", e))?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("celeriac-sqlite-writer".into())
            .spawn(move || write_loop(conn, rx))
            .map_err(|e| Error::broker("starting SQLite writer thread", e))?;
        let db = Arc::new(SqliteDb {
            path: key.clone(),
            writer: tx,
            readers: Mutex::new(Vec::new()),
        });
        map.insert(key, Arc::downgrade(&db));
        Ok(db)
    }

    /// Run `f` inside the next group transaction; resolves once committed.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, BoxError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let outcome = f(conn);
            Box::new(move |commit: Result<(), String>| {
                let result = match (commit, outcome) {
                    (Ok(()), Ok(value)) => Ok(value),
                    (_, Err(e)) => Err(BoxError::from(e)),
                    (Err(e), Ok(_)) => Err(BoxError::from(e)),
                };
                let _ = tx.send(result);
            })
        });
        self.writer
            .send(job)
            .map_err(|_| BoxError::from("the SQLite writer thread has stopped"))?;
        rx.await.map_err(|_| {
            BoxError::from("the SQLite write was abandoned (database busy or writer stopped)")
        })?
    }

    /// Run a read on a pooled read connection, off the async threads.
    pub(crate) async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T, BoxError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let db = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let pooled = db.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => connect(&db.path)?,
            };
            let result = f(&conn);
            let mut readers = db.readers.lock().unwrap_or_else(|e| e.into_inner());
            // Keep every connection opened: reopening repeats the PRAGMAs
            // and the schema parse.
            if readers.len() < 64 {
                readers.push(conn);
            }
            result.map_err(BoxError::from)
        })
        .await
        .map_err(|e| BoxError::from(e.to_string()))?
    }
}

fn write_loop(conn: Connection, jobs: mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Dropping the jobs unrun makes each waiter's `write` fail; the
            // callers (worker loops) log and retry after a pause.
            tracing::warn!("SQLite write abandoned, could not begin a transaction: {e}");
            drop(group);
            continue;
        }
        let completions: Vec<Completion> = group.into_iter().map(|job| job(&conn)).collect();
        let commit = conn
            .execute_batch("COMMIT")
            .map_err(|e| format!("commit failed: {e}"));
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for done in completions {
            done(commit.clone());
        }
    }
}

/// Seconds since the Unix epoch, as stored in the time columns.
pub(crate) fn now_secs() -> f64 {
    chrono::Utc::now().timestamp_micros() as f64 / 1e6
}
