//! `redis://` and `rediss://`: the broker, in kombu's exact key layout.
//!
//! 1. `publish`: `LPUSH` the envelope onto `queue` or `queue\x06\x16<step>`;
//!    a message with a future ETA goes to our sorted set `celeriac.delayed`
//!    instead (score = due time), so it never sits in `unacked` where the
//!    visibility timeout would redeliver it again and again.
//! 2. `reserve`: `reserve.lua` moves due delayed messages to their lists,
//!    then pops up to `max` messages and records each in `unacked` and
//!    `unacked_index` in the same atomic step, under a tag this consumer
//!    makes (`<consumer>.<call>.<n>`) and an entry that routes it back to
//!    the queue it came from. When nothing is there it polls (1 ms doubling
//!    to 20 ms): Redis cannot block a script, and a blocking pop would
//!    reopen the crash window this design closes.
//! 3. `ack`: `HDEL unacked` + `ZREM unacked_index`, batched across
//!    concurrent callers into one pipeline.
//! 4. `requeue`/`defer`/restore: `settle.lua` puts a reservation back on
//!    its list (front) or into the delayed set.
//! 5. A background task restores reservations older than the visibility
//!    timeout every few seconds, as kombu's `restore_visible` does, and
//!    skips while a kombu worker holds `unacked_mutex`. `extend` renews a
//!    lease by bumping its `unacked_index` score, which kombu respects too.
//! 6. Liveness: each consuming process refreshes `celeriac.alive.<id>`
//!    (10 s TTL) every 2 s. The restore task gives back at once every
//!    reservation whose tag names a consumer whose liveness key expired, so
//!    a killed worker's tasks run again within seconds instead of after the
//!    visibility timeout (which can then stay long enough for any task).
//!
//! 7. Dead letters (`dead_letters.rs`): metadata in a hash indexed by a
//!    sorted set, capped payloads in another hash.
//! 8. Revocations (`revoked.rs`) in a sorted set; queue depth, names,
//!    delayed messages and purge (`queues.rs`) for operators.
//!
//! `reply.rs` reads what the reservation script returns; `upkeep.rs` holds
//! the background loops (acks, liveness, restores).

mod dead_letters;
mod queues;
mod reply;
mod revoked;
mod upkeep;
mod wait;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::Script;
use tokio::sync::{mpsc, oneshot};

use reply::{parse_reserved, unacked_tail};
use upkeep::{ack_loop, announce, restore_loop, AckRequest, ALIVE_EVERY};

use super::{
    priority_step, Broker, DeadLetters, Delivery, OutgoingMessage, QueueAdmin, Revocations,
};
use crate::redis_support::{connect, Keys, RedisConn, SEP};
use crate::{Error, Result};

const STEPS: [u8; 4] = [0, 3, 6, 9];

/// The Redis broker.
pub struct RedisBroker {
    conn: RedisConn,
    keys: Keys,
    visibility_timeout: Duration,
    scripts: Arc<Scripts>,
    acks: mpsc::UnboundedSender<AckRequest>,
    restorer: tokio::task::JoinHandle<()>,
    consumer: String,
    /// Numbers this consumer's reserve calls, so their tags never repeat.
    calls: AtomicU64,
    liveness: std::sync::OnceLock<tokio::task::JoinHandle<()>>,
    /// Where an idle reservation blocks until a message arrives.
    waiter: wait::Waiter,
}

struct Scripts {
    reserve: Script,
    settle: Script,
    restore: Script,
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        self.restorer.abort();
        if let Some(liveness) = self.liveness.get() {
            liveness.abort();
        }
    }
}

fn redis_err(context: &'static str) -> impl Fn(redis::RedisError) -> Error {
    move |e| Error::broker(context, e)
}

