//! Whole-queue operations of the Redis broker, for operators rather than
//! the delivery path: `celeriac purge` (kombu's purge plus our delayed
//! set) and `celeriac delayed list|flush` (the ETA messages a Celeriac
//! process moved to `celeriac.delayed`, listed or handed back to kombu's
//! queue lists for Python workers).

use chrono::DateTime;
use redis::Script;

use super::{redis_err, STEPS};
use crate::broker::DelayedInfo;
use crate::redis_support::{Keys, RedisConn, SEP};
use crate::Result;

pub(super) async fn delayed(
    conn: &mut RedisConn,
    keys: &Keys,
    limit: usize,
) -> Result<Vec<DelayedInfo>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let members: Vec<(Vec<u8>, f64)> = redis::cmd("ZRANGE")
        .arg(keys.delayed())
        .arg(0)
        .arg(limit as i64 - 1)
        .arg("WITHSCORES")
        .query_async(conn)
        .await
        .map_err(redis_err("listing delayed messages in Redis"))?;
    let prefix = keys.queue_list("", 0);
    Ok(members
        .into_iter()
        .filter_map(|(member, score)| {
            let cut = memchr::memmem::find(&member, SEP.as_bytes())?;
            let list = String::from_utf8_lossy(&member[..cut]).into_owned();
            let payload = &member[cut + SEP.len()..];
            let identity = crate::protocol::identify(payload);
            let queue = list.strip_prefix(&prefix).unwrap_or(&list);
            let queue = queue.split(SEP).next().unwrap_or(queue).to_owned();
            Some(DelayedInfo {
                task_id: identity.as_ref().map(|i| i.id.clone()),
                task: identity.and_then(|i| i.task),
                queue,
                eta: DateTime::from_timestamp_millis((score * 1000.0) as i64)?,
                payload: payload.to_vec(),
            })
        })
        .collect())
}

pub(super) async fn flush_delayed(conn: &mut RedisConn, keys: &Keys) -> Result<u64> {
    // Every member `<list><SEP><payload>` goes back to its list, as the
    // reservation script moves due ones.
    const FLUSH: &str = r#"
local moved = 0
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, member in ipairs(members) do
  local cut = string.find(member, ARGV[1], 1, true)
  if cut then
redis.call('LPUSH', string.sub(member, 1, cut - 1), string.sub(member, cut + #ARGV[1]))
moved = moved + 1
  end
  redis.call('ZREM', KEYS[1], member)
end
return moved
"#;
    let script = Script::new(FLUSH);
    script
        .key(keys.delayed())
        .arg(SEP)
        .invoke_async(conn)
        .await
        .map_err(redis_err("handing delayed messages back in Redis"))
}

pub(super) async fn purge(conn: &mut RedisConn, keys: &Keys, queue: &str) -> Result<u64> {
    // kombu's purge: every priority list of the queue, counted and
    // deleted in one transaction; plus its delayed (ETA) messages.
    let mut pipe = redis::pipe();
    pipe.atomic();
    for step in STEPS {
        pipe.llen(keys.queue_list(queue, step));
    }
    for step in STEPS {
        pipe.del(keys.queue_list(queue, step)).ignore();
    }
    let lens: Vec<u64> = pipe
        .query_async(conn)
        .await
        .map_err(redis_err("purging a Redis queue"))?;
    let delayed = purge_delayed(conn, keys, queue).await?;
    Ok(lens.iter().sum::<u64>() + delayed)
}

/// Delete `queue`'s messages from the delayed (ETA) set, whose members are
/// `<list><SEP><payload>` for any of the queue's priority lists.
async fn purge_delayed(
    conn: &mut crate::redis_support::RedisConn,
    keys: &Keys,
    queue: &str,
) -> Result<u64> {
    const SCRIPT: &str = r#"
local removed = 0
for i = 2, #ARGV do
  local prefix = ARGV[i] .. ARGV[1]
  local members = redis.call('ZRANGE', KEYS[1], 0, -1)
  for _, member in ipairs(members) do
    if string.sub(member, 1, #prefix) == prefix then
      removed = removed + redis.call('ZREM', KEYS[1], member)
    end
  end
end
return removed
"#;
    let script = redis::Script::new(SCRIPT);
    let mut call = script.prepare_invoke();
    call.key(keys.delayed()).arg(SEP);
    for step in STEPS {
        call.arg(keys.queue_list(queue, step));
    }
    call.invoke_async(conn)
        .await
        .map_err(redis_err("purging a Redis queue's delayed messages"))
}
