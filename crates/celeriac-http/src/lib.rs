//! Celeriac's HTTP side: the producer API, a live dashboard (Flower's
//! role) and Prometheus metrics, served by axum.
//!
//! # Brief overview
//!
//! [`serve`] takes a bound listener, a [`celeriac::App`] (broker, backend,
//! events, task registry), an [`HttpConfig`] and a shutdown future, and
//! serves until the future resolves:
//!
//! - the seed's producer routes under `/producer/api/` (`wait_and_return`,
//!   `sum` and their `/{job_id}` status routes, same JSON shapes; publishing
//!   `wait_and_return` is a `POST`: a `GET` never sends a task);
//! - a generic task API under `/api/tasks`: send any task by name, read any
//!   task's state, progress, result, traceback and relations (parent,
//!   children, group, chord body), revoke, retry;
//! - groups under `/api/groups`: send one task over a list of arguments as
//!   a Celery group (saved as Celery saves it), read a group's progress;
//! - workers (from heartbeats), queues (depth, rate), dead letters
//!   (list, requeue), and live updates as server-sent events;
//! - `/dashboard` (with task and group pages), its assets embedded in the
//!   binary;
//! - `/metrics` (Prometheus), `/openapi.json`, `/health`.
//!
//! A *monitor* keeps what the server knows: recent tasks, workers and
//! queues, fed by one subscription to the app's events, by sends through
//! the API and by reading the result backend for unfinished tasks.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let app = celeriac::App::builder()
//!     .broker_url("redis://127.0.0.1:6379/0")
//!     .backend_url("redis://127.0.0.1:6379/0")
//!     .build()
//!     .await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! # drop(stop);
//! celeriac_http::serve(listener, app, celeriac_http::HttpConfig::default(), async move {
//!     let _ = stopped.await;
//! })
//! .await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - `server`: [`serve`], the shared state, graceful shutdown.
//! - `routes`: the router and one module per group of routes; handlers
//!   are thin and call `service`.
//! - `service`: sending, reading, revoking, retrying, dead letters.
//! - `monitor`: tasks, workers and queues as events tell them; live updates.
//! - `background`: the event subscription, queue sampler, backend poller,
//!   and (on Redis) the periodic `enable_events` broadcast.
//! - [`views`]: the JSON shapes (the one place deriving serde and OpenAPI).
//! - `auth`: bearer token and dashboard sessions; `guard`: cross-site
//!   state-changing requests refused; [`error`]: error answers.
//! - `metrics`: the Prometheus exposition; [`pyrepr`]: Python reprs.

#![deny(missing_docs)]

mod auth;
mod background;
mod config;
pub mod error;
mod extract;
mod guard;
mod metrics;
mod monitor;
pub mod pyrepr;
mod routes;
mod server;
mod service;
pub mod views;

pub use celeriac_serve::ConnectionTimeouts;
pub use config::{HttpConfig, MIN_TOKEN_CHARS};
pub use error::{ApiError, Error};
pub use routes::openapi::openapi;
pub use routes::ROUTES;
pub use server::serve;
