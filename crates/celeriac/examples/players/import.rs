//! Seed 003 — a CSV of player rows imported one task per row, through a
//! chord — as a library: [`run_import`] is what `cargo run --example players`
//! runs, and what `tests/players_example.rs` calls with a temp dir.
//!
//! The shape is Celery's classic one:
//!
//! ```text
//! chord([import_row(row 1), import_row(row 2), …], summarize(db, run))
//! ```
//!
//! * **Header**: [`import_row`], one task per CSV row. It validates the row
//!   and upserts it into `players`, recording the row's outcome in
//!   `player_rows` (status `ok` or `failed`, with the reason).
//! * **Body**: [`summarize`] gets the header's results *in row order* and
//!   records the run's counts and failure reasons in `import_summaries`.
//!
//! **What happens when one row fails.** In Celery, a header part that
//! *raises* fails the whole chord: the body never runs and the chord's
//! result is a `ChordError`. For an import that is the wrong answer: one bad
//! row would hide the outcome of the 199 good ones. So a row's failure is
//! *data*, not an exception: [`import_row`] returns a [`RowOutcome`] with
//! `ok: false` and the reason, and the chord completes.
//!
//! * A row that can never succeed (a missing field, `"seven"` goals) fails
//!   at once, without retries.
//! * A row that fails *transiently* (here: the simulated ratings service is
//!   down for that player, see `service_outages`) raises a retry with a
//!   countdown (0.2 s, 0.4 s, 0.8 s). A retry keeps the task's place in the
//!   chord: only its final outcome is counted. After [`MAX_RETRIES`] retries
//!   it gives up and returns a failed outcome naming the attempts.
//! * Only a bug (a panic) or the worker being unable to reach its own
//!   database fails a part the Celery way, and then the chord fails with
//!   `ChordError` — which [`run_import`] reports as an error.
//!
//! **Reruns.** `player_rows` remembers every row's outcome and its raw
//! fields. A rerun sends only the rows that are not `ok` (failed, never
//! processed, or changed in the CSV since): nothing already imported runs
//! twice. A message left over from an interrupted run does nothing (its run
//! is not the latest). Every execution is logged in `row_attempts`, so this
//! is checkable.

// Each of the example and the test uses part of this module.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use celeriac::{task, App, Context, Signature, TaskError, Worker, WorkerOptions};
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

/// Any error of a run.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The CSV's columns, in order.
pub(crate) const COLUMNS: [&str; 7] = [
    "player_id",
    "name",
    "team",
    "position",
    "games",
    "goals",
    "assists",
];

/// How many times a row is retried after a transient failure (the
/// `max_retries` of [`import_row`], which must say the same).
pub(crate) const MAX_RETRIES: u32 = 3;

/// The first retry's countdown; each next one doubles.
pub(crate) const RETRY_COUNTDOWN: Duration = Duration::from_millis(200);

/// Players for whom the simulated ratings service is down, and for how many
/// attempts: P0042 recovers within its retries, P0137 outlasts them (failed
/// on the first run, imported on the second).
pub(crate) const DEFAULT_OUTAGES: &[(&str, u32)] = &[("P0042", 2), ("P0137", 6)];

const POSITIONS: [&str; 4] = ["GK", "DF", "MF", "FW"];

/// What to import, where.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// The CSV file (header: [`COLUMNS`]).
    pub(crate) csv: PathBuf,
    /// Where `players.db` (the application's data) and `celeriac.db` (the
    /// embedded broker and result backend) live.
    pub(crate) dir: PathBuf,
    /// Simulated outages: player id → failing attempts. Seeded once per
    /// database (a rerun does not reset them).
    pub(crate) outages: Vec<(String, u32)>,
    /// Rows processed at once by the in-process worker.
    pub(crate) concurrency: usize,
    /// How long to wait for the chord before giving up.
    pub(crate) timeout: Duration,
}

impl Options {
    /// Defaults: [`DEFAULT_OUTAGES`], 4 at once, 2 minutes.
    pub(crate) fn new(csv: impl Into<PathBuf>, dir: impl Into<PathBuf>) -> Options {
        Options {
            csv: csv.into(),
            dir: dir.into(),
            outages: DEFAULT_OUTAGES
                .iter()
                .map(|(id, n)| ((*id).to_owned(), *n))
                .collect(),
            concurrency: 4,
            timeout: Duration::from_secs(120),
        }
    }

