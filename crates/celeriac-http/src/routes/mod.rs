//! The router: every route, its layers, and the fallbacks.
//!
//! Layers, outermost first: request tracing (method and path only, never
//! headers), panic → JSON 500, CORS (when enabled, so preflights pass
//! before authentication), the cross-site refusal of state-changing
//! requests (`crate::guard`), authentication, body size limit.
//! Unknown paths are a JSON 404 and wrong methods a JSON 405 — after
//! authentication, so without the token every path is a 401. The producer
//! routes come from [`crate::HttpConfig::producer_routes`] and sit behind
//! the same layers as every other route.

pub(crate) mod cluster;
pub(crate) mod dashboard;
pub(crate) mod groups;
pub(crate) mod openapi;
pub(crate) mod producer;
pub(crate) mod producer_doc;
pub(crate) mod scheduled;
pub(crate) mod stream;
pub(crate) mod tasks;
pub(crate) mod workers;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::CorsLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::server::Shared;

/// The routes every server answers, as `(method, path)`, besides the
/// producer routes; [`routes`] lists them all.
const FIXED_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/tasks"),
    ("POST", "/api/tasks/{task}"),
    ("GET", "/api/tasks/{task}"),
    ("POST", "/api/tasks/{task}/revoke"),
    ("POST", "/api/tasks/{task}/retry"),
    ("POST", "/api/groups"),
    ("GET", "/api/groups/{group}"),
    ("GET", "/api/workers"),
    ("GET", "/api/workers/{name}"),
    ("POST", "/api/workers/{name}/rate-limit"),
    ("POST", "/api/workers/{name}/shutdown"),
    ("GET", "/api/queues"),
    ("GET", "/api/overview"),
    ("GET", "/api/dead-letters"),
    ("GET", "/api/scheduled"),
    ("POST", "/api/dead-letters/{id}/requeue"),
    ("GET", "/api/events/stream"),
    ("GET", "/openapi.json"),
    ("GET", "/metrics"),
    ("GET", "/health"),
    ("GET", "/"),
    ("GET", "/dashboard"),
    ("GET", "/dashboard/tasks/{id}"),
    ("GET", "/dashboard/groups/{id}"),
    ("GET", "/dashboard/workers/{name}"),
    ("GET", "/dashboard/scheduled"),
    ("GET", "/dashboard/assets/{file}"),
    ("POST", "/dashboard/login"),
];

/// Every route a server with these producer routes answers, as `(method,
/// path)`: for each producer route `POST /producer/api/{name}` and `GET
/// /producer/api/{name}/{job_id}` (in declared order), then the fixed
/// routes. Tests enumerate it.
pub fn routes(producer_routes: &[crate::ProducerRoute]) -> Vec<(&'static str, String)> {
    let mut all = Vec::with_capacity(2 * producer_routes.len() + FIXED_ROUTES.len());
    for route in producer_routes {
        all.push(("POST", producer::publish_path(route)));
        all.push(("GET", producer::status_path(route)));
    }
    all.extend(
        FIXED_ROUTES
            .iter()
            .map(|(method, path)| (*method, (*path).to_owned())),
    );
    all
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route; see /openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route; see /openapi.json",
    )
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}

/// The whole application.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let mut router = producer::add(Router::new(), &shared.config.producer_routes)
        .route("/api/tasks", get(tasks::list_tasks))
        .route(
            "/api/tasks/{task}",
            get(tasks::get_task).post(tasks::send_task),
        )
        .route("/api/tasks/{task}/revoke", post(tasks::revoke_task))
        .route("/api/tasks/{task}/retry", post(tasks::retry_task))
        .route("/api/groups", post(groups::send_group))
        .route("/api/groups/{group}", get(groups::get_group))
        .route("/api/workers", get(cluster::workers))
        .route("/api/workers/{name}", get(workers::worker))
        .route("/api/workers/{name}/rate-limit", post(workers::rate_limit))
        .route("/api/workers/{name}/shutdown", post(workers::shutdown))
        .route("/api/queues", get(cluster::queues))
        .route("/api/overview", get(cluster::overview))
        .route("/api/dead-letters", get(cluster::dead_letters))
        .route("/api/dead-letters/{id}/requeue", post(cluster::requeue))
        .route("/api/scheduled", get(scheduled::list))
        .route("/api/events/stream", get(stream::events))
        .route("/openapi.json", get(openapi::document))
        .route("/metrics", get(cluster::metrics))
        .route("/health", get(cluster::health))
        .route("/", get(dashboard::root))
        .route("/dashboard", get(dashboard::index))
        .route("/dashboard/", get(dashboard::index))
        .route("/dashboard/tasks/{id}", get(dashboard::task_page))
        .route("/dashboard/groups/{id}", get(dashboard::group_page))
        .route("/dashboard/workers/{name}", get(dashboard::worker_page))
        .route("/dashboard/scheduled", get(dashboard::scheduled_page))
        .route("/dashboard/assets/{file}", get(dashboard::asset))
        .route("/dashboard/login", post(dashboard::login))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(shared.config.body_limit))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            crate::auth::require_token,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            crate::guard::same_origin,
        ));
    if shared.config.cors_any_origin {
        router = router.layer(CorsLayer::permissive());
    }
    router
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http())
        .with_state(shared)
}
