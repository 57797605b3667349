//! `celeriac events`: watch worker and task events as they happen, as
//! `celery events` does.
//!
//! 1. Subscribe to the app's event bus (Celery's `celeryev` on Redis, so
//!    Python Celery workers show too; the events table of a SQLite file).
//!    Remote control traffic on the bus is skipped.
//! 2. `--dump` ([`dump`]): one line per event as `celery events --dump`
//!    prints it (or, with `--json`, the event's fields as one JSON object
//!    per line, the starting banner then on stderr), flushed as it comes,
//!    until SIGINT/SIGTERM.
//! 3. Otherwise the live view ([`top`]): workers and the most recent tasks,
//!    redrawn every `--frequency` seconds. On a terminal the screen is
//!    cleared before each frame; written to a pipe or file, a frame is
//!    printed only when something changed.
//!
//! Task events come only from workers that send them: started with `-E`,
//! or after `celeriac control enable_events` (`celeriac serve` sends it
//! too).

mod dump;
mod top;

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use celeriac::printable;
use celeriac::shutdown::Shutdown;
use futures::StreamExt;

use crate::config::{Config, ConnectionArgs};

/// Arguments of `celeriac events`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    celeriac events                 live table of workers and recent tasks\n  \
    celeriac events --dump          one line per event (as celery events --dump)\n  \
    celeriac events --dump --json   one JSON object per event\n\n\
    Task events come only from workers started with -E, or after \
    `celeriac control enable_events`. Runs until Ctrl-C (SIGINT) or SIGTERM.")]
pub(crate) struct EventsArgs {
    /// Print each event as one line instead of the live view
    #[arg(short = 'd', long)]
    dump: bool,

    /// With --dump: print each event's fields as one JSON object per line
    #[arg(short = 'j', long, requires = "dump")]
    json: bool,

    /// Seconds between two redraws of the live view
    #[arg(
        short = 'F',
        long,
        alias = "freq",
        value_name = "SECONDS",
        default_value_t = 1.0
    )]
    frequency: f64,

    /// Tasks shown in the live view, most recent first
    #[arg(long, value_name = "N", default_value_t = 20)]
    limit: usize,

    #[command(flatten)]
    connection: ConnectionArgs,
}

/// `celeriac events`.
pub(crate) async fn run(args: EventsArgs) -> anyhow::Result<()> {
    if !args.frequency.is_finite() || args.frequency < 0.1 || args.frequency > 3600.0 {
        bail!(
            "--frequency must be a number of seconds from 0.1 to 3600, got {}",
            args.frequency
        );
    }
    if args.limit == 0 {
        bail!("--limit must be at least 1");
    }
    let config = Config::from_args(&args.connection)?;
    let app = config.connect(|b| b).await?;
    let broker = config.broker_display();
    let mut events = app
        .events()
        .subscribe()
        .await
        .with_context(|| format!("listening for events on {broker}"))?;
    let mut shutdown = Shutdown::from_future(celeriac::shutdown::terminate_signal());
    if args.dump {
        let mut dumper = dump::Dumper::default();
        let mut out = std::io::stdout();
        // With --json stdout holds only events; the banner goes to stderr.
        if args.json {
            eprintln!("-> evdump: starting capture...");
        } else {
            writeln!(out, "-> evdump: starting capture...")?;
            out.flush()?;
        }
        loop {
            let event = tokio::select! {
                _ = shutdown.requested() => return Ok(()),
                event = events.next() => event,
            };
            let Some(event) = event else {
                bail!("the event stream from {broker} ended");
            };
            if celeriac::control::is_control_event(event.kind()) {
                continue;
            }
            let line = if args.json {
                serde_json::to_string(&event.fields)?
            } else {
                printable(&dumper.line(&event)).to_string()
            };
            writeln!(out, "{line}")?;
            out.flush()?;
        }
    }
    let title = format!("celeriac events on {broker}");
    let terminal = std::io::stdout().is_terminal();
    let mut monitor = top::Monitor::default();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(args.frequency));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut changed = true;
    let mut out = std::io::stdout();
    loop {
        tokio::select! {
            _ = shutdown.requested() => return Ok(()),
            event = events.next() => {
                let Some(event) = event else {
                    bail!("the event stream from {broker} ended");
                };
                if !celeriac::control::is_control_event(event.kind()) {
                    monitor.apply(&event, Instant::now());
                    changed = true;
                }
            }
            _ = tick.tick() => {
                if terminal {
                    write!(out, "\x1b[H\x1b[2J{}", monitor.render(&title, args.limit, Instant::now()))?;
                } else if changed {
                    writeln!(out, "{}", monitor.render(&title, args.limit, Instant::now()))?;
                }
                out.flush()?;
                changed = false;
            }
        }
    }
}