    /// The application database.
    pub(crate) fn players_db(&self) -> PathBuf {
        self.dir.join("players.db")
    }
}

/// One row's result: the chord header's return value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RowOutcome {
    /// The row's line in the CSV (the header is line 1).
    pub(crate) line: u64,
    /// The player id, when the row has one.
    pub(crate) player_id: Option<String>,
    /// Imported.
    pub(crate) ok: bool,
    /// Why not.
    pub(crate) reason: Option<String>,
    /// Executions in this run (1 + retries).
    pub(crate) attempts: u32,
}

/// What the chord body records and returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RunSummary {
    /// The run number (`import_runs.run`).
    pub(crate) run: i64,
    /// Rows imported in this run.
    pub(crate) succeeded: u64,
    /// Rows that failed in this run, in CSV order.
    pub(crate) failures: Vec<RowOutcome>,
    /// Rows that needed more than one attempt, whatever their outcome.
    pub(crate) retried: Vec<RowOutcome>,
}

/// What [`run_import`] reports.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// Rows in the CSV.
    pub(crate) rows_in_file: u64,
    /// Rows already imported, not sent again.
    pub(crate) skipped: u64,
    /// Rows sent (the chord's header size).
    pub(crate) sent: u64,
    /// The chord body's summary; `None` when there was nothing to send.
    pub(crate) summary: Option<RunSummary>,
}

impl Report {
    /// Rows imported by this run.
    pub(crate) fn succeeded(&self) -> u64 {
        self.summary.as_ref().map_or(0, |s| s.succeeded)
    }

    /// Rows that failed in this run.
    pub(crate) fn failures(&self) -> &[RowOutcome] {
        self.summary.as_ref().map_or(&[], |s| &s.failures)
    }
}

// ---------------------------------------------------------------- tasks

/// The chord header: validate one CSV row and upsert it into `players`.
///
/// Never raises for a bad row: returns `ok: false` with the reason, so the
/// chord completes (see the module docs).
#[task(name = "players.import_row", bind, max_retries = 3)]
pub(crate) fn import_row(
    ctx: &Context,
    db: String,
    run: i64,
    line: u64,
    fields: Vec<String>,
) -> Result<RowOutcome, TaskError> {
    let attempts = ctx.retries() + 1;
    let player_id = fields
        .first()
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty());
    let outcome = |ok: bool, reason: Option<String>| RowOutcome {
        line,
        player_id: player_id.clone(),
        ok,
        reason,
        attempts,
    };
    match import_one(&db, run, line, &fields, attempts) {
        Ok(Step::Imported) => Ok(outcome(true, None)),
        Ok(Step::Invalid(reason)) => Ok(outcome(false, Some(reason))),
        Ok(Step::Superseded) => Ok(outcome(
            false,
            Some(format!("run {run} was superseded by a later run")),
        )),
        Err(transient) if ctx.retries() < MAX_RETRIES => {
            let countdown = RETRY_COUNTDOWN * 2u32.pow(ctx.retries());
            Err(TaskError::new("ConnectionError", transient).retry(Some(countdown)))
        }
        Err(transient) => {
            let reason = format!("{transient} (gave up after {attempts} attempts)");
            let reason = match record_row(&db, run, line, &fields, false, Some(&reason), attempts) {
                Ok(()) => reason,
                Err(err) => format!("{reason}; could not record it: {err}"),
            };
            Ok(outcome(false, Some(reason)))
        }
    }
}

/// The chord body: the header's outcomes, in CSV order, then the body's own
/// arguments. Records the run's summary (one row per execution, so a body
/// run twice would show).
#[task(name = "players.summarize")]
pub(crate) fn summarize(
    outcomes: Vec<RowOutcome>,
    db: String,
    run: i64,
) -> Result<RunSummary, TaskError> {
    let succeeded = outcomes.iter().filter(|o| o.ok).count() as u64;
    let retried: Vec<RowOutcome> = outcomes
        .iter()
        .filter(|o| o.attempts > 1)
        .cloned()
        .collect();
    let failures: Vec<RowOutcome> = outcomes.into_iter().filter(|o| !o.ok).collect();
    let conn = open(Path::new(&db))?;
    conn.execute(
        "INSERT INTO import_summaries (run, finished_at, succeeded, failed, failures)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            run,
            now(),
            succeeded as i64,
            failures.len() as i64,
            serde_json::to_string(&failures)?,
        ],
    )?;
    Ok(RunSummary {
        run,
        succeeded,
        failures,
        retried,
    })
}

