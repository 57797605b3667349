//! `post-history rank-server`: the post-history ranking server.
//!
//! Validates the flags, opens the result backend (`--backend`, the usual
//! environment and file; only the backend is used: the entities are read
//! from it with `get_value`), binds `--host:--port`, and runs
//! [`posts::ranking::server::run`] until SIGINT/SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use celeriac::shutdown::Shutdown;
use posts::ranking::server::{RankServerConfig, ServerOptions, DEFAULT_MAX_BODY_BYTES};
use posts::ranking::MatchOptions;
use posts::tasks::SCHEDULED_TOP_ENTITIES_KEY;

use celeriac_cli::{Config, ConnectionArgs, TimeoutArgs};

/// Arguments of `post-history rank-server`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,

    /// Port to listen on
    #[arg(short, long, default_value_t = 8000)]
    pub(crate) port: u16,

    /// Address to listen on (0.0.0.0 for every interface)
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: std::net::IpAddr,

    /// Key holding the top-entities record (written by the scheduled job)
    #[arg(long, default_value = SCHEDULED_TOP_ENTITIES_KEY)]
    pub(crate) key: String,

    /// Seconds between two reads of the key (requests never wait on it)
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    pub(crate) refresh: f64,

    /// Match entity names ignoring ASCII case (the original is case-sensitive)
    #[arg(long)]
    pub(crate) ignore_case: bool,

    /// Match entity names as whole words only (the original matches substrings)
    #[arg(long)]
    pub(crate) whole_words: bool,

    /// Largest accepted /rank body in bytes; larger ones get 413
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub(crate) max_body: usize,

    #[command(flatten)]
    pub(crate) timeouts: TimeoutArgs,
}

/// Run `post-history rank-server`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    if !(args.refresh.is_finite() && args.refresh >= 0.01) {
        bail!("--refresh must be at least 0.01 seconds");
    }
    if args.key.trim().is_empty() {
        bail!("--key must not be empty");
    }
    let timeouts = args.timeouts.timeouts()?;
    let config = Config::from_args(&args.connection)?;
    let backend = celeriac::backend_from_url(config.app_config())
        .await
        .with_context(|| format!("opening the result backend {}", config.backend_display()))?;
    let server = RankServerConfig {
        key: args.key,
        matching: MatchOptions {
            ignore_ascii_case: args.ignore_case,
            whole_words: args.whole_words,
        },
        refresh_every: Duration::from_secs_f64(args.refresh),
        server: ServerOptions {
            max_body_bytes: args.max_body,
            timeouts,
        },
    };
    let addr = std::net::SocketAddr::new(args.host, args.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let local = listener.local_addr().unwrap_or(addr);
    // On stdout, as uvicorn announces itself: scripts wait for this line.
    println!(
        "ranking server on http://{local} (POST /rank, GET /health, GET /openapi.json); \
         entities from {:?} in {}, read every {}s",
        server.key,
        config.backend_display(),
        args.refresh
    );
    let shutdown = Shutdown::from_future(celeriac::shutdown::terminate_signal());
    posts::ranking::server::run(listener, Arc::clone(&backend), &server, shutdown)
        .await
        .context("serving /rank")
}
