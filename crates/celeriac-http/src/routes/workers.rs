//! One worker in detail, and the controls Flower's worker page has, over
//! remote control (Celery's pidbox on Redis; the event bus on SQLite and
//! memory brokers, see `celeriac::control`).
//!
//! | route | does |
//! |---|---|
//! | `GET /api/workers/{name}` | heartbeats, succeeded/failed, registered tasks with rate limits, queues, stats |
//! | `POST /api/workers/{name}/rate-limit` | `{task_name, rate_limit}`: Celery's `rate_limit` command |
//! | `POST /api/workers/{name}/shutdown` | Celery's `shutdown` command: the worker stops as on SIGTERM |
//!
//! A worker no heartbeat told of is a 404; one seen that does not answer
//! within 2 s is a 504; an answer of `{"error": …}` (an unknown task, a
//! bad rate) is a 422 carrying it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::server::Shared;
use crate::views::{ControlReply, RateLimitRequest, RegisteredTask, WorkerDetail, WorkerView};

/// How long a worker has to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// Check a worker's node name from a URL.
fn worker_name(name: &str) -> Result<&str, ApiError> {
    if name.is_empty() || name.len() > 255 {
        return Err(ApiError::bad_request(
            "worker name must be 1 to 255 bytes long",
        ));
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ApiError::bad_request(
            "worker name must not contain spaces or control characters",
        ));
    }
    Ok(name)
}

/// 404 for a worker no heartbeat has told of (asking it would only wait
/// out the timeout).
fn seen(shared: &Shared, name: &str) -> Result<WorkerView, ApiError> {
    shared.monitor.worker(name).ok_or_else(|| {
        ApiError::not_found(format!(
            "no worker named {name:?} has been seen (workers announce themselves every 2 s)"
        ))
    })
}

/// Ask `worker` one thing; its answer, or why there is none.
async fn ask(
    shared: &Shared,
    worker: &str,
    method: &str,
    arguments: Value,
) -> Result<Value, String> {
    let control = shared.app.remote_control();
    let replies = control
        .call(
            method,
            arguments,
            Some(vec![worker.to_owned()]),
            ANSWER_WITHIN,
            Some(1),
        )
        .await
        .map_err(|e| e.to_string())?;
    replies
        .into_iter()
        .find(|(node, _)| node == worker)
        .map(|(_, reply)| reply)
        .ok_or_else(|| {
            format!(
                "{worker} did not answer {method} within {} s",
                ANSWER_WITHIN.as_secs()
            )
        })
}

/// `"tasks.add [rate_limit=10/m]"` → the name and its limit.
fn registered_task(entry: &str) -> RegisteredTask {
    let (name, info) = match entry.split_once(" [") {
        Some((name, rest)) => (name, rest.trim_end_matches(']')),
        None => (entry, ""),
    };
    let rate_limit = info
        .split_whitespace()
        .find_map(|item| item.strip_prefix("rate_limit="))
        .filter(|r| *r != "None")
        .map(str::to_owned);
    RegisteredTask {
        name: name.to_owned(),
        rate_limit,
    }
}

