//! Running the server: shared state, the background loops, graceful
//! shutdown.
//!
//! 1. [`serve`] builds the [`Shared`] state, starts the loops of
//!    [`crate::background`], and serves the [`crate::routes::router`] on the
//!    given listener until `shutdown` resolves (through [`celeriac_serve`]:
//!    a connection whose client sends no complete request head within
//!    [`HttpConfig::timeouts`], or stays idle past it, is closed).
//! 2. On shutdown, live event streams end (so that axum's graceful shutdown
//!    is not held open by them), requests in flight finish, and the loops
//!    are stopped.

use std::future::Future;
use std::sync::Arc;

use celeriac::shutdown::Shutdown;
use celeriac::App;
use tokio::net::TcpListener;

use crate::auth::Sessions;
use crate::config::HttpConfig;
use crate::error::Error;
use crate::monitor::Monitor;

/// What every handler and loop shares.
pub(crate) struct Shared {
    /// The Celeriac app (broker, backend, events, registry).
    pub(crate) app: App,
    /// The server's settings.
    pub(crate) config: HttpConfig,
    /// What is known of tasks, workers and queues.
    pub(crate) monitor: Monitor,
    /// Open dashboard sessions.
    pub(crate) sessions: Sessions,
    /// Fires when the server is stopping.
    pub(crate) shutdown: Shutdown,
    /// The OpenAPI document, with the declared producer routes.
    pub(crate) openapi: utoipa::openapi::OpenApi,
}

impl Shared {
    pub(crate) fn new(app: App, config: HttpConfig, shutdown: Shutdown) -> Self {
        let mut queues = vec![app.config().default_queue.clone()];
        queues.extend(config.queues.iter().cloned());
        Shared {
            monitor: Monitor::new(config.history, &queues),
            openapi: crate::openapi(&config.producer_routes),
            app,
            config,
            sessions: Sessions::default(),
            shutdown,
        }
    }

    /// The broker's scheme: `redis`, `sqlite`, `memory` (empty when the
    /// URL cannot be read).
    pub(crate) fn transport(&self) -> &'static str {
        celeriac::Transport::parse(&self.app.config().broker_url).map_or("", |t| t.scheme())
    }
}

/// Serve the producer API, dashboard and metrics on `listener` until
/// `shutdown` resolves.
///
/// ```no_run
/// # async fn run(app: celeriac::App) -> Result<(), celeriac_http::Error> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let config = celeriac_http::HttpConfig::default();
/// celeriac_http::serve(listener, app, config, async {
///     let _ = tokio::signal::ctrl_c().await;
/// })
/// .await
/// # }
/// ```
///
/// # Errors
/// [`Error::WeakToken`] before serving anything when the configured token
/// is blank or too short, [`Error::InvalidProducerRoute`] or
/// [`Error::DuplicateProducerRoute`] when a producer route cannot be
/// served ([`HttpConfig::check`]); [`Error::Io`] when accepting
/// connections fails.
pub async fn serve(
    listener: TcpListener,
    app: App,
    config: HttpConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    config.check()?;
    let config = HttpConfig {
        api_token: config.api_token.map(|token| token.trim().to_owned()),
        ..config
    };
    let signal = Shutdown::from_future(shutdown);
    let shared = Arc::new(Shared::new(app, config, signal.clone()));
    let loops = crate::background::spawn(&shared);
    let router = crate::routes::router(Arc::clone(&shared));
    let mut stop = signal.clone();
    let timeouts = shared.config.timeouts;
    let outcome =
        celeriac_serve::serve(
            listener,
            router,
            timeouts,
            async move { stop.requested().await },
        )
        .await;
    for handle in loops {
        handle.abort();
    }
    outcome.map_err(Error::Io)
}
