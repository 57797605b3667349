//! `celeriac purge`: delete every waiting message from queues, as `celery
//! purge` does (`-Q` to name them, `-X` to spare some, `-f` to skip the
//! question). Messages a worker holds are left alone.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context as _};

use crate::config::{Config, ConnectionArgs};

/// Arguments of `celeriac purge`.
#[derive(Debug, clap::Args)]
pub(crate) struct PurgeArgs {
    #[command(flatten)]
    connection: ConnectionArgs,

    /// Queues to purge, comma separated [default: the default queue]
    #[arg(short = 'Q', long, value_delimiter = ',', value_name = "QUEUES")]
    queues: Vec<String>,

    /// Queues to leave alone, comma separated
    #[arg(short = 'X', long, value_delimiter = ',', value_name = "QUEUES")]
    exclude_queues: Vec<String>,

    /// Do not ask for confirmation (needed when stdin is not a terminal)
    #[arg(short = 'f', long)]
    force: bool,
}

/// `celeriac purge`.
pub(crate) async fn purge(args: PurgeArgs) -> anyhow::Result<()> {
    let config = Config::from_args(&args.connection)?;
    let mut queues = args.queues.clone();
    if queues.is_empty() {
        queues.push(config.app.default_queue.clone());
    }
    queues.retain(|q| !q.is_empty() && !args.exclude_queues.contains(q));
    queues.dedup();
    if queues.is_empty() {
        bail!("no queue left to purge after -X");
    }
    let names = queues.join(", ");
    if !args.force && !confirmed(&names)? {
        println!("Nothing purged.");
        return Ok(());
    }
    let app = config.connect(|b| b).await?;
    let mut total = 0;
    for queue in &queues {
        total += app
            .broker()
            .queues()
            .purge(queue)
            .await
            .with_context(|| format!("purging queue {}", celeriac::printable(queue)))?;
    }
    let plural = |n: u64, one: &str, many: &str| {
        if n == 1 {
            one.to_owned()
        } else {
            many.to_owned()
        }
    };
    println!(
        "Purged {total} {} from {} known task {}.",
        plural(total, "message", "messages"),
        queues.len(),
        plural(queues.len() as u64, "queue", "queues"),
    );
    Ok(())
}

/// Ask on the terminal, as `celery purge` does; refuse without one.
fn confirmed(names: &str) -> anyhow::Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(
            "purging {names} needs confirmation: stdin is not a terminal, so pass -f to purge without asking"
        );
    }
    eprint!(
        "WARNING: This will remove all tasks from queue: {names}.\n\
         There is no undo for this operation!\n\
         Are you sure you want to delete all tasks (yes/NO)? "
    );
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .context("reading the answer")?;
    Ok(answer.trim().eq_ignore_ascii_case("yes"))
}