/// What one execution of a row did, short of a transient failure.
enum Step {
    Imported,
    Invalid(String),
    Superseded,
}

/// One execution: `Err` is a transient failure (worth a retry).
fn import_one(
    db: &str,
    run: i64,
    line: u64,
    fields: &[String],
    attempts: u32,
) -> Result<Step, String> {
    let db_err = |e: rusqlite::Error| format!("players database: {e}");
    let mut conn = open(Path::new(db)).map_err(db_err)?;
    let latest: Option<i64> = conn
        .query_row("SELECT max(run) FROM import_runs", [], |r| r.get(0))
        .map_err(db_err)?;
    if latest != Some(run) {
        return Ok(Step::Superseded);
    }
    conn.execute(
        "INSERT INTO row_attempts (run, line, attempt, at) VALUES (?1, ?2, ?3, ?4)",
        params![run, line as i64, attempts, now()],
    )
    .map_err(db_err)?;
    let player = match Player::parse(fields) {
        Ok(player) => player,
        Err(reason) => {
            record_row(db, run, line, fields, false, Some(&reason), attempts).map_err(db_err)?;
            return Ok(Step::Invalid(reason));
        }
    };
    // The simulated dependency: the ratings service is down for this
    // player for `failures_left` more attempts.
    let down = conn
        .execute(
            "UPDATE service_outages SET failures_left = failures_left - 1
             WHERE player_id = ?1 AND failures_left > 0",
            params![player.player_id],
        )
        .map_err(db_err)?;
    if down > 0 {
        return Err(format!(
            "ratings service unavailable for {}",
            player.player_id
        ));
    }
    let tx = conn.transaction().map_err(db_err)?;
    tx.execute(
        "INSERT INTO players (player_id, name, team, position, games, goals, assists, line, run)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (player_id) DO UPDATE SET
           name = excluded.name, team = excluded.team, position = excluded.position,
           games = excluded.games, goals = excluded.goals, assists = excluded.assists,
           line = excluded.line, run = excluded.run",
        params![
            player.player_id,
            player.name,
            player.team,
            player.position,
            player.games,
            player.goals,
            player.assists,
            line as i64,
            run,
        ],
    )
    .map_err(db_err)?;
    upsert_row(&tx, run, line, fields, true, None, attempts).map_err(db_err)?;
    tx.commit().map_err(db_err)?;
    Ok(Step::Imported)
}

fn record_row(
    db: &str,
    run: i64,
    line: u64,
    fields: &[String],
    ok: bool,
    reason: Option<&str>,
    attempts: u32,
) -> rusqlite::Result<()> {
    let conn = open(Path::new(db))?;
    upsert_row(&conn, run, line, fields, ok, reason, attempts)
}

fn upsert_row(
    conn: &Connection,
    run: i64,
    line: u64,
    fields: &[String],
    ok: bool,
    reason: Option<&str>,
    attempts: u32,
) -> rusqlite::Result<()> {
    let player_id = fields.first().map(|s| s.trim()).filter(|s| !s.is_empty());
    conn.execute(
        "INSERT INTO player_rows (line, raw, player_id, status, reason, attempts, run, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (line) DO UPDATE SET
           raw = excluded.raw, player_id = excluded.player_id, status = excluded.status,
           reason = excluded.reason, attempts = excluded.attempts, run = excluded.run,
           updated_at = excluded.updated_at",
        params![
            line as i64,
            raw(fields),
            player_id,
            if ok { "ok" } else { "failed" },
            reason,
            attempts,
            run,
            now(),
        ],
    )?;
    Ok(())
}

/// A valid row.
#[derive(Debug)]
struct Player {
    player_id: String,
    name: String,
    team: String,
    position: String,
    games: u32,
    goals: u32,
    assists: u32,
}

