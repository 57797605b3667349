//! The OpenAPI document, generated from the handlers' annotations and the
//! types of [`crate::views`], plus the paths of the declared producer
//! routes (`crate::routes::producer_doc`); built once when the server
//! starts and served at `/openapi.json`.
//!
//! The answers the layers in front of every handler give (see
//! [`crate::routes()`]) are added to each operation by [`LayerAnswers`], so a
//! new route is documented with them without repeating them: 401 (a token
//! is configured and the request has none), 403 (a cross-site
//! state-changing request, `crate::guard`), and for routes that read a body
//! 400/413/415/422. `GET /health` needs no token and says so.
//! `crates/celeriac-cli/tests/schemathesis.rs` checks the document against
//! the running server.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;
use crate::producer_route::ProducerRoute;
use crate::routes::{cluster, groups, producer_doc, scheduled, stream, tasks, workers};
use crate::server::Shared;
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

/// Adds the answers of the layers in front of the handlers to every
/// operation that does not document them itself.
struct LayerAnswers;

/// Routes that need no token (`crate::auth`).
const OPEN_PATHS: &[&str] = &["/health"];

impl Modify for LayerAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in &mut openapi.paths.paths {
            let open = OPEN_PATHS.contains(&path.as_str());
            let safe = [&mut item.get, &mut item.head, &mut item.options];
            for operation in safe.into_iter().flatten() {
                layer_answers(operation, open, false);
            }
            let unsafe_ = [
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in unsafe_.into_iter().flatten() {
                layer_answers(operation, open, true);
            }
        }
    }
}

/// Document on `operation` the answers of the layers: 401 unless `open`,
/// 403 when `state_changing`, 400 when it reads path or query parameters
/// (they are checked before the handler runs), 400/413/415/422 when it
/// reads a body.
fn layer_answers(operation: &mut Operation, open: bool, state_changing: bool) {
    let mut add = |status: u16, description: &str| {
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| {
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build()
                    .into()
            });
    };
    if open {
        // An empty requirement: no token needed.
        operation.security = Some(vec![SecurityRequirement::default()]);
    } else {
        add(
            401,
            "The server has an API token and the request carries neither it \
             (`Authorization: Bearer <token>`) nor a dashboard session",
        );
    }
    if state_changing {
        add(
            403,
            "A browser's cross-site request (`Sec-Fetch-Site: cross-site`, or an \
             `Origin` that is not this server) is refused",
        );
    }
    let has_parameters = operation.parameters.as_ref().is_some_and(|p| {
        p.iter()
            .any(|p| matches!(p.parameter_in, ParameterIn::Path | ParameterIn::Query))
    });
    if has_parameters {
        add(400, "A path or query parameter is malformed");
    }
    if operation.request_body.is_some() {
        add(400, "The body is not well-formed JSON");
        add(413, "The body is larger than the server's limit");
        add(
            415,
            "The body is not sent with `Content-Type: application/json`",
        );
        add(422, "The body is JSON of the wrong shape");
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Celeriac producer API", description = "Send Celery tasks, read their state and results, watch workers and queues. When CELERIAC_API_TOKEN is set, every route but /health needs `Authorization: Bearer <token>`."),
    paths(
        tasks::send_task, tasks::get_task, tasks::list_tasks, tasks::revoke_task, tasks::retry_task,
        groups::send_group, groups::get_group,
        cluster::workers, cluster::queues, cluster::overview, cluster::dead_letters, cluster::requeue,
        cluster::health, cluster::metrics, stream::events,
        workers::worker, workers::rate_limit, workers::shutdown,
        scheduled::list,
    ),
    components(schemas(
        ErrorBody, views::JobPublished, views::JobStatus,
        views::SendTaskRequest, views::SendOptions, views::TaskSent, views::TaskView, views::Progress,
        views::TaskList, views::RevokeResponse, views::WorkerView, views::QueueView,
        views::DeadLetterView, views::Overview, views::Health, views::Requeued,
        views::SendGroupRequest, views::GroupSent, views::GroupView, views::GroupMember,
        views::TaskSort, views::SortOrder, views::WorkerDetail, views::RegisteredTask,
        views::RateLimitRequest, views::ControlReply,
        views::ScheduledList, views::ScheduledTask,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
struct ApiDoc;

/// The OpenAPI document of a server with these producer routes
/// ([`crate::HttpConfig::producer_routes`]): every fixed route, and the
/// three paths of each producer route.
pub fn openapi(producer_routes: &[ProducerRoute]) -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    producer_doc::add_paths(&mut document, producer_routes);
    LayerAnswers.modify(&mut document);
    document
}

/// `GET /openapi.json`.
pub(crate) async fn document(State(shared): State<Arc<Shared>>) -> Json<utoipa::openapi::OpenApi> {
    Json(shared.openapi.clone())
}
