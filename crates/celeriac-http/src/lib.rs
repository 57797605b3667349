//! Celeriac's HTTP side: the producer API, a live dashboard (Flower's
//! role) and Prometheus metrics, served by axum.
//!
//! # Brief overview
//!
//! [`serve`] takes a bound listener, a [`celeriac::App`] (broker, backend,
//! events, task registry), an [`HttpConfig`] and a shutdown future, and
//! serves until the future resolves:
//!
//! - the application's producer routes under `/producer/api/`, declared
//!   as [`ProducerRoute`]s in [`HttpConfig::producer_routes`] (none by
//!   default): for each, `POST /producer/api/{name}` sends the route's task
//!   with the JSON body's fields as positional arguments (each checked
//!   against its [`ArgType`]) and answers `{"message": "job published",
//!   "job_id"}`, `GET /producer/api/{name}/{job_id}` answers `{"ready",
//!   "result"}`, and a `GET` on the publishing path is a 405: a `GET` never
//!   sends a task. The framework names no task: `celeriac serve` declares
//!   the seed's two routes next to the tasks they send;
//! - a generic task API under `/api/tasks`: send any task by name, read any
//!   task's state, progress, result, traceback and relations (parent,
//!   children, group, chord body), revoke, retry;
//! - groups under `/api/groups`: send one task over a list of arguments as
//!   a Celery group (saved as Celery saves it), read a group's progress;
//! - workers (from heartbeats), queues (depth, rate), dead letters
//!   (list, requeue), and live updates as server-sent events;
//! - `/dashboard` (with task and group pages), its assets embedded in the
//!   binary;
//! - `/metrics` (Prometheus), `/openapi.json` (listing exactly the declared
//!   producer routes; [`openapi`]), `/health`; [`routes()`] lists every
//!   route a configuration serves.
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
//! // POST /producer/api/add {"x": 2, "y": 3} sends tasks.add(2, 3).
//! let config = celeriac_http::HttpConfig {
//!     producer_routes: vec![celeriac_http::ProducerRoute::new("add", "tasks.add")
//!         .arg("x", celeriac_http::ArgType::Integer)
//!         .arg("y", celeriac_http::ArgType::Integer)],
//!     ..celeriac_http::HttpConfig::default()
//! };
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! # drop(stop);
//! celeriac_http::serve(listener, app, config, async move {
//!     let _ = stopped.await;
//! })
//! .await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - `server`: [`serve`], the shared state, graceful shutdown.
//! - `routes`: the router and one module per group of routes; handlers
//!   are thin and call `service`. The producer routes' handlers and
//!   OpenAPI paths are generated from the declarations
//!   (`producer_route`: [`ProducerRoute`], [`ArgType`]).
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
mod producer_route;
pub mod pyrepr;
mod routes;
mod server;
mod service;
pub mod views;

pub use celeriac_serve::ConnectionTimeouts;
pub use config::{HttpConfig, MIN_TOKEN_CHARS};
pub use error::{ApiError, Error};
pub use producer_route::{ArgType, ProducerArg, ProducerRoute};
pub use routes::openapi::openapi;
pub use routes::routes;
pub use server::serve;