impl Player {
    fn parse(fields: &[String]) -> Result<Player, String> {
        if fields.len() != COLUMNS.len() {
            return Err(format!(
                "expected {} fields ({}), got {}",
                COLUMNS.len(),
                COLUMNS.join(","),
                fields.len()
            ));
        }
        let text = |i: usize| -> Result<String, String> {
            let value = fields[i].trim();
            if value.is_empty() {
                Err(format!("missing {}", COLUMNS[i]))
            } else {
                Ok(value.to_owned())
            }
        };
        let count = |i: usize| -> Result<u32, String> {
            let value = text(i)?;
            match value.parse::<i64>() {
                Ok(n) if n < 0 => Err(format!("{} is negative: {n}", COLUMNS[i])),
                Ok(n) => u32::try_from(n).map_err(|_| format!("{} is too large: {n}", COLUMNS[i])),
                Err(_) => Err(format!("{} is not a whole number: {value:?}", COLUMNS[i])),
            }
        };
        let position = text(3)?;
        if !POSITIONS.contains(&position.as_str()) {
            return Err(format!(
                "unknown position {position:?} (expected one of {})",
                POSITIONS.join(", ")
            ));
        }
        Ok(Player {
            player_id: text(0)?,
            name: text(1)?,
            team: text(2)?,
            position,
            games: count(4)?,
            goals: count(5)?,
            assists: count(6)?,
        })
    }
}

// ---------------------------------------------------------------- the run

/// Import `opts.csv` into `opts.dir/players.db`: the rows not yet imported,
/// one task per row, through a chord run by a worker inside this process on
/// the embedded SQLite broker (`opts.dir/celeriac.db`). `progress(done,
/// total)` is called as rows finish.
///
/// # Errors
/// An unreadable CSV or a header other than [`COLUMNS`]; a database error;
/// the chord failing (a task panicked) or not finishing within
/// `opts.timeout`.
pub(crate) async fn run_import(
    opts: &Options,
    mut progress: impl FnMut(u64, u64),
) -> Result<Report, BoxError> {
    std::fs::create_dir_all(&opts.dir)
        .map_err(|e| format!("cannot create {}: {e}", opts.dir.display()))?;
    let db_path = opts.players_db();
    let db = db_path
        .to_str()
        .ok_or_else(|| format!("{} is not valid UTF-8", db_path.display()))?
        .to_owned();
    let conn = open(&db_path)?;
    create_schema(&conn)?;

    let rows = read_csv(&opts.csv)?;
    let imported = imported_rows(&conn)?;
    let todo: Vec<(u64, Vec<String>)> = rows
        .iter()
        .filter(|(line, fields)| imported.get(line) != Some(&raw(fields)))
        .cloned()
        .collect();
    let mut report = Report {
        rows_in_file: rows.len() as u64,
        skipped: (rows.len() - todo.len()) as u64,
        sent: todo.len() as u64,
        summary: None,
    };
    if todo.is_empty() {
        return Ok(report);
    }
    for (player_id, failures) in &opts.outages {
        conn.execute(
            "INSERT OR IGNORE INTO service_outages (player_id, failures_left) VALUES (?1, ?2)",
            params![player_id, failures],
        )?;
    }
    conn.execute(
        "INSERT INTO import_runs (started_at, rows_in_file, rows_sent) VALUES (?1, ?2, ?3)",
        params![now(), report.rows_in_file as i64, report.sent as i64],
    )?;
    let run = conn.last_insert_rowid();

    let url = format!("sqlite://{}", opts.dir.join("celeriac.db").display());
    let app = App::builder()
        .broker_url(&url)
        .backend_url(&url)
        .task(import_row)
        .task(summarize)
        .build()
        .await?;
    let worker = InProcessWorker::start(
        app.clone(),
        WorkerOptions {
            concurrency: opts.concurrency.max(1),
            ..WorkerOptions::default()
        },
    );
    let outcome = send_and_wait(&app, &conn, opts, &db, run, todo, &mut progress).await;
    worker.stop().await?;
    report.summary = Some(outcome?);
    Ok(report)
}

