//! The generic task API: send any task by name, read any task, revoke,
//! retry, list recent ones.
//!
//! | route | does |
//! |---|---|
//! | `POST /api/tasks/{task}` | send task *name* `{args, kwargs, options}` |
//! | `GET /api/tasks/{task}` | task *id*: state, progress, result, traceback |
//! | `GET /api/tasks?state=&name=&worker=&q=&since=&until=&sort=&order=&offset=&limit=` | a page of the remembered tasks, filtered, searched and sorted |
//! | `POST /api/tasks/{task}/revoke?terminate=true` | revoke |
//! | `POST /api/tasks/{task}/retry` | send the same call again |

use std::sync::Arc;

use axum::extract::State;
use axum::Json;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath, ApiQuery, BodyJson};
use crate::monitor::query::Query;
use crate::server::Shared;
use crate::service;
use crate::views::{
    RevokeQuery, RevokeResponse, SendTaskRequest, TaskFilter, TaskList, TaskSent, TaskView,
};

/// Send task `task` (a name) with JSON arguments and Celery's options.
#[utoipa::path(post, path = "/api/tasks/{task}", tag = "tasks", request_body = SendTaskRequest,
    params(("task" = String, Path, description = "Task name, e.g. tasks.add")),
    responses((status = 200, body = TaskSent), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn send_task(
    State(shared): State<Arc<Shared>>,
    ApiPath(name): ApiPath<String>,
    BodyJson(body): BodyJson<SendTaskRequest>,
) -> Result<Json<TaskSent>, ApiError> {
    let sent = service::send(&shared, &name, body.args, body.kwargs, &body.options).await?;
    Ok(Json(sent))
}

/// A task's state, progress meta, result and traceback. An id nobody knows
/// reads PENDING with `known: false`, as Celery answers.
#[utoipa::path(get, path = "/api/tasks/{task}", tag = "tasks",
    params(("task" = String, Path, description = "Task id")),
    responses((status = 200, body = TaskView), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn get_task(
    State(shared): State<Arc<Shared>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TaskView>, ApiError> {
    Ok(Json(service::task_view(&shared, &id).await?))
}

/// Tasks the server remembers (sent here or seen in events): filtered by
/// state, name, worker and time, searched (id, arguments, result), sorted
/// and paged on the server.
#[utoipa::path(get, path = "/api/tasks", tag = "tasks", params(TaskFilter),
    responses((status = 200, body = TaskList), (status = 400, body = ErrorBody)))]
pub(crate) async fn list_tasks(
    State(shared): State<Arc<Shared>>,
    ApiQuery(filter): ApiQuery<TaskFilter>,
) -> Result<Json<TaskList>, ApiError> {
    let query = Query::parse(&filter).map_err(ApiError::bad_request)?;
    let (tasks, total, remembered) = shared.monitor.list(&query);
    Ok(Json(TaskList {
        tasks,
        total,
        offset: query.offset(),
        limit: query.limit(),
        remembered,
    }))
}

/// Revoke a task: workers skip it; with `terminate=true` a running one is
/// stopped. A task that has not finished reads REVOKED at once.
#[utoipa::path(post, path = "/api/tasks/{task}/revoke", tag = "tasks",
    params(("task" = String, Path, description = "Task id"), RevokeQuery),
    responses((status = 200, body = RevokeResponse), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn revoke_task(
    State(shared): State<Arc<Shared>>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<RevokeQuery>,
) -> Result<Json<RevokeResponse>, ApiError> {
    Ok(Json(service::revoke(&shared, &id, query.terminate).await?))
}

/// Send a recent task again (same name and arguments, new id).
#[utoipa::path(post, path = "/api/tasks/{task}/retry", tag = "tasks",
    params(("task" = String, Path, description = "Task id")),
    responses((status = 200, body = TaskSent), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn retry_task(
    State(shared): State<Arc<Shared>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TaskSent>, ApiError> {
    Ok(Json(service::retry(&shared, &id).await?))
}
