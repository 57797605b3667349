//! Celeriac is a distributed task queue that speaks Python Celery's wire
//! protocol, so Rust and Python producers and workers can share one Redis.
//!
//! # Brief overview
//!
//! A task is a function marked `#[task]`. An [`App`] holds the broker (where
//! messages wait), the result backend (where results are kept) and the
//! registered tasks. A producer calls `add::delay(&app, 2, 3)` or
//! [`App::send_task`]: the call becomes a Celery protocol v2 message
//! ([`protocol::TaskMessage`]) inside a kombu envelope, published to a queue.
//! A [`Worker`] reserves it, runs the task, stores the outcome, and
//! acknowledges the message; the producer's [`AsyncResult::get`] returns the
//! value.
//!
//! ```
//! use celeriac::{task, App, Worker, WorkerOptions, TaskError};
//! use std::time::Duration;
//!
//! #[task(name = "tasks.add")]
//! fn add(x: i64, y: i64) -> Result<i64, TaskError> {
//!     Ok(x + y)
//! }
//!
//! # #[tokio::main] async fn main() -> celeriac::Result<()> {
//! let app = App::builder()
//!     .broker_url("memory://doctest")
//!     .backend_url("memory://doctest")
//!     .task(add)
//!     .build()
//!     .await?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let worker = tokio::spawn(Worker::new(app.clone(), WorkerOptions::default())
//!     .run(async move { let _ = stopped.await; }));
//! let result = add::delay(&app, 2, 3).await?;
//! assert_eq!(result.get(Duration::from_secs(5)).await?, 5);
//! let _ = stop.send(());
//! # let _ = worker.await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`protocol`]: the wire contract with Celery (no I/O).
//! - [`broker`]: the [`Broker`](broker::Broker) trait and `memory`, `sqlite`, `redis`.
//! - [`backend`]: the [`ResultBackend`](backend::ResultBackend) trait and its implementations.
//! - [`App`], [`SendOptions`], [`AsyncResult`]: producing and reading results.
//! - [`task`]: the [`Task`] trait, [`TaskError`], [`Context`].
//! - [`worker`]: fetch, execute, store, acknowledge; graceful shutdown.
//! - [`shutdown`]: the shutdown signal shared by long-running loops.
//! - [`beat`]: periodic tasks (intervals, crontab, one-off), safe on many hosts.
//! - [`printable`](mod@printable): caller-given names made safe to log and print.
//!
//! # Features
//! | Name | Description | Default? |
//! |---|---|---|
//! | `sqlite` | the embedded broker and backend (`sqlite://path`) | yes |
//! | `redis` | Redis broker and backend, Celery-compatible (`redis://`, `rediss://`, `sentinel://`) | yes |
//! | `macros` | the `#[task]` attribute | yes |

#![deny(missing_docs)]

// Lets `#[task]`-generated `::celeriac::` paths resolve inside this crate too.
extern crate self as celeriac;

mod app;
pub mod backend;
pub mod beat;
pub mod broker;
pub mod canvas;
mod connect;
pub mod control;
pub mod eager;
mod error;
pub mod events;
mod options;
pub mod printable;
pub mod protocol;
#[cfg(feature = "redis")]
mod redis_sentinel;
#[cfg(feature = "redis")]
mod redis_support;
#[cfg(feature = "redis")]
mod redis_tls;
mod result;
mod sentinel_url;
pub mod shutdown;
#[cfg(feature = "sqlite")]
mod sqlite_db;
pub mod state;
pub mod task;
#[cfg(any(feature = "redis", feature = "amqp"))]
mod tls;
pub mod transport;
pub mod worker;

pub use app::{python_repr, App, AppBuilder, AppConfig, DEFAULT_URL};
pub use canvas::Signature;
#[cfg(feature = "macros")]
pub use celeriac_macros::task;
pub use connect::{backend_from_url, broker_from_url, redact};
pub use error::{BoxError, Error, Result};
pub use options::SendOptions;
pub use printable::printable;
pub use protocol::TaskState;
pub use result::{AsyncResult, GroupResult};
pub use task::{Context, Task, TaskError, TaskOptions};
pub use transport::Transport;
pub use worker::{SyncPool, Worker, WorkerOptions};

/// `now + wait`, saturating: `Duration::MAX` means "a century", not a panic.
pub(crate) fn deadline(wait: std::time::Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(wait)
        .unwrap_or_else(|| now + std::time::Duration::from_secs(100 * 365 * 24 * 3600))
}

/// Re-exports used by `#[task]`-generated code. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use futures::future::FutureExt;
    pub use serde_json;
}