async fn send_and_wait(
    app: &App,
    conn: &Connection,
    opts: &Options,
    db: &str,
    run: i64,
    todo: Vec<(u64, Vec<String>)>,
    progress: &mut impl FnMut(u64, u64),
) -> Result<RunSummary, BoxError> {
    let total = todo.len() as u64;
    let header = todo
        .into_iter()
        .map(|(line, fields)| import_row::s(db.to_owned(), run, line, fields))
        .collect::<Result<Vec<Signature>, _>>()?;
    let body = summarize::sig().arg(db).arg(run);
    let sent = app
        .apply_signature(&celeriac::canvas::chord(header, body))
        .await?;
    let result = app.async_result(sent.id());
    let deadline = tokio::time::Instant::now() + opts.timeout;
    progress(0, total);
    // Poll for the progress bar; the result itself is read with `get`.
    while !result.ready().await? {
        let done: i64 = conn.query_row(
            "SELECT count(*) FROM player_rows WHERE run = ?1",
            params![run],
            |r| r.get(0),
        )?;
        progress((done as u64).min(total), total);
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("run {run} did not finish within {:?}", opts.timeout).into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    progress(total, total);
    let value = result.get(Duration::from_secs(5)).await?;
    Ok(serde_json::from_value(value)?)
}

/// The CSV's data rows with their line numbers. Every row is kept, however
/// malformed (validating it is the task's job); the header must be
/// [`COLUMNS`].
///
/// # Errors
/// The file cannot be read, is not CSV, or has another header.
pub(crate) fn read_csv(path: &Path) -> Result<Vec<(u64, Vec<String>)>, BoxError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_path(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let header: Vec<String> = reader
        .byte_headers()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .iter()
        .map(|f| String::from_utf8_lossy(f).trim().to_owned())
        .collect();
    if header != COLUMNS {
        return Err(format!(
            "{}: expected the header {:?}, found {header:?}",
            path.display(),
            COLUMNS.join(",")
        )
        .into());
    }
    let mut rows = Vec::new();
    for record in reader.byte_records() {
        let record = record.map_err(|e| format!("{}: {e}", path.display()))?;
        let line = record.position().map_or(0, |p| p.line());
        let fields = record
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        rows.push((line, fields));
    }
    Ok(rows)
}

/// Lines already imported, with the raw fields they were imported from.
fn imported_rows(conn: &Connection) -> rusqlite::Result<HashMap<u64, String>> {
    let mut stmt = conn.prepare("SELECT line, raw FROM player_rows WHERE status = 'ok'")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))?;
    rows.collect()
}

/// The fields as stored in `player_rows.raw` (a JSON array).
fn raw(fields: &[String]) -> String {
    serde_json::Value::from(fields.to_vec()).to_string()
}

/// Open the application database (WAL, waiting up to 10 s for a lock).
pub(crate) fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    Ok(conn)
}

fn create_schema(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS players (
           player_id TEXT PRIMARY KEY, name TEXT NOT NULL, team TEXT NOT NULL,
           position TEXT NOT NULL, games INTEGER NOT NULL, goals INTEGER NOT NULL,
           assists INTEGER NOT NULL, line INTEGER NOT NULL, run INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS player_rows (
           line INTEGER PRIMARY KEY, raw TEXT NOT NULL, player_id TEXT,
           status TEXT NOT NULL CHECK (status IN ('ok', 'failed')), reason TEXT,
           attempts INTEGER NOT NULL, run INTEGER NOT NULL, updated_at TEXT NOT NULL);
         CREATE INDEX IF NOT EXISTS player_rows_run ON player_rows (run);
         CREATE TABLE IF NOT EXISTS row_attempts (
           run INTEGER NOT NULL, line INTEGER NOT NULL, attempt INTEGER NOT NULL,
           at TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS import_runs (
           run INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL,
           rows_in_file INTEGER NOT NULL, rows_sent INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS import_summaries (
           id INTEGER PRIMARY KEY AUTOINCREMENT, run INTEGER NOT NULL,
           finished_at TEXT NOT NULL, succeeded INTEGER NOT NULL, failed INTEGER NOT NULL,
           failures TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS service_outages (
           player_id TEXT PRIMARY KEY, failures_left INTEGER NOT NULL);",
    )
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

/// A worker inside this process, stopped by a oneshot (as
/// `celeriac demo` runs one).
struct InProcessWorker {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<celeriac::Result<()>>,
}

impl InProcessWorker {
    fn start(app: App, options: WorkerOptions) -> InProcessWorker {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(Worker::new(app, options).run(async move {
            let _ = stopped.await;
        }));
        InProcessWorker {
            stop: Some(stop),
            handle,
        }
    }

    async fn stop(mut self) -> Result<(), BoxError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.handle).await??;
        Ok(())
    }
}

impl Drop for InProcessWorker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
