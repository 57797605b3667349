//! A Celeriac worker whose tasks are twins of `tests/python/pytasks.py`, so
//! the interoperability and chaos suites can swap a Python worker for a Rust
//! one. It is also the smallest example of a worker binary for your own tasks.
//!
//! Run with `cargo run -p celeriac-interop -- --broker redis://127.0.0.1:6379/0`.

use std::time::Duration;

use celeriac::{task, App, AppConfig, Context, TaskError, Worker, WorkerOptions};
use clap::Parser;
use serde_json::{Map, Value};

/// A Celeriac worker running the interop test tasks.
#[derive(Debug, Parser)]
struct Args {
    /// Broker URL (and result backend URL unless `--backend` is given).
    #[arg(long, env = "CELERIAC_BROKER_URL")]
    broker: String,
    /// Result backend URL (Redis; the tasks write there too). Defaults to
    /// the broker's.
    #[arg(long)]
    backend: Option<String>,
    /// The master a `sentinel://` broker or backend URL follows (Celery's
    /// `broker_transport_options={'master_name': …}`).
    #[arg(long)]
    master_name: Option<String>,
    /// Concurrency.
    #[arg(short = 'c', long, default_value_t = 4)]
    concurrency: usize,
    /// Messages held at once.
    #[arg(long)]
    prefetch: Option<usize>,
    /// Acknowledge after the task finished.
    #[arg(long)]
    acks_late: bool,
    /// Seconds before an unacknowledged reservation is redelivered.
    #[arg(long, default_value_t = 3600.0)]
    visibility_timeout: f64,
    /// Node name.
    #[arg(long, default_value = "celeriac@interop")]
    hostname: String,
    /// Dead-letter messages larger than this many bytes.
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    max_message_bytes: usize,
    /// Seconds running tasks get to finish on SIGTERM.
    #[arg(long, default_value_t = 30.0)]
    shutdown_timeout: f64,
    /// Send task events from the start (Celery's -E).
    #[arg(short = 'E', long)]
    events: bool,
    /// Queues, comma separated.
    #[arg(short = 'Q', long, default_value = "celery", value_delimiter = ',')]
    queues: Vec<String>,
}

/// The variable the tasks read their Redis URL from (set by `main`).
const TASKS_REDIS_URL: &str = "CELERIAC_INTEROP_REDIS_URL";

/// `x + y` on any JSON numbers (ints stay ints, as in Python).
#[task(name = "tasks.add")]
fn add(x: Value, y: Value) -> Result<Value, TaskError> {
    match (x.as_i64(), y.as_i64(), x.as_f64(), y.as_f64()) {
        (Some(a), Some(b), _, _) => Ok(Value::from(a + b)),
        (_, _, Some(a), Some(b)) => Ok(Value::from(a + b)),
        _ => Err(TaskError::new("TypeError", "add() needs two numbers")),
    }
}

/// Return the argument unchanged.
#[task(name = "tasks.echo")]
fn echo(x: Value) -> Result<Value, TaskError> {
    Ok(x)
}

/// Fail with `ValueError(msg)`, as the Python twin does.
#[task(name = "tasks.fail")]
fn fail(msg: String) -> Result<(), TaskError> {
    Err(TaskError::new("ValueError", msg))
}

/// Sleep `s` seconds without blocking a thread.
#[task(name = "tasks.sleep")]
async fn sleep(s: f64) -> Result<f64, TaskError> {
    tokio::time::sleep(Duration::from_secs_f64(s)).await;
    Ok(s)
}

/// `SADD set_key id` and count executions per id in `<set_key>:count`, so a
/// test can tell lost tasks from duplicated ones.
#[task(name = "tasks.mark", max_retries = 100)]
async fn mark(set_key: String, id: Value) -> Result<Value, TaskError> {
    let url = std::env::var(TASKS_REDIS_URL)
        .map_err(|_| TaskError::new("RuntimeError", "CELERIAC_INTEROP_REDIS_URL is not set"))?;
    let mut conn = redis_conn(&url).await?;
    let member = match &id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    redis::pipe()
        .sadd(&set_key, &member)
        .ignore()
        .hincr(format!("{set_key}:count"), &member, 1)
        .ignore()
        .query_async::<()>(&mut conn)
        .await
        .map_err(retry_on_outage)?;
    Ok(id)
}

/// Sleep `seconds`, then mark like `tasks.mark`: a long task whose
/// executions can be counted.
#[task(name = "tasks.slow_mark", max_retries = 100)]
async fn slow_mark(set_key: String, id: Value, seconds: f64) -> Result<Value, TaskError> {
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    mark::run(set_key, id).await
}

