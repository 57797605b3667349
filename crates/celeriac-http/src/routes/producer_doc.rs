//! The OpenAPI paths of the declared producer routes, built at runtime from
//! [`crate::HttpConfig::producer_routes`] (the handlers are generated too,
//! so there is no annotated function to derive them from).
//!
//! For each route: `POST /producer/api/{name}` (its request body, when it
//! has fields: an object with exactly those fields, each required and of
//! its [`ArgType`]), `GET /producer/api/{name}` (the 405) and `GET
//! /producer/api/{name}/{job_id}`. The answers of the layers (401, 403,
//! 400/413/415/422 for a body) are added afterwards with every other
//! route's, by `crate::routes::openapi`.

use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    AdditionalProperties, KnownFormat, ObjectBuilder, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{ContentBuilder, Ref, Required, ResponseBuilder};

use crate::producer_route::{ArgType, ProducerRoute};
use crate::routes::producer::{publish_path, status_path};

/// The tag of the producer routes in the document.
const TAG: &str = "producer";

/// Add the paths of `routes` to `openapi`.
pub(crate) fn add_paths(openapi: &mut utoipa::openapi::OpenApi, routes: &[ProducerRoute]) {
    for route in routes {
        let name = route.name();
        let publish = publish_path(route);
        let mut publishing = OperationBuilder::new()
            .tag(TAG)
            .operation_id(Some(format!("publish_{name}")))
            .summary(Some(format!("Queue `{}`", route.task())))
            .description(Some(publish_description(route)))
            .response("200", json_response("The job is queued", "JobPublished"))
            .response(
                "503",
                json_response("The broker cannot be reached", "ErrorBody"),
            );
        if !route.args().is_empty() {
            publishing = publishing.request_body(Some(request_body(route)));
        }
        openapi
            .paths
            .add_path_operation(&publish, vec![HttpMethod::Post], publishing);

        let refusal = OperationBuilder::new()
            .tag(TAG)
            .operation_id(Some(format!("{name}_needs_post")))
            .summary(Some(format!("Refused: use POST {publish}")))
            .description(Some(
                "Answers 405 with `Allow: POST`: a GET never publishes a job.",
            ))
            .response(
                "405",
                json_response("Use POST: a GET never publishes", "ErrorBody"),
            );
        openapi
            .paths
            .add_path_operation(&publish, vec![HttpMethod::Get], refusal);

        let job_id = ParameterBuilder::new()
            .name("job_id")
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .description(Some("The job id"))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)));
        let status = OperationBuilder::new()
            .tag(TAG)
            .operation_id(Some(format!("{name}_status")))
            .summary(Some(format!(
                "Whether a `{}` job finished, and its result",
                route.task()
            )))
            .description(Some("An unknown job id reads as not ready."))
            .parameter(job_id)
            .response("200", json_response("The job's state", "JobStatus"))
            .response("400", json_response("The job id is malformed", "ErrorBody"));
        openapi
            .paths
            .add_path_operation(status_path(route), vec![HttpMethod::Get], status);
    }
}

fn publish_description(route: &ProducerRoute) -> String {
    let sends = if route.args().is_empty() {
        format!("Sends `{}()`; no body.", route.task())
    } else {
        let fields: Vec<&str> = route.args().iter().map(|a| a.name.as_str()).collect();
        format!(
            "Sends `{}({})`, the body's fields as positional arguments.",
            route.task(),
            fields.join(", ")
        )
    };
    match route.description_text() {
        Some(text) => format!("{text}\n\n{sends}"),
        None => sends,
    }
}

/// A JSON answer whose body is the component `schema`.
fn json_response(description: &str, schema: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(schema)))
                .build(),
        )
        .build()
}

/// The body of a route with fields: an object with exactly those fields.
fn request_body(route: &ProducerRoute) -> utoipa::openapi::request_body::RequestBody {
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .title(Some(route.request_name()))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    for arg in route.args() {
        object = object
            .property(&arg.name, arg_schema(arg.arg_type))
            .required(&arg.name);
    }
    RequestBodyBuilder::new()
        .required(Some(Required::True))
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(object)).build(),
        )
        .build()
}

/// The JSON schema of one field.
fn arg_schema(arg_type: ArgType) -> ObjectBuilder {
    let typed = |t: Type| ObjectBuilder::new().schema_type(t);
    let int64 = Some(SchemaFormat::KnownFormat(KnownFormat::Int64));
    match arg_type {
        ArgType::Integer => typed(Type::Integer).format(int64),
        ArgType::UnsignedInteger => typed(Type::Integer).format(int64).minimum(Some(0)),
        ArgType::Number => typed(Type::Number),
        ArgType::String => typed(Type::String),
        ArgType::Boolean => typed(Type::Boolean),
        ArgType::Array => typed(Type::Array),
        ArgType::Object => typed(Type::Object),
        ArgType::Any => ObjectBuilder::new().schema_type(SchemaType::AnyValue),
    }
}
