//! Extractors whose rejections are JSON [`ApiError`]s.
//!
//! Axum's own extractors answer bad input with plain text; these wrappers
//! keep axum's message (it names the field: `number: invalid type: string
//! "x", expected u64 at line 1 column 14`) and turn it into
//! `{"error": …}` with a 4xx status.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body (`Content-Type: application/json`), or a JSON 4xx.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub(crate) struct ApiJson<T>(pub(crate) T);

/// Path parameters, or a JSON 400.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct ApiPath<T>(pub(crate) T);

/// Query-string parameters, or a JSON 400.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct ApiQuery<T>(pub(crate) T);

/// A URL-encoded form, or a JSON 4xx.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Form), rejection(ApiError))]
pub(crate) struct ApiForm<T>(pub(crate) T);

/// An optional JSON body: an empty body reads as `T::default()` (whatever
/// its `Content-Type`); a non-empty one needs `Content-Type:
/// application/json` (415 otherwise), so that a cross-site form or
/// `text/plain` request cannot carry one.
#[derive(Debug)]
pub(crate) struct BodyJson<T>(pub(crate) T);

impl<T, S> FromRequest<S> for BodyJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .cloned();
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            let status = e.status();
            let status = if status.is_client_error() {
                status
            } else {
                axum::http::StatusCode::BAD_REQUEST
            };
            ApiError::new(status, e.body_text())
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(BodyJson(T::default()));
        }
        if !is_json(content_type.as_ref()) {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "a request body must be JSON sent with `Content-Type: application/json`",
            ));
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(BodyJson(value))
    }
}

/// Whether a `Content-Type` names JSON: `application/json` or
/// `application/<something>+json`, parameters (`; charset=utf-8`) allowed,
/// as axum's `Json` accepts.
fn is_json(content_type: Option<&axum::http::HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || subtype.to_ascii_lowercase().ends_with("+json"))
}

/// Check a task id from a URL: non-empty, at most 255 bytes, no control
/// characters or spaces (Celery ids are usually uuids, but any such text is
/// accepted, as Celery does).
///
/// # Errors
/// A 400 naming the problem.
pub(crate) fn task_id(id: &str) -> Result<&str, ApiError> {
    if id.is_empty() {
        return Err(ApiError::bad_request("task id must not be empty"));
    }
    if id.len() > 255 {
        return Err(ApiError::bad_request(format!(
            "task id is {} bytes long; at most 255 are allowed",
            id.len()
        )));
    }
    if id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ApiError::bad_request(
            "task id must not contain spaces or control characters",
        ));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::{is_json, task_id};

    #[test]
    fn json_content_types_are_recognised() {
        let check = |v: &'static str| is_json(Some(&axum::http::HeaderValue::from_static(v)));
        assert!(check("application/json"));
        assert!(check("Application/JSON; charset=utf-8"));
        assert!(check("application/vnd.api+json"));
        assert!(!check("text/plain"));
        assert!(!check("application/x-www-form-urlencoded"));
        assert!(!check("multipart/form-data; boundary=x"));
        assert!(!check("application/jsonx"));
        assert!(!is_json(None));
    }

    #[test]
    fn task_ids_are_checked() {
        assert!(task_id("d9b1a6a2-5bd3-4a38-8f0e-2bb1c6a0b0c4").is_ok());
        assert!(task_id("my-own-id").is_ok());
        assert!(task_id("").is_err());
        assert!(task_id("a b").is_err());
        assert!(task_id(&"x".repeat(256)).is_err());
    }
}
