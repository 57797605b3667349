//! What a worker answers to remote control (`celery inspect`/`control`,
//! Flower, `celeriac inspect`/`control`/`status`, the dashboard), in the
//! shapes Celery's workers reply with (`celery/worker/control.py`): `{"ok":
//! text}` or `{"error": text}` for commands, the data itself for queries.
//!
//! Read-only: `ping`, `stats`, `active`, `reserved`, `scheduled`,
//! `registered`, `active_queues`, `revoked`, `conf`. Acting: `revoke`
//! (optionally terminating), `enable_events`, `disable_events`,
//! `rate_limit`, `time_limit`, `add_consumer`, `cancel_consumer`,
//! `pool_grow`, `pool_shrink`, `shutdown` (which, unlike Celery's, answers
//! before it stops). Anything else gets Celery's error reply.
//!
//! `cancel_consumer` is refused on AMQP, where the broker's consumers stay
//! open. `scheduled` differs in one way: a Celery worker holds the ETA
//! tasks it lists, while ours wait in the broker until due (and then go to
//! whichever worker is free). Each worker lists the ones waiting for the
//! queues it consumes, so workers sharing a queue list the same tasks.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::StreamExt;
use serde_json::{json, Map, Value};

use super::consumer::Shared;
use super::state::request_info;
use crate::control::{Command, CommandStream, Control};
use crate::protocol::TaskMessage;
use crate::shutdown::ShutdownTrigger;

/// Serve commands until the stream ends or the task is aborted.
pub(super) async fn serve(
    control: Control,
    mut commands: CommandStream,
    shared: Arc<Shared>,
    stop: Arc<ShutdownTrigger>,
    started: std::time::Instant,
) {
    let hostname = shared.options.hostname.clone();
    while let Some(command) = commands.next().await {
        tracing::debug!(method = %command.method, "remote control command");
        let reply = answer(&shared, &command, &stop, started).await;
        if let Err(err) = control.reply(&command, &hostname, reply).await {
            tracing::debug!(error = %err, "could not reply to a control command");
        }
    }
}

