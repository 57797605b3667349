//! The ranking server's HTTP surface (axum), as the original FastAPI app.
//!
//! 1. `POST /rank`: a [`RankingRequest`] in, a [`RankingResponse`] out,
//!    ranked by [`super::rank`] with the cache's current matcher (a
//!    lock-free load: no backend round trip per request).
//! 2. Errors are JSON [`ErrorBody`]s: 400 for a body that is not a valid
//!    `RankingRequest` (the `field` names the JSON path of the bad value,
//!    e.g. `items[2].engagements`), 413 past [`ServerOptions::max_body_bytes`].
//! 3. `GET /health`: the entities' state ([`Health`]); `GET /openapi.json`:
//!    the OpenAPI document ([`super::openapi`]).
//! 4. CORS open to any origin (`GET`, `POST`, `HEAD`, `OPTIONS`, any
//!    header, no credentials), as the original configured it.
//!
//! [`serve`] runs the router on a listener with `TCP_NODELAY` until a
//! shutdown future resolves, closing connections whose client sends no
//! complete request head in time or stays idle too long
//! ([`ServerOptions::timeouts`], through [`celeriac_serve`]); [`run`] is the
//! whole server (`post-history rank-server`, the demo): cache, first read,
//! background refresh, routes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::BytesMut;
use serde::Serialize;
use tower_http::cors::{Any, CorsLayer};
use utoipa::ToSchema;

use super::cache::EntityCache;
use super::matcher::MatchOptions;
use crate::models::{self, RankingRequest, RankingResponse};
use celeriac::backend::ResultBackend;
use celeriac::shutdown::Shutdown;
pub use celeriac_serve::ConnectionTimeouts;

/// Default cap on a `/rank` body: 1 MiB (a 100-item feed is about 60 KB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// How the server behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// Bodies larger than this are refused with 413.
    pub max_body_bytes: usize,
    /// How long a connection may wait for its client's request head, and
    /// stay idle between requests, before it is closed.
    pub timeouts: ConnectionTimeouts,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            timeouts: ConnectionTimeouts::default(),
        }
    }
}

/// Everything [`run`] needs besides the listener and the backend.
#[derive(Debug, Clone, PartialEq)]
pub struct RankServerConfig {
    /// The key holding the top-entities record.
    pub key: String,
    /// How entity names are matched.
    pub matching: MatchOptions,
    /// How often the key is read again.
    pub refresh_every: Duration,
    /// HTTP limits.
    pub server: ServerOptions,
}

impl Default for RankServerConfig {
    fn default() -> Self {
        RankServerConfig {
            key: crate::tasks::SCHEDULED_TOP_ENTITIES_KEY.to_owned(),
            matching: MatchOptions::default(),
            refresh_every: Duration::from_secs(2),
            server: ServerOptions::default(),
        }
    }
}

/// Run the ranking server on `listener` until `shutdown` fires: read the
/// key once (so the first request already sees the entities; a backend
/// error there is logged, not fatal), refresh it in the background every
/// [`RankServerConfig::refresh_every`], and serve the routes.
///
/// # Errors
/// When accepting connections fails for good.
pub async fn run(
    listener: tokio::net::TcpListener,
    backend: Arc<dyn ResultBackend>,
    config: &RankServerConfig,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let cache = Arc::new(EntityCache::new(config.key.clone(), config.matching));
    if let Err(e) = cache.refresh(backend.as_ref()).await {
        tracing::warn!(key = %config.key, "cannot read the top entities yet: {e}");
    }
    let until = |shutdown: &Shutdown| {
        let mut shutdown = shutdown.clone();
        async move { shutdown.requested().await }
    };
    let refresher =
        Arc::clone(&cache).spawn_refresher(backend, config.refresh_every, until(&shutdown));
    let served = serve(
        listener,
        router(cache, &config.server),
        config.server.timeouts,
        until(&shutdown),
    )
    .await;
    refresher.abort();
    served
}

/// What the handlers share.
pub(crate) struct AppState {
    cache: Arc<EntityCache>,
    openapi: Bytes,
}

