//! What a running worker does with Celery's `control` commands, sent over
//! `App::remote_control()` on the memory broker (the event bus carries them
//! as on SQLite; Redis's pidbox delivers the same commands): queues added
//! and cancelled, time limits and rate limits changed, the pool grown and
//! shrunk, ETA tasks listed by `scheduled`, and Celery's reply shapes.

use std::time::{Duration, Instant};

use celeriac::{task, App, Error, SendOptions, TaskError, TaskState, Worker, WorkerOptions};
use serde_json::{json, Map, Value};

#[task(name = "tasks.add")]
fn add(x: i64, y: i64) -> Result<i64, TaskError> {
    Ok(x + y)
}

/// No declared time limit: only a remote `time_limit` stops it.
#[task(name = "tasks.snooze")]
async fn snooze() -> Result<(), TaskError> {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    Ok(())
}

const NODE: &str = "remote@test";
const WAIT: Duration = Duration::from_secs(10);

struct Running {
    app: App,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    worker: tokio::task::JoinHandle<celeriac::Result<()>>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.worker.await.expect("worker task").expect("worker ran");
    }

    /// One command to this worker; its reply.
    async fn control(&self, method: &str, arguments: Value) -> Value {
        let replies = self
            .app
            .remote_control()
            .call(
                method,
                arguments,
                Some(vec![NODE.to_owned()]),
                WAIT,
                Some(1),
            )
            .await
            .expect("remote control call");
        let (node, reply) = replies.into_iter().next().expect("the worker replied");
        assert_eq!(node, NODE);
        reply
    }
}

