//! `sentinel://` on real servers: a master, one replica and one sentinel on
//! private loopback ports. A worker (broker and backend both
//! `sentinel://`, `acks_late`) is given 2,000 tasks; the master is killed
//! -9 mid-run; the sentinel promotes the replica and the same worker,
//! never restarted, follows it and finishes: every task's result is stored
//! (once or more), none is lost, nothing is left queued or unacknowledged.
//! Remote control and a new task's result also work after the failover.
//!
//! Needs `redis-server` (Debian's runs as a sentinel with `--sentinel`).

#[path = "support/sentinel.rs"]
mod sentinel;
mod support;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use celeriac::{task, App, AppConfig, SendOptions, TaskError, Worker, WorkerOptions};
use sentinel::{connection, master_port, replica_caught_up, until, Group, MASTER};
use serde_json::{json, Map, Value};
use support::free_port;

const TASKS: usize = 2_000;

/// How many times each task id ran.
static RUNS: Mutex<Option<HashMap<u64, u32>>> = Mutex::new(None);

#[task(name = "tasks.sentinel_work", acks_late)]
fn work(n: u64) -> Result<u64, TaskError> {
    std::thread::sleep(Duration::from_millis(2));
    *RUNS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .entry(n)
        .or_insert(0) += 1;
    Ok(n * 2)
}

fn runs() -> HashMap<u64, u32> {
    RUNS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_default()
}

/// How many of `ids` have a SUCCESS stored on the server at `port`.
async fn stored(port: u16, ids: &[String]) -> usize {
    let Ok(mut conn) = connection(port).await else {
        return 0;
    };
    let mut done = 0;
    for chunk in ids.chunks(500) {
        let keys: Vec<String> = chunk
            .iter()
            .map(|id| format!("celery-task-meta-{id}"))
            .collect();
        let docs: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        done += docs
            .iter()
            .flatten()
            .filter(|doc| doc.contains("\"SUCCESS\""))
            .count();
    }
    done
}

/// What a stalled run left behind: which ids have no result, whether they
/// ran, and what the broker still holds for them.
async fn what_is_missing(port: u16, ids: &[String]) -> String {
    let Ok(mut conn) = connection(port).await else {
        return "the new master cannot be reached".to_owned();
    };
    let runs = runs();
    let mut missing = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let doc: Option<String> = redis::cmd("GET")
            .arg(format!("celery-task-meta-{id}"))
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        if !doc.is_some_and(|doc| doc.contains("\"SUCCESS\"")) {
            missing.push(format!(
                "{n} (ran {} times)",
                runs.get(&(n as u64)).unwrap_or(&0)
            ));
        }
    }
    let reserved: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg("unacked_index")
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    let (queued, unacked) = left_over(port).await;
    format!(
        "{} ids have no result: {}; {queued} queued, {unacked} unacknowledged, \
         reservations (tag, score): {reserved:?}; {} tasks ran",
        missing.len(),
        missing
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
        runs.len()
    )
}

async fn left_over(port: u16) -> (usize, usize) {
    let Ok(mut conn) = connection(port).await else {
        return (usize::MAX, usize::MAX);
    };
    let queued: usize = redis::cmd("LLEN")
        .arg("celery")
        .query_async(&mut conn)
        .await
        .unwrap_or(usize::MAX);
    let unacked: usize = redis::cmd("HLEN")
        .arg("unacked")
        .query_async(&mut conn)
        .await
        .unwrap_or(usize::MAX);
    (queued, unacked)
}

