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
        /// The dead letter's id (from `dlq list`), or the task id `celeriac call` printed
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

/// How many of the newest dead letters `dlq show TASK_ID` looks through.
const TASK_ID_SEARCH: usize = 10_000;

/// `celeriac dlq`.
pub(crate) async fn dlq(args: DlqArgs) -> anyhow::Result<()> {
    let app = Config::from_args(&args.connection)?.connect(|b| b).await?;
    let broker = app.broker();
    match args.action {
        DlqAction::List { limit, json } => {
            let letters = broker.dead_letters().newest(limit).await?;
            for letter in &letters {
                if json {
                    println!("{}", letter.to_json());
                } else {
                    // Ids, queues and reasons come from the messages:
                    // escaped, so a name cannot drive the terminal.
                    println!(
                        "{}  {:<16} {}  {} [{}]  {}",
                        printable(&letter.id),
                        printable(&letter.queue).to_string(),
                        printable(&letter.at),
                        printable(letter.task.as_deref().unwrap_or("?")),
                        printable(letter.task_id.as_deref().unwrap_or("no task id")),
                        printable(&letter.reason)
                    );
                }
            }
            if !json {
                eprintln!("{} dead letter(s)", letters.len());
            }
        }
        DlqAction::Show { id } => {
            // The only command that reads a payload (capped when stored).
            let found = match broker.dead_letters().fetch(&id).await? {
                Some(found) => Some(found),
                // Or the task id `celeriac call` printed.
                None => match broker
                    .dead_letters()
                    .newest(TASK_ID_SEARCH)
                    .await?
                    .into_iter()
                    .find(|letter| letter.task_id.as_deref() == Some(id.as_str()))
                {
                    Some(letter) => broker.dead_letters().fetch(&letter.id).await?,
                    None => None,
                },
            };
            let Some((info, payload)) = found else {
                bail!(
                    "no dead letter with id or task id {:?} (see `celeriac dlq list`)",
                    printable(&id).to_string()
                );
            };
            let mut shown = serde_json::to_value(info.with_payload(&payload))?;
            if let Some(fields) = shown.as_object_mut() {
                fields.insert("task".into(), serde_json::json!(info.task));
                fields.insert("task_id".into(), serde_json::json!(info.task_id));
                fields.insert("size".into(), serde_json::json!(info.size));
                fields.insert("truncated".into(), serde_json::json!(info.truncated()));
            }
            println!("{}", serde_json::to_string_pretty(&shown)?);
        }
        DlqAction::Requeue { ids } => {
            let mut missing = Vec::new();
            let mut refused = Vec::new();
            for id in &ids {
                match broker.dead_letters().requeue(id).await {
                    Ok(true) => println!("{id} requeued"),
                    Ok(false) => missing.push(id.as_str()),
                    // A payload truncated when stored is not a message.
                    Err(celeriac::Error::InvalidArgument(why)) => refused.push(why),
                    Err(e) => return Err(e.into()),
                }
            }
            if !missing.is_empty() {
                refused.push(format!("no dead letter with id {}", missing.join(", ")));
            }
            if !refused.is_empty() {
                bail!("{}", refused.join("; "));
            }
        }
        DlqAction::Purge { yes } => {
            if !yes {
                bail!("purging deletes every dead letter for good; add --yes to confirm");
            }
            println!(
                "{} dead letter(s) purged",
                broker.dead_letters().purge().await?
            );
        }
    }
    Ok(())
}
