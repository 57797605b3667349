//! Following a Redis master through Sentinel failovers.
//!
//! 1. [`resolve`]: ask each sentinel in turn `SENTINEL
//!    get-master-addr-by-name <master_name>`; the first answer wins. The
//!    address is then connected to and must say `ROLE` master.
//! 2. [`Follower`]: the master in use (its client, its reconnecting
//!    `ConnectionManager`) and a task that looks for the master again when
//!    woken. Every command sent through a [`FollowedConn`] that fails with a
//!    connection error or a `READONLY` reply (the master was demoted) wakes
//!    it, as do dedicated connections that fail, and so does a sentinel's
//!    announcement of a failover of this master (`+promoted-slave`,
//!    `+switch-master`; the task listens to the first sentinel that takes
//!    the subscription). It then asks the sentinels
//!    every [`RESOLVE_GAP`] (backing off to a second) until they name
//!    another master, which it connects to and swaps in, or the master in
//!    use answers `ROLE` as master again (a brief outage, a restart).
//!    Commands failing meanwhile fail fast; callers retry with their own
//!    backoff, as they do through a plain Redis restart.
//!
//! Sentinels are asked without a password (redis-py's `sentinel_kwargs`
//! default); the URL's user and password are the master's.

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use futures::stream::{BoxStream, StreamExt};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, Pipeline, RedisError,
    RedisFuture, RedisResult, Value,
};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::connect::redact;
use crate::sentinel_url::SentinelUrl;
use crate::{Error, Result};

/// The least time between two rounds of questions to the sentinels.
const RESOLVE_GAP: Duration = Duration::from_millis(100);
/// How long one sentinel may take to connect and answer.
const SENTINEL_TIMEOUT: Duration = Duration::from_secs(1);

/// The master currently followed.
struct Master {
    addr: (String, u16),
    client: Client,
    conn: ConnectionManager,
}

/// The master a set of sentinels names, followed across failovers.
pub(crate) struct Follower {
    url: SentinelUrl,
    config: ConnectionManagerConfig,
    current: Mutex<Arc<Master>>,
    wake: Arc<Notify>,
    task: OnceLock<AbortHandle>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        if let Some(task) = self.task.get() {
            task.abort();
        }
    }
}

/// Find the master `url` names and start following it.
///
/// # Errors
/// When no sentinel answers, none knows the master's name, or the master
/// named cannot be reached.
pub(crate) async fn follow(
    url: SentinelUrl,
    config: ConnectionManagerConfig,
) -> Result<Arc<Follower>> {
    let failed = |e: String| Error::broker("connecting to the Redis master through Sentinel", e);
    let addr = resolve(&url).await.map_err(failed)?;
    let (client, conn) = open_master(&url, &addr, config.clone())
        .await
        .map_err(failed)?;
    tracing::debug!(master = %format!("{}:{}", addr.0, addr.1), url = %redact(url.as_str()), "following the Redis master named by Sentinel");
    let wake = Arc::new(Notify::new());
    let follower = Arc::new(Follower {
        url,
        config,
        current: Mutex::new(Arc::new(Master { addr, client, conn })),
        wake: Arc::clone(&wake),
        task: OnceLock::new(),
    });
    let task = tokio::spawn(watch(Arc::downgrade(&follower), wake, follower.url.clone()));
    let _ = follower.task.set(task.abort_handle());
    Ok(follower)
}