/// An app with broker and backend behind the sentinel at `port`. A
/// sentinel that is not there comes first: each is asked in turn.
///
/// Replication is asynchronous: a result stored (and its message
/// acknowledged) in the old master's last moment may never reach the
/// replica, leaving the message reserved there with nobody holding it. A
/// short visibility timeout hands it out again within seconds (the worker
/// renews the leases of what it does hold), so the run still completes:
/// at-least-once, never lost.
async fn app_behind(port: u16) -> App {
    let url = format!(
        "sentinel://127.0.0.1:{}/0;sentinel://127.0.0.1:{port}/0",
        free_port()
    );
    App::builder()
        .config(AppConfig {
            broker_url: url.clone(),
            backend_url: url,
            master_name: Some(MASTER.to_owned()),
            visibility_timeout: Duration::from_secs(3),
            ..AppConfig::default()
        })
        .task(work)
        .build()
        .await
        .unwrap_or_else(|e| panic!("app: {e}"))
}

/// A worker running `app` until the sender is used or dropped.
fn start_worker(
    app: &App,
    hostname: &str,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<celeriac::Result<()>>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = WorkerOptions {
        concurrency: 4,
        acks_late: true,
        hostname: hostname.into(),
        ..WorkerOptions::default()
    };
    let worker = tokio::spawn(Worker::new(app.clone(), options).run(async move {
        let _ = stopped.await;
    }));
    (stop, worker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_follows_a_failover_and_loses_nothing() {
    // The worker's log is part of a failing run's output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "celeriac=debug".into()),
        )
        .with_test_writer()
        .try_init();
    let mut group = Group::start().await;
    let (sentinel, replica) = (group.sentinel.port, group.replica.port);
    let app = app_behind(sentinel).await;

    let calls = (0..TASKS as u64).map(|n| {
        let args = vec![json!(n)];
        (
            "tasks.sentinel_work".to_owned(),
            args,
            Map::new(),
            SendOptions::default(),
        )
    });
    let ids = app
        .send_batch(calls)
        .await
        .unwrap_or_else(|e| panic!("publish: {e}"));
    // Every message is on the replica before anything runs.
    until(
        "the replica has every message",
        Duration::from_secs(10),
        || replica_caught_up(group.master.port, replica),
    )
    .await;

    let (stop, worker) = start_worker(&app, "killed@localhost");
    until(
        "a quarter of the tasks run",
        Duration::from_secs(20),
        || async { runs().len() >= TASKS / 4 },
    )
    .await;
    let _ = group.master.child.kill(); // SIGKILL
    let killed = Instant::now();
    let _ = group.master.child.wait();
    let ran_before = runs().len();

    until(
        "the sentinel promotes the replica",
        Duration::from_secs(15),
        || async { master_port(sentinel).await == Some(replica) },
    )
    .await;
    let promoted = killed.elapsed();
    let stored_at_promotion = stored(replica, &ids).await;
    until(
        "results are stored on the new master",
        Duration::from_secs(15),
        || async { stored(replica, &ids).await > stored_at_promotion },
    )
    .await;
    let resumed = killed.elapsed();
    eprintln!(
        "killed the master after {ran_before} of {TASKS} tasks ran; sentinel promoted the \
         replica {promoted:?} later; the worker stored results on it {resumed:?} after the kill"
    );

    // What is asserted is that nothing is lost, not how fast: the time is
    // printed and the deadline only stops a run that never completes. A
    // failing run prints what is missing and the three servers' logs.
    let finished = match tokio::time::timeout(
        Duration::from_secs(120),
        until("every result is stored", Duration::MAX, || async {
            stored(replica, &ids).await == TASKS
        }),
    )
    .await
    {
        Ok(finished) => finished,
        Err(_) => panic!(
            "every result is stored: not within 120 s; {}\n{}",
            what_is_missing(replica, &ids).await,
            group.logs()
        ),
    };
    eprintln!("every result stored {finished:?} after the worker resumed");
    until(
        "nothing is left queued or unacknowledged",
        Duration::from_secs(10),
        || async { left_over(replica).await == (0, 0) },
    )
    .await;
    let runs = runs();
    assert_eq!(runs.len(), TASKS, "every task ran");
    let again = runs.values().filter(|n| **n > 1).count();
    eprintln!("{again} tasks ran more than once (at-least-once delivery)");

    // The producer's side follows too: a new task's result, and remote
    // control over the pidbox subscribed again.
    assert!(round_trip(&app).await.is_ok(), "a task after the failover");
    let control = app.remote_control();
    let deadline = Instant::now() + Duration::from_secs(10);
    let answered = loop {
        let ping = control.call(
            "ping",
            Value::Null,
            None,
            Duration::from_millis(500),
            Some(1),
        );
        let answered = ping.await.unwrap_or_default();
        if !answered.is_empty() || Instant::now() > deadline {
            break answered;
        }
    };
    assert_eq!(
        answered.first().map(|(node, _)| node.as_str()),
        Some("killed@localhost"),
        "remote control after the failover"
    );
    stop_worker(stop, worker).await;
}

/// A failover the sentinel is asked for: the old master lives on, taking
/// writes (which it will discard) until the sentinel demotes it seconds
/// later, so no connection fails. The sentinel's `+switch-master`
/// announcement moves the app at once: what it sends after that is run
/// and stored on the promoted master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requested_failover_is_followed_at_once() {
    let group = Group::start().await;
    let (sentinel, replica) = (group.sentinel.port, group.replica.port);
    let app = app_behind(sentinel).await;
    let (stop, worker) = start_worker(&app, "requested@localhost");
    assert!(round_trip(&app).await.is_ok());

    let mut asking = connection(sentinel).await.unwrap_or_else(|e| panic!("{e}"));
    let _: String = redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg(MASTER)
        .query_async(&mut asking)
        .await
        .unwrap_or_else(|e| panic!("SENTINEL FAILOVER: {e}"));
    let asked = Instant::now();
    until(
        "the sentinel names the replica",
        Duration::from_secs(15),
        || async { master_port(sentinel).await == Some(replica) },
    )
    .await;
    let switched = asked.elapsed();
    // Tried until it works: the app's connections may not have heard the
    // announcement yet.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut tries = 0;
    let through = loop {
        tries += 1;
        let sent = asked.elapsed();
        if let Ok(id) = round_trip(&app).await {
            if stored(replica, &[id]).await == 1 {
                break sent;
            }
        }
        assert!(Instant::now() < deadline, "no task through the new master");
    };
    eprintln!(
        "the sentinel named the new master {switched:?} after SENTINEL FAILOVER; a task sent \
         {through:?} after it went through the new master (try {tries}; one sent between the \
         promotion and the announcement goes to the old master, which discards it, as with \
         any Sentinel client)"
    );
    stop_worker(stop, worker).await;
}

