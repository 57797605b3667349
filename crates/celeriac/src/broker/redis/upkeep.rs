//! What each consumer keeps doing in the background: acknowledging in
//! batches, announcing it is alive, and giving back reservations that
//! expired or whose consumer died.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{now_secs, redis_err, settle, Scripts};
use crate::redis_support::{Keys, RedisConn};
use crate::{Error, Result};

/// How often each worker looks for expired reservations (more often when
/// the visibility timeout is shorter than this).
const RESTORE_EVERY: Duration = Duration::from_secs(5);
/// Most acks folded into one pipeline.
const ACK_BATCH: usize = 1024;
/// A consumer is dead once its liveness key is this old.
const ALIVE_TTL: Duration = Duration::from_secs(10);
/// How often a consumer refreshes its liveness key.
pub(super) const ALIVE_EVERY: Duration = Duration::from_secs(2);

/// A tag to acknowledge, and who to tell how it went.
pub(super) type AckRequest = (String, oneshot::Sender<Result<()>>);

pub(super) async fn announce(
    conn: &mut RedisConn,
    keys: &Keys,
    consumer: &str,
) -> redis::RedisResult<()> {
    redis::pipe()
        .set_options(
            keys.alive(consumer),
            1,
            redis::SetOptions::default()
                .with_expiration(redis::SetExpiry::PX(ALIVE_TTL.as_millis() as u64)),
        )
        .ignore()
        .sadd(keys.consumers(), consumer)
        .ignore()
        .query_async(conn)
        .await
}

/// Fold concurrent acks into one `HDEL` + `ZREM` pipeline.
pub(super) async fn ack_loop(
    conn: RedisConn,
    keys: Keys,
    mut rx: mpsc::UnboundedReceiver<AckRequest>,
) {
    let mut batch = Vec::with_capacity(ACK_BATCH);
    while rx.recv_many(&mut batch, ACK_BATCH).await > 0 {
        let tags: Vec<&str> = batch.iter().map(|(tag, _)| tag.as_str()).collect();
        let mut pipe = redis::pipe();
        pipe.hdel(keys.unacked(), &tags)
            .ignore()
            .zrem(keys.unacked_index(), &tags)
            .ignore();
        let outcome: redis::RedisResult<()> = pipe.query_async(&mut conn.clone()).await;
        for (_, reply) in batch.drain(..) {
            let _ = reply.send(
                outcome
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| Error::broker("acknowledging in Redis", e.to_string())),
            );
        }
    }
}

/// Return expired reservations to their queues, forever.
pub(super) async fn restore_loop(
    mut conn: RedisConn,
    keys: Keys,
    scripts: Arc<Scripts>,
    visibility_timeout: Duration,
    me: String,
) {
    let every = RESTORE_EVERY
        .min(visibility_timeout / 2)
        .max(Duration::from_millis(100));
    loop {
        // Jitter spreads the sweeps of many workers over the interval.
        let jitter = rand::random_range(0..=every.as_millis() as u64 / 2);
        tokio::time::sleep(every + Duration::from_millis(jitter)).await;
        let ceiling = now_secs() - visibility_timeout.as_secs_f64();
        let expired: redis::RedisResult<Vec<String>> = scripts
            .restore
            .key(keys.unacked())
            .key(keys.unacked_index())
            .key(keys.unacked_mutex())
            .arg(ceiling)
            .arg(1000)
            .invoke_async(&mut conn)
            .await;
        let expired = match expired {
            Ok(tags) => tags,
            Err(e) => {
                tracing::debug!(error = %e, "restore sweep skipped");
                continue;
            }
        };
        if !expired.is_empty() {
            tracing::info!(
                count = expired.len(),
                "restoring messages whose reservation expired"
            );
        }
        for tag in expired {
            if let Err(e) = settle(&mut conn, &keys, &scripts, &tag, "restore", ceiling).await {
                tracing::warn!(error = %e, "could not restore a message");
            }
        }
        if let Err(e) = restore_dead_consumers(&mut conn, &keys, &scripts, &me).await {
            tracing::debug!(error = %e, "dead-consumer sweep skipped");
        }
    }
}

/// Give back everything held by consumers whose liveness key expired.
async fn restore_dead_consumers(
    conn: &mut RedisConn,
    keys: &Keys,
    scripts: &Scripts,
    me: &str,
) -> Result<()> {
    let consumers: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys.consumers())
        .query_async(conn)
        .await
        .map_err(redis_err("listing consumers"))?;
    for consumer in consumers.iter().filter(|c| c.as_str() != me) {
        let alive: bool = redis::cmd("EXISTS")
            .arg(keys.alive(consumer))
            .query_async(conn)
            .await
            .map_err(redis_err("checking a consumer"))?;
        if alive {
            continue;
        }
        // A consumer's tags start with its id (see `reserve`). Rare and
        // bounded by what all workers hold, so a full read is fine.
        let reserved: Vec<String> = redis::cmd("ZRANGE")
            .arg(keys.unacked_index())
            .arg(0)
            .arg(-1)
            .query_async(conn)
            .await
            .map_err(redis_err("listing a dead consumer's messages"))?;
        let held: Vec<&String> = reserved
            .iter()
            .filter(|tag| tag_of_consumer(tag, consumer))
            .collect();
        if !held.is_empty() {
            tracing::info!(
                count = held.len(),
                consumer,
                "restoring the messages of a dead worker"
            );
        }
        for tag in held {
            // Atomic per tag: a tag already acked or restored is skipped.
            settle(conn, keys, scripts, tag, "front", 0.0).await?;
        }
        let _: () = redis::cmd("SREM")
            .arg(keys.consumers())
            .arg(consumer)
            .query_async(conn)
            .await
            .map_err(redis_err("forgetting a dead consumer"))?;
    }
    Ok(())
}

/// Whether `tag` is one `consumer` made in `reserve`.
fn tag_of_consumer(tag: &str, consumer: &str) -> bool {
    tag.strip_prefix(consumer)
        .is_some_and(|rest| rest.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_consumers_own_tags_are_its_own() {
        assert!(tag_of_consumer("abc.3.1", "abc"));
        assert!(!tag_of_consumer("abcd.3.1", "abc"));
        assert!(!tag_of_consumer("f318a041-03e6-4518", "f318a041"));
    }
}