/// Look for the master again each time a connection reports trouble or a
/// sentinel announces a failover of this master: ask the sentinels until
/// the master in use answers as master again or another one is named and
/// reachable, backing off up to a second while neither (the sentinels have
/// not failed over yet). Holds the follower only while asking, so dropping
/// every connection ends it.
async fn watch(follower: Weak<Follower>, wake: Arc<Notify>, url: SentinelUrl) {
    let name = url.master_name().unwrap_or_default().to_owned();
    let mut announced = announcements(&url).await;
    loop {
        loop {
            let next = async {
                match announced.as_mut() {
                    Some(messages) => messages.next().await,
                    None => {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        None
                    }
                }
            };
            tokio::select! {
                _ = wake.notified() => break,
                message = next => match message {
                    Some(message) if announces_switch(&message, &name) => break,
                    Some(_) => {}
                    // Lost the sentinel (or never reached one): listen again.
                    None => announced = announcements(&url).await,
                },
            }
        }
        let mut pause = RESOLVE_GAP;
        loop {
            let Some(strong) = follower.upgrade() else {
                return;
            };
            let settled = strong.refresh().await;
            drop(strong);
            tokio::time::sleep(pause).await;
            if settled {
                break;
            }
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
}

/// A sentinel's announcements of a failover (`+promoted-slave`,
/// `+switch-master`), from the first sentinel that takes the subscription. They move a follower at once, even while
/// its connections to the old master still work: a requested failover
/// (`SENTINEL FAILOVER`) leaves the old master taking writes, which it
/// then discards, until the sentinels demote it seconds later.
async fn announcements(url: &SentinelUrl) -> Option<BoxStream<'static, redis::Msg>> {
    for (host, port) in url.sentinels() {
        let subscribed = async {
            let mut pubsub = sentinel_client(host, *port)?.get_async_pubsub().await?;
            pubsub
                .subscribe(&["+promoted-slave", "+switch-master"])
                .await?;
            RedisResult::Ok(pubsub)
        };
        match tokio::time::timeout(SENTINEL_TIMEOUT, subscribed).await {
            Ok(Ok(pubsub)) => return Some(pubsub.into_on_message().boxed()),
            Ok(Err(e)) => tracing::debug!(error = %e, host, port, "cannot listen to a sentinel"),
            Err(_) => tracing::debug!(host, port, "a sentinel did not answer in time"),
        }
    }
    None
}

/// Whether `message` announces a new master for `name`: `+switch-master`
/// (`<name> <old ip> <old port> <new ip> <new port>`) or, earlier in the
/// same failover, `+promoted-slave` (`slave <ip:port> <ip> <port> @ <name>
/// <master ip> <master port>`; the sentinels name the promoted replica as
/// master from then on).
fn announces_switch(message: &redis::Msg, name: &str) -> bool {
    let Ok(payload) = message.get_payload::<String>() else {
        return false;
    };
    let mut words = payload.split(' ');
    match message.get_channel_name() {
        "+switch-master" => words.next() == Some(name),
        _ => words.skip_while(|w| *w != "@").nth(1) == Some(name),
    }
}

fn sentinel_client(host: &str, port: u16) -> RedisResult<Client> {
    Client::open(ConnectionInfo {
        addr: ConnectionAddr::Tcp(host.to_owned(), port),
        redis: Default::default(),
    })
}

impl Follower {
    fn current(&self) -> Arc<Master> {
        Arc::clone(&self.current.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The connection to the current master.
    fn conn(&self) -> ConnectionManager {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .conn
            .clone()
    }

    /// The current master's client, for dedicated connections.
    pub(crate) fn client(&self) -> Client {
        self.current().client.clone()
    }

    /// The database commands go to.
    pub(crate) fn db(&self) -> i64 {
        self.url.db()
    }

    /// A command or connection failed with `err`: when that may mean the
    /// master moved, look for it again (in the background).
    pub(crate) fn report(&self, err: &RedisError) {
        if master_may_have_moved(err) {
            self.wake.notify_one();
        }
    }

    /// Ask the sentinels once; `true` when settled: the master in use
    /// still answers as master, or the one they name now is swapped in.
    async fn refresh(&self) -> bool {
        let current = self.current();
        match resolve(&self.url).await {
            Ok(addr) if addr == current.addr => is_master(&mut current.conn.clone()).await,
            Ok(addr) => match open_master(&self.url, &addr, self.config.clone()).await {
                Ok((client, conn)) => {
                    tracing::warn!(
                        from = %format!("{}:{}", current.addr.0, current.addr.1),
                        to = %format!("{}:{}", addr.0, addr.1),
                        "the Redis master moved (Sentinel failover); following it"
                    );
                    *self.current.lock().unwrap_or_else(|e| e.into_inner()) =
                        Arc::new(Master { addr, client, conn });
                    true
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot connect to the Redis master Sentinel names");
                    false
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot find the Redis master through Sentinel");
                false
            }
        }
    }
}

/// Whether the server behind `conn` answers, as master, within a second.
async fn is_master(conn: &mut ConnectionManager) -> bool {
    let role = tokio::time::timeout(
        SENTINEL_TIMEOUT,
        redis::cmd("ROLE").query_async::<redis::Role>(conn),
    )
    .await;
    matches!(role, Ok(Ok(redis::Role::Primary { .. })))
}

/// Whether `err` may mean the master is gone or is no longer the master.
fn master_may_have_moved(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || matches!(
            err.kind(),
            redis::ErrorKind::ReadOnly | redis::ErrorKind::MasterDown
        )
        || err.code() == Some("READONLY")
}

/// A `READONLY` reply inside a pipeline's answers (the pipeline itself
/// succeeds at the connection level).
fn read_only_inside(values: &[Value]) -> Option<RedisError> {
    values.iter().find_map(|value| match value {
        Value::ServerError(e) if e.code() == "READONLY" => Some(RedisError::from(e.clone())),
        _ => None,
    })
}

/// A connection to the followed master: each command goes to the master
/// in use when it is sent.
#[derive(Clone)]
pub(crate) struct FollowedConn {
    follower: Arc<Follower>,
}

impl FollowedConn {
    pub(crate) fn new(follower: Arc<Follower>) -> Self {
        FollowedConn { follower }
    }
}

impl ConnectionLike for FollowedConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut conn = self.follower.conn();
            let result = conn.req_packed_command(cmd).await;
            match &result {
                Err(e) => self.follower.report(e),
                Ok(Value::ServerError(e)) if e.code() == "READONLY" => {
                    self.follower.report(&RedisError::from(e.clone()))
                }
                Ok(_) => {}
            }
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut conn = self.follower.conn();
            let result = conn.req_packed_commands(pipeline, offset, count).await;
            match &result {
                Err(e) => self.follower.report(e),
                Ok(values) => {
                    if let Some(e) = read_only_inside(values) {
                        self.follower.report(&e);
                    }
                }
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.follower.db()
    }
}

/// The master's address, from the first sentinel that knows it.
///
/// # Errors
/// The reason, naming each sentinel's failure, when none answered.
pub(crate) async fn resolve(url: &SentinelUrl) -> std::result::Result<(String, u16), String> {
    let name = url.master_name().unwrap_or_default();
    let mut failures = Vec::new();
    for (host, port) in url.sentinels() {
        match ask(host, *port, name).await {
            Ok(Some(addr)) => return Ok(addr),
            Ok(None) => failures.push(format!("{host}:{port} knows no master named {name:?}")),
            Err(e) => failures.push(format!("{host}:{port}: {e}")),
        }
    }
    Err(format!(
        "no sentinel named master {name:?}: {}",
        failures.join("; ")
    ))
}

/// One sentinel's answer: the master's address, or `None` when it does
/// not monitor `name`.
async fn ask(host: &str, port: u16, name: &str) -> RedisResult<Option<(String, u16)>> {
    let client = sentinel_client(host, port)?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(SENTINEL_TIMEOUT)
        .set_response_timeout(SENTINEL_TIMEOUT);
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let addr: Option<(String, String)> = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(name)
        .query_async(&mut conn)
        .await?;
    let Some((host, port)) = addr else {
        return Ok(None);
    };
    let port = port.parse().map_err(|_| {
        RedisError::from((
            redis::ErrorKind::TypeError,
            "sentinel answered a port that is not a number",
            port.clone(),
        ))
    })?;
    Ok(Some((host, port)))
}

/// Connect to the master at `addr` with the URL's credentials and
/// database, and check that it is the master.
async fn open_master(
    url: &SentinelUrl,
    addr: &(String, u16),
    config: ConnectionManagerConfig,
) -> std::result::Result<(Client, ConnectionManager), String> {
    let info = ConnectionInfo {
        addr: ConnectionAddr::Tcp(addr.0.clone(), addr.1),
        redis: redis::RedisConnectionInfo {
            db: url.db(),
            username: url.username().map(str::to_owned),
            password: url.password().map(str::to_owned),
            ..Default::default()
        },
    };
    let at = format!("{}:{}", addr.0, addr.1);
    let client = Client::open(info).map_err(|e| format!("{at}: {e}"))?;
    let mut conn = ConnectionManager::new_with_config(client.clone(), config)
        .await
        .map_err(|e| format!("{at}: {e}"))?;
    let role: redis::Role = redis::cmd("ROLE")
        .query_async(&mut conn)
        .await
        .map_err(|e| format!("{at}: ROLE: {e}"))?;
    match role {
        redis::Role::Primary { .. } => Ok((client, conn)),
        _ => Err(format!(
            "{at} is not a master (yet): the sentinels' view is stale"
        )),
    }
}