async fn start(name: &str, concurrency: usize) -> Running {
    let url = format!("memory://{name}");
    let app = App::builder()
        .broker_url(&url)
        .backend_url(&url)
        .task(add)
        .task(snooze)
        .build()
        .await
        .expect("app");
    let options = WorkerOptions {
        concurrency,
        hostname: NODE.to_owned(),
        ..WorkerOptions::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(Worker::new(app.clone(), options).run(async move {
        let _ = stopped.await;
    }));
    let running = Running {
        app,
        stop: Some(stop),
        worker,
    };
    // The worker listens once it has started: ask until it answers.
    let deadline = Instant::now() + WAIT;
    loop {
        let replies = running
            .app
            .remote_control()
            .call("ping", json!({}), None, Duration::from_millis(100), Some(1))
            .await
            .expect("ping");
        if !replies.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the worker never answered ping");
    }
    running
}

async fn send(app: &App, name: &str, args: Vec<Value>, options: SendOptions) -> String {
    app.send_task(name, args, Map::new(), options)
        .await
        .expect("send")
        .id()
        .to_owned()
}

async fn state(app: &App, id: &str) -> TaskState {
    app.async_result(id).state().await.expect("state")
}

fn queue_names(reply: &Value) -> Vec<String> {
    reply
        .as_array()
        .expect("a list of queues")
        .iter()
        .map(|q| q["name"].as_str().expect("a name").to_owned())
        .collect()
}

#[tokio::test]
async fn consumers_are_added_and_cancelled_while_the_worker_runs() {
    let w = start("remote-queues", 2).await;
    assert_eq!(
        w.control("add_consumer", json!({"queue": "extra"})).await,
        json!({"ok": "add consumer extra"})
    );
    assert_eq!(
        w.control("add_consumer", json!({"queue": "extra"})).await,
        json!({"ok": "already consuming from extra"})
    );
    let on_extra = send(
        &w.app,
        "tasks.add",
        vec![json!(1), json!(2)],
        SendOptions::new().queue("extra"),
    )
    .await;
    assert_eq!(
        w.app.async_result(&on_extra).get(WAIT).await.expect("ran"),
        json!(3)
    );

    assert_eq!(
        w.control("cancel_consumer", json!({"queue": "celery"}))
            .await,
        json!({"ok": "no longer consuming from celery"})
    );
    assert_eq!(
        queue_names(&w.control("active_queues", json!({})).await),
        ["extra"]
    );
    // A reservation already waiting when the command came may still
    // return (as a Celery worker runs what it prefetched): once a task on
    // `extra` ran, the next ones are made with the new list.
    let marker = send(
        &w.app,
        "tasks.add",
        vec![json!(0), json!(0)],
        SendOptions::new().queue("extra"),
    )
    .await;
    assert_eq!(
        w.app.async_result(&marker).get(WAIT).await.expect("ran"),
        json!(0)
    );
    let on_celery = send(
        &w.app,
        "tasks.add",
        vec![json!(2), json!(2)],
        SendOptions::new(),
    )
    .await;
    // A later task on the consumed queue runs; the one on the cancelled
    // queue still waits.
    let later = send(
        &w.app,
        "tasks.add",
        vec![json!(3), json!(3)],
        SendOptions::new().queue("extra"),
    )
    .await;
    assert_eq!(
        w.app.async_result(&later).get(WAIT).await.expect("ran"),
        json!(6)
    );
    assert_eq!(state(&w.app, &on_celery).await, TaskState::Pending);

    // No queue at all: the worker waits, then takes up the one added.
    w.control("cancel_consumer", json!({"queue": "extra"}))
        .await;
    assert_eq!(
        queue_names(&w.control("active_queues", json!({})).await),
        Vec::<String>::new()
    );
    w.control("add_consumer", json!({"queue": "celery"})).await;
    assert_eq!(
        w.app.async_result(&on_celery).get(WAIT).await.expect("ran"),
        json!(4)
    );

    let missing = w.control("add_consumer", json!({})).await;
    assert!(
        missing["error"]
            .as_str()
            .is_some_and(|e| e.contains("queue")),
        "{missing}"
    );
    w.stop().await;
}

#[tokio::test]
async fn a_remote_time_limit_stops_a_task_that_declares_none() {
    let w = start("remote-time-limit", 2).await;
    assert_eq!(
        w.control(
            "time_limit",
            json!({"task_name": "tasks.snooze", "soft": 0.1, "hard": 0.3})
        )
        .await,
        json!({"ok": "time limits set successfully"})
    );
    let id = send(&w.app, "tasks.snooze", Vec::new(), SendOptions::new()).await;
    match w.app.async_result(&id).get(WAIT).await {
        Err(Error::TaskFailed { exc_type, .. }) => assert_eq!(exc_type, "TimeLimitExceeded"),
        other => panic!("expected TimeLimitExceeded, got {other:?}"),
    }
    let unknown = w
        .control("time_limit", json!({"task_name": "tasks.nope", "soft": 1}))
        .await;
    assert_eq!(unknown, json!({"error": "unknown task tasks.nope"}));
    let bad = w
        .control(
            "time_limit",
            json!({"task_name": "tasks.snooze", "soft": "soon"}),
        )
        .await;
    assert!(
        bad["error"]
            .as_str()
            .is_some_and(|e| e.contains("soft must be a number")),
        "{bad}"
    );
    w.stop().await;
}

#[tokio::test]
async fn rate_limits_answer_as_celery_does() {
    let w = start("remote-rate-limit", 2).await;
    assert_eq!(
        w.control(
            "rate_limit",
            json!({"task_name": "tasks.add", "rate_limit": "10/m"})
        )
        .await,
        json!({"ok": "new rate limit set successfully"})
    );
    let registered = w
        .control("registered", json!({"taskinfoitems": ["rate_limit"]}))
        .await;
    assert!(
        registered
            .as_array()
            .is_some_and(|names| names.contains(&json!("tasks.add [rate_limit=10/m]"))),
        "{registered}"
    );
    assert_eq!(
        w.control(
            "rate_limit",
            json!({"task_name": "tasks.add", "rate_limit": "0"})
        )
        .await,
        json!({"ok": "rate limit disabled successfully"})
    );
    let bad = w
        .control(
            "rate_limit",
            json!({"task_name": "tasks.add", "rate_limit": "fast"}),
        )
        .await;
    assert!(
        bad["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("Invalid rate limit string")),
        "{bad}"
    );
    assert_eq!(
        w.control(
            "rate_limit",
            json!({"task_name": "tasks.nope", "rate_limit": "1/s"})
        )
        .await,
        json!({"error": "unknown task tasks.nope"})
    );
    w.stop().await;
}

#[tokio::test]
async fn the_pool_grows_and_shrinks_and_stats_follow() {
    let w = start("remote-pool", 1).await;
    let size = |stats: &Value| stats["pool"]["max-concurrency"].as_u64();
    assert_eq!(
        w.control("pool_grow", json!({"n": 2})).await,
        json!({"ok": "pool will grow (to 3 slots)"})
    );
    assert_eq!(size(&w.control("stats", json!({})).await), Some(3));
    // Three tasks that never end on their own run at once.
    let ids = [
        send(&w.app, "tasks.snooze", Vec::new(), SendOptions::new()).await,
        send(&w.app, "tasks.snooze", Vec::new(), SendOptions::new()).await,
        send(&w.app, "tasks.snooze", Vec::new(), SendOptions::new()).await,
    ];
    let deadline = Instant::now() + WAIT;
    while w
        .control("active", json!({}))
        .await
        .as_array()
        .map(Vec::len)
        != Some(3)
    {
        assert!(Instant::now() < deadline, "three tasks never ran at once");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    w.app.revoke(&ids, true).await.expect("revoke");
    let refused = w.control("pool_shrink", json!({"n": 3})).await;
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("keeps at least one")),
        "{refused}"
    );
    assert_eq!(
        w.control("pool_shrink", json!({})).await,
        json!({"ok": "pool will shrink (to 2 slots)"})
    );
    assert_eq!(w.control("conf", json!({})).await["worker_concurrency"], 2);
    let bad = w.control("pool_grow", json!({"n": 0})).await;
    assert!(
        bad["error"]
            .as_str()
            .is_some_and(|e| e.contains("whole number")),
        "{bad}"
    );
    w.stop().await;
}

#[tokio::test]
async fn scheduled_lists_countdown_tasks_until_they_are_due() {
    let w = start("remote-scheduled", 2).await;
    let id = send(
        &w.app,
        "tasks.add",
        vec![json!(20), json!(22)],
        SendOptions::new()
            .countdown(Duration::from_secs(3600))
            .priority(3),
    )
    .await;
    let deadline = Instant::now() + WAIT;
    let entry = loop {
        let scheduled = w.control("scheduled", json!({})).await;
        if let Some(entry) = scheduled.as_array().and_then(|l| l.first()).cloned() {
            break entry;
        }
        assert!(
            Instant::now() < deadline,
            "the countdown task was never scheduled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Celery's shape: {eta, priority, request: Request.info()}.
    assert!(
        entry["eta"]
            .as_str()
            .is_some_and(|eta| eta.ends_with("+00:00")),
        "{entry}"
    );
    assert_eq!(entry["priority"], 3);
    let request = &entry["request"];
    assert_eq!(request["id"], json!(id));
    assert_eq!(request["name"], "tasks.add");
    assert_eq!(request["args"], json!([20, 22]));
    assert_eq!(request["kwargs"], json!({}));
    assert_eq!(request["hostname"], NODE);
    assert_eq!(request["time_start"], Value::Null);
    assert_eq!(request["acknowledged"], false);
    assert_eq!(request["delivery_info"]["routing_key"], "celery");
    // Waiting in the broker, not held: neither reserved nor active.
    assert_eq!(w.control("reserved", json!({})).await, json!([]));
    assert_eq!(w.control("active", json!({})).await, json!([]));

    // A task due now is not listed once it ran.
    let soon = send(
        &w.app,
        "tasks.add",
        vec![json!(1), json!(1)],
        SendOptions::new().countdown(Duration::from_millis(300)),
    )
    .await;
    assert_eq!(
        w.app.async_result(&soon).get(WAIT).await.expect("ran"),
        json!(2)
    );
    let scheduled = w.control("scheduled", json!({})).await;
    let listed: Vec<&Value> = scheduled
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| &e["request"]["id"])
        .collect();
    assert_eq!(listed, [&json!(id)]);
    w.stop().await;
}

#[tokio::test]
async fn events_toggle_and_unknown_methods_answer_as_celery_does() {
    let w = start("remote-events", 1).await;
    assert_eq!(
        w.control("enable_events", json!({})).await,
        json!({"ok": "task events enabled"})
    );
    assert_eq!(
        w.control("enable_events", json!({})).await,
        json!({"ok": "task events already enabled"})
    );
    assert_eq!(
        w.control("disable_events", json!({})).await,
        json!({"ok": "task events disabled"})
    );
    assert_eq!(
        w.control("disable_events", json!({})).await,
        json!({"ok": "task events already disabled"})
    );
    assert_eq!(
        w.control("autoscale", json!({})).await,
        json!({"error": "No such method: autoscale"})
    );
    assert_eq!(
        w.control("shutdown", json!({})).await,
        json!({"ok": "shutting down"})
    );
    // The worker stops on its own.
    tokio::time::timeout(WAIT, w.worker)
        .await
        .expect("stopped after shutdown")
        .expect("worker task")
        .expect("worker ran");
}
