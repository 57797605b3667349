//! `celeriac status`: which workers are online, as `celery status` shows
//! them: each node that answers `ping` within the timeout (`->  node: OK`),
//! then `N nodes online.`; no answer at all is an error (exit 2).

use serde_json::json;

use super::remote::{print_count, print_replies, RemoteArgs};

/// Arguments of `celeriac status`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Works on Redis (Python Celery workers answer too) and on SQLite \
    (through the file's event table). Exit status 2 when no worker replied."
)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    remote: RemoteArgs,
}

/// `celeriac status`.
pub(crate) async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let replies = args.remote.ask("ping", json!({}), "").await?;
    if args.remote.json {
        println!("{}", serde_json::to_string(&replies)?);
        return Ok(());
    }
    print_replies(&replies, false);
    print_count(&replies);
    Ok(())
}
