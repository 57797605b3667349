//! `celeriac delayed`: the messages waiting for their ETA in the broker's
//! delayed store (Redis: `celeriac.delayed`; SQLite: rows not yet
//! visible), and handing them back to their queues so that Python workers,
//! which hold ETA messages themselves, can serve them when no Celeriac
//! process is left to move them (Redis only: on SQLite they already sit in
//! their queue, visible at their ETA).

use std::io::IsTerminal;

use anyhow::bail;

use crate::config::{Config, ConnectionArgs};

/// Arguments of `celeriac delayed`.
#[derive(Debug, clap::Args)]
pub(crate) struct DelayedArgs {
    #[command(flatten)]
    connection: ConnectionArgs,

    #[command(subcommand)]
    action: DelayedAction,
}

#[derive(Debug, clap::Subcommand)]
enum DelayedAction {
    /// List delayed messages, soonest first: ETA, queue, task, id.
    List {
        /// At most this many
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Hand every delayed message back to its queue now (workers hold it
    /// until its ETA, as Celery's do); Redis only, SQLite has nothing to
    /// hand back.
    Flush {
        /// Do not refuse when stdin is not a terminal
        #[arg(short = 'f', long)]
        force: bool,
    },
}

/// `celeriac delayed`.
pub(crate) async fn delayed(args: DelayedArgs) -> anyhow::Result<()> {
    let app = Config::from_args(&args.connection)?.connect(|b| b).await?;
    match args.action {
        DelayedAction::List { limit, json } => {
            for item in app.broker().queues().delayed(limit).await? {
                let task = item.task.as_deref().unwrap_or("?");
                let id = item.task_id.as_deref().unwrap_or("?");
                if json {
                    let line = serde_json::json!({
                        "eta": item.eta.to_rfc3339(), "queue": item.queue, "task": task, "id": id,
                    });
                    println!("{line}");
                } else {
                    println!(
                        "{}  {}  {}  {}",
                        item.eta.to_rfc3339(),
                        celeriac::printable(&item.queue),
                        celeriac::printable(task),
                        celeriac::printable(id)
                    );
                }
            }
        }
        DelayedAction::Flush { force } => {
            if !force && !std::io::stdin().is_terminal() {
                bail!("delayed flush moves every delayed message back to its queue: pass -f to confirm");
            }
            let moved = app.broker().queues().flush_delayed().await?;
            println!("{moved} delayed message(s) handed back to their queues");
        }
    }
    Ok(())
}
