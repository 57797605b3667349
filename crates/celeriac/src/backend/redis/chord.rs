//! Chord counting on Redis with Celery's own keys and rules, so Python and
//! Celeriac workers can finish parts of the same chord.
//!
//! For a chord of group `G`, under `celery-taskset-meta-G`: `.s` holds the
//! size (set by the producer), `.j` a sorted set of the parts' outcomes
//! (`[1, task_id, state, result]`, scored by `group_index`), `.d` the
//! `task_id:index` members already counted (a redelivered part counts
//! once), `.t` an optional size adjustment, `.c` the claim of whoever sends
//! the body, then `done` once it has been sent. One script counts a part
//! and, when the count reaches the size, takes the claim with `SET NX`,
//! so exactly one worker, of either language, sends the body.

use redis::Script;
use serde_json::Value;

use crate::backend::{ChordPart, ChordPartResult, ChordProgress};
use crate::protocol::TaskState;
use crate::{Error, Result};

/// KEYS: .j .t .s .d group .c; ARGV: task id, encoded outcome, score,
/// expiry seconds (0 = none), claim seconds, claim token. Returns
/// `{counted, adjustment, size, claimed}`, or `{-1, …}` when the chord is
/// already done.
const PART_RETURN: &str = r#"
local joined, adjust, size_key, seen, group, claim = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
if redis.call('GET', claim) == 'done' then
  return {-1, 0, 0, 0}
end
local member = ARGV[1] .. ':' .. ARGV[3]
if redis.call('SISMEMBER', seen, member) == 0 then
  redis.call('ZADD', joined, ARGV[3], ARGV[2])
  redis.call('SADD', seen, member)
end
local counted = redis.call('ZCARD', joined)
local expires = tonumber(ARGV[4])
if expires > 0 then
  for _, key in ipairs({joined, adjust, size_key, seen}) do
    redis.call('EXPIRE', key, expires)
  end
  redis.call('EXPIRE', group, expires)
end
local diff = tonumber(redis.call('GET', adjust) or '0') or 0
local size = redis.call('GET', size_key)
local claimed = 0
if size and counted == tonumber(size) + diff then
  if redis.call('SET', claim, ARGV[6], 'NX', 'EX', tonumber(ARGV[5])) then
    claimed = 1
  end
end
return {counted, diff, size and tonumber(size) or -1, claimed}
"#;

/// KEYS: .c .j .t .s .d; ARGV: claim token, seconds to remember `done`.
/// Drops the counters if the claim is still ours.
const CLEANUP: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
  redis.call('SET', KEYS[1], 'done', 'EX', tonumber(ARGV[2]))
  return 1
end
return 0
"#;

/// How long the claim to send a body lasts (Celery: at least 5 s).
const CLAIM_SECONDS: u64 = 10;
/// How long a done chord is remembered (Celery: at least 300 s).
const DONE_SECONDS: u64 = 300;

/// The six keys of a chord, in the scripts' order (`.j .t .s .d group .c`).
fn keys(group_key: &str) -> [String; 6] {
    [
        format!("{group_key}.j"),
        format!("{group_key}.t"),
        format!("{group_key}.s"),
        format!("{group_key}.d"),
        group_key.to_owned(),
        format!("{group_key}.c"),
    ]
}

/// `SET .s size`, clearing a previous run's claim.
pub(super) async fn set_size(
    conn: &mut crate::redis_support::RedisConn,
    group_key: &str,
    size: u64,
    expires: u64,
) -> Result<()> {
    let [_, _, size_key, _, _, claim] = keys(group_key);
    let mut pipe = redis::pipe();
    pipe.del(&claim).ignore();
    if expires > 0 {
        pipe.set_ex(&size_key, size, expires).ignore();
    } else {
        pipe.set(&size_key, size).ignore();
    }
    pipe.query_async::<()>(conn)
        .await
        .map_err(|e| Error::backend("recording a chord's size in Redis", e))
}

/// Count `part`; when it completes the chord and this call got the claim,
/// read the ordered outcomes.
pub(super) async fn part_return(
    conn: &mut crate::redis_support::RedisConn,
    group_key: &str,
    part: &ChordPart<'_>,
    expires: u64,
) -> Result<ChordProgress> {
    let keys = keys(group_key);
    let encoded = serde_json::to_string(&serde_json::json!([
        1,
        part.task_id,
        part.state.as_str(),
        part.result
    ]))
    .map_err(|e| Error::json("chord part", e))?;
    let score = part
        .index
        .map_or_else(|| "+inf".to_owned(), |i| i.to_string());
    let token = uuid::Uuid::new_v4().simple().to_string();
    let (counted, _diff, _size, claimed): (i64, i64, i64, i64) = Script::new(PART_RETURN)
        .key(&keys[..])
        .arg(part.task_id)
        .arg(&encoded)
        .arg(&score)
        .arg(expires)
        .arg(CLAIM_SECONDS)
        .arg(&token)
        .invoke_async(conn)
        .await
        .map_err(|e| Error::backend("counting a chord part in Redis", e))?;
    if counted < 0 {
        return Ok(ChordProgress::Done);
    }
    if claimed != 1 {
        return Ok(ChordProgress::Waiting);
    }
    let raw: Vec<Vec<u8>> = redis::cmd("ZRANGE")
        .arg(&keys[0])
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await
        .map_err(|e| Error::backend("reading a chord's results from Redis", e))?;
    let results = raw
        .iter()
        .map(|bytes| decode_part(bytes))
        .collect::<Result<Vec<_>>>()?;
    Ok(ChordProgress::Complete {
        results,
        claim: token,
    })
}

/// Drop the counters and remember the chord as done, if `claim` is still
/// ours (else another worker took over an expired claim; leave it be).
pub(super) async fn done(
    conn: &mut crate::redis_support::RedisConn,
    group_key: &str,
    claim: &str,
) -> Result<()> {
    let [joined, adjust, size_key, seen, _, claim_key] = keys(group_key);
    let cleaned: i64 = Script::new(CLEANUP)
        .key(&claim_key)
        .key(&joined)
        .key(&adjust)
        .key(&size_key)
        .key(&seen)
        .arg(claim)
        .arg(DONE_SECONDS)
        .invoke_async(conn)
        .await
        .map_err(|e| Error::backend("cleaning up a chord in Redis", e))?;
    if cleaned == 0 {
        tracing::warn!(group = %group_key, "the chord's claim was lost before cleanup; its counters are left to expire");
    }
    Ok(())
}

/// `[1, task_id, state, result]`, as Celery's workers write it.
fn decode_part(bytes: &[u8]) -> Result<ChordPartResult> {
    let bad = |why: &str| Error::backend("reading a chord part from Redis", why.to_owned());
    let value: Value = serde_json::from_slice(bytes).map_err(|e| Error::json("chord part", e))?;
    let Value::Array(mut items) = value else {
        return Err(bad("a chord part is not a list"));
    };
    if items.len() != 4 {
        return Err(bad("a chord part is not [1, id, state, result]"));
    }
    let result = items.pop().unwrap_or(Value::Null);
    let state = items
        .pop()
        .and_then(|s| s.as_str().map(TaskState::from_name))
        .ok_or_else(|| bad("a chord part's state is not a string"))?;
    let task_id = items
        .pop()
        .and_then(|s| s.as_str().map(str::to_owned))
        .ok_or_else(|| bad("a chord part's id is not a string"))?;
    Ok(ChordPartResult {
        task_id,
        state,
        result,
    })
}
