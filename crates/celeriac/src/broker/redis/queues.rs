//! Whole-queue operations of the Redis broker, for operators rather than
//! the delivery path: `celeriac purge` (kombu's purge plus our delayed
//! set) and `celeriac delayed list|flush` (the ETA messages a Celeriac
//! process moved to `celeriac.delayed`, listed or handed back to kombu's
//! queue lists for Python workers). With the queue depth and the queue
//! names for monitors, they make the broker's [`QueueAdmin`].

use async_trait::async_trait;
use chrono::DateTime;
use redis::Script;

use super::{redis_err, RedisBroker, STEPS};
use crate::broker::{DelayedInfo, QueueAdmin};
use crate::redis_support::{Keys, RedisConn, SEP};
use crate::Result;

async fn delayed(conn: &mut RedisConn, keys: &Keys, limit: usize) -> Result<Vec<DelayedInfo>> {
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

async fn flush_delayed(conn: &mut RedisConn, keys: &Keys) -> Result<u64> {
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

async fn purge(conn: &mut RedisConn, keys: &Keys, queue: &str) -> Result<u64> {
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

#[async_trait]
impl QueueAdmin for RedisBroker {
    async fn depth(&self, queue: &str) -> Result<u64> {
        let mut pipe = redis::pipe();
        for step in STEPS {
            pipe.llen(self.keys.queue_list(queue, step));
        }
        let lens: Vec<u64> = pipe
            .query_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("measuring a Redis queue"))?;
        Ok(lens.iter().sum())
    }

    async fn names(&self) -> Result<Vec<String>> {
        queue_names(&mut self.conn.clone(), &self.keys).await
    }

    async fn delayed(&self, limit: usize) -> Result<Vec<DelayedInfo>> {
        delayed(&mut self.conn.clone(), &self.keys, limit).await
    }

    async fn flush_delayed(&self) -> Result<u64> {
        flush_delayed(&mut self.conn.clone(), &self.keys).await
    }

    async fn purge(&self, queue: &str) -> Result<u64> {
        purge(&mut self.conn.clone(), &self.keys, queue).await
    }
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

/// Queues kombu routes to (the last part of each `_kombu.binding.*`
/// member) and lists that hold messages, one `SCAN` pass each; pidbox,
/// event and reply queues are left out, priority lists (`q\x06\x163`)
/// count as their queue.
async fn queue_names(conn: &mut RedisConn, keys: &Keys) -> Result<Vec<String>> {
    let err = redis_err("listing Redis queues");
    let prefix = keys.prefix().to_owned();
    let internal = |name: &str| {
        name.ends_with(".celery.pidbox")
            || name.ends_with("reply.celery.pidbox")
            || name.starts_with("celeryev")
            || name.starts_with("celeriac.")
            || name.starts_with("_kombu.")
            || name.starts_with("celery-task-meta-")
            || name.starts_with("celery-taskset-meta-")
            || name.starts_with("unacked")
    };
    let mut names = std::collections::BTreeSet::new();
    let bindings: Vec<String> = scan(conn, &format!("{}*", keys.binding_prefix()), None)
        .await
        .map_err(&err)?;
    for binding in bindings {
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(&binding)
            .query_async(conn)
            .await
            .map_err(&err)?;
        for member in members {
            if let Some(queue) = member.rsplit(SEP).next() {
                if !queue.is_empty() && !internal(queue) {
                    names.insert(queue.to_owned());
                }
            }
        }
    }
    let lists = scan(conn, &format!("{prefix}*"), Some("list"))
        .await
        .map_err(&err)?;
    for key in lists {
        let Some(name) = key.strip_prefix(prefix.as_str()) else {
            continue;
        };
        let name = match name.rsplit_once(SEP) {
            Some((queue, step)) if STEPS.iter().any(|s| s.to_string() == step) => queue,
            _ => name,
        };
        if !name.is_empty() && !internal(name) {
            names.insert(name.to_owned());
        }
    }
    Ok(names.into_iter().collect())
}

/// Every key matching `pattern` (of `kind`, when given), by `SCAN`.
async fn scan(
    conn: &mut RedisConn,
    pattern: &str,
    kind: Option<&str>,
) -> redis::RedisResult<Vec<String>> {
    let mut cursor: u64 = 0;
    let mut out = Vec::new();
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000);
        if let Some(kind) = kind {
            cmd.arg("TYPE").arg(kind);
        }
        let (next, keys): (u64, Vec<String>) = cmd.query_async(conn).await?;
        out.extend(keys);
        if next == 0 {
            return Ok(out);
        }
        cursor = next;
    }
}
