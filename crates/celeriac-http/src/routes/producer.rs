//! The seed's producer routes, with its JSON shapes (the FastAPI producer
//! of the Celery + FastAPI example):
//!
//! | route | answer |
//! |---|---|
//! | `POST /producer/api/wait_and_return` | `{"message": "job published", "job_id"}` |
//! | `GET /producer/api/wait_and_return/{job_id}` | `{"ready", "result"}` |
//! | `POST /producer/api/sum` `{"number": n}` | `{"message": "job published", "job_id"}` |
//! | `GET /producer/api/sum/{job_id}` | `{"ready", "result"}` |
//!
//! Tasks are sent by name (`tasks.wait_and_return`, `tasks.sum_to_n_job`),
//! registered here or not, as the seed's `delay()` does. An unknown job id
//! reads as not ready, as Celery's `AsyncResult` does.
//!
//! The seed published `wait_and_return` on a `GET`; here that `GET` answers
//! 405 with a message saying to use `POST` (same answer), because a `GET`
//! must not send work: a link, an `<img>` on any page, a prefetching
//! browser or a crawler would each queue a 20-second job.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{Map, Value};

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::server::Shared;
use crate::service;
use crate::views::{JobPublished, JobStatus, SendOptions, SumRequest};

/// The seed's `wait_and_return` task.
pub(crate) const WAIT_AND_RETURN: &str = "tasks.wait_and_return";
/// The seed's `sum_to_n_job` task.
pub(crate) const SUM_TO_N: &str = "tasks.sum_to_n_job";

/// Queue the task that waits 20 s and returns "Hello World!".
///
/// A `POST` with no body (the seed used `GET`, which now answers 405).
#[utoipa::path(post, path = "/producer/api/wait_and_return", tag = "producer",
    responses((status = 200, body = JobPublished), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn publish_wait_and_return(
    State(shared): State<Arc<Shared>>,
) -> Result<Json<JobPublished>, ApiError> {
    let sent = service::send_unchecked(
        &shared,
        WAIT_AND_RETURN,
        Vec::new(),
        Map::new(),
        &SendOptions::default(),
    )
    .await?;
    Ok(Json(JobPublished::new(sent.task_id)))
}

/// The seed's `GET /producer/api/wait_and_return`: no longer publishes.
///
/// Answers 405 with `Allow: POST` and a message saying to use `POST`.
#[utoipa::path(get, path = "/producer/api/wait_and_return", tag = "producer",
    responses((status = 405, description = "Use POST: a GET never publishes", body = ErrorBody)))]
pub(crate) async fn wait_and_return_needs_post() -> Response {
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "GET /producer/api/wait_and_return no longer publishes a job (a GET must not \
         send work); use POST /producer/api/wait_and_return, which answers the same \
         {\"message\": \"job published\", \"job_id\": …}",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

/// Whether a `wait_and_return` job finished, and its result.
#[utoipa::path(get, path = "/producer/api/wait_and_return/{job_id}", tag = "producer",
    params(("job_id" = String, Path, description = "The job id")),
    responses((status = 200, body = JobStatus), (status = 400, body = ErrorBody)))]
pub(crate) async fn wait_and_return_status(
    State(shared): State<Arc<Shared>>,
    ApiPath(job_id): ApiPath<String>,
) -> Result<Json<JobStatus>, ApiError> {
    job_status(&shared, &job_id).await
}

/// Queue `sum_to_n_job(number)`: the sum of 1..=number.
#[utoipa::path(post, path = "/producer/api/sum", tag = "producer", request_body = SumRequest,
    responses((status = 200, body = JobPublished), (status = 400, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn publish_sum(
    State(shared): State<Arc<Shared>>,
    ApiJson(body): ApiJson<SumRequest>,
) -> Result<Json<JobPublished>, ApiError> {
    let sent = service::send_unchecked(
        &shared,
        SUM_TO_N,
        vec![Value::from(body.number)],
        Map::new(),
        &SendOptions::default(),
    )
    .await?;
    Ok(Json(JobPublished::new(sent.task_id)))
}

/// Whether a `sum_to_n_job` finished, and its result.
#[utoipa::path(get, path = "/producer/api/sum/{job_id}", tag = "producer",
    params(("job_id" = String, Path, description = "The job id")),
    responses((status = 200, body = JobStatus), (status = 400, body = ErrorBody)))]
pub(crate) async fn sum_status(
    State(shared): State<Arc<Shared>>,
    ApiPath(job_id): ApiPath<String>,
) -> Result<Json<JobStatus>, ApiError> {
    job_status(&shared, &job_id).await
}

async fn job_status(shared: &Shared, job_id: &str) -> Result<Json<JobStatus>, ApiError> {
    let job_id = crate::extract::task_id(job_id)?;
    let meta = shared.app.async_result(job_id).info().await?;
    let (ready, result) = match meta {
        Some(meta) if meta.status.is_ready() => (true, meta.result),
        _ => (false, Value::Null),
    };
    Ok(Json(JobStatus { ready, result }))
}
