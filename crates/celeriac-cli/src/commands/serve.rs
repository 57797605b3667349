//! `celeriac serve`: the producer API, the live dashboard and Prometheus
//! metrics over HTTP (the library is `celeriac-http`).
//!
//! 1. Validate the flags; the API token comes only from the environment
//!    (`CELERIAC_API_TOKEN`), so it never shows in `ps` and is never printed.
//!    Unset or empty means no authentication; a blank or short token (under
//!    [`celeriac_http::MIN_TOKEN_CHARS`] characters) refuses to start.
//! 2. Connect the app with the binary's tasks registered (so the dashboard
//!    and `POST /api/tasks/{name}` know their names), and serve the
//!    producer routes the binary declares ([`crate::Project::producer_routes`]).
//!    The test-only tasks
//!    (`tasks.record`) are not among them, so the API refuses them unless
//!    `--any-task` is given.
//! 3. Bind, print `listening on http://ADDR` on stdout (with `--port 0` the
//!    port is chosen by the system), and serve until SIGINT/SIGTERM.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};

use anyhow::{bail, Context as _};
use celeriac_http::HttpConfig;

use crate::config::{Config, ConnectionArgs, TimeoutArgs};
use crate::project::Tasks;

/// Environment variable holding the API token.
const TOKEN_ENV: &str = "CELERIAC_API_TOKEN";

/// Arguments of `celeriac serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Port to listen on (0: any free port; the address is printed)
    #[arg(short = 'p', long, default_value_t = 8080, env = "CELERIAC_HTTP_PORT")]
    pub(crate) port: u16,

    /// Address to listen on; 0.0.0.0 accepts connections from other hosts
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub(crate) bind: IpAddr,

    /// More queues to list and sample, comma-separated (the default queue,
    /// queues seen in sends and events, workers' queues and every queue
    /// the broker holds are listed anyway)
    #[arg(short = 'Q', long, value_name = "QUEUES", value_delimiter = ',')]
    pub(crate) queues: Vec<String>,

    /// Largest request body, in bytes (larger ones get 413)
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024)]
    pub(crate) body_limit: usize,

    /// Recent tasks remembered for the dashboard
    #[arg(long, value_name = "N", default_value_t = 5000)]
    pub(crate) history: usize,

    /// Accept POST /api/tasks/{name} for names this binary does not ship
    /// (tasks that only Python or other workers run)
    #[arg(long)]
    pub(crate) any_task: bool,

    /// Do not ask workers to send task events (enable_events, at start,
    /// every 10 s and when a worker comes online; on every broker); the
    /// dashboard then follows only the tasks sent through this API (from
    /// the result backend) and workers started with -E
    #[arg(long)]
    pub(crate) no_enable_events: bool,

    /// Answer cross-origin API requests from any origin (no cookies)
    #[arg(long)]
    pub(crate) cors: bool,

    #[command(flatten)]
    pub(crate) timeouts: TimeoutArgs,

    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,
}

impl ServeArgs {
    fn http_config(&self, tasks: &Tasks) -> anyhow::Result<HttpConfig> {
        if self.body_limit < 64 {
            bail!(
                "--body-limit must be at least 64 bytes, got {}",
                self.body_limit
            );
        }
        if self.history == 0 {
            bail!("--history must be at least 1");
        }
        // Unset or empty: no authentication. Anything else must be a real
        // token: blank or short ones are refused rather than silently
        // leaving the server open.
        let api_token = match std::env::var(TOKEN_ENV) {
            Ok(token) if token.is_empty() => None,
            Ok(token) => Some(token.trim().to_owned()),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => bail!("{TOKEN_ENV} is not valid UTF-8"),
        };
        let http = HttpConfig {
            api_token,
            body_limit: self.body_limit,
            queues: self
                .queues
                .iter()
                .map(|q| q.trim().to_owned())
                .filter(|q| !q.is_empty())
                .collect(),
            history: self.history,
            enable_events: !self.no_enable_events,
            allow_unregistered_tasks: self.any_task,
            cors_any_origin: self.cors,
            timeouts: self.timeouts.timeouts()?,
            producer_routes: tasks.producer_routes().to_vec(),
            ..HttpConfig::default()
        };
        http.check()
            .map_err(|e| anyhow::anyhow!("{TOKEN_ENV}: {e} (unset it to serve without a token)"))?;
        Ok(http)
    }
}

/// Serve until SIGINT/SIGTERM.
pub(crate) async fn run(args: ServeArgs, tasks: &Tasks) -> anyhow::Result<()> {
    let http = args.http_config(tasks)?;
    let config = Config::from_args(&args.connection)?;
    let app = config.connect(|b| tasks.register(b)).await?;
    let address = SocketAddr::new(args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("listening on {address}"))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    tracing::info!(
        broker = %config.broker_display(),
        backend = %config.backend_display(),
        auth = http.api_token.is_some(),
        "serving on http://{bound}"
    );
    {
        let mut out = std::io::stdout().lock();
        if http.api_token.is_some() {
            writeln!(out, "API token required ({TOKEN_ENV} is set)")?;
        }
        writeln!(out, "listening on http://{bound}")?;
        writeln!(out, "dashboard: http://{bound}/dashboard")?;
        out.flush()?;
    }
    celeriac_http::serve(listener, app, http, celeriac::shutdown::terminate_signal())
        .await
        .context("serving HTTP")
}
