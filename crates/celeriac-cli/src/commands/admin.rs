//! `revoke` and `dlq`: acting on tasks and dead letters from the shell.
//!
//! 1. `celeriac revoke ID… [--terminate]`: recorded in the broker (workers
//!    started later honour it too) and, on Redis, broadcast to Python
//!    workers through Celery's pidbox.
//! 2. `celeriac dlq list|show|requeue|purge`: the messages workers set aside
//!    (malformed, unknown task, bad arguments, over the size limit), with
//!    the reason and the original bytes. `list` escapes control characters
//!    in what it prints ([`celeriac::printable`]); `--json` and `show` print
//!    JSON.

use anyhow::{bail, Context as _};
use celeriac::printable;

use crate::config::{Config, ConnectionArgs};

/// Arguments of `celeriac revoke`.
#[derive(Debug, clap::Args)]
pub(crate) struct RevokeArgs {
    #[command(flatten)]
    connection: ConnectionArgs,

    /// Task ids to revoke
    #[arg(required = true, value_name = "ID")]
    ids: Vec<String>,

    /// Also stop the tasks if they are running (async tasks stop at once;
    /// a sync task's thread cannot be killed and is left to finish)
    #[arg(long)]
    terminate: bool,
}

/// Arguments of `celeriac dlq`.
#[derive(Debug, clap::Args)]
pub(crate) struct DlqArgs {
    #[command(flatten)]
    connection: ConnectionArgs,

    #[command(subcommand)]
    action: DlqAction,
}

#[derive(Debug, clap::Subcommand)]
enum DlqAction {
    /// List dead letters, newest first: id, queue, time, reason
    List {
        /// Show at most this many
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON Lines instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Print one dead letter as JSON, with its original message
    Show {
        /// The dead letter's id (from `dlq list`)
        id: String,
    },
    /// Put dead letters back on their queues (after fixing the cause)
    Requeue {
        /// Dead-letter ids (from `dlq list`)
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Delete every dead letter
    Purge {
        /// Required: purging cannot be undone
        #[arg(long)]
        yes: bool,
    },
}

/// `celeriac revoke`.
pub(crate) async fn revoke(args: RevokeArgs) -> anyhow::Result<()> {
    let app = Config::from_args(&args.connection)?.connect(|b| b).await?;
    app.revoke(&args.ids, args.terminate)
        .await
        .context("recording the revocation")?;
    for id in &args.ids {
        println!(
            "{id} revoked{}",
            if args.terminate { " (terminate)" } else { "" }
        );
    }
    Ok(())
}

/// `celeriac dlq`.
pub(crate) async fn dlq(args: DlqArgs) -> anyhow::Result<()> {
    let app = Config::from_args(&args.connection)?.connect(|b| b).await?;
    let broker = app.broker();
    match args.action {
        DlqAction::List { limit, json } => {
            let letters = broker.dead_letters(limit).await?;
            for letter in &letters {
                if json {
                    println!("{}", letter.to_json());
                } else {
                    // Ids, queues and reasons come from the messages:
                    // escaped, so a name cannot drive the terminal.
                    println!(
                        "{}  {:<16} {}  {}",
                        printable(&letter.id),
                        printable(&letter.queue).to_string(),
                        printable(&letter.at),
                        printable(&letter.reason)
                    );
                }
            }
            if !json {
                eprintln!("{} dead letter(s)", letters.len());
            }
        }
        DlqAction::Show { id } => {
            let letters = broker.dead_letters(usize::MAX).await?;
            let Some(letter) = letters.into_iter().find(|l| l.id == id) else {
                bail!("no dead letter with id {id:?} (see `celeriac dlq list`)");
            };
            println!("{}", serde_json::to_string_pretty(&letter)?);
        }
        DlqAction::Requeue { ids } => {
            let mut missing = Vec::new();
            for id in &ids {
                if broker.requeue_dead_letter(id).await? {
                    println!("{id} requeued");
                } else {
                    missing.push(id.as_str());
                }
            }
            if !missing.is_empty() {
                bail!("no dead letter with id {}", missing.join(", "));
            }
        }
        DlqAction::Purge { yes } => {
            if !yes {
                bail!("purging deletes every dead letter for good; add --yes to confirm");
            }
            println!(
                "{} dead letter(s) purged",
                broker.purge_dead_letters().await?
            );
        }
    }
    Ok(())
}
