//! Seeding the posts database from normalized ContentItem JSON Lines, with a
//! simulated user pool (the original `seed_post_db.py`).
//!
//! 1. [`SeedOptions`]: every flag of `post-history seed`, with the defaults of
//!    the original (500 users, 1 session per day, 10 items per session,
//!    activity `1:1`, platforms `auto`).
//! 2. [`seed`]: load and check the input, plan the feeds (`pool.rs`), write
//!    the rows (`writer.rs`). Deterministic: the same options, input and `now`
//!    give a byte-identical database file.
//! 3. [`ensure_demo_database`]: generate, preprocess and seed a database when
//!    there is none (for `post-history demo`).
//!
//! # The user pool
//! Users get a platform (shares follow `--platform-distribution`; `auto` = in
//! proportion to each platform's items, so every platform's feeds span about
//! the same time) and an activity level `a` (drawn from
//! `--activity-distribution`). See `pool.rs` for how sessions and timestamps
//! are made. **User count tolerance:** the database holds at most `n_users`
//! distinct users, exactly `n_users` when every user is accepted at least
//! once — always so with a single activity level and at least `n_users`
//! sessions. With mixed levels, a user of level `a` whose platform needs `R`
//! round-robin rounds is missing with probability `(1 − a/max)^R`;
//! [`SeedReport::users_with_sessions`] says how many made it.
//!
//! # Without a user pool
//! `--no-user-pool`: one "super-feed" session per platform holding all of its
//! items in file order, by one user whose id is `sha256("test_user" + salt)`;
//! items keep their timestamps; the session time is the platform's newest item.

mod batch;
mod distribution;
mod input;
mod line;
mod pool;
mod writer;

pub use distribution::{ActivityDistribution, DistributionError, PlatformDistribution};
pub use pool::PoolUser;

use crate::db;
use crate::models::datetime::format_db;
use crate::models::Platform;
use crate::raw::{self, RawError};
use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to do when the database already has a `posts` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IfExists {
    /// Refuse, touching nothing (no flag).
    #[default]
    Fail,
    /// Drop the table and start over (`--drop-table`).
    Drop,
    /// Update rows with the same `(post_id, session_user_id)`, insert the rest (`--upsert`).
    Upsert,
}

/// Options of [`seed`]; the defaults are the original seeder's.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    /// Directory of the normalized `<platform>.jsonl` files.
    pub data_dir: PathBuf,
    /// The database file.
    pub db_path: PathBuf,
    /// Number of simulated users.
    pub n_users: usize,
    /// Sessions per day of a user of activity 1.
    pub baseline_sessions_per_day: f64,
    /// Items per session.
    pub items_per_session: usize,
    /// Activity level → share of users.
    pub activity: ActivityDistribution,
    /// Platform → share of users.
    pub platforms: PlatformDistribution,
    /// Simulate a user pool (`false` = `--no-user-pool`).
    pub user_pool: bool,
    /// What to do with an existing table.
    pub if_exists: IfExists,
    /// Random seed.
    pub seed: u64,
    /// Salt of the test user's and the simulated users' ids.
    pub salt: String,
    /// Draw a progress bar on stderr (pass `stderr().is_terminal()`).
    pub progress: bool,
}

impl Default for SeedOptions {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data/normalized"),
            db_path: PathBuf::from("posts.db"),
            n_users: 500,
            baseline_sessions_per_day: 1.0,
            items_per_session: 10,
            activity: ActivityDistribution::default(),
            platforms: PlatformDistribution::Auto,
            user_pool: true,
            if_exists: IfExists::Fail,
            seed: 0,
            salt: raw::DEFAULT_SALT.to_string(),
            progress: false,
        }
    }
}

