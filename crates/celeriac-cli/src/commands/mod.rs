//! One module per group of subcommands, and [`Builtin`], the commands every
//! project binary has.

pub(crate) mod admin;
pub(crate) mod beat;
pub(crate) mod bench;
pub(crate) mod call;
pub(crate) mod control;
pub(crate) mod delayed;
pub(crate) mod events;
pub(crate) mod inspect;
pub(crate) mod purge;
pub(crate) mod remote;
pub(crate) mod serve;
pub(crate) mod status;
pub(crate) mod worker;

use clap::Subcommand;

use crate::block_on;
use crate::project::Tasks;

/// The commands of `celeriac`, in every binary built with
/// [`crate::Project`].
#[derive(Debug, Subcommand)]
pub(crate) enum Builtin {
    /// Run a worker for this binary's tasks until SIGINT/SIGTERM (--reload: rebuild and restart on source changes).
    Worker(worker::Args),
    /// Send periodic tasks from a schedule file; safe to run many at once.
    Beat(beat::BeatArgs),
    /// Send a task by name; print its id, or with --wait its result.
    Call(call::CallArgs),
    /// Print a task's state and result as JSON.
    Result(call::ResultArgs),
    /// Measure worker processes of this binary at default flags on raw Celery messages (tasks.add,
    /// results stored): enqueue and drain rates, CPU per task, latency, RSS; then an in-process row.
    Bench(bench::Args),
    /// Serve the producer API, the live dashboard and Prometheus metrics over HTTP.
    Serve(serve::ServeArgs),
    /// Ask workers what they are doing: ping, stats, active, scheduled, registered… (celery inspect).
    Inspect(inspect::InspectArgs),
    /// Change running workers: rate_limit, time_limit, add_consumer, pool_grow, shutdown… (celery control).
    Control(control::ControlArgs),
    /// List the workers that answer, then how many are online (celery status).
    Status(status::StatusArgs),
    /// Watch worker and task events live, or --dump them one per line (celery events).
    Events(events::EventsArgs),
    /// Revoke tasks: workers skip them (and with --terminate stop them), including workers started later.
    Revoke(admin::RevokeArgs),
    /// List, show, requeue or purge dead letters (messages workers set aside, with the reason).
    Dlq(admin::DlqArgs),
    /// Delete every waiting message from queues (celery purge): -Q to name them, -f not to ask.
    Purge(purge::PurgeArgs),
    /// List messages waiting for their ETA in the broker, or hand them back to their queues.
    Delayed(delayed::DelayedArgs),
}

impl Builtin {
    /// The log level when neither `--loglevel` nor `RUST_LOG` says: the
    /// long-running services log their progress, one-shot commands (whose
    /// stdout is for scripts) only warnings.
    pub(crate) fn default_log_level(&self) -> &'static str {
        match self {
            Builtin::Worker(_) | Builtin::Beat(_) | Builtin::Serve(_) => "info",
            _ => "warn",
        }
    }

    /// Run the command; `tasks` registers the binary's tasks where a
    /// command needs them (worker, serve, bench).
    pub(crate) fn run(self, tasks: &Tasks) -> anyhow::Result<()> {
        match self {
            Builtin::Worker(args) => worker::start(args, tasks),
            Builtin::Beat(args) => beat::start(args),
            Builtin::Call(args) => block_on(call::call(args)),
            Builtin::Result(args) => block_on(call::result(args)),
            Builtin::Bench(args) => block_on(bench::run(args)),
            Builtin::Serve(args) => block_on(serve::run(args, tasks)),
            Builtin::Inspect(args) => block_on(inspect::run(args)),
            Builtin::Control(args) => block_on(control::run(args)),
            Builtin::Status(args) => block_on(status::run(args)),
            Builtin::Events(args) => block_on(events::run(args)),
            Builtin::Revoke(args) => block_on(admin::revoke(args)),
            Builtin::Dlq(args) => block_on(admin::dlq(args)),
            Builtin::Purge(args) => block_on(purge::purge(args)),
            Builtin::Delayed(args) => block_on(delayed::delayed(args)),
        }
    }
}