fn ids(arguments: &Map<String, Value>) -> Vec<String> {
    match arguments.get("task_id") {
        Some(Value::String(id)) => vec![id.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn ok(text: impl Into<String>) -> Value {
    json!({"ok": text.into()})
}

fn nok(text: impl Into<String>) -> Value {
    json!({"error": text.into()})
}

/// A text argument (`task_name`, `queue`), if given and not empty.
fn text<'a>(args: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    args.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A number argument as Celery's CLI sends it (a JSON number) or as a
/// string; `Ok(None)` when absent or null.
fn number(args: &Map<String, Value>, key: &str) -> Result<Option<f64>, String> {
    let value = match args.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match value {
        Some(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
        _ => Err(format!(
            "{key} must be a number of seconds, 0 or more, got {}",
            args.get(key).map(Value::to_string).unwrap_or_default()
        )),
    }
}

/// `n` of `pool_grow`/`pool_shrink`: a whole number from 1, default 1.
fn count(args: &Map<String, Value>) -> Result<usize, String> {
    let n = match args.get("n") {
        None | Some(Value::Null) => return Ok(1),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    n.filter(|n| *n >= 1)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| {
            format!(
                "n must be a whole number from 1, got {}",
                args.get("n").map(Value::to_string).unwrap_or_default()
            )
        })
}

async fn answer(
    shared: &Arc<Shared>,
    command: &Command,
    stop: &ShutdownTrigger,
    started: std::time::Instant,
) -> Value {
    let args = &command.arguments;
    let hostname = &shared.options.hostname;
    match command.method.as_str() {
        "ping" => ok("pong"),
        "stats" => stats(shared, started),
        "active" => Value::Array(shared.state.requests(true, hostname)),
        "reserved" => Value::Array(shared.state.requests(false, hostname)),
        "scheduled" => scheduled(shared).await,
        "registered" => registered(shared, args),
        "active_queues" => Value::Array(
            shared
                .queues
                .current()
                .iter()
                .map(|q| queue_info(q))
                .collect(),
        ),
        "revoked" => json!(shared.state.revoked_ids()),
        "conf" => json!({
            "broker_url": crate::redact(&shared.app.config().broker_url),
            "worker_concurrency": shared.pool.size(),
            "worker_prefetch_count": shared.options.prefetch,
            "task_acks_late": shared.options.acks_late,
        }),
        "revoke" => {
            let ids = ids(args);
            let terminate = args
                .get("terminate")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            shared.state.revoke(&ids, terminate);
            ok(format!("tasks {} flagged as revoked", ids.join(", ")))
        }
        "enable_events" => {
            if shared.events.task_events_enabled() {
                return ok("task events already enabled");
            }
            shared.events.set_task_events(true);
            tracing::info!("task events enabled by remote control");
            ok("task events enabled")
        }
        "disable_events" => {
            if !shared.events.task_events_enabled() {
                return ok("task events already disabled");
            }
            shared.events.set_task_events(false);
            tracing::info!("task events disabled by remote control");
            ok("task events disabled")
        }
        "rate_limit" => rate_limit(shared, args),
        "time_limit" => time_limit(shared, args),
        "add_consumer" => add_consumer(shared, args).await,
        "cancel_consumer" => {
            let Some(queue) = text(args, "queue") else {
                return nok("cancel_consumer needs the name of a queue");
            };
            if on_amqp(shared) {
                return nok(
                    "cancel_consumer is not supported on an AMQP broker: the worker's RabbitMQ \
                     consumers stay open until it stops (restart it with -Q instead)",
                );
            }
            if !shared.queues.remove(queue) {
                return ok(format!("was not consuming from {queue}"));
            }
            tracing::info!(queue, "no longer consuming from a queue (remote control)");
            ok(format!("no longer consuming from {queue}"))
        }
        "pool_grow" => match count(args).and_then(|n| shared.pool.grow(n)) {
            Ok(size) => {
                tracing::info!(size, "pool grown by remote control");
                ok(format!("pool will grow (to {})", slots(size)))
            }
            Err(err) => nok(err),
        },
        "pool_shrink" => match count(args).and_then(|n| shared.pool.shrink(n)) {
            Ok(size) => {
                tracing::info!(size, "pool shrunk by remote control");
                ok(format!("pool will shrink (to {})", slots(size)))
            }
            Err(err) => nok(err),
        },
        "shutdown" => {
            tracing::warn!("Got shutdown from remote");
            stop.fire();
            ok("shutting down")
        }
        other => nok(format!("No such method: {other}")),
    }
}

/// Whether this worker's broker is RabbitMQ, whose consumers (one per
/// queue, opened by the first reservation) the queue list does not close.
fn on_amqp(shared: &Shared) -> bool {
    matches!(
        crate::Transport::parse(&shared.app.config().broker_url),
        Ok(crate::Transport::Amqp { .. })
    )
}

fn slots(n: usize) -> String {
    format!("{n} slot{}", if n == 1 { "" } else { "s" })
}

/// Celery's `rate_limit`: `{task_name, rate_limit}`; an empty or zero
/// limit lifts it.
fn rate_limit(shared: &Shared, args: &Map<String, Value>) -> Value {
    let Some(task) = text(args, "task_name") else {
        return nok("rate_limit needs task_name");
    };
    let limit = match args.get("rate_limit") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    };
    let interval = match super::rate_limit::parse_rate_limit(&limit) {
        Ok(interval) => interval,
        Err(err) => return nok(format!("Invalid rate limit string: {err}")),
    };
    if shared.app.task(task).is_none() {
        return nok(format!("unknown task {task}"));
    }
    shared.rate_limits.set(task, interval);
    if interval.is_none() {
        tracing::info!(task, "rate limit disabled by remote control");
        return ok("rate limit disabled successfully");
    }
    tracing::info!(task, limit, "new rate limit set by remote control");
    ok("new rate limit set successfully")
}

/// Celery's `time_limit`: `{task_name, soft, hard}` in seconds; a missing
/// one means none, as in Celery.
fn time_limit(shared: &Shared, args: &Map<String, Value>) -> Value {
    let Some(task) = text(args, "task_name") else {
        return nok("time_limit needs task_name");
    };
    let (soft, hard) = match (number(args, "soft"), number(args, "hard")) {
        (Ok(soft), Ok(hard)) => (soft, hard),
        (Err(err), _) | (_, Err(err)) => return nok(err),
    };
    if shared.app.task(task).is_none() {
        return nok(format!("unknown task {task}"));
    }
    shared.time_limits.set(task, soft, hard);
    tracing::info!(task, ?soft, ?hard, "new time limits set by remote control");
    ok("time limits set successfully")
}

/// Celery's `add_consumer`: `{queue, exchange, exchange_type,
/// routing_key}`; Celeriac consumes queues by name, so only `queue` is
/// read. The queue is declared before it is consumed.
async fn add_consumer(shared: &Shared, args: &Map<String, Value>) -> Value {
    let Some(queue) = text(args, "queue") else {
        return nok("add_consumer needs the name of a queue");
    };
    if shared.queues.current().iter().any(|q| q == queue) {
        return ok(format!("already consuming from {queue}"));
    }
    if let Err(err) = shared.app.broker().declare(&[queue.to_owned()]).await {
        return nok(format!("could not declare queue {queue}: {err}"));
    }
    shared.queues.add(queue);
    tracing::info!(queue, "consuming from a new queue (remote control)");
    ok(format!("add consumer {queue}"))
}

/// The most ETA tasks `scheduled` lists: the soonest.
const MAX_SCHEDULED: usize = 1000;

/// Celery's `scheduled`: `{eta, priority, request}` for each task waiting
/// for its ETA on a queue this worker consumes, soonest first.
async fn scheduled(shared: &Shared) -> Value {
    let waiting = match shared.app.broker().queues().delayed(MAX_SCHEDULED).await {
        Ok(waiting) => waiting,
        Err(err) => {
            return nok(format!(
                "could not list the tasks waiting for their ETA: {err}"
            ))
        }
    };
    let queues = shared.queues.current();
    let hostname = &shared.options.hostname;
    let limit = shared.options.max_message_bytes;
    let entries = waiting
        .iter()
        .filter(|d| queues.contains(&d.queue))
        .filter_map(|d| {
            let (message, priority) = TaskMessage::decode_within(&d.payload, limit).ok()?;
            let priority = priority.unwrap_or(0);
            Some(json!({
                "eta": crate::protocol::time::format(d.eta),
                "priority": priority,
                "request": request_info(&message, &d.queue, priority, None, false, hostname),
            }))
        })
        .collect();
    Value::Array(entries)
}

/// One queue as kombu's `Queue.as_dict(recurse=True)` describes it.
fn queue_info(q: &str) -> Value {
    json!({
        "name": q, "exchange": {"name": q, "type": "direct", "arguments": null,
        "durable": true, "passive": false, "auto_delete": false, "delivery_mode": null,
        "no_declare": false}, "routing_key": q, "queue_arguments": null,
        "binding_arguments": null, "consumer_arguments": null, "durable": true,
        "exclusive": false, "auto_delete": false, "no_ack": false, "alias": null,
        "bindings": [], "no_declare": null, "expires": null, "message_ttl": null,
        "max_length": null, "max_length_bytes": null, "max_priority": null
    })
}

/// Celery's `registered`: task names, or with `taskinfoitems` (e.g.
/// `["rate_limit"]`) `"name [rate_limit=10/m]"`, as Celery's workers
/// answer (an item without a value is left out).
fn registered(shared: &Shared, args: &Map<String, Value>) -> Value {
    let items: Vec<&str> = args
        .get("taskinfoitems")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let names = shared.app.task_names();
    if items.is_empty() {
        return json!(names);
    }
    let entries: Vec<String> = names
        .iter()
        .map(|name| {
            let fields: Vec<String> = items
                .iter()
                .filter_map(|item| match *item {
                    "rate_limit" => shared
                        .rate_limits
                        .spelled(name)
                        .map(|r| format!("rate_limit={r}")),
                    _ => None,
                })
                .collect();
            if fields.is_empty() {
                (*name).to_owned()
            } else {
                format!("{name} [{}]", fields.join(" "))
            }
        })
        .collect();
    json!(entries)
}

fn stats(shared: &Shared, started: std::time::Instant) -> Value {
    let s = &shared.stats;
    json!({
        "total": s.per_task(),
        "pid": std::process::id(),
        "clock": 0,
        "uptime": started.elapsed().as_secs(),
        "pool": {
            "implementation": "celeriac:tokio",
            "max-concurrency": shared.pool.size(),
            "processes": [std::process::id()],
            "max-tasks-per-child": null,
            "put-guarded-by-semaphore": false,
            "timeouts": [0, 0],
        },
        "broker": {"transport": shared.app.config().broker_url.split("://").next().unwrap_or("")},
        "prefetch_count": shared.options.prefetch,
        "rusage": {},
        "celeriac": {
            "processed": s.processed.load(Ordering::Relaxed),
            "succeeded": s.succeeded.load(Ordering::Relaxed),
            "failed": s.failed.load(Ordering::Relaxed),
            "active": s.active.load(Ordering::Relaxed),
            "dead_lettered": s.dead_lettered.load(Ordering::Relaxed),
        },
    })
}
