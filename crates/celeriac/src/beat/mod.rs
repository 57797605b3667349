//! Beat: periodic tasks, safe to run in many processes at once.
//!
//! Celery's beat sends each periodic task when it is due, and must run
//! exactly once in a deployment: two beats send every run twice, and when
//! the one beat dies nothing is sent. This beat has neither problem: run one
//! per host (or inside each worker with `celeriac worker -B`) and every run
//! is sent exactly once while any of them is alive.
//!
//! # How it works
//!
//! 1. **Deterministic ticks.** A [`Schedule`] maps a time to the next *tick*,
//!    the instant a run is due: multiples of the interval since the epoch,
//!    crontab matches in a time zone, or a one-off time. Every beat computes
//!    the same ticks, so "the run of 12:05" means the same thing everywhere.
//! 2. **A claim per run.** When a tick is due, a beat *claims* it in the
//!    shared store with one atomic compare-and-set: "if this entry's stored
//!    tick is older than T, store T". Exactly one claim per tick succeeds;
//!    only the winner sends. No leader, no lease, no takeover delay: if a
//!    beat dies, the others claim the next tick as if nothing happened.
//! 3. **State follows the broker URL.** `redis://` keeps each entry's last
//!    tick in the hash `<key_prefix>celeriac.beat.<entry name>`; `sqlite://`
//!    in the table `celeriac_beat` of the same file; `memory://` in this
//!    process. A restarted beat resumes from the stored tick, so it neither
//!    repeats a run nor skips one.
//! 4. **Missed runs** (all beats down, store unreachable) are sent *once*,
//!    for the latest missed tick, or skipped: [`CatchUp`]. A new entry
//!    starts from the moment it is first seen: ticks before that are not
//!    due, so a one-off whose time passed before any beat saw it never runs.
//! 5. **Sleeping.** Each beat sleeps until the earliest next tick plus a
//!    random jitter (default up to 100 ms; [`BeatOptions::max_jitter`]), so
//!    beats do not hit the store in lockstep, and wakes at once on shutdown.
//!
//! # Claim, then send: what a crash can do
//!
//! With Redis and SQLite brokers (built from the URL), the claim and the
//! message are one atomic step: a Lua script that compares, sets and
//! `LPUSH`es, or one transaction that updates `celeriac_beat` and inserts the
//! message. A beat killed at any point has either sent the run and recorded
//! it, or done neither (and another beat, or this one on restart, sends it).
//! That is exactly-once sending, not merely at-most-once.
//!
//! Where the store cannot publish (the memory broker, or an [`App`] given a
//! broker object instead of a URL) the beat claims first and then publishes
//! through the app's broker, retrying a few times. We chose this order
//! (at-most-once) over publish-then-claim (at-least-once) because sending
//! before claiming would let every beat send every run. A run lost in that
//! window is logged as an error with its task id, never silently.
//!
//! Each run's task id is a UUID v5 of the entry name and tick, and its
//! message carries a [`BEAT_HEADER`] header `{"entry", "tick"}`, so a
//! duplicate could be seen and every run can be traced to its tick.
//!
//! # Declaring entries
//!
//! In code (Celery's `app.add_periodic_task(...)`, or `beat_schedule`):
//!
//! ```
//! use celeriac::beat::{Beat, Schedule, ScheduleEntry};
//! use celeriac::App;
//! use std::time::Duration;
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let app = App::builder().broker_url("memory://beat-doc").backend_url("memory://beat-doc").build().await?;
//! let beat = Beat::new(app)
//!     .entry(ScheduleEntry::new("tick", "tasks.tick", Schedule::every(Duration::from_secs(10))?))
//!     .entry(ScheduleEntry::new("nightly", "tasks.report", Schedule::cron("0 3 * * *", "Europe/Berlin")?));
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let running = tokio::spawn(beat.run(async move { let _ = stopped.await; }));
//! let _ = stop.send(());
//! running.await??;
//! # Ok(()) }
//! ```
//!
//! Or in a TOML file read by [`load_file`] (the format is documented in
//! [`config`]), for `celeriac beat --schedule FILE`.
//!
//! # Layout
//! - [`schedule`]: intervals, one-off, and the tick arithmetic; [`crontab`]:
//!   cron expressions in a time zone, daylight-saving rules.
//! - `entry`: [`ScheduleEntry`], [`CatchUp`]; `template`: `{now-24h}` in
//!   arguments.
//! - `scheduler`: the loop; `store*`: last-run state and the claim.
//! - [`config`]: the TOML file.

pub mod config;
pub mod crontab;
mod entry;
mod error;
pub mod schedule;
mod scheduler;
mod store;
mod store_memory;
#[cfg(feature = "redis")]
mod store_redis;
#[cfg(feature = "sqlite")]
mod store_sqlite;
mod template;

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use config::load_file;
pub use crontab::Crontab;
pub use entry::{CatchUp, ScheduleEntry, BEAT_HEADER};
pub use error::BeatError;
pub use schedule::{parse_duration, Schedule};
pub use scheduler::Clock;
pub use store::LastRun;
pub use template::{render as render_templates, TIME_FORMAT};

use crate::shutdown::Shutdown;
use crate::App;

/// How a beat runs.
#[derive(Debug, Clone)]
pub struct BeatOptions {
    /// Largest random delay added to each wake-up (default 100 ms), so that
    /// beats sharing a store spread their claims. Zero disables it.
    pub max_jitter: Duration,
    /// With [`CatchUp::Skip`], a run whose tick is older than this when a
    /// beat gets to it counts as missed and is not sent (default 30 s).
    pub grace: Duration,
    /// Where "now" comes from (default: the system clock).
    pub clock: Clock,
}

