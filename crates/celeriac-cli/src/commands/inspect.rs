//! `celeriac inspect`: ask workers what they are doing (Celery's `celery
//! inspect`), on every broker.
//!
//! 1. The question goes through remote control ([`super::remote`]): Celery's
//!    pidbox on Redis (Python Celery workers answer too), the event bus of
//!    the SQLite file (Celeriac workers on the same file answer).
//! 2. Output reads like `celery inspect` (`->  node: OK`, the reply
//!    indented, then `N nodes online.`), or `{node: reply}` JSON with
//!    `--json`. No reply at all is an error (exit 2).

use serde_json::json;

use super::remote::{print_count, print_replies, RemoteArgs};

/// What to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Method {
    /// Are you there? (`{"ok": "pong"}`)
    Ping,
    /// Counters, pool, broker, uptime.
    Stats,
    /// Tasks executing now.
    Active,
    /// Tasks this worker can run.
    Registered,
    /// Tasks received and waiting for a slot or a rate limit.
    Reserved,
    /// Tasks waiting for their ETA or countdown ({eta, priority, request});
    /// they wait in the broker, so every worker of their queue lists them.
    Scheduled,
    /// Queues consumed.
    #[value(name = "active_queues", alias = "active-queues")]
    ActiveQueues,
    /// Ids of revoked tasks.
    Revoked,
    /// The worker's configuration.
    Conf,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Ping => "ping",
            Method::Stats => "stats",
            Method::Active => "active",
            Method::Registered => "registered",
            Method::Reserved => "reserved",
            Method::Scheduled => "scheduled",
            Method::ActiveQueues => "active_queues",
            Method::Revoked => "revoked",
            Method::Conf => "conf",
        }
    }
}

/// Arguments of `celeriac inspect`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    celeriac inspect ping\n  \
    celeriac inspect active -d celeriac@host\n  \
    celeriac inspect scheduled --json\n\n\
    Works on Redis (Python Celery workers answer too) and on SQLite (through the file's \
    event table). Exit status 2 when no worker replied.")]
pub(crate) struct InspectArgs {
    /// What to ask the workers
    #[arg(value_enum)]
    pub(crate) method: Method,

    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
}

/// `celeriac inspect METHOD`.
pub(crate) async fn run(args: InspectArgs) -> anyhow::Result<()> {
    let replies = args.remote.ask(args.method.name(), json!({}), "").await?;
    if args.remote.json {
        println!("{}", serde_json::to_string(&replies)?);
        return Ok(());
    }
    print_replies(&replies, true);
    print_count(&replies);
    Ok(())
}
