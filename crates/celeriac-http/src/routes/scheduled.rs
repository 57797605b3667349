//! Scheduled tasks: what waits in the broker for its ETA or countdown.
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/scheduled?limit=` | waiting tasks, soonest first: id, name, queue, ETA, seconds left, argument reprs |

use std::sync::Arc;

use axum::extract::State;
use axum::Json;

use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;
use crate::server::Shared;
use crate::service;
use crate::views::{ScheduledList, ScheduledQuery};

/// Tasks waiting in the broker for their ETA or countdown, soonest first
/// (Celery's `inspect scheduled`, read from the broker rather than asked
/// of workers). On a broker that cannot list them without taking them
/// (AMQP) the list is empty and `supported` false.
#[utoipa::path(get, path = "/api/scheduled", tag = "cluster", params(ScheduledQuery),
    responses((status = 200, body = ScheduledList), (status = 400, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    ApiQuery(query): ApiQuery<ScheduledQuery>,
) -> Result<Json<ScheduledList>, ApiError> {
    Ok(Json(service::scheduled(&shared, query.limit).await?))
}