/// A chord body: `{"sum", "values"}` of the header's results, and `INCR
/// key` so a test can count how many times the body ran.
#[task(name = "tasks.chord_sum", max_retries = 100)]
async fn chord_sum(values: Vec<i64>, key: String) -> Result<Value, TaskError> {
    let url = std::env::var(TASKS_REDIS_URL)
        .map_err(|_| TaskError::new("RuntimeError", "CELERIAC_INTEROP_REDIS_URL is not set"))?;
    let mut conn = redis_conn(&url).await?;
    redis::cmd("INCR")
        .arg(&key)
        .query_async::<()>(&mut conn)
        .await
        .map_err(retry_on_outage)?;
    Ok(serde_json::json!({"sum": values.iter().sum::<i64>(), "values": values}))
}

/// An old-style errback: called with the failed task's id first, it marks
/// that id in `set_key`.
#[task(name = "tasks.errback_mark", max_retries = 100)]
async fn errback_mark(task_id: String, set_key: String) -> Result<Value, TaskError> {
    mark::run(set_key, Value::String(task_id)).await
}

/// `RPUSH key value`: records execution order.
#[task(name = "tasks.record", max_retries = 100)]
async fn record(key: String, value: Value) -> Result<Value, TaskError> {
    let url = std::env::var(TASKS_REDIS_URL)
        .map_err(|_| TaskError::new("RuntimeError", "CELERIAC_INTEROP_REDIS_URL is not set"))?;
    let mut conn = redis_conn(&url).await?;
    redis::cmd("RPUSH")
        .arg(&key)
        .arg(value.to_string())
        .query_async::<()>(&mut conn)
        .await
        .map_err(retry_on_outage)?;
    Ok(value)
}

/// First run: ask for a retry after `countdown` seconds (`ValueError("try
/// again")`); the retry returns the retry count (1), as the Python twin.
#[task(name = "tasks.retry_once", bind, max_retries = 3)]
fn retry_once(ctx: &Context, countdown: f64) -> Result<u32, TaskError> {
    if ctx.retries() < 1 {
        return Err(TaskError::new("ValueError", "try again")
            .retry(Some(Duration::from_secs_f64(countdown.max(0.0)))));
    }
    Ok(ctx.retries())
}

/// A shared, reconnecting connection. A Redis outage fails the call with a
/// retry request, so the task runs again once Redis is back.
async fn redis_conn(url: &str) -> Result<redis::aio::ConnectionManager, TaskError> {
    static CLIENT: tokio::sync::OnceCell<redis::aio::ConnectionManager> =
        tokio::sync::OnceCell::const_new();
    let conn = CLIENT
        .get_or_try_init(|| async {
            redis::aio::ConnectionManager::new(redis::Client::open(url)?).await
        })
        .await
        .map_err(retry_on_outage)?;
    Ok(conn.clone())
}

fn retry_on_outage(err: redis::RedisError) -> TaskError {
    let transient = err.is_io_error() || err.is_connection_dropped() || err.is_timeout();
    let error = TaskError::from(err);
    if transient {
        error.retry(Some(Duration::from_millis(500)))
    } else {
        error
    }
}

/// `tasks.echo_kwargs(**kwargs)`: returns its keyword arguments; written by
/// hand to show a task whose parameters are only known at run time.
struct EchoKwargs;

impl celeriac::Task for EchoKwargs {
    fn name(&self) -> &'static str {
        "tasks.echo_kwargs"
    }

    fn call(
        &self,
        _ctx: celeriac::Context,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Result<celeriac::task::TaskCall, TaskError> {
        if !args.is_empty() {
            return Err(TaskError::type_error(
                "tasks.echo_kwargs() takes keyword arguments only",
            ));
        }
        Ok(celeriac::task::TaskCall::Blocking(Box::new(move || {
            Ok(Value::Object(kwargs))
        })))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,celeriac=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    // Tasks reach Redis through the backend's URL.
    let backend = args.backend.clone().unwrap_or_else(|| args.broker.clone());
    std::env::set_var(TASKS_REDIS_URL, &backend);
    let app = App::builder()
        .config(AppConfig {
            broker_url: args.broker.clone(),
            backend_url: backend.clone(),
            master_name: args.master_name.clone(),
            ..AppConfig::default()
        })
        .visibility_timeout(Duration::from_secs_f64(args.visibility_timeout))
        .task(add)
        .task(echo)
        .task(chord_sum)
        .task(errback_mark)
        .task(fail)
        .task(sleep)
        .task(mark)
        .task(slow_mark)
        .task(record)
        .task(retry_once)
        .task(EchoKwargs)
        .build()
        .await?;
    let options = WorkerOptions {
        queues: args.queues,
        concurrency: args.concurrency,
        prefetch: args.prefetch.unwrap_or(celeriac::worker::DEFAULT_PREFETCH),
        adaptive_prefetch: args.prefetch.is_none(),
        acks_late: args.acks_late,
        hostname: args.hostname,
        send_events: args.events,
        max_message_bytes: args.max_message_bytes,
        shutdown_timeout: Duration::from_secs_f64(args.shutdown_timeout),
        ..WorkerOptions::default()
    };
    Worker::new(app, options)
        .run(celeriac::shutdown::terminate_signal())
        .await?;
    Ok(())
}
