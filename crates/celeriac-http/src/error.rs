//! Errors: the server's own ([`Error`]) and what a request gets back
//! ([`ApiError`]).
//!
//! 1. [`Error`] is what [`crate::serve`] returns: the configuration is
//!    refused (a weak token, an invalid or duplicate producer route), or
//!    the listener failed.
//! 2. [`ApiError`] is every unsuccessful HTTP answer: a status and a JSON
//!    body `{"error": "<message naming the problem>"}`. Bad input is always
//!    a 4xx; a broker or backend outage is a 503; a 500 means a bug.
//! 3. Extractor rejections (malformed JSON, wrong types, oversized bodies,
//!    bad query strings) convert into an [`ApiError`] with axum's message,
//!    which names the field and the problem.

use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// What can stop the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Accepting or serving connections failed.
    #[error("http server: {0}")]
    Io(#[from] std::io::Error),
    /// The API token is too weak to protect anything: blank, or shorter
    /// than [`crate::MIN_TOKEN_CHARS`] characters.
    #[error(
        "the API token must be at least {min} characters, not counting surrounding spaces \
         (it has {chars}); use a long random string, or no token at all"
    )]
    WeakToken {
        /// How many characters the token has, once trimmed.
        chars: usize,
        /// The minimum.
        min: usize,
    },
    /// A declared producer route cannot be served: its name is empty or
    /// has characters other than `a-z`, `0-9`, `_`, `-`, its task name is
    /// blank, or a body field is blank or declared twice
    /// ([`crate::ProducerRoute::check`]).
    #[error("producer route {name:?}: {reason}")]
    InvalidProducerRoute {
        /// The route's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two producer routes have the same name.
    #[error("producer route {name:?} is declared twice")]
    DuplicateProducerRoute {
        /// The name declared twice.
        name: String,
    },
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What was wrong, e.g. `number: invalid type: string "x", expected u64`.
    pub error: String,
}

/// An unsuccessful answer: a status and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The message, shown to the client as `{"error": message}`.
    pub message: String,
}

impl ApiError {
    /// An answer with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 422: well-formed, but a value is not acceptable.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// 404: no such thing.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 401: no valid token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "missing or invalid API token: send `Authorization: Bearer <token>`",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"celeriac\""),
            );
        }
        response
    }
}

impl From<celeriac::Error> for ApiError {
    fn from(err: celeriac::Error) -> Self {
        match &err {
            celeriac::Error::InvalidArgument(message) => ApiError::unprocessable(message.clone()),
            celeriac::Error::UnknownTask(name) => {
                ApiError::not_found(format!("task {name:?} is not registered"))
            }
            e if e.is_transient() => {
                tracing::warn!(error = %e, "broker or backend unavailable");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            e => {
                tracing::error!(error = %e, "unexpected library error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = match &rejection {
            // A body over the limit: 413 whatever axum wraps it in.
            JsonRejection::BytesRejection(_) => rejection.status(),
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            JsonRejection::JsonSyntaxError(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let status = if status.is_client_error() {
            status
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(status, rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request(rejection.body_text())
    }
}

impl From<FormRejection> for ApiError {
    fn from(rejection: FormRejection) -> Self {
        let status = rejection.status();
        let status = if status.is_client_error() {
            status
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(status, rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_are_503_and_bad_arguments_422() {
        let outage = celeriac::Error::Broker {
            context: "publishing",
            source: "connection refused".into(),
        };
        assert_eq!(
            ApiError::from(outage).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let bad = celeriac::Error::InvalidArgument("priority must be 0 to 9".into());
        assert_eq!(ApiError::from(bad).status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}