/// Why seeding failed. Nothing is written unless the error is [`SeedError::Db`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeedError {
    /// An option is out of range.
    #[error("{0}")]
    InvalidOption(String),
    /// A distribution flag does not parse.
    #[error(transparent)]
    Distribution(#[from] DistributionError),
    /// Input files are missing.
    #[error("missing input file{}: {} (run `post-history preprocess` first, or leave {} out of --platform-distribution)",
        if .0.len() > 1 { "s" } else { "" },
        .0.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        if .0.len() > 1 { "those platforms" } else { "that platform" })]
    MissingInput(Vec<PathBuf>),
    /// An input file is malformed.
    #[error(transparent)]
    Input(#[from] RawError),
    /// The table exists and neither `--drop-table` nor `--upsert` was given.
    #[error("table `posts` already exists in {0}; pass --drop-table to replace it or --upsert to update it (nothing was changed)")]
    TableExists(PathBuf),
    /// SQLite failed.
    #[error("posts database {path}: {source}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
}

/// Per-platform outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformSeed {
    /// The platform.
    pub platform: Platform,
    /// Items written.
    pub items: usize,
    /// Users assigned to the platform.
    pub users: usize,
    /// Sessions made.
    pub sessions: usize,
    /// Oldest session.
    pub first_session: Option<DateTime<Utc>>,
    /// Newest session.
    pub last_session: Option<DateTime<Utc>>,
}

/// What [`seed`] did.
#[derive(Debug, Clone)]
pub struct SeedReport {
    /// The database file.
    pub db_path: PathBuf,
    /// Rows inserted.
    pub rows_inserted: u64,
    /// Rows updated in place (`--upsert`).
    pub rows_updated: u64,
    /// Per platform.
    pub platforms: Vec<PlatformSeed>,
    /// The simulated users (empty with `--no-user-pool`).
    pub users: Vec<PoolUser>,
    /// Distinct users with at least one session (1 with `--no-user-pool`).
    pub users_with_sessions: usize,
    /// Time spent writing rows.
    pub write_time: Duration,
    /// Total time.
    pub total_time: Duration,
}

impl SeedReport {
    /// Rows written per second of write time.
    pub fn rows_per_sec(&self) -> f64 {
        (self.rows_inserted + self.rows_updated) as f64 / self.write_time.as_secs_f64().max(1e-9)
    }
}

/// The test user's id: `sha256("test_user" + salt)`, hex.
pub fn test_user_id(salt: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"test_user");
    h.update(salt.as_bytes());
    hex::encode(h.finalize())
}

