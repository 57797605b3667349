//! Groups: send one task over a list of arguments as a Celery group, and
//! read a group's members and progress.
//!
//! | route | does |
//! |---|---|
//! | `POST /api/groups` | send `{task, args_list, kwargs, options}` as a group, saved |
//! | `GET /api/groups/{group}` | total, completed, failed, members with states |

use std::sync::Arc;

use axum::extract::State;
use axum::Json;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::server::Shared;
use crate::service;
use crate::views::{GroupSent, GroupView, SendGroupRequest};

/// Send task `task` once per entry of `args_list`, as one Celery group
/// (members share a `group` id and carry their `group_index`), and save it
/// where Celery's `GroupResult.save()` does, so Python's
/// `GroupResult.restore(id)` finds it too.
#[utoipa::path(post, path = "/api/groups", tag = "groups", request_body = SendGroupRequest,
    responses((status = 200, body = GroupSent), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn send_group(
    State(shared): State<Arc<Shared>>,
    ApiJson(body): ApiJson<SendGroupRequest>,
) -> Result<Json<GroupSent>, ApiError> {
    Ok(Json(service::send_group(&shared, body).await?))
}

/// A group's members with their states, and its progress: from the group
/// saved in the result backend (by this API, `GroupResult.save()` in Rust
/// or Python), else from the members this server has seen.
#[utoipa::path(get, path = "/api/groups/{group}", tag = "groups",
    params(("group" = String, Path, description = "Group id")),
    responses((status = 200, body = GroupView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn get_group(
    State(shared): State<Arc<Shared>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<GroupView>, ApiError> {
    Ok(Json(service::group_view(&shared, &id).await?))
}
