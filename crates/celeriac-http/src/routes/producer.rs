//! The application's producer routes ([`crate::ProducerRoute`], declared in
//! [`crate::HttpConfig::producer_routes`]), with the JSON shapes of the
//! FastAPI producer of the Celery + FastAPI example. For a route `name`:
//!
//! | route | answer |
//! |---|---|
//! | `POST /producer/api/{name}` (its body fields, if any) | `{"message": "job published", "job_id"}` |
//! | `GET /producer/api/{name}/{job_id}` | `{"ready", "result"}` |
//! | `GET /producer/api/{name}` | 405, `Allow: POST` |
//!
//! The task is sent by name, registered here or not, as Celery's `delay()`
//! does, with the body's fields as positional arguments in declared order.
//! A route with fields reads a JSON body (`Content-Type:
//! application/json`, 415 otherwise); a field missing, of the wrong type
//! or not declared is a 422 naming it. A route without fields reads no
//! body. An unknown job id reads as not ready, as Celery's `AsyncResult`
//! does. Names not declared are the router's JSON 404.
//!
//! A `GET` on the publishing path answers 405 with a message saying to
//! use `POST` (same answer), because a `GET` must not send work: a link,
//! an `<img>` on any page, a prefetching browser or a crawler would each
//! queue a job.
//!
//! [`add`] puts the three paths of each route on the router;
//! `crate::routes::openapi` documents them from the same declarations.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::producer_route::ProducerRoute;
use crate::server::Shared;
use crate::service;
use crate::views::{JobPublished, JobStatus, SendOptions};

/// The publishing path of `route`: `/producer/api/{name}`.
pub(crate) fn publish_path(route: &ProducerRoute) -> String {
    format!("/producer/api/{}", route.name())
}

/// The status path of `route`: `/producer/api/{name}/{job_id}`.
pub(crate) fn status_path(route: &ProducerRoute) -> String {
    format!("/producer/api/{}/{{job_id}}", route.name())
}

/// Add the paths of every declared route to `router`.
pub(crate) fn add(
    mut router: Router<Arc<Shared>>,
    routes: &[ProducerRoute],
) -> Router<Arc<Shared>> {
    for route in routes {
        let route = Arc::new(route.clone());
        let publishing = if route.args().is_empty() {
            let route = Arc::clone(&route);
            post(move |State(shared): State<Arc<Shared>>| async move {
                publish(&shared, &route, Vec::new()).await
            })
        } else {
            let route = Arc::clone(&route);
            post(
                move |State(shared): State<Arc<Shared>>, ApiJson(body): ApiJson<Value>| async move {
                    let args = route.args_from(body)?;
                    publish(&shared, &route, args).await
                },
            )
        };
        let refusal = needs_post(&route);
        let publishing = publishing.get(move || async move { refusal.into_response() });
        router = router.route(&publish_path(&route), publishing).route(
            &status_path(&route),
            get(
                |State(shared): State<Arc<Shared>>, ApiPath(job_id): ApiPath<String>| async move {
                    job_status(&shared, &job_id).await
                },
            ),
        );
    }
    router
}

/// Send `route`'s task with `args`.
async fn publish(
    shared: &Shared,
    route: &ProducerRoute,
    args: Vec<Value>,
) -> Result<Json<JobPublished>, ApiError> {
    let sent = service::send_unchecked(
        shared,
        route.task(),
        args,
        Map::new(),
        &SendOptions::default(),
    )
    .await?;
    Ok(Json(JobPublished::new(sent.task_id)))
}

/// The answer to `GET /producer/api/{name}`: 405, `Allow: POST`, and a
/// message saying to use `POST`.
#[derive(Clone)]
struct NeedsPost(String);

impl IntoResponse for NeedsPost {
    fn into_response(self) -> Response {
        let mut response = ApiError::new(StatusCode::METHOD_NOT_ALLOWED, self.0).into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        response
    }
}

fn needs_post(route: &ProducerRoute) -> NeedsPost {
    let path = publish_path(route);
    NeedsPost(format!(
        "GET {path} does not publish a job (a GET must not send work); use POST {path}, \
         which answers {{\"message\": \"job published\", \"job_id\": …}}"
    ))
}

/// Whether a job finished, and its result; an unknown id is not ready.
async fn job_status(shared: &Shared, job_id: &str) -> Result<Json<JobStatus>, ApiError> {
    let job_id = crate::extract::task_id(job_id)?;
    let meta = shared.app.async_result(job_id).info().await?;
    let (ready, result) = match meta {
        Some(meta) if meta.status.is_ready() => (true, meta.result),
        _ => (false, Value::Null),
    };
    Ok(Json(JobStatus { ready, result }))
}
