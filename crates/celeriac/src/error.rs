//! The library's error type.
//!
//! One enum for every fallible operation of the public API. Variants carry
//! enough context to act on (the URL that did not parse, the task that failed
//! and the remote error's type and message) and read as short lower-case
//! messages, in the style of tokio's errors.

use std::time::Duration;

/// A boxed error from a lower layer (SQLite, Redis, I/O).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in celeriac's public API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A broker or backend URL could not be understood.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given, with any password removed.
        url: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A message did not follow the Celery protocol.
    #[error(transparent)]
    Protocol(#[from] crate::protocol::ProtocolError),
    /// The broker failed (connection lost, storage error…).
    #[error("broker: {context}: {source}")]
    Broker {
        /// What the broker was doing.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// The result backend failed.
    #[error("result backend: {context}: {source}")]
    Backend {
        /// What the backend was doing.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// The task ran and failed; the remote error's type and message are kept
    /// so that a Python exception reads the same on the Rust side.
    #[error("task {task_id} failed: {exc_type}: {exc_message}")]
    TaskFailed {
        /// The failed task's id.
        task_id: String,
        /// The remote exception type, e.g. `ValueError`.
        exc_type: String,
        /// The Python module of the remote exception's class (`builtins`,
        /// `sqlite3`…), when the result names one.
        exc_module: Option<String>,
        /// The remote exception message.
        exc_message: String,
        /// The remote traceback text, when one was stored.
        traceback: Option<String>,
    },
    /// A signature (chain, group, chord, callback) could not be read or
    /// honoured.
    #[error(transparent)]
    Canvas(Box<crate::canvas::CanvasError>),
    /// The task was revoked (or expired) before it ran.
    #[error("task {task_id} was revoked")]
    TaskRevoked {
        /// The revoked task's id.
        task_id: String,
    },
    /// Waiting for a result took longer than allowed.
    #[error("timed out after {0:?} waiting for the task result")]
    Timeout(Duration),
    /// A value could not be converted to or from JSON.
    #[error("{context}: {source}")]
    Json {
        /// What was being converted.
        context: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The task name is not registered in this app.
    #[error("task {0:?} is not registered")]
    UnknownTask(String),
    /// An argument given to the API was invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The worker could not start its task threads.
    #[error("starting the worker's task threads: {0}")]
    WorkerThreads(#[source] std::io::Error),
}

impl Error {
    pub(crate) fn broker(context: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Broker {
            context,
            source: source.into(),
        }
    }

    pub(crate) fn backend(context: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            context,
            source: source.into(),
        }
    }

    pub(crate) fn json(context: impl Into<String>, source: serde_json::Error) -> Self {
        Error::Json {
            context: context.into(),
            source,
        }
    }

    /// True when the error comes from a lost or refused connection, which a
    /// caller may retry after a pause (a Redis restart, a busy SQLite file).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Broker { .. } | Error::Backend { .. })
    }
}

/// The result type of celeriac's public API.
pub type Result<T, E = Error> = std::result::Result<T, E>;