/// Send `tasks.sentinel_work(21)`, wait for its result (42); its id.
async fn round_trip(app: &App) -> Result<String, String> {
    let sent = app
        .send_task(
            "tasks.sentinel_work",
            vec![json!(21)],
            Map::new(),
            SendOptions::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let value = sent
        .get(Duration::from_secs(1))
        .await
        .map_err(|e| e.to_string())?;
    assert_eq!(value, json!(42));
    Ok(sent.id().to_owned())
}

async fn stop_worker(
    stop: tokio::sync::oneshot::Sender<()>,
    worker: tokio::task::JoinHandle<celeriac::Result<()>>,
) {
    let _ = stop.send(());
    worker
        .await
        .unwrap_or_else(|e| panic!("worker task: {e}"))
        .unwrap_or_else(|e| panic!("worker: {e}"));
}

#[tokio::test]
async fn no_master_name_is_a_clear_error() {
    let app = App::builder()
        .broker_url("sentinel://127.0.0.1:1/0")
        .backend_url("memory://")
        .build()
        .await;
    let err = app.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("master_name"), "{err}");

    // Named, but no sentinel answers: the error says so.
    let app = App::builder()
        .broker_url(format!(
            "sentinel://127.0.0.1:{}/0?master_name={MASTER}",
            free_port()
        ))
        .backend_url("memory://")
        .build()
        .await;
    let err = app.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("no sentinel named master"), "{err}");
}
