//! A master, one replica and one sentinel on private loopback ports, for
//! the `sentinel://` tests (`redis_sentinel.rs`, and the Python interop one
//! in `celeriac-interop`, which includes this file by path). Needs
//! `redis-server` (Debian's runs as a sentinel with `--sentinel`).

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;

use crate::support::free_port;

/// The master name the sentinel monitors.
pub const MASTER: &str = "mymaster";

/// A server process killed on drop.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn redis_server() -> String {
    std::env::var("CELERIAC_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

pub fn spawn(args: &[String], dir: &Path) -> Child {
    Command::new(redis_server())
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start redis-server: {e} (scripts/test.sh installs it)"))
}

/// A data node: the master, or a replica of `master`.
pub fn node(dir: &Path, master: Option<u16>) -> Server {
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
        "--logfile",
        &format!("redis-{port}.log"),
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
pub fn sentinel(dir: &Path, master: u16) -> Server {
    let port = free_port();
    let conf = dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndir {}\n\
             sentinel monitor {MASTER} 127.0.0.1 {master} 1\n\
             sentinel down-after-milliseconds {MASTER} 1000\n\
             sentinel failover-timeout {MASTER} 3000\n\
             logfile sentinel-{port}.log\n",
            dir.display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    Server {
        child: spawn(&[conf.display().to_string(), "--sentinel".to_owned()], dir),
        port,
    }
}

pub async fn connection(port: u16) -> redis::RedisResult<MultiplexedConnection> {
    redis::Client::open(format!("redis://127.0.0.1:{port}/0"))?
        .get_multiplexed_async_connection()
        .await
}

/// Poll `ready` every 20 ms until it holds; panic naming `what` after `limit`.
pub async fn until<F, Fut>(what: &str, limit: Duration, mut ready: F) -> Duration
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

pub async fn replica_synced(port: u16) -> bool {
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

/// A field of `INFO replication` on the server at `port`.
async fn replication_field(port: u16, field: &str) -> Option<u64> {
    let mut conn = connection(port).await.ok()?;
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut conn)
        .await
        .ok()?;
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().parse().ok())
}

/// Whether the replica has applied everything the master had written when
/// asked. `WAIT` cannot tell: it counts against the asking connection's
/// own writes, and a master streams to a replica only after the replica's
/// first acknowledgement (up to a second after a full sync).
pub async fn replica_caught_up(master: u16, replica: u16) -> bool {
    let Some(written) = replication_field(master, "master_repl_offset").await else {
        return false;
    };
    replication_field(replica, "slave_repl_offset")
        .await
        .is_some_and(|applied| applied >= written)
}

/// Whether the sentinel sees `replica` as a healthy replica of the master.
pub async fn sentinel_knows(sentinel: u16, replica: u16) -> bool {
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

pub async fn master_port(sentinel: u16) -> Option<u16> {
    let mut conn = connection(sentinel).await.ok()?;
    let addr: Option<(String, String)> = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(MASTER)
        .query_async(&mut conn)
        .await
        .ok()?;
    addr?.1.parse().ok()
}

/// A master, its replica and a sentinel watching them, ready to fail over.
pub struct Group {
    pub master: Server,
    pub replica: Server,
    pub sentinel: Server,
    dir: tempfile::TempDir,
}

impl Group {
    /// The three servers' logs, for a failing test's message.
    pub fn logs(&self) -> String {
        [
            ("master", format!("redis-{}.log", self.master.port)),
            ("replica", format!("redis-{}.log", self.replica.port)),
            ("sentinel", format!("sentinel-{}.log", self.sentinel.port)),
        ]
        .iter()
        .map(|(who, file)| {
            let log = std::fs::read_to_string(self.dir.path().join(file))
                .unwrap_or_else(|e| format!("(cannot read {file}: {e})"));
            format!("--- {who} ({file}) ---\n{log}")
        })
        .collect()
    }

    pub async fn start() -> Group {
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
            dir,
        }
    }
}
