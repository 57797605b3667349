//! `celeriac beat`: send periodic tasks from a schedule file.
//!
//! 1. Read and check the schedule file ([`celeriac::beat::load_file`]; its
//!    format is documented in `celeriac::beat::config`).
//! 2. `--list`: print each entry with its schedule, last run (as recorded
//!    by any beat on this broker) and next run, then exit.
//! 3. Otherwise run the beat until SIGINT/SIGTERM. Start as many as you
//!    like against one broker, on one host or many: each run is sent once.
//! 4. [`spawn_embedded`]: the same beat inside `celeriac worker -B`.
//! 5. `--reload`: run under [`crate::reload`] (a changed schedule file or
//!    source rebuilds and restarts the beat; its claims are atomic, so a
//!    restart never sends a run twice).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use celeriac::beat::{self, BeatOptions, EntryStatus, ScheduleEntry};
use celeriac::shutdown::Shutdown;
use celeriac::App;
use chrono::{DateTime, Utc};

use crate::config::{Config, ConnectionArgs};
use crate::reload::ReloadArgs;

/// Arguments of `celeriac beat`.
#[derive(Debug, clap::Args)]
pub(crate) struct BeatArgs {
    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,

    /// Schedule file: TOML with [[schedule]] tables (name, task, every/cron/at, args…)
    #[arg(short = 's', long, value_name = "FILE", env = "CELERIAC_BEAT_SCHEDULE")]
    pub(crate) schedule: PathBuf,

    /// Print the entries with their last and next run times, then exit
    #[arg(long)]
    pub(crate) list: bool,

    /// Largest random delay added to each wake-up, in milliseconds, so that
    /// beats sharing a broker do not all claim at once [default: 100]
    #[arg(long, value_name = "MS")]
    pub(crate) max_jitter: Option<u64>,

    #[command(flatten)]
    pub(crate) reload: ReloadArgs,
}

/// Run `celeriac beat` (with `--reload`, under a supervisor).
pub(crate) fn start(args: BeatArgs) -> anyhow::Result<()> {
    if args.reload.reload && !args.list {
        return crate::reload::supervise(&args.reload, "beat");
    }
    crate::block_on(run(args))
}

/// Run `celeriac beat`.
async fn run(args: BeatArgs) -> anyhow::Result<()> {
    let entries = load(&args.schedule)?;
    let cfg = Config::from_args(&args.connection)?;
    let app = cfg.connect(|builder| builder).await?;
    if args.list {
        let statuses = beat::status(&app, &entries, Utc::now())
            .await
            .context("reading the beat's state")?;
        print!("{}", format_list(&statuses, Utc::now()));
        return Ok(());
    }
    let mut options = BeatOptions::default();
    if let Some(ms) = args.max_jitter {
        options.max_jitter = Duration::from_millis(ms);
    }
    tracing::info!(
        broker = %cfg.broker_display(),
        schedule = %args.schedule.display(),
        entries = entries.len(),
        "starting beat"
    );
    beat::run(app, entries, options, crate::reload::stop_requested())
        .await
        .context("running the beat")
}

/// Read and check a schedule file; an empty one is allowed but warned of.
///
/// # Errors
/// When the file cannot be read or an entry is invalid (the message names
/// the file, the entry and the field).
pub(crate) fn load(path: &Path) -> anyhow::Result<Vec<ScheduleEntry>> {
    let entries = beat::load_file(path)?;
    beat::validate(&entries)?;
    if entries.is_empty() {
        tracing::warn!(schedule = %path.display(), "the schedule has no [[schedule]] entries");
    }
    Ok(entries)
}

/// Start a beat for `schedule` inside a worker process (`celeriac worker
/// -B`), stopping with the worker's `shutdown`. The file is read before
/// anything starts, so a bad file fails the worker at once.
///
/// # Errors
/// As [`load`].
pub(crate) fn spawn_embedded(
    app: &App,
    schedule: &Path,
    shutdown: Shutdown,
) -> anyhow::Result<tokio::task::JoinHandle<Result<(), beat::BeatError>>> {
    let entries = load(schedule)?;
    tracing::info!(schedule = %schedule.display(), entries = entries.len(), "starting embedded beat");
    Ok(beat::spawn(
        app.clone(),
        entries,
        BeatOptions::default(),
        shutdown,
    ))
}

/// The `--list` table.
fn format_list(statuses: &[EntryStatus], now: DateTime<Utc>) -> String {
    let mut rows = vec![[
        "NAME".to_owned(),
        "TASK".to_owned(),
        "SCHEDULE".to_owned(),
        "LAST RUN".to_owned(),
        "NEXT RUN".to_owned(),
    ]];
    for s in statuses {
        let last = match &s.last_run {
            Some(last) if last.task_id.is_some() => time(last.tick),
            Some(_) | None => "never".to_owned(),
        };
        let next = match s.next_run {
            None => "no more runs".to_owned(),
            Some(at) if at <= now => format!("{} (overdue: sent when a beat runs)", time(at)),
            Some(at) => format!("{} (in {})", time(at), until(at - now)),
        };
        rows.push([
            s.name.clone(),
            s.task.clone(),
            s.schedule.clone(),
            last,
            next,
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `3d4h`, `4m12s`, `9s`: the two largest units.
fn until(d: chrono::Duration) -> String {
    let secs = d.num_seconds().max(0);
    let parts = [
        (secs / 86_400, "d"),
        (secs % 86_400 / 3600, "h"),
        (secs % 3600 / 60, "m"),
        (secs % 60, "s"),
    ];
    let first = parts.iter().position(|(n, _)| *n > 0).unwrap_or(3);
    parts[first..]
        .iter()
        .take(2)
        .filter(|(n, _)| *n > 0 || first == 3)
        .map(|(n, u)| format!("{n}{u}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_until_the_next_run_read_short() {
        assert_eq!(until(chrono::Duration::seconds(9)), "9s");
        assert_eq!(until(chrono::Duration::seconds(252)), "4m12s");
        assert_eq!(
            until(chrono::Duration::seconds(3 * 86_400 + 4 * 3600 + 5)),
            "3d4h"
        );
        assert_eq!(until(chrono::Duration::seconds(3600)), "1h");
        assert_eq!(until(chrono::Duration::zero()), "0s");
    }
}
