//! Every `celeriac` command for a binary of your own: register your tasks,
//! call one function, and get `worker`, `beat`, `call`, `result`, `inspect`,
//! `control`, `status`, `events`, `revoke`, `dlq`, `purge`, `delayed`,
//! `serve` and `bench` with the same flags, environment variables and TOML
//! file as the `celeriac` binary (which is itself such a binary: its
//! `main.rs` registers [`examples`]).
//!
//! ```no_run
//! use celeriac::{task, TaskError};
//!
//! #[task(name = "proj.add")]
//! fn add(x: i64, y: i64) -> Result<i64, TaskError> {
//!     Ok(x + y)
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     celeriac_cli::Project::new("proj")
//!         .about("proj's tasks, with every celeriac command")
//!         .tasks(|app| app.task(add))
//!         .run()
//! }
//! ```
//!
//! A project adds its own options (global flags, e.g. a database path its
//! tasks read) with [`Project::with_options`] and its own subcommands with
//! [`Project::commands`]; [`ConnectionArgs`] and [`Config`] give those
//! commands the same connection flags.
//!
//! Exit codes are decided in one place ([`exit`]); errors are printed on
//! one line with their causes.

mod commands;
mod config;
pub mod examples;
mod exit;
mod inprocess;
mod logging;
mod project;
mod reload;
mod test_tasks;

pub use config::{Config, ConnectionArgs, TimeoutArgs};
pub use inprocess::InProcessWorker;
pub use project::{NoCommands, NoOptions, Project};

/// Run an async command on a multi-threaded runtime, for a project's own
/// commands.
///
/// The runtime is then shut down without waiting for blocking-pool threads:
/// a synchronous task the worker aborted at its shutdown deadline cannot be
/// stopped, and waiting for it would keep the process (and a message already
/// given back) alive.
///
/// # Errors
/// The command's error, or the runtime's when it cannot start.
pub fn block_on(
    command: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("starting the async runtime: {e}"))?;
    let outcome = runtime.block_on(command);
    runtime.shutdown_background();
    outcome
}

/// The exit status for a command's outcome; the error, if any, printed on
/// stderr on one line.
fn finish(outcome: anyhow::Result<()>) -> std::process::ExitCode {
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