/// Seeds `opts.db_path` from `opts.data_dir`, with `now` as the current time
/// (the user pool's feeds end near it; pass `Utc::now()` in production and a
/// fixed time in tests).
///
/// # Errors
/// [`SeedError`]: bad options, missing or malformed input, an existing table
/// without `--drop-table`/`--upsert` (nothing touched), or SQLite failing.
pub fn seed(opts: &SeedOptions, now: DateTime<Utc>) -> Result<SeedReport, SeedError> {
    let started = Instant::now();
    if opts.items_per_session == 0 {
        return Err(SeedError::InvalidOption(
            "--items-per-session must be at least 1".into(),
        ));
    }
    if opts.user_pool && opts.n_users == 0 {
        return Err(SeedError::InvalidOption(
            "--n-users must be at least 1".into(),
        ));
    }
    if !(opts.baseline_sessions_per_day.is_finite() && opts.baseline_sessions_per_day > 0.0) {
        return Err(SeedError::InvalidOption(
            "--baseline-sessions-per-day must be a positive number".into(),
        ));
    }
    // 1. Input: every platform in use must have its file.
    let used: Vec<Platform> = Platform::ALL
        .into_iter()
        .filter(|p| opts.platforms.weight(*p).is_none_or(|w| w > 0.0))
        .collect();
    let missing: Vec<PathBuf> = used
        .iter()
        .map(|p| opts.data_dir.join(raw::normalized_file(*p)))
        .filter(|p| !p.is_file())
        .collect();
    if !missing.is_empty() {
        return Err(SeedError::MissingInput(missing));
    }
    // The files, parsed in parallel (`input.rs`); the items borrow `buffers`.
    let mut buffers = Vec::new();
    let parsed = input::read_files(&opts.data_dir, &used, opts.user_pool, &mut buffers)?;
    let items: Vec<(Platform, input::FileItems<'_>)> = used.iter().copied().zip(parsed).collect();
    let total: usize = items.iter().map(|i| i.1.items.len()).sum();

    // 2. Plan.
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut users: Vec<PoolUser> = Vec::new();
    let mut plans: Vec<Vec<pool::PlannedRow>> = Vec::new();
    let mut platforms = Vec::new();
    if opts.user_pool {
        let weights: Vec<(Platform, f64)> = items
            .iter()
            .map(|(p, v)| {
                (
                    *p,
                    opts.platforms.weight(*p).unwrap_or(v.items.len() as f64),
                )
            })
            .collect();
        users = pool::draw_users(&mut rng, opts.n_users, &weights, &opts.activity, &opts.salt);
        let shape = pool::Shape {
            items_per_session: opts.items_per_session,
            baseline_per_day: opts.baseline_sessions_per_day,
            max_activity: opts.activity.max_level(),
            now: now.timestamp(),
        };
        for (p, v) in &items {
            let members: Vec<usize> = (0..users.len())
                .filter(|&u| users[u].platform == *p)
                .collect();
            let rows = pool::plan_platform(&mut rng, &mut users, &members, v.items.len(), shape);
            let ts = |r: Option<&pool::PlannedRow>| {
                r.and_then(|r| DateTime::from_timestamp(r.session_ts, 0))
            };
            platforms.push(PlatformSeed {
                platform: *p,
                items: rows.len(),
                users: members.len(),
                sessions: members.iter().map(|&u| users[u].sessions).sum(),
                first_session: ts(rows.first()),
                last_session: ts(rows.last()),
            });
            plans.push(rows);
        }
    } else {
        for (p, v) in &items {
            let newest = v.items.iter().map(|i| i.created_at).max();
            platforms.push(PlatformSeed {
                platform: *p,
                items: v.items.len(),
                users: 1,
                sessions: usize::from(!v.items.is_empty()),
                first_session: newest,
                last_session: newest,
            });
        }
    }

    // 3. Write: this thread packs rows into batches while a second one
    //    inserts them.
    let test_user = test_user_id(&opts.salt);
    let write_started = Instant::now();
    let feed = Feed {
        items: &items,
        plans: &plans,
        users: &users,
        test_user: &test_user,
        user_pool: opts.user_pool,
    };
    let (inserted, updated) = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<batch::RowBatch>(4);
        let (path, mode, progress) = (&opts.db_path, opts.if_exists, opts.progress);
        let writer = scope.spawn(move || writer::load(path, mode, total as u64, progress, rx));
        feed.produce(&tx);
        drop(tx);
        writer.join().unwrap_or_else(|_| {
            Err(SeedError::InvalidOption(
                "the database writer thread panicked".into(),
            ))
        })
    })?;
    let write_time = write_started.elapsed();
    let users_with_sessions = if opts.user_pool {
        users.iter().filter(|u| u.sessions > 0).count()
    } else {
        usize::from(total > 0)
    };
    Ok(SeedReport {
        db_path: opts.db_path.clone(),
        rows_inserted: inserted,
        rows_updated: updated,
        platforms,
        users,
        users_with_sessions,
        write_time,
        total_time: started.elapsed(),
    })
}

fn from_secs(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap_or_default()
}

/// Everything the producing thread needs to make the rows.
struct Feed<'a, 'b> {
    items: &'a [(Platform, input::FileItems<'b>)],
    plans: &'a [Vec<pool::PlannedRow>],
    users: &'a [PoolUser],
    test_user: &'a str,
    user_pool: bool,
}

