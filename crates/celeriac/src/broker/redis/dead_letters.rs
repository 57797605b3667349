//! Dead letters on Redis: three keys under one id per letter.
//!
//! | key                            | type | holds                      |
//! |--------------------------------|------|----------------------------|
//! | `celeriac.dead_letter.index`   | zset | id, score = when (Unix s)  |
//! | `celeriac.dead_letter.meta`    | hash | id → metadata JSON         |
//! | `celeriac.dead_letter.payload` | hash | id → payload (capped)      |
//!
//! The count is `ZCARD`; a page is `ZREVRANGE` + `HMGET` of metadata; the
//! payload is read only by `fetch` and `requeue`. Every write touches the
//! three keys in one `MULTI` or script.
//!
//! Older versions kept one list, `celeriac.dead_letter`, of full JSON
//! records. Every read first migrates what is left in it (oldest first, one
//! record per atomic script that checks the record is still the list's
//! tail, so concurrent migrators move each record once), so old dead
//! letters stay listed, shown and requeueable.

use async_trait::async_trait;
use redis::Script;

use super::{redis_err, RedisBroker};
use crate::broker::dead_letters::{
    describe, from_legacy, parse_info, sort_key, truncated_refusal, DeadLetterInfo,
};
use crate::broker::{DeadLetters, Delivery};
use crate::redis_support::{Keys, RedisConn};
use crate::Result;

/// Move the legacy list's tail into the new layout if it is still `ARGV[1]`.
const MIGRATE: &str = r"
if redis.call('LINDEX', KEYS[1], -1) ~= ARGV[1] then return 0 end
redis.call('RPOP', KEYS[1])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])
redis.call('HSET', KEYS[4], ARGV[2], ARGV[5])
return 1
";

/// Forget dead letter `ARGV[1]` and push its payload onto list `KEYS[4]`;
/// 0 when it is already gone (requeued by someone else, or purged).
const REQUEUE: &str = r"
local payload = redis.call('HGET', KEYS[2], ARGV[1])
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if payload then redis.call('LPUSH', KEYS[4], payload) end
return 1
";

/// Settle `delivery` by storing it as a dead letter, atomically.
async fn store(conn: &mut RedisConn, keys: &Keys, delivery: &Delivery, reason: &str) -> Result<()> {
    let (info, payload) = describe(&delivery.queue, reason, &delivery.payload);
    let _: () = redis::pipe()
        .atomic()
        .zadd(keys.dead_letter_index(), &info.id, sort_key(&info.at))
        .ignore()
        .hset(keys.dead_letter_meta(), &info.id, info.to_json())
        .ignore()
        .hset(keys.dead_letter_payload(), &info.id, payload)
        .ignore()
        .hdel(keys.unacked(), &delivery.tag)
        .ignore()
        .zrem(keys.unacked_index(), &delivery.tag)
        .ignore()
        .query_async(conn)
        .await
        .map_err(redis_err("dead-lettering in Redis"))?;
    Ok(())
}

/// Move every record left in the legacy list into the new layout.
async fn migrate_legacy(conn: &mut RedisConn, keys: &Keys) -> Result<()> {
    let left: u64 = redis::cmd("LLEN")
        .arg(keys.dead_letter())
        .query_async(conn)
        .await
        .map_err(redis_err("reading old Redis dead letters"))?;
    if left == 0 {
        return Ok(());
    }
    let script = Script::new(MIGRATE);
    // Each pass moves a record, unless another process moved it first; the
    // bound only guards against a list that grows as fast as we drain it.
    for _ in 0..left.saturating_mul(2) {
        let tail: Option<Vec<u8>> = redis::cmd("LINDEX")
            .arg(keys.dead_letter())
            .arg(-1)
            .query_async(conn)
            .await
            .map_err(redis_err("reading old Redis dead letters"))?;
        let Some(text) = tail else { break };
        let (info, payload) = from_legacy(&text);
        let _: i64 = script
            .key(keys.dead_letter())
            .key(keys.dead_letter_index())
            .key(keys.dead_letter_meta())
            .key(keys.dead_letter_payload())
            .arg(&text)
            .arg(&info.id)
            .arg(sort_key(&info.at))
            .arg(info.to_json())
            .arg(payload)
            .invoke_async(conn)
            .await
            .map_err(redis_err("migrating old Redis dead letters"))?;
    }
    tracing::info!(count = left, "migrated dead letters of an older version");
    Ok(())
}

