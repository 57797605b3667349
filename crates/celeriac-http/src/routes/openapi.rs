//! The OpenAPI document, generated from the handlers' annotations and the
//! types of [`crate::views`]; served at `/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;
use crate::routes::{cluster, groups, producer, stream, tasks};
use crate::views;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Celeriac producer API", description = "Send Celery tasks, read their state and results, watch workers and queues. When CELERIAC_API_TOKEN is set, every route but /health needs `Authorization: Bearer <token>`."),
    paths(
        producer::publish_wait_and_return, producer::wait_and_return_needs_post,
        producer::wait_and_return_status,
        producer::publish_sum, producer::sum_status,
        tasks::send_task, tasks::get_task, tasks::list_tasks, tasks::revoke_task, tasks::retry_task,
        groups::send_group, groups::get_group,
        cluster::workers, cluster::queues, cluster::overview, cluster::dead_letters, cluster::requeue,
        cluster::health, cluster::metrics, stream::events,
    ),
    components(schemas(
        ErrorBody, views::JobPublished, views::JobStatus, views::SumRequest,
        views::SendTaskRequest, views::SendOptions, views::TaskSent, views::TaskView, views::Progress,
        views::TaskList, views::RevokeResponse, views::WorkerView, views::QueueView,
        views::DeadLetterView, views::Overview, views::Health, views::Requeued,
        views::SendGroupRequest, views::GroupSent, views::GroupView, views::GroupMember,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
struct ApiDoc;

/// The OpenAPI document of this server.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /openapi.json`.
pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}
