//! Bearer-token authentication, when `CELERIAC_API_TOKEN` is set.
//!
//! 1. API clients send `Authorization: Bearer <token>`; the comparison
//!    takes the same time wherever the first difference is.
//! 2. Browsers cannot add that header to a page load or an `EventSource`,
//!    so the dashboard has a login form: `POST /dashboard/login` with the
//!    token opens a session, a random id in an `HttpOnly`, `SameSite=Strict`
//!    cookie (the token itself is never put in a cookie or a URL).
//! 3. Every route but `/health`, the login form and the two assets it
//!    shows (style sheet, logo) answers 401 without either: a JSON error,
//!    or for dashboard pages the login form.
//!
//! The token is never logged; requests are logged by path only.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::server::Shared;

/// Name of the dashboard's session cookie.
pub(crate) const COOKIE: &str = "celeriac_session";
/// Sessions kept at most (the oldest are dropped first).
const MAX_SESSIONS: usize = 1000;

/// Open dashboard sessions.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    ids: Mutex<(HashSet<String>, std::collections::VecDeque<String>)>,
}

impl Sessions {
    /// A new session id.
    pub(crate) fn open(&self) -> String {
        let id = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        while ids.1.len() >= MAX_SESSIONS {
            if let Some(old) = ids.1.pop_front() {
                ids.0.remove(&old);
            }
        }
        ids.0.insert(id.clone());
        ids.1.push_back(id.clone());
        id
    }

    fn contains(&self, id: &str) -> bool {
        let ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        ids.0.contains(id)
    }
}

/// Compare two secrets in time that depends only on their lengths.
pub(crate) fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for i in 0..given.len().max(expected.len()) {
        let a = given.get(i).copied().unwrap_or(0);
        let b = expected.get(i).copied().unwrap_or(0);
        diff |= usize::from(a ^ b);
    }
    std::hint::black_box(diff) == 0
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn session(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// True when the request carries the token or an open session.
pub(crate) fn authorized(shared: &Shared, headers: &HeaderMap, token: &str) -> bool {
    if let Some(given) = bearer(headers) {
        return same_secret(given.as_bytes(), token.as_bytes());
    }
    session(headers).is_some_and(|id| shared.sessions.contains(id))
}

/// The middleware: pass, or answer 401.
pub(crate) async fn require_token(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = shared.config.api_token.as_deref() else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    let open = path == "/health"
        || (path == "/dashboard/login" && request.method() == Method::POST)
        || (request.method() == Method::GET
            && crate::routes::dashboard::LOGIN_ASSETS.contains(&path));
    if open || authorized(&shared, request.headers(), token) {
        return next.run(request).await;
    }
    if path.starts_with("/dashboard") && request.method() == Method::GET {
        return login_page(path, false);
    }
    ApiError::unauthorized().into_response()
}

/// The login form, with status 401.
pub(crate) fn login_page(next: &str, wrong: bool) -> Response {
    let next = if next.starts_with("/dashboard")
        && next
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c))
    {
        next
    } else {
        "/dashboard"
    };
    let message = if wrong {
        "<p class=\"login-error\">That token is not right.</p>"
    } else {
        ""
    };
    let page = crate::routes::dashboard::LOGIN_HTML
        .replace("{{next}}", next)
        .replace("{{message}}", message);
    crate::routes::dashboard::page(StatusCode::UNAUTHORIZED, page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_secrets() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"a"));
    }

    #[test]
    fn reads_bearer_and_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            "bearer  tok".parse().expect("header"),
        );
        assert_eq!(bearer(&headers), Some("tok"));
        headers.insert(
            header::COOKIE,
            "a=1; celeriac_session=xyz".parse().expect("header"),
        );
        assert_eq!(session(&headers), Some("xyz"));
    }
}
