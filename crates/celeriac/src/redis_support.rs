//! What the Redis broker and backend share: connecting, and key names.
//!
//! Key names are kombu's and Celery's, so Python and Rust processes find
//! each other's data; `key_prefix` is kombu's `global_keyprefix` and
//! prefixes every key and channel.
//!
//! Every Redis user gets its connections from [`connect`]: a shared
//! [`RedisConn`] for commands and an [`Endpoint`] for dedicated ones, to
//! one server or, behind Sentinel, to whichever server is master now.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{BoxStream, StreamExt};
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection, PubSub,
};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};

use crate::redis_sentinel::{FollowedConn, Follower};
use crate::transport::Transport;
use crate::{Error, Result};

/// kombu's separator inside priority list names and binding members.
pub(crate) const SEP: &str = "\x06\x16";

/// Open a reconnecting, multiplexed connection to what `url` names: one
/// server (`redis://`, `rediss://`), or the master a set of sentinels
/// names (`sentinel://…?master_name=`), followed across failovers
/// (`redis_sentinel.rs`). Commands sent during an outage fail fast; the
/// connection re-establishes itself in the background and callers retry
/// with their own backoff. The [`Endpoint`] opens the dedicated
/// connections (blocking waits, pub/sub) to the same server.
pub(crate) async fn connect(url: &str) -> Result<(Endpoint, RedisConn)> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(5))
        .set_response_timeout(Duration::from_secs(30))
        .set_number_of_retries(2)
        .set_factor(50)
        .set_max_delay(2000);
    if let Ok(Transport::Sentinel(sentinel)) = Transport::parse(url) {
        // No reconnect retries of its own: a master that refuses may have
        // been replaced, and the follower asks the sentinels instead
        // (commands meanwhile fail at once rather than wait out a backoff
        // towards a dead address).
        let config = config
            .set_number_of_retries(0)
            .set_connection_timeout(Duration::from_secs(2));
        let sentinel = sentinel
            .with_master_name(None)
            .map_err(|reason| Error::InvalidUrl {
                url: crate::redact(url),
                reason,
            })?;
        let follower = crate::redis_sentinel::follow(sentinel, config).await?;
        return Ok((
            Endpoint(Target::Sentinel(Arc::clone(&follower))),
            RedisConn(Conn::Sentinel(FollowedConn::new(follower))),
        ));
    }
    // Celery's `ssl_*` query options (a private CA, a client certificate).
    let client = crate::tls::TlsOptions::parse(url)?.client(url)?;
    // One attempt first: an unknown host or a refused port is reported at
    // once, instead of after the manager's retries (~6 s for a bad name).
    client
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Duration::from_secs(5))
                .set_response_timeout(Duration::from_secs(30)),
        )
        .await
        .map_err(|e| Error::broker("connecting to Redis", e))?;
    let manager = ConnectionManager::new_with_config(client.clone(), config)
        .await
        .map_err(|e| Error::broker("connecting to Redis", e))?;
    Ok((
        Endpoint(Target::Direct(client)),
        RedisConn(Conn::Direct(manager)),
    ))
}

/// The shared, reconnecting connection every Redis user sends commands
/// through (cheap to clone): a `ConnectionManager` to one server, or to
/// whichever server Sentinel names master.
#[derive(Clone)]
pub(crate) struct RedisConn(Conn);

