//! Helpers for the HTTP tests: an app on a private in-memory broker with
//! test tasks, an in-process worker, and the server on a free port.
//!
//! 1. [`Cluster::start`]: app + worker (task events on) + server; stopped
//!    through oneshots on drop, as a binary would stop on a signal.
//!    [`Cluster::start_for`] does the same around an app on any broker.
//!    A config without producer routes gets the seed's two
//!    ([`seed_routes`]), declared as `celeriac serve` declares them.
//! 2. [`Cluster::url`] and a `reqwest` client to call it.
//! 3. [`eventually`]: poll an async condition until a deadline.
//! 4. [`redis::RedisServer`]: a private `redis-server`.

#![allow(dead_code, unreachable_pub)]

pub mod redis;

use std::time::{Duration, Instant};

use celeriac::{task, App, Context, TaskError, Worker, WorkerOptions};
use celeriac_http::{ArgType, HttpConfig, ProducerRoute};
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[task(name = "tasks.add")]
pub async fn add(x: i64, y: i64) -> Result<i64, TaskError> {
    Ok(x + y)
}

#[task(name = "tasks.wait_and_return")]
pub async fn wait_and_return() -> Result<String, TaskError> {
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok("Hello World!".into())
}

/// The sum of 1..=n, reporting PROGRESS ten times, 30 ms apart.
#[task(name = "tasks.sum_to_n_job", bind)]
pub async fn sum_to_n_job(ctx: &Context, n: u64) -> Result<u64, TaskError> {
    for step in 1..=10u64 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let _ = ctx
            .update_state("PROGRESS", json!({"current": n * step / 10, "total": n}))
            .await;
    }
    Ok(n * (n + 1) / 2)
}

/// `text` repeated `times` times, joined by `-`.
#[task(name = "tasks.repeat")]
pub async fn repeat(text: String, times: u64) -> Result<String, TaskError> {
    let times = usize::try_from(times).map_err(|e| TaskError::new("ValueError", e.to_string()))?;
    Ok(vec![text; times].join("-"))
}

/// The seed's producer routes: `POST /producer/api/wait_and_return` (no
/// body) and `POST /producer/api/sum` `{"number": n}`.
pub fn seed_routes() -> Vec<ProducerRoute> {
    vec![
        ProducerRoute::new("wait_and_return", "tasks.wait_and_return"),
        ProducerRoute::new("sum", "tasks.sum_to_n_job").arg("number", ArgType::UnsignedInteger),
    ]
}

#[task(name = "tasks.fail")]
pub async fn fail(message: String) -> Result<(), TaskError> {
    Err(TaskError::new("ValueError", message))
}

/// A running app, worker and server.
pub struct Cluster {
    pub app: App,
    pub url: String,
    pub client: reqwest::Client,
    stop_server: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), celeriac_http::Error>>>,
    stop_worker: Option<oneshot::Sender<()>>,
    worker: Option<JoinHandle<celeriac::Result<()>>>,
}

impl Cluster {
    /// A cluster with a worker and the default server settings.
    pub async fn start() -> Cluster {
        Self::start_with(HttpConfig::default(), true).await
    }

    /// A cluster with `config`, with or without a worker.
    pub async fn start_with(config: HttpConfig, with_worker: bool) -> Cluster {
        let url = format!("memory://http-test-{}", uuid::Uuid::new_v4());
        let app = App::builder()
            .broker_url(&url)
            .backend_url(&url)
            .task(add)
            .task(wait_and_return)
            .task(sum_to_n_job)
            .task(fail)
            .task(repeat)
            .build()
            .await
            .expect("app");
        Self::start_for(app, config, with_worker).await
    }

    /// A cluster around an already-built `app` (any broker), with or
    /// without a worker.
    pub async fn start_for(app: App, config: HttpConfig, with_worker: bool) -> Cluster {
        let (stop_worker, worker) = if with_worker {
            let (tx, rx) = oneshot::channel::<()>();
            let options = WorkerOptions {
                concurrency: 4,
                send_events: true,
                hostname: "test-worker@here".into(),
                ..WorkerOptions::default()
            };
            let handle = tokio::spawn(Worker::new(app.clone(), options).run(async move {
                let _ = rx.await;
            }));
            (Some(tx), Some(handle))
        } else {
            (None, None)
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let (stop_server, stopped) = oneshot::channel::<()>();
        let producer_routes = if config.producer_routes.is_empty() {
            seed_routes()
        } else {
            config.producer_routes
        };
        let config = HttpConfig {
            sample_interval: Duration::from_millis(200),
            poll_interval: Duration::from_millis(100),
            producer_routes,
            ..config
        };
        let server = tokio::spawn(celeriac_http::serve(
            listener,
            app.clone(),
            config,
            async move {
                let _ = stopped.await;
            },
        ));
        Cluster {
            app,
            url: format!("http://{addr}"),
            client: reqwest::Client::new(),
            stop_server: Some(stop_server),
            server: Some(server),
            stop_worker,
            worker,
        }
    }

    /// `GET path`, as JSON, asserting a 200.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("json")
    }

    /// `POST path` with a JSON body, as JSON, asserting a 200.
    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        assert_eq!(status, 200, "POST {path}: {text}");
        serde_json::from_str(&text).expect("json")
    }

    /// Stop the server and wait for `serve` to return.
    pub async fn stop_server(&mut self) -> Result<(), celeriac_http::Error> {
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
        }
        match self.server.take() {
            Some(handle) => tokio::time::timeout(Duration::from_secs(10), handle)
                .await
                .expect("the server stops within 10 s")
                .expect("server task"),
            None => Ok(()),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
        }
        if let Some(stop) = self.stop_worker.take() {
            let _ = stop.send(());
        }
    }
}

/// Poll `condition` until it holds; panic naming `what` after `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !condition().await {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