impl Default for BeatOptions {
    fn default() -> Self {
        BeatOptions {
            max_jitter: Duration::from_millis(100),
            grace: Duration::from_secs(30),
            clock: Clock::system(),
        }
    }
}

/// A beat: an app and its periodic entries.
pub struct Beat {
    app: App,
    entries: Vec<ScheduleEntry>,
    options: BeatOptions,
}

impl Beat {
    /// A beat with no entries for `app`.
    pub fn new(app: App) -> Self {
        Beat {
            app,
            entries: Vec::new(),
            options: BeatOptions::default(),
        }
    }

    /// Add an entry (Celery's `add_periodic_task`). Names must be unique;
    /// this is checked when the beat starts.
    #[doc(alias = "add_periodic_task")]
    pub fn entry(mut self, entry: ScheduleEntry) -> Self {
        self.entries.push(entry);
        self
    }

    /// Add many entries, e.g. from [`load_file`].
    pub fn extend(mut self, entries: impl IntoIterator<Item = ScheduleEntry>) -> Self {
        self.entries.extend(entries);
        self
    }

    /// Replace the options.
    pub fn options(mut self, options: BeatOptions) -> Self {
        self.options = options;
        self
    }

    /// The entries.
    pub fn entries(&self) -> &[ScheduleEntry] {
        &self.entries
    }

    /// Run until `shutdown` resolves. See [`run`].
    ///
    /// # Errors
    /// As [`run`].
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), BeatError> {
        run(self.app, self.entries, self.options, shutdown).await
    }

    /// Run on a spawned task until `shutdown` fires. See [`spawn`].
    pub fn spawn(self, shutdown: Shutdown) -> tokio::task::JoinHandle<Result<(), BeatError>> {
        spawn(self.app, self.entries, self.options, shutdown)
    }
}

/// Check entries before running: each valid, names unique.
///
/// # Errors
/// [`BeatError::Entry`] for the first invalid entry.
pub fn validate(entries: &[ScheduleEntry]) -> Result<(), BeatError> {
    for (i, entry) in entries.iter().enumerate() {
        entry.validate()?;
        if entries[..i].iter().any(|e| e.name() == entry.name()) {
            return Err(BeatError::entry(entry.name(), "two entries have this name"));
        }
    }
    Ok(())
}

/// Send `entries`' runs for `app` until `shutdown` resolves.
///
/// # Errors
/// Only at start: an invalid entry, or a store that cannot be opened (an
/// unknown broker scheme, Redis unreachable). Later store and broker errors
/// are logged and retried, never fatal.
pub async fn run(
    app: App,
    entries: Vec<ScheduleEntry>,
    options: BeatOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BeatError> {
    run_until(app, entries, options, Shutdown::from_future(shutdown)).await
}

/// As [`run`], with a [`Shutdown`] shared with other components (a worker).
///
/// # Errors
/// As [`run`].
pub async fn run_until(
    app: App,
    entries: Vec<ScheduleEntry>,
    options: BeatOptions,
    shutdown: Shutdown,
) -> Result<(), BeatError> {
    validate(&entries)?;
    let store = store::open(&app).await?;
    scheduler::Scheduler::new(app, store, entries, options)
        .run(shutdown)
        .await;
    Ok(())
}

/// Run a beat on a spawned task, e.g. inside a worker process (`celeriac
/// worker -B`), sharing the worker's [`Shutdown`].
pub fn spawn(
    app: App,
    entries: Vec<ScheduleEntry>,
    options: BeatOptions,
    shutdown: Shutdown,
) -> tokio::task::JoinHandle<Result<(), BeatError>> {
    tokio::spawn(run_until(app, entries, options, shutdown))
}

/// An entry's state, as `celeriac beat --list` shows it.
#[derive(Debug, Clone)]
pub struct EntryStatus {
    /// The entry's name.
    pub name: String,
    /// The task it sends.
    pub task: String,
    /// The schedule, described (`every 5m`, `cron "0 3 * * *" (UTC)`).
    pub schedule: String,
    /// The last run recorded by any beat, if any.
    pub last_run: Option<LastRun>,
    /// The tick of the next run; at or before `now` when a run is overdue
    /// (it is sent as soon as a beat runs). `None` when there are no more.
    pub next_run: Option<DateTime<Utc>>,
}

/// The state of each entry at `now`, read from the store.
///
/// # Errors
/// When the store cannot be opened or read.
pub async fn status(
    app: &App,
    entries: &[ScheduleEntry],
    now: DateTime<Utc>,
) -> Result<Vec<EntryStatus>, BeatError> {
    let store = store::open(app).await?;
    let grace = BeatOptions::default().grace;
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let last_run = store.last(entry.name()).await?;
        let schedule = entry.schedule();
        let next_run = match &last_run {
            None => schedule.next_after(now),
            Some(last) => match schedule.latest_due(last.tick, now) {
                Some(due)
                    if entry.catch_up_policy() == CatchUp::Once
                        || (now - due).to_std().unwrap_or_default() <= grace =>
                {
                    Some(due)
                }
                _ => schedule.next_after(now.max(last.tick)),
            },
        };
        out.push(EntryStatus {
            name: entry.name().to_owned(),
            task: entry.task().to_owned(),
            schedule: schedule.to_string(),
            last_run,
            next_run,
        });
    }
    Ok(out)
}
