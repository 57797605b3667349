//! The `celeriac` command. It only parses arguments and dispatches; the work
//! lives in the `celeriac` and `posts` libraries.
//!
//! Exit codes are decided here, from the command's outcome ([`exit`]).

mod commands;
mod config;
mod example_tasks;
mod exit;
mod inprocess;
mod logging;
mod test_tasks;

use clap::{Parser, Subcommand};

// mimalloc instead of glibc's malloc: the worker, the servers and the seeder
// allocate many short-lived small objects per message, request and row, and
// glibc's free lists cost a quarter of their CPU time (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Celeriac: a Celery-compatible distributed task queue, and the post-history system built on it.
#[derive(Debug, Parser)]
#[command(name = "celeriac", version, about, long_about = None)]
struct Cli {
    /// Log filter for stderr, e.g. info, debug, celeriac=trace [default: RUST_LOG,
    /// else info for the worker and beat, warn for other commands]
    #[arg(short = 'l', long, global = true, value_name = "LEVEL")]
    loglevel: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a worker for the shipped tasks until SIGINT/SIGTERM.
    Worker(commands::worker::Args),
    /// Send periodic tasks from a schedule file; safe to run many at once.
    Beat(commands::beat::BeatArgs),
    /// Send a task by name; print its id, or with --wait its result.
    Call(commands::call::CallArgs),
    /// Print a task's state and result as JSON.
    Result(commands::call::ResultArgs),
    /// Run the example tasks end to end on an in-process worker (no server needed).
    Demo(commands::demo::Args),
    /// Measure `celeriac worker` processes at default flags on raw Celery messages (tasks.add,
    /// results stored): enqueue and drain rates, CPU per task, latency, RSS; then an in-process row.
    Bench(commands::bench::Args),
    /// Generate realistic raw sample data (Facebook CSV, Reddit CSV, Twitter JSONL).
    SampleData(commands::data::SampleDataArgs),
    /// Normalize raw sample data into ContentItem JSON Lines, one file per platform.
    Preprocess(commands::data::PreprocessArgs),
    /// Seed the posts database from normalized JSON Lines.
    Seed(commands::data::SeedArgs),
    /// Extract named entities from text, or evaluate the extractor on the shipped labelled set.
    Entities(commands::entities::EntitiesArgs),
    /// Serve POST /rank: feeds reordered by the scheduled top named entities.
    RankServer(commands::rank_server::Args),
    /// Serve the producer API, the live dashboard and Prometheus metrics over HTTP.
    Serve(commands::serve::ServeArgs),
    /// Ask workers what they are doing: ping, stats, active, scheduled, registered… (celery inspect).
    Inspect(commands::inspect::InspectArgs),
    /// Change running workers: rate_limit, time_limit, add_consumer, pool_grow, shutdown… (celery control).
    Control(commands::control::ControlArgs),
    /// List the workers that answer, then how many are online (celery status).
    Status(commands::status::StatusArgs),
    /// Watch worker and task events live, or --dump them one per line (celery events).
    Events(commands::events::EventsArgs),
    /// Revoke tasks: workers skip them (and with --terminate stop them), including workers started later.
    Revoke(commands::admin::RevokeArgs),
    /// List, show, requeue or purge dead letters (messages workers set aside, with the reason).
    Dlq(commands::admin::DlqArgs),
    /// Delete every waiting message from queues (celery purge): -Q to name them, -f not to ask.
    Purge(commands::purge::PurgeArgs),
    /// List messages waiting for their ETA in the broker, or hand them back to their queues.
    Delayed(commands::delayed::DelayedArgs),
}

/// Run an async command on a multi-threaded runtime.
///
/// The runtime is then shut down without waiting for blocking-pool threads:
/// a synchronous task the worker aborted at its shutdown deadline cannot be
/// stopped, and waiting for it would keep the process (and a message already
/// given back) alive.
fn block_on(command: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("starting the async runtime: {e}"))?;
    let outcome = runtime.block_on(command);
    runtime.shutdown_background();
    outcome
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Worker(_) | Command::Beat(_) | Command::Serve(_) => "info",
        _ => "warn",
    };
    logging::init(cli.loglevel.as_deref(), default_level);
    let outcome = match cli.command {
        Command::Worker(args) => block_on(commands::worker::run(args)),
        Command::Beat(args) => block_on(commands::beat::run(args)),
        Command::Call(args) => block_on(commands::call::call(args)),
        Command::Result(args) => block_on(commands::call::result(args)),
        Command::Demo(args) => block_on(commands::demo::run(args)),
        Command::Bench(args) => block_on(commands::bench::run(args)),
        Command::SampleData(args) => commands::data::sample_data(args),
        Command::Preprocess(args) => commands::data::preprocess(args),
        Command::Seed(args) => commands::data::seed(args),
        Command::Entities(args) => commands::entities::run(args),
        Command::RankServer(args) => block_on(commands::rank_server::run(args)),
        Command::Serve(args) => block_on(commands::serve::run(args)),
        Command::Inspect(args) => block_on(commands::inspect::run(args)),
        Command::Control(args) => block_on(commands::control::run(args)),
        Command::Status(args) => block_on(commands::status::run(args)),
        Command::Events(args) => block_on(commands::events::run(args)),
        Command::Revoke(args) => block_on(commands::admin::revoke(args)),
        Command::Dlq(args) => block_on(commands::admin::dlq(args)),
        Command::Purge(args) => block_on(commands::purge::purge(args)),
        Command::Delayed(args) => block_on(commands::delayed::delayed(args)),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::from(exit::OK),
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            std::process::ExitCode::from(exit::code_for(&err))
        }
    }
}

/// The error and its causes on one line, each said once: the library's
/// errors already carry their source's text in their own message, so
/// `{:#}` would repeat it (a DNS failure printed three times).
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn causes_already_in_the_message_are_said_once() {
        let io = std::io::Error::other("Name or service not known");
        let err = anyhow::Error::new(io)
            .context("broker: connecting to Redis: Name or service not known");
        let err = err.context("connecting to broker redis://nohost:1");
        assert_eq!(
            one_line(&err),
            "connecting to broker redis://nohost:1: broker: connecting to Redis: Name or service not known"
        );
    }
}