/// An error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What is wrong, e.g. `items[2].engagements: missing field `like``.
    pub detail: String,
    /// The JSON path of the offending value (`.` for the whole body), for a
    /// request that does not fit the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` while the server answers.
    pub status: &'static str,
    /// The key the entities are read from.
    pub key: String,
    /// How many entities requests are ranked against.
    pub entities: usize,
    /// `record`, `missing`, `malformed` or `not_loaded`.
    pub source: &'static str,
    /// When the key was last read (ISO 8601), if ever.
    pub refreshed_at: Option<String>,
}

/// The ranking server's routes over `cache`.
pub fn router(cache: Arc<EntityCache>, options: &ServerOptions) -> Router {
    let state = Arc::new(AppState {
        cache,
        openapi: Bytes::from(super::openapi::openapi_json()),
    });
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::HEAD, Method::OPTIONS])
        .allow_headers(Any);
    Router::new()
        .route("/rank", post(rank))
        .route("/health", get(health))
        .route("/openapi.json", get(openapi))
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .layer(cors)
        .with_state(state)
}

/// Serve `router` on `listener` (each connection with `TCP_NODELAY`) until
/// `shutdown` resolves; connections in flight are finished. A connection
/// whose client outwaits `timeouts` is closed.
///
/// # Errors
/// When accepting fails for good.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    timeouts: ConnectionTimeouts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    celeriac_serve::serve(listener, router, timeouts, shutdown).await
}

/// Rank a feed.
#[utoipa::path(
    post,
    path = "/rank",
    request_body = super::openapi::RankingRequestDoc,
    responses(
        (status = 200, description = "The item ids, ranked", body = super::openapi::RankingResponseDoc),
        (status = 400, description = "The body is not a valid RankingRequest", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody)
    )
)]
pub(crate) async fn rank(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            let detail = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "the request body is too large".to_owned()
            } else {
                rejection.body_text()
            };
            return error(status, detail, None);
        }
    };
    let snapshot = state.cache.snapshot();
    // The fast path: one pass over the body, ids and texts borrowed, the
    // answer written into this thread's reused buffer.
    if let Some(mut view) = super::fast::parse(&body) {
        let answer = RESPONSE_BUFFER.with_borrow_mut(|buffer| {
            if buffer.capacity() < RESPONSE_BUFFER_MIN {
                buffer.reserve(RESPONSE_BUFFER_MIN);
            }
            super::fast::write_ranked(&mut view, &snapshot.matcher, buffer);
            buffer.split().freeze()
        });
        return json_response(answer);
    }
    // Anything else is decoded the plain way, which decides: a valid body
    // the fast path could not take is ranked, an invalid one gets the JSON
    // path of its first bad value.
    let request: RankingRequest = match models::from_json::<RankingRequest>(&body) {
        Ok(request) => request,
        Err(e) => {
            let field = e.path().to_owned();
            let detail = format!("invalid RankingRequest at `{field}`: {}", e.message());
            return error(StatusCode::BAD_REQUEST, detail, Some(field));
        }
    };
    let ranked_ids = super::rank(&request.items, &snapshot.matcher);
    Json(RankingResponse {
        ranked_ids,
        new_items: None,
    })
    .into_response()
}

/// How much a thread's response buffer grows by at once: answers are carved
/// from it (`split`), and once they have been sent the space is reused.
const RESPONSE_BUFFER_MIN: usize = 64 * 1024;

thread_local! {
    static RESPONSE_BUFFER: std::cell::RefCell<BytesMut> =
        std::cell::RefCell::new(BytesMut::new());
}

fn json_response(body: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// The server's state.
#[utoipa::path(get, path = "/health", responses((status = 200, body = Health)))]
pub(crate) async fn health(State(state): State<Arc<AppState>>) -> Json<Health> {
    let snapshot = state.cache.snapshot();
    Json(Health {
        status: "ok",
        key: state.cache.key().to_owned(),
        entities: snapshot.matcher.entities().len(),
        source: snapshot.source.as_str(),
        refreshed_at: snapshot.refreshed_at.map(|t| t.to_rfc3339()),
    })
}

async fn openapi(State(state): State<Arc<AppState>>) -> Response {
    json_response(state.openapi.clone())
}

fn error(status: StatusCode, detail: String, field: Option<String>) -> Response {
    (status, Json(ErrorBody { detail, field })).into_response()
}