/// `ZCARD` of the index (after migrating old records, if any).
async fn count(conn: &mut RedisConn, keys: &Keys) -> Result<u64> {
    let (count, legacy): (u64, u64) = redis::pipe()
        .zcard(keys.dead_letter_index())
        .llen(keys.dead_letter())
        .query_async(conn)
        .await
        .map_err(redis_err("counting Redis dead letters"))?;
    if legacy == 0 {
        return Ok(count);
    }
    migrate_legacy(conn, keys).await?;
    redis::cmd("ZCARD")
        .arg(keys.dead_letter_index())
        .query_async(conn)
        .await
        .map_err(redis_err("counting Redis dead letters"))
}

/// Newest first, metadata only.
async fn page(
    conn: &mut RedisConn,
    keys: &Keys,
    offset: usize,
    limit: usize,
) -> Result<Vec<DeadLetterInfo>> {
    migrate_legacy(conn, keys).await?;
    if limit == 0 {
        return Ok(Vec::new());
    }
    let start = i64::try_from(offset).unwrap_or(i64::MAX);
    let stop = start.saturating_add(i64::try_from(limit).unwrap_or(i64::MAX) - 1);
    let ids: Vec<String> = redis::cmd("ZREVRANGE")
        .arg(keys.dead_letter_index())
        .arg(start)
        .arg(stop)
        .query_async(conn)
        .await
        .map_err(redis_err("listing Redis dead letters"))?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let metas: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
        .arg(keys.dead_letter_meta())
        .arg(&ids)
        .query_async(conn)
        .await
        .map_err(redis_err("listing Redis dead letters"))?;
    Ok(metas
        .iter()
        .flatten()
        .filter_map(|m| parse_info(m))
        .collect())
}

/// One dead letter's metadata and payload.
async fn fetch(
    conn: &mut RedisConn,
    keys: &Keys,
    id: &str,
) -> Result<Option<(DeadLetterInfo, Vec<u8>)>> {
    migrate_legacy(conn, keys).await?;
    let (meta, payload): (Option<Vec<u8>>, Option<Vec<u8>>) = redis::pipe()
        .hget(keys.dead_letter_meta(), id)
        .hget(keys.dead_letter_payload(), id)
        .query_async(conn)
        .await
        .map_err(redis_err("reading a Redis dead letter"))?;
    Ok(meta
        .and_then(|m| parse_info(&m))
        .map(|info| (info, payload.unwrap_or_default())))
}

/// Put a dead letter's payload back on its queue (priority 0 list).
async fn requeue(conn: &mut RedisConn, keys: &Keys, id: &str) -> Result<bool> {
    migrate_legacy(conn, keys).await?;
    let meta: Option<Vec<u8>> = redis::cmd("HGET")
        .arg(keys.dead_letter_meta())
        .arg(id)
        .query_async(conn)
        .await
        .map_err(redis_err("reading a Redis dead letter"))?;
    let Some(info) = meta.and_then(|m| parse_info(&m)) else {
        return Ok(false);
    };
    if info.truncated() {
        return Err(truncated_refusal(&info));
    }
    let moved: i64 = Script::new(REQUEUE)
        .key(keys.dead_letter_meta())
        .key(keys.dead_letter_payload())
        .key(keys.dead_letter_index())
        .key(keys.queue_list(&info.queue, 0))
        .arg(id)
        .invoke_async(conn)
        .await
        .map_err(redis_err("requeueing a Redis dead letter"))?;
    Ok(moved == 1)
}

/// Delete every dead letter (old layout included); how many there were.
async fn purge(conn: &mut RedisConn, keys: &Keys) -> Result<u64> {
    let (count, legacy): (u64, u64) = redis::pipe()
        .atomic()
        .zcard(keys.dead_letter_index())
        .llen(keys.dead_letter())
        .del(keys.dead_letter_index())
        .ignore()
        .del(keys.dead_letter_meta())
        .ignore()
        .del(keys.dead_letter_payload())
        .ignore()
        .del(keys.dead_letter())
        .ignore()
        .query_async(conn)
        .await
        .map_err(redis_err("purging Redis dead letters"))?;
    Ok(count + legacy)
}

#[async_trait]
impl DeadLetters for RedisBroker {
    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<()> {
        store(&mut self.conn.clone(), &self.keys, delivery, reason).await
    }

    async fn count(&self) -> Result<u64> {
        count(&mut self.conn.clone(), &self.keys).await
    }

    async fn page(&self, offset: usize, limit: usize) -> Result<Vec<DeadLetterInfo>> {
        page(&mut self.conn.clone(), &self.keys, offset, limit).await
    }

    async fn fetch(&self, id: &str) -> Result<Option<(DeadLetterInfo, Vec<u8>)>> {
        fetch(&mut self.conn.clone(), &self.keys, id).await
    }

    async fn requeue(&self, id: &str) -> Result<bool> {
        requeue(&mut self.conn.clone(), &self.keys, id).await
    }

    async fn purge(&self) -> Result<u64> {
        purge(&mut self.conn.clone(), &self.keys).await
    }
}
