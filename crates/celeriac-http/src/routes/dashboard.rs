//! The dashboard's pages and assets, embedded in the binary (no CDN: the
//! pages work on a machine without internet).
//!
//! | route | serves |
//! |---|---|
//! | `GET /dashboard` | workers, queues, recent tasks, dead letters, live |
//! | `GET /dashboard/tasks/{id}` | one task: arguments, result, traceback, progress bar, parent, children, group, chord |
//! | `GET /dashboard/groups/{id}` | one group: members with states, live progress bar |
//! | `GET /dashboard/workers/{name}` | one worker: counts, registered tasks and rate limits, queues, rate-limit and shutdown controls, its tasks |
//! | `GET /dashboard/scheduled` | tasks waiting for their ETA or countdown: due date and time, time left |
//! | `GET /dashboard/assets/{file}` | CSS, JavaScript, icon |
//! | `POST /dashboard/login` | token form → session cookie (see [`crate::auth`]) |
//!
//! Pages carry a strict Content-Security-Policy: scripts and styles only
//! from this server, no inline script, no framing. The scripts put data
//! into the page with `textContent`, never as HTML.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::{ApiForm, ApiPath};
use crate::server::Shared;

/// The login form (`{{next}}` and `{{message}}` are filled in).
pub(crate) const LOGIN_HTML: &str = include_str!("../../assets/login.html");
const INDEX_HTML: &str = include_str!("../../assets/index.html");
const TASK_HTML: &str = include_str!("../../assets/task.html");
const GROUP_HTML: &str = include_str!("../../assets/group.html");
const WORKER_HTML: &str = include_str!("../../assets/worker.html");
const SCHEDULED_HTML: &str = include_str!("../../assets/scheduled.html");

/// Embedded assets: name, content type, bytes.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/style.css"),
    ),
    (
        "common.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/common.js"),
    ),
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/dashboard.js"),
    ),
    (
        "task.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/task.js"),
    ),
    (
        "group.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/group.js"),
    ),
    (
        "worker.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/worker.js"),
    ),
    (
        "scheduled.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/scheduled.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../assets/favicon.svg"),
    ),
];

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// An HTML page with the security headers.
pub(crate) fn page(status: StatusCode, html: impl Into<String>) -> Response {
    let mut response = (status, axum::response::Html(html.into())).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `/` goes to the dashboard.
pub(crate) async fn root() -> Redirect {
    Redirect::to("/dashboard")
}

/// The dashboard.
pub(crate) async fn index() -> Response {
    page(StatusCode::OK, INDEX_HTML)
}

/// One task's page (the script reads the id from the address).
pub(crate) async fn task_page(ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    crate::extract::task_id(&id)?;
    Ok(page(StatusCode::OK, TASK_HTML))
}

/// One group's page (the script reads the id from the address).
pub(crate) async fn group_page(ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    crate::extract::task_id(&id)?;
    Ok(page(StatusCode::OK, GROUP_HTML))
}

/// One worker's page (the script reads the name from the address).
pub(crate) async fn worker_page(ApiPath(name): ApiPath<String>) -> Result<Response, ApiError> {
    crate::extract::task_id(&name)?;
    Ok(page(StatusCode::OK, WORKER_HTML))
}

/// The tasks waiting for their ETA.
pub(crate) async fn scheduled_page() -> Response {
    page(StatusCode::OK, SCHEDULED_HTML)
}

/// Assets the login page itself uses: served without a session, so the
/// form is styled and shows its logo (nothing in them is private).
pub(crate) const LOGIN_ASSETS: &[&str] = &[
    "/dashboard/assets/style.css",
    "/dashboard/assets/favicon.svg",
];

/// An embedded asset.
pub(crate) async fn asset(ApiPath(name): ApiPath<String>) -> Result<Response, ApiError> {
    let Some((_, content_type, body)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return Err(ApiError::not_found(format!("no asset {name:?}")));
    };
    Ok((
        [
            (header::CONTENT_TYPE, *content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        *body,
    )
        .into_response())
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub(crate) struct Login {
    token: String,
    #[serde(default)]
    next: Option<String>,
}

/// Check the token; open a session and go on, or show the form again.
pub(crate) async fn login(
    State(shared): State<Arc<Shared>>,
    form: Result<ApiForm<Login>, ApiError>,
) -> Response {
    let Ok(ApiForm(form)) = form else {
        return match shared.config.api_token {
            Some(_) => crate::auth::login_page("/dashboard", true),
            None => Redirect::to("/dashboard").into_response(),
        };
    };
    let next = form
        .next
        .filter(|n| {
            n.starts_with("/dashboard")
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c))
        })
        .unwrap_or_else(|| "/dashboard".to_owned());
    let Some(token) = shared.config.api_token.as_deref() else {
        return Redirect::to(&next).into_response();
    };
    if !crate::auth::same_secret(form.token.trim().as_bytes(), token.as_bytes()) {
        tracing::info!("dashboard login refused");
        return crate::auth::login_page(&next, true);
    }
    let session = shared.sessions.open();
    let cookie = format!(
        "{}={session}; HttpOnly; SameSite=Strict; Path=/",
        crate::auth::COOKIE
    );
    let mut response = Redirect::to(&next).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