impl Feed<'_, '_> {
    /// Makes every row, in order, into batches sent to `tx`. Stops quietly
    /// when the receiver is gone (the writer failed and says why).
    ///
    /// A row's `post_blob` is `serde_json::to_string` of its item with the
    /// row's `created_at`: the item's serialization with the new time
    /// spliced in (see `input.rs`).
    fn produce(self, tx: &std::sync::mpsc::SyncSender<batch::RowBatch>) {
        let mut out = batch::RowBatch::with_capacity(batch::BATCH_ROWS);
        let send = |out: &mut batch::RowBatch, force: bool| -> bool {
            if out.len() < batch::BATCH_ROWS && !(force && out.len() > 0) {
                return true;
            }
            let full = std::mem::replace(out, batch::RowBatch::with_capacity(batch::BATCH_ROWS));
            tx.send(full).is_ok()
        };
        for (k, (platform, v)) in self.items.iter().enumerate() {
            let pname = platform.as_str();
            if self.user_pool {
                let mut session = (i64::MIN, String::new());
                for r in &self.plans[k] {
                    let item = &v.items[v.by_time[r.item]];
                    if r.session_ts != session.0 {
                        session = (r.session_ts, format_db(&from_secs(r.session_ts)));
                    }
                    let created_at = input::Stamp::new(&from_secs(r.created_at));
                    let (before, after) = item.around_created_at();
                    out.push(
                        &item.id,
                        &session.1,
                        &self.users[r.user].user_id,
                        &item.author_name_hash,
                        |buf| created_at.push(buf, ' '),
                        pname,
                        item.kind.as_str(),
                        |buf| {
                            buf.push_str(before);
                            created_at.push(buf, 'T');
                            buf.push('Z');
                            buf.push_str(after);
                        },
                    );
                    if !send(&mut out, false) {
                        return;
                    }
                }
            } else {
                let session = v
                    .items
                    .iter()
                    .map(|i| i.created_at)
                    .max()
                    .map(|t| format_db(&t))
                    .unwrap_or_default();
                for item in &v.items {
                    out.push(
                        &item.id,
                        &session,
                        self.test_user,
                        &item.author_name_hash,
                        |buf| input::Stamp::new(&item.created_at).push(buf, ' '),
                        pname,
                        item.kind.as_str(),
                        |buf| buf.push_str(item.json()),
                    );
                    if !send(&mut out, false) {
                        return;
                    }
                }
            }
        }
        send(&mut out, true);
    }
}

/// The seed `post-history demo` uses for its sample data and user pool.
pub const DEMO_SEED: u64 = 42;

/// Makes sure a demo posts database exists at `db_path`: when the file is
/// absent or has no `posts` table, generates sample data (seed
/// [`DEMO_SEED`], 20,000 items) under `work_dir/raw`, preprocesses it into
/// `work_dir/normalized` with the default salt, and seeds `db_path` with the
/// default user pool ending at the current time. Returns `None` when a
/// `posts` table was already there (nothing is touched).
///
/// # Errors
/// Any error of [`crate::sample::generate`], [`raw::preprocess`] or [`seed`].
pub fn ensure_demo_database(db_path: &Path, work_dir: &Path) -> anyhow::Result<Option<SeedReport>> {
    use anyhow::Context;
    if db_path.is_file() {
        let conn = db::open_read_only(db_path)?;
        if db::posts_table_exists(&conn)
            .with_context(|| format!("reading {}", db_path.display()))?
        {
            return Ok(None);
        }
    }
    let raw_dir = work_dir.join("raw");
    let norm_dir = work_dir.join("normalized");
    crate::sample::generate(
        &raw_dir,
        &crate::sample::SampleOptions {
            seed: DEMO_SEED,
            ..Default::default()
        },
    )?;
    raw::preprocess(&raw_dir, &norm_dir, &raw::PreprocessOptions::default())?;
    if let Some(parent) = db_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let opts = SeedOptions {
        data_dir: norm_dir,
        db_path: db_path.to_path_buf(),
        seed: DEMO_SEED,
        ..Default::default()
    };
    Ok(Some(seed(&opts, Utc::now())?))
}
