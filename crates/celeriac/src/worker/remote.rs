//! What a worker answers to remote control (`celery inspect`, Flower,
//! `celeriac inspect`), in the shapes Celery's workers reply with.
//!
//! Read-only: `ping`, `stats`, `active`, `reserved`, `scheduled`,
//! `registered`, `active_queues`, `revoked`, `conf`. Acting: `revoke`
//! (optionally terminating), `enable_events`, `disable_events`,
//! `rate_limit`, `shutdown`. Anything else gets Celery's error reply.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::StreamExt;
use serde_json::{json, Value};

use super::consumer::Shared;
use crate::control::{Command, CommandStream, Control};
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
        let reply = answer(&shared, &command, &stop, started);
        if let Err(err) = control.reply(&command, &hostname, reply).await {
            tracing::debug!(error = %err, "could not reply to a control command");
        }
    }
}

fn ids(arguments: &serde_json::Map<String, Value>) -> Vec<String> {
    match arguments.get("task_id") {
        Some(Value::String(id)) => vec![id.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn answer(
    shared: &Shared,
    command: &Command,
    stop: &ShutdownTrigger,
    started: std::time::Instant,
) -> Value {
    let args = &command.arguments;
    let hostname = &shared.options.hostname;
    match command.method.as_str() {
        "ping" => json!({"ok": "pong"}),
        "stats" => stats(shared, started),
        "active" => Value::Array(shared.state.requests(true, hostname)),
        "reserved" => Value::Array(shared.state.requests(false, hostname)),
        // ETAs wait in the broker, not in worker memory.
        "scheduled" => json!([]),
        "registered" => registered(shared, args),
        "active_queues" => Value::Array(
            shared
                .options
                .queues
                .iter()
                .map(|q| {
                    json!({
                        "name": q, "exchange": {"name": q, "type": "direct", "arguments": null,
                        "durable": true, "passive": false, "auto_delete": false, "delivery_mode": null,
                        "no_declare": false}, "routing_key": q, "queue_arguments": null,
                        "binding_arguments": null, "consumer_arguments": null, "durable": true,
                        "exclusive": false, "auto_delete": false, "no_ack": false, "alias": null,
                        "bindings": [], "no_declare": null, "expires": null, "message_ttl": null,
                        "max_length": null, "max_length_bytes": null, "max_priority": null
                    })
                })
                .collect(),
        ),
        "revoked" => json!(shared.state.revoked_ids()),
        "conf" => json!({
            "broker_url": crate::redact(&shared.app.config().broker_url),
            "worker_concurrency": shared.options.concurrency,
            "worker_prefetch_count": shared.options.prefetch,
            "task_acks_late": shared.options.acks_late,
        }),
        "revoke" => {
            let ids = ids(args);
            let terminate = args.get("terminate").and_then(Value::as_bool).unwrap_or(false);
            shared.state.revoke(&ids, terminate);
            json!({"ok": format!("tasks {} flagged as revoked", ids.join(", "))})
        }
        "enable_events" => {
            shared.events.set_task_events(true);
            json!({"ok": "task events enabled"})
        }
        "disable_events" => {
            shared.events.set_task_events(false);
            json!({"ok": "task events disabled"})
        }
        "rate_limit" => {
            let task = args.get("task_name").and_then(Value::as_str).unwrap_or("");
            let limit = match args.get("rate_limit") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            if shared.app.task(task).is_none() {
                return json!({"error": format!("unknown task {task:?}")});
            }
            match super::rate_limit::parse_rate_limit(&limit) {
                Ok(interval) => {
                    shared.rate_limits.set(task, interval);
                    json!({"ok": "new rate limit set successfully"})
                }
                Err(err) => json!({"error": err.to_string()}),
            }
        }
        "shutdown" => {
            stop.fire();
            json!({"ok": "shutting down"})
        }
        other => json!({"error": format!("No such method: {other}")}),
    }
}

/// Celery's `registered`: task names, or with `taskinfoitems` (e.g.
/// `["rate_limit"]`) `"name [rate_limit=10/m]"`, as Celery's workers
/// answer (an item without a value is left out).
fn registered(shared: &Shared, args: &serde_json::Map<String, Value>) -> Value {
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
            "max-concurrency": shared.options.concurrency,
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
