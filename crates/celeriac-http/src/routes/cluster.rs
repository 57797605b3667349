//! The cluster: workers, queues, dead letters, a summary, health and
//! Prometheus metrics.
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/workers` | workers from heartbeats: liveness, active, processed, load |
//! | `GET /api/queues` | watched queues: depth (read now), rate, recent samples |
//! | `GET /api/overview` | counts for the dashboard's header |
//! | `GET /api/dead-letters?limit=` | newest dead letters |
//! | `POST /api/dead-letters/{id}/requeue` | put one back on its queue |
//! | `GET /health` | 200, or 503 when the broker does not answer |
//! | `GET /metrics` | Prometheus text format |

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath, ApiQuery};
use crate::server::Shared;
use crate::service;
use crate::views::{DeadLetterView, Health, LimitQuery, Overview, QueueView, Requeued, WorkerView};

/// Workers seen in the last hour, from their heartbeats.
#[utoipa::path(get, path = "/api/workers", tag = "cluster",
    responses((status = 200, body = Vec<WorkerView>), (status = 401, body = ErrorBody)))]
pub(crate) async fn workers(State(shared): State<Arc<Shared>>) -> Json<Vec<WorkerView>> {
    Json(shared.monitor.workers())
}

/// Watched queues with their depth, read now.
#[utoipa::path(get, path = "/api/queues", tag = "cluster",
    responses((status = 200, body = Vec<QueueView>), (status = 401, body = ErrorBody)))]
pub(crate) async fn queues(State(shared): State<Arc<Shared>>) -> Json<Vec<QueueView>> {
    let mut samples = Vec::new();
    for name in shared.monitor.queue_names() {
        let depth = tokio::time::timeout(
            Duration::from_secs(2),
            shared.app.broker().queues().depth(&name),
        )
        .await
        .map_err(|_| "the broker did not answer within 2 s".to_owned())
        .and_then(|r| r.map_err(|e| e.to_string()));
        samples.push((name, depth));
    }
    shared.monitor.record_samples(samples, None);
    Json(shared.monitor.queues())
}

/// Counts for the dashboard's header.
#[utoipa::path(get, path = "/api/overview", tag = "cluster",
    responses((status = 200, body = Overview), (status = 401, body = ErrorBody)))]
pub(crate) async fn overview(State(shared): State<Arc<Shared>>) -> Json<Overview> {
    let mut overview = shared.monitor.overview();
    overview.registered = shared
        .app
        .task_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    overview.transport = shared.transport().to_owned();
    Json(overview)
}

/// The newest dead letters: messages no worker could run, with why.
#[utoipa::path(get, path = "/api/dead-letters", tag = "cluster", params(LimitQuery),
    responses((status = 200, body = Vec<DeadLetterView>), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn dead_letters(
    State(shared): State<Arc<Shared>>,
    ApiQuery(query): ApiQuery<LimitQuery>,
) -> Result<Json<Vec<DeadLetterView>>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    Ok(Json(service::dead_letters(&shared, limit).await?))
}

/// Put a dead letter's message back on its queue.
#[utoipa::path(post, path = "/api/dead-letters/{id}/requeue", tag = "cluster",
    params(("id" = String, Path, description = "Dead letter id")),
    responses((status = 200, body = Requeued), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn requeue(
    State(shared): State<Arc<Shared>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Requeued>, ApiError> {
    service::requeue(&shared, &id).await?;
    Ok(Json(Requeued { id }))
}

/// Liveness and broker reachability; never needs the token.
#[utoipa::path(get, path = "/health", tag = "meta",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub(crate) async fn health(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let queue = shared.app.config().default_queue.clone();
    let probe = tokio::time::timeout(
        Duration::from_secs(2),
        shared.app.broker().queues().depth(&queue),
    )
    .await;
    let error = match probe {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("the broker did not answer within 2 s".to_owned()),
    };
    let status = if error.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = Health {
        status: if error.is_some() { "unavailable" } else { "ok" }.to_owned(),
        error,
    };
    (status, Json(body))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"),
        (status = 401, body = ErrorBody)))]
pub(crate) async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        shared.monitor.metrics(),
    )
}