#[derive(Clone)]
enum Conn {
    Direct(ConnectionManager),
    Sentinel(FollowedConn),
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.0 {
            Conn::Direct(conn) => conn.req_packed_command(cmd),
            Conn::Sentinel(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.0 {
            Conn::Direct(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Sentinel(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.0 {
            Conn::Direct(conn) => conn.get_db(),
            Conn::Sentinel(conn) => conn.get_db(),
        }
    }
}

/// Where dedicated connections go: the server, or the current master.
#[derive(Clone)]
pub(crate) struct Endpoint(Target);

#[derive(Clone)]
enum Target {
    Direct(redis::Client),
    Sentinel(Arc<Follower>),
}

impl Endpoint {
    fn client(&self) -> redis::Client {
        match &self.0 {
            Target::Direct(client) => client.clone(),
            Target::Sentinel(follower) => follower.client(),
        }
    }

    /// The database number (in Celery's channel names `/<db>.celeryev`).
    pub(crate) fn db(&self) -> i64 {
        match &self.0 {
            Target::Direct(client) => client.get_connection_info().redis.db,
            Target::Sentinel(follower) => follower.db(),
        }
    }

    /// A dedicated connection failed with `err`: behind Sentinel, look for
    /// the master again.
    pub(crate) fn report(&self, err: &RedisError) {
        if let Target::Sentinel(follower) = &self.0 {
            follower.report(err);
        }
    }

    /// A connection of its own (for blocking commands).
    pub(crate) async fn multiplexed(&self) -> RedisResult<MultiplexedConnection> {
        let opened = self.client().get_multiplexed_async_connection().await;
        if let Err(e) = &opened {
            self.report(e);
        }
        opened
    }

    /// A pub/sub connection.
    pub(crate) async fn pubsub(&self) -> RedisResult<PubSub> {
        let opened = self.client().get_async_pubsub().await;
        if let Err(e) = &opened {
            self.report(e);
        }
        opened
    }

    /// The messages on `channel` (a pattern when `pattern`) for as long as
    /// the stream is held: a dropped connection (a restart, a failover) is
    /// opened again, on the current master, and subscribed again, with a
    /// backoff of up to a second. Messages published while it is down are
    /// missed, as pub/sub always may.
    ///
    /// # Errors
    /// When the first subscription cannot be made.
    pub(crate) async fn subscribe(
        &self,
        channel: String,
        pattern: bool,
    ) -> RedisResult<BoxStream<'static, redis::Msg>> {
        let first = self.subscribed(&channel, pattern).await?;
        let endpoint = self.clone();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(async move {
            let mut messages = first.into_on_message();
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    message = messages.next() => match message {
                        Some(message) => {
                            if tx.send(message).await.is_err() {
                                return;
                            }
                        }
                        None => match endpoint.resubscribe(&channel, pattern, &tx).await {
                            Some(again) => messages = again.into_on_message(),
                            None => return,
                        },
                    },
                }
            }
        });
        Ok(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed())
    }

    async fn subscribed(&self, channel: &str, pattern: bool) -> RedisResult<PubSub> {
        let mut pubsub = self.pubsub().await?;
        let done = if pattern {
            pubsub.psubscribe(channel).await
        } else {
            pubsub.subscribe(channel).await
        };
        if let Err(e) = &done {
            self.report(e);
        }
        done.map(|()| pubsub)
    }

    /// Subscribe again until it works; `None` once nobody listens.
    async fn resubscribe(
        &self,
        channel: &str,
        pattern: bool,
        listener: &tokio::sync::mpsc::Sender<redis::Msg>,
    ) -> Option<PubSub> {
        let mut pause = Duration::from_millis(50);
        loop {
            if listener.is_closed() {
                return None;
            }
            match self.subscribed(channel, pattern).await {
                Ok(pubsub) => {
                    tracing::info!(
                        channel,
                        "subscribed again after losing the Redis connection"
                    );
                    return Some(pubsub);
                }
                Err(e) => tracing::debug!(error = %e, channel, "cannot subscribe again yet"),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
}

/// The Redis key layout.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// The list holding `queue`'s messages of priority `step` (0 = the queue
    /// itself, 3/6/9 = `queue\x06\x16<step>`).
    pub(crate) fn queue_list(&self, queue: &str, step: u8) -> String {
        if step == 0 {
            format!("{}{queue}", self.prefix)
        } else {
            format!("{}{queue}{SEP}{step}", self.prefix)
        }
    }

    /// The set of bindings of `exchange`.
    pub(crate) fn binding(&self, exchange: &str) -> String {
        format!("{}_kombu.binding.{exchange}", self.prefix)
    }

    /// The prefix of binding sets, for the restore script's lookups.
    pub(crate) fn binding_prefix(&self) -> String {
        format!("{}_kombu.binding.", self.prefix)
    }

    pub(crate) fn unacked(&self) -> String {
        format!("{}unacked", self.prefix)
    }

    pub(crate) fn unacked_index(&self) -> String {
        format!("{}unacked_index", self.prefix)
    }

    pub(crate) fn unacked_mutex(&self) -> String {
        format!("{}unacked_mutex", self.prefix)
    }

    /// Our sorted set of delayed (ETA) messages, score = due time.
    pub(crate) fn delayed(&self) -> String {
        format!("{}celeriac.delayed", self.prefix)
    }

    /// The set of every consumer that holds or held reservations.
    pub(crate) fn consumers(&self) -> String {
        format!("{}celeriac.consumers", self.prefix)
    }

    /// A consumer's liveness key, refreshed while it runs.
    pub(crate) fn alive(&self, consumer: &str) -> String {
        format!("{}celeriac.alive.{consumer}", self.prefix)
    }

    /// Our sorted set of revoked task ids (score = when revoked).
    pub(crate) fn revoked(&self) -> String {
        format!("{}celeriac.revoked", self.prefix)
    }

    /// The list of dead letters of older versions (one JSON record with
    /// its payload each, newest first); migrated on first read.
    pub(crate) fn dead_letter(&self) -> String {
        format!("{}celeriac.dead_letter", self.prefix)
    }

    /// Our sorted set of dead-letter ids (score = when, Unix seconds).
    pub(crate) fn dead_letter_index(&self) -> String {
        format!("{}celeriac.dead_letter.index", self.prefix)
    }

    /// Our hash of dead-letter metadata JSON, by id.
    pub(crate) fn dead_letter_meta(&self) -> String {
        format!("{}celeriac.dead_letter.meta", self.prefix)
    }

    /// Our hash of dead-letter payloads (capped), by id.
    pub(crate) fn dead_letter_payload(&self) -> String {
        format!("{}celeriac.dead_letter.payload", self.prefix)
    }

    /// The result document of a task, and the channel it is announced on.
    pub(crate) fn result(&self, task_id: &str) -> String {
        format!("{}celery-task-meta-{task_id}", self.prefix)
    }

    /// A group's key (`celery-taskset-meta-<id>`); a chord's counters are
    /// this plus `.j`, `.t`, `.s`, `.d`, `.c`, as Celery names them.
    pub(crate) fn group(&self, group_id: &str) -> String {
        format!("{}celery-taskset-meta-{group_id}", self.prefix)
    }

    /// An explicit key set by a task.
    pub(crate) fn value(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The prefix, for scripts that build list names.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_kombu() {
        let keys = Keys::new("");
        assert_eq!(keys.queue_list("celery", 0), "celery");
        assert_eq!(keys.queue_list("celery", 3), "celery\x06\x163");
        assert_eq!(keys.binding("celery"), "_kombu.binding.celery");
        assert_eq!(Keys::new("app:").unacked(), "app:unacked");
    }
}