/// A worker: its heartbeats, counts, registered tasks (with their rate
/// limits), queues and `stats`, asked over remote control.
#[utoipa::path(get, path = "/api/workers/{name}", tag = "cluster",
    params(("name" = String, Path, description = "Worker node name, e.g. celeriac@host")),
    responses((status = 200, body = WorkerDetail), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn worker(
    State(shared): State<Arc<Shared>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<WorkerDetail>, ApiError> {
    let name = worker_name(&name)?;
    let worker = seen(&shared, name)?;
    let (stats, registered, queues) = tokio::join!(
        ask(&shared, name, "stats", json!({})),
        ask(
            &shared,
            name,
            "registered",
            json!({"taskinfoitems": ["rate_limit"]})
        ),
        ask(&shared, name, "active_queues", json!({})),
    );
    let counts = shared.monitor.worker_task_counts(name);
    let own = |key: &str| {
        stats
            .as_ref()
            .ok()
            .and_then(|s| s.get("celeriac"))
            .and_then(|c| c.get(key))
            .and_then(Value::as_u64)
    };
    let succeeded = own("succeeded").unwrap_or_else(|| counts.get("SUCCESS").copied().unwrap_or(0));
    let failed = own("failed").unwrap_or_else(|| counts.get("FAILURE").copied().unwrap_or(0));
    let control_error = [&stats, &registered, &queues]
        .iter()
        .find_map(|r| r.as_ref().err().cloned());
    Ok(Json(WorkerDetail {
        worker,
        succeeded,
        failed,
        seen_by_state: counts.into_iter().collect::<BTreeMap<_, _>>(),
        registered: registered
            .ok()
            .and_then(|r| r.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(Value::as_str)
            .map(registered_task)
            .collect(),
        queues: queues
            .ok()
            .and_then(|q| q.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|q| q.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect(),
        stats: stats.unwrap_or(Value::Null),
        control: shared.app.remote_control().kind().to_owned(),
        control_error,
    }))
}

/// Send `method` to one worker and hand back its answer.
async fn command(
    shared: &Shared,
    worker: &str,
    method: &str,
    arguments: Value,
) -> Result<ControlReply, ApiError> {
    let reply = ask(shared, worker, method, arguments)
        .await
        .map_err(|why| ApiError::new(StatusCode::GATEWAY_TIMEOUT, why))?;
    if let Some(error) = reply.get("error").and_then(Value::as_str) {
        return Err(ApiError::unprocessable(format!("{worker}: {error}")));
    }
    Ok(ControlReply {
        worker: worker.to_owned(),
        reply,
    })
}

/// Change a task's rate limit on one worker (Celery's `rate_limit`).
#[utoipa::path(post, path = "/api/workers/{name}/rate-limit", tag = "cluster", request_body = RateLimitRequest,
    params(("name" = String, Path, description = "Worker node name")),
    responses((status = 200, body = ControlReply), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 504, body = ErrorBody)))]
pub(crate) async fn rate_limit(
    State(shared): State<Arc<Shared>>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<RateLimitRequest>,
) -> Result<Json<ControlReply>, ApiError> {
    let name = worker_name(&name)?;
    seen(&shared, name)?;
    if body.task_name.trim().is_empty() || body.task_name.len() > 255 {
        return Err(ApiError::unprocessable(
            "task_name must be 1 to 255 bytes long",
        ));
    }
    if let Err(err) = celeriac::worker::parse_rate_limit(&body.rate_limit) {
        return Err(ApiError::unprocessable(format!(
            "rate_limit: {err} (use e.g. 10/s, 100/m, 1000/h, or 0 for none)"
        )));
    }
    let arguments = json!({"task_name": body.task_name, "rate_limit": body.rate_limit});
    Ok(Json(command(&shared, name, "rate_limit", arguments).await?))
}

/// Stop one worker (Celery's `shutdown`): it finishes or gives back what
/// it holds, as on SIGTERM.
#[utoipa::path(post, path = "/api/workers/{name}/shutdown", tag = "cluster",
    params(("name" = String, Path, description = "Worker node name")),
    responses((status = 200, body = ControlReply), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 504, body = ErrorBody)))]
pub(crate) async fn shutdown(
    State(shared): State<Arc<Shared>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ControlReply>, ApiError> {
    let name = worker_name(&name)?;
    seen(&shared, name)?;
    Ok(Json(command(&shared, name, "shutdown", json!({})).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_entries_read_like_celerys() {
        let t = registered_task("tasks.add [rate_limit=10/m]");
        assert_eq!(
            (t.name.as_str(), t.rate_limit.as_deref()),
            ("tasks.add", Some("10/m"))
        );
        let t = registered_task("tasks.mul");
        assert_eq!((t.name.as_str(), t.rate_limit), ("tasks.mul", None));
        let t = registered_task("py.task [rate_limit=None]");
        assert_eq!(t.rate_limit, None);
    }

    #[test]
    fn worker_names_are_checked() {
        assert!(worker_name("celeriac@host").is_ok());
        assert!(worker_name("").is_err());
        assert!(worker_name("a b").is_err());
        assert!(worker_name(&"x".repeat(300)).is_err());
    }
}
