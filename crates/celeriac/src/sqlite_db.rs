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
//! 4. Creates the broker and backend tables, and upgrades those of a file
//!    made by an older version ([`create_or_upgrade`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, Weak};
use std::time::Duration;

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
    payload BLOB NOT NULL,
    consumer TEXT
);
CREATE INDEX IF NOT EXISTS celeriac_messages_ready
    ON celeriac_messages (queue, priority, id);
CREATE TABLE IF NOT EXISTS celeriac_results (
    task_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    meta TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS celeriac_consumers (
    consumer TEXT PRIMARY KEY,
    seen_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS celeriac_dlq (
    id TEXT PRIMARY KEY,
    at REAL NOT NULL,
    meta TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS celeriac_dlq_at ON celeriac_dlq (at);
CREATE TABLE IF NOT EXISTS celeriac_dlq_payloads (
    id TEXT PRIMARY KEY,
    payload BLOB NOT NULL
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

/// How long a connection waits for another one's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Switching a new file to WAL upgrades a shared lock to an exclusive
    // one; when two processes open the file at once SQLite refuses one of
    // them at once (waiting could deadlock), so the busy timeout does not
    // apply here and the retry is ours.
    retry_while_busy(|| conn.pragma_update(None, "journal_mode", "WAL"))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

/// Run `step` again while SQLite reports the database busy or locked,
/// napping 1 ms doubling to 50 ms, for at most [`BUSY_TIMEOUT`].
fn retry_while_busy<T>(mut step: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    let mut nap = Duration::from_millis(1);
    loop {
        match step() {
            Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(50));
            }
            outcome => return outcome,
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
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
        create_or_upgrade(&conn).map_err(|e| Error::broker("creating SQLite tables", e))?;
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
        self.submit(f, move |result| {
            let _ = tx.send(result);
        })?;
        rx.await.map_err(|_| abandoned())?
    }

    /// [`SqliteDb::write`] for synchronous callers (drop handlers): blocks
    /// the thread until committed or `timeout`.
    pub(crate) fn write_blocking<T, F>(&self, f: F, timeout: Duration) -> Result<T, BoxError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        self.submit(f, move |result| {
            let _ = tx.send(result);
        })?;
        rx.recv_timeout(timeout).map_err(|_| abandoned())?
    }

    /// Queue `f` for the writer; `done` gets its outcome after the commit.
    fn submit<T, F, D>(&self, f: F, done: D) -> Result<(), BoxError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
        D: FnOnce(Result<T, BoxError>) + Send + 'static,
    {
        let job: Job = Box::new(move |conn| {
            let outcome = f(conn);
            Box::new(move |commit: Result<(), String>| {
                done(match (commit, outcome) {
                    (Ok(()), Ok(value)) => Ok(value),
                    (_, Err(e)) => Err(BoxError::from(e)),
                    (Err(e), Ok(_)) => Err(BoxError::from(e)),
                });
            })
        });
        self.writer
            .send(job)
            .map_err(|_| BoxError::from("the SQLite writer thread has stopped"))
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

fn abandoned() -> BoxError {
    BoxError::from("the SQLite write was abandoned (database busy or writer stopped)")
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

/// Create the tables, and bring a file made by an older version up to
/// date, in one `BEGIN IMMEDIATE` transaction: it takes the write lock
/// first (under the busy timeout), so two processes opening the file at
/// once neither both do it nor fail upgrading a read lock.
///
/// 1. `celeriac_messages.consumer` (who holds a reservation), and the
///    partial index the dead-consumer sweep reads.
/// 2. Dead letters of the old single table (`celeriac_dead_letters`, one
///    JSON record with the payload) move to `celeriac_dlq` (metadata) and
///    `celeriac_dlq_payloads` (capped payload); the old table is dropped.
fn create_or_upgrade(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let outcome = conn
        .execute_batch(SCHEMA)
        .and_then(|()| upgrade_in_transaction(conn));
    match outcome {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn upgrade_in_transaction(conn: &Connection) -> rusqlite::Result<()> {
    let has_consumer: bool = conn.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('celeriac_messages') WHERE name = 'consumer'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has_consumer {
        conn.execute_batch("ALTER TABLE celeriac_messages ADD COLUMN consumer TEXT")?;
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS celeriac_messages_held \
         ON celeriac_messages (consumer) WHERE consumer IS NOT NULL",
    )?;
    let legacy: bool = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'celeriac_dead_letters'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !legacy {
        return Ok(());
    }
    loop {
        let batch: Vec<(String, String)> = conn
            .prepare("SELECT id, letter FROM celeriac_dead_letters LIMIT 64")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        if batch.is_empty() {
            break;
        }
        for (id, text) in &batch {
            let (info, payload) = crate::broker::dead_letters::from_legacy(text.as_bytes());
            crate::broker::sqlite::store_dead_letter(conn, &info, &payload)?;
            conn.execute("DELETE FROM celeriac_dead_letters WHERE id = ?1", [id])?;
        }
    }
    conn.execute_batch("DROP TABLE celeriac_dead_letters")
}

/// Seconds since the Unix epoch, as stored in the time columns.
pub(crate) fn now_secs() -> f64 {
    chrono::Utc::now().timestamp_micros() as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Processes that open a new file at the same moment all get it: the
    /// WAL switch and the table creation wait for one another instead of
    /// failing with "database is locked" (seen in CI: a worker and a
    /// `call` started together, the worker exited at once).
    #[test]
    fn many_connections_open_a_new_file_at_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        for round in 0..40 {
            let path = dir.path().join(format!("fresh-{round}.db"));
            let start = Arc::new(std::sync::Barrier::new(8));
            let openers: Vec<_> = (0..8)
                .map(|_| {
                    let path = path.clone();
                    let start = Arc::clone(&start);
                    std::thread::spawn(move || {
                        start.wait();
                        let conn = connect(&path)?;
                        create_or_upgrade(&conn)
                    })
                })
                .collect();
            for opener in openers {
                let opened = opener.join().expect("opener thread");
                assert!(opened.is_ok(), "round {round}: {opened:?}");
            }
        }
    }
}
