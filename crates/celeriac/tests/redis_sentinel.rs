//! `sentinel://` on real servers: a master, one replica and one sentinel on
//! private loopback ports. A worker (broker and backend both
//! `sentinel://`, `acks_late`) is given 2,000 tasks; the master is killed
//! -9 mid-run; the sentinel promotes the replica and the same worker,
//! never restarted, follows it and finishes: every task's result is stored
//! (once or more), none is lost, nothing is left queued or unacknowledged.
//! Remote control and a new task's result also work after the failover.
//!
//! Needs `redis-server` (Debian's runs as a sentinel with `--sentinel`).

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use celeriac::{task, App, AppConfig, SendOptions, TaskError, Worker, WorkerOptions};
use redis::aio::MultiplexedConnection;
use serde_json::{json, Map, Value};
use support::free_port;

const MASTER: &str = "mymaster";
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

/// A server process killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_server() -> String {
    std::env::var("CELERIAC_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

fn spawn(args: &[String], dir: &Path) -> Child {
    Command::new(redis_server())
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start redis-server: {e} (scripts/test.sh installs it)"))
}

/// A data node: the master, or a replica of `master`.
fn node(dir: &Path, master: Option<u16>) -> Server {
    let port = free_port();
    let mut args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        // A replica's first sync starts at once, not after 5 s.
        "--repl-diskless-sync-delay",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(master) = master {
        args.extend(["--replicaof".into(), "127.0.0.1".into(), master.to_string()]);
    }
    Server {
        child: spawn(&args, dir),
        port,
    }
}

/// A sentinel watching `master`, quick to declare it down.
fn sentinel(dir: &Path, master: u16) -> Server {
    let port = free_port();
    let conf = dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndir {}\n\
             sentinel monitor {MASTER} 127.0.0.1 {master} 1\n\
             sentinel down-after-milliseconds {MASTER} 300\n\
             sentinel failover-timeout {MASTER} 3000\n",
            dir.display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    Server {
        child: spawn(&[conf.display().to_string(), "--sentinel".to_owned()], dir),
        port,
    }
}

async fn connection(port: u16) -> redis::RedisResult<MultiplexedConnection> {
    redis::Client::open(format!("redis://127.0.0.1:{port}/0"))?
        .get_multiplexed_async_connection()
        .await
}

/// Poll `ready` every 20 ms until it holds; panic naming `what` after `limit`.
async fn until<F, Fut>(what: &str, limit: Duration, mut ready: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !ready().await {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

async fn replica_synced(port: u16) -> bool {
    let Ok(mut conn) = connection(port).await else {
        return false;
    };
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    info.contains("master_link_status:up")
}

/// Whether the sentinel sees `replica` as a healthy replica of the master.
async fn sentinel_knows(sentinel: u16, replica: u16) -> bool {
    let Ok(mut conn) = connection(sentinel).await else {
        return false;
    };
    let replicas: Vec<HashMap<String, String>> = redis::cmd("SENTINEL")
        .arg("replicas")
        .arg(MASTER)
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    replicas.iter().any(|r| {
        r.get("port") == Some(&replica.to_string())
            && r.get("flags").map(String::as_str) == Some("slave")
    })
}

async fn master_port(sentinel: u16) -> Option<u16> {
    let mut conn = connection(sentinel).await.ok()?;
    let addr: Option<(String, String)> = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(MASTER)
        .query_async(&mut conn)
        .await
        .ok()?;
    addr?.1.parse().ok()
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

/// A master, its replica and a sentinel watching them, ready to fail over.
struct Group {
    master: Server,
    replica: Server,
    sentinel: Server,
    _dir: tempfile::TempDir,
}

impl Group {
    async fn start() -> Group {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let master = node(dir.path(), None);
        let replica = node(dir.path(), Some(master.port));
        until("the replica syncs", Duration::from_secs(10), || {
            replica_synced(replica.port)
        })
        .await;
        // Started once the replica is attached, so its first look sees it.
        let sentinel = sentinel(dir.path(), master.port);
        until(
            "the sentinel sees the replica",
            Duration::from_secs(10),
            || sentinel_knows(sentinel.port, replica.port),
        )
        .await;
        Group {
            master,
            replica,
            sentinel,
            _dir: dir,
        }
    }
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
    let mut on_master = connection(group.master.port)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(&mut on_master)
        .await
        .unwrap_or_else(|e| panic!("WAIT: {e}"));
    assert_eq!(acked, 1, "the replica did not confirm the messages");

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

    until(
        "every result is stored",
        Duration::from_secs(30),
        || async { stored(replica, &ids).await == TASKS },
    )
    .await;
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