fn unix_secs(t: DateTime<Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

fn now_secs() -> f64 {
    unix_secs(Utc::now())
}

impl RedisBroker {
    /// Connect to the Redis server at `url`; `key_prefix` is kombu's
    /// `global_keyprefix` (empty for none).
    ///
    /// # Errors
    /// When the URL is invalid or the server cannot be reached.
    pub async fn open(url: &str, key_prefix: &str, visibility_timeout: Duration) -> Result<Self> {
        let (endpoint, conn) = connect(url).await?;
        let keys = Keys::new(key_prefix);
        let scripts = Arc::new(Scripts {
            reserve: Script::new(include_str!("reserve.lua")),
            settle: Script::new(include_str!("settle.lua")),
            restore: Script::new(include_str!("restore.lua")),
        });
        let consumer = uuid::Uuid::new_v4().simple().to_string();
        let (acks, ack_rx) = mpsc::unbounded_channel();
        tokio::spawn(ack_loop(conn.clone(), keys.clone(), ack_rx));
        let restorer = tokio::spawn(restore_loop(
            conn.clone(),
            keys.clone(),
            Arc::clone(&scripts),
            visibility_timeout,
            consumer.clone(),
        ));
        Ok(RedisBroker {
            conn,
            keys,
            visibility_timeout,
            scripts,
            acks,
            restorer,
            consumer,
            calls: AtomicU64::new(0),
            liveness: std::sync::OnceLock::new(),
            waiter: wait::Waiter::new(endpoint),
        })
    }

    /// Announce this consumer alive before its first reservation, then keep
    /// the liveness key fresh in the background.
    async fn start_liveness(&self) -> Result<()> {
        if self.liveness.get().is_some() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        announce(&mut conn, &self.keys, &self.consumer)
            .await
            .map_err(redis_err("announcing a consumer in Redis"))?;
        let (keys, consumer) = (self.keys.clone(), self.consumer.clone());
        let _ = self.liveness.set(tokio::spawn(async move {
            loop {
                tokio::time::sleep(ALIVE_EVERY).await;
                if let Err(e) = announce(&mut conn, &keys, &consumer).await {
                    tracing::debug!(error = %e, "could not refresh consumer liveness");
                }
            }
        }));
        Ok(())
    }

    fn list_for(&self, message: &OutgoingMessage) -> String {
        self.keys
            .queue_list(&message.queue, priority_step(message.priority))
    }

    async fn settle(&self, tag: &str, mode: &str, at: f64) -> Result<()> {
        settle(
            &mut self.conn.clone(),
            &self.keys,
            &self.scripts,
            tag,
            mode,
            at,
        )
        .await
    }
}

async fn settle(
    conn: &mut RedisConn,
    keys: &Keys,
    scripts: &Scripts,
    tag: &str,
    mode: &str,
    at: f64,
) -> Result<()> {
    let _: i64 = scripts
        .settle
        .key(keys.unacked())
        .key(keys.unacked_index())
        .key(keys.delayed())
        .arg(tag)
        .arg(mode)
        .arg(at)
        .arg(keys.prefix())
        .arg(SEP)
        .arg(keys.binding_prefix())
        .invoke_async(conn)
        .await
        .map_err(redis_err("settling a reservation in Redis"))?;
    Ok(())
}

#[async_trait]
impl Broker for RedisBroker {
    async fn publish(&self, message: OutgoingMessage) -> Result<()> {
        self.publish_batch(vec![message]).await
    }

    async fn publish_batch(&self, messages: Vec<OutgoingMessage>) -> Result<()> {
        let now = Utc::now();
        let mut pipe = redis::pipe();
        for m in &messages {
            let list = self.list_for(m);
            match m.not_before {
                Some(at) if at > now => {
                    let mut member = Vec::with_capacity(list.len() + SEP.len() + m.payload.len());
                    member.extend_from_slice(list.as_bytes());
                    member.extend_from_slice(SEP.as_bytes());
                    member.extend_from_slice(&m.payload);
                    pipe.zadd(self.keys.delayed(), member, unix_secs(at))
                        .ignore();
                }
                _ => {
                    pipe.lpush(list, &m.payload).ignore();
                }
            }
        }
        let _: () = pipe
            .query_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("publishing to Redis"))?;
        Ok(())
    }

    async fn reserve(
        &self,
        queues: &[String],
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>> {
        if queues.is_empty() || max == 0 {
            return Ok(Vec::new());
        }
        self.start_liveness().await?;
        let deadline = crate::deadline(wait);
        let mut nap = Duration::from_millis(1);
        let mut conn = self.conn.clone();
        loop {
            let call_no = self.calls.fetch_add(1, Ordering::Relaxed);
            // kombu's order: every queue's priority-0 list, then every
            // step-3 list…; the queues rotate from one call to the next, as
            // kombu's queue cycle does, so a backlog on one cannot starve
            // the others.
            let first = (call_no % queues.len() as u64) as usize;
            let rotated = queues[first..].iter().chain(&queues[..first]);
            let mut lists = Vec::with_capacity(queues.len() * STEPS.len());
            let mut tails = Vec::with_capacity(lists.capacity());
            let mut list_queue = Vec::with_capacity(lists.capacity());
            for step in STEPS {
                for queue in rotated.clone() {
                    lists.push(self.keys.queue_list(queue, step));
                    tails.push(unacked_tail(queue));
                    list_queue.push(queue.as_str());
                }
            }
            let tag_prefix = format!("{}.{call_no}.", self.consumer);
            let mut call = self.scripts.reserve.prepare_invoke();
            call.key(self.keys.unacked())
                .key(self.keys.unacked_index())
                .key(self.keys.delayed());
            for list in &lists {
                call.key(list);
            }
            call.arg(now_secs()).arg(max).arg(&tag_prefix).arg(SEP);
            for tail in &tails {
                call.arg(tail);
            }
            let reply: Vec<redis::Value> = call
                .invoke_async(&mut conn)
                .await
                .map_err(redis_err("reserving from Redis"))?;
            let deliveries = parse_reserved(reply, &tag_prefix, &list_queue)?;
            if !deliveries.is_empty() {
                return Ok(deliveries);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            // Block until the first list has a message (a message anywhere
            // else is seen at the latest after the pause); poll with naps
            // if blocking is not possible.
            let pause = (deadline - now).min(wait::PAUSE);
            if !self.waiter.wait(&lists[0], pause).await {
                tokio::time::sleep((deadline - now).min(nap)).await;
                nap = (nap * 2).min(Duration::from_millis(20));
            }
        }
    }

    async fn ack(&self, tag: &str) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.acks
            .send((tag.to_owned(), tx))
            .map_err(|_| Error::broker("acknowledging in Redis", "the ack task has stopped"))?;
        rx.await
            .map_err(|_| Error::broker("acknowledging in Redis", "the ack task has stopped"))?
    }

    async fn requeue(&self, tag: &str) -> Result<()> {
        self.settle(tag, "front", 0.0).await
    }

    async fn defer(&self, tag: &str, until: DateTime<Utc>) -> Result<()> {
        self.settle(tag, "defer", unix_secs(until)).await
    }

    async fn extend(&self, tag: &str) -> Result<()> {
        // XX: only renew a lease that still exists (not acked or restored).
        let _: i64 = redis::cmd("ZADD")
            .arg(self.keys.unacked_index())
            .arg("XX")
            .arg(now_secs())
            .arg(tag)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("extending a lease in Redis"))?;
        Ok(())
    }

    async fn extend_many(&self, tags: &[String]) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        let now = now_secs();
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(self.keys.unacked_index()).arg("XX");
        for tag in tags {
            cmd.arg(now).arg(tag);
        }
        let _: i64 = cmd
            .query_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("extending leases in Redis"))?;
        Ok(())
    }

    async fn declare(&self, queues: &[String]) -> Result<()> {
        let mut pipe = redis::pipe();
        for queue in queues {
            // Celery binds queue `q` to exchange `q` with routing key `q`;
            // Python producers route through these members.
            let member = format!("{queue}{SEP}{SEP}{queue}");
            pipe.sadd(self.keys.binding(queue), member).ignore();
        }
        let _: () = pipe
            .query_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("declaring queues in Redis"))?;
        Ok(())
    }

    fn visibility_timeout(&self) -> Duration {
        self.visibility_timeout
    }

    fn dead_letters(&self) -> &dyn DeadLetters {
        self
    }

    fn revocations(&self) -> &dyn Revocations {
        self
    }

    fn queues(&self) -> &dyn QueueAdmin {
        self
    }
}
