//! `redis://`: beat state in Redis, shared by every beat on that server.
//!
//! 1. Each entry is a hash `<prefix>celeriac.beat.<entry name>` with fields
//!    `tick` (ms since the epoch), `task_id` (empty for a baseline or a
//!    skipped run), `at` (when it was claimed, ms) and `by` (`pid@host`).
//!    `<prefix>` is kombu's `global_keyprefix` ([`AppConfig::key_prefix`]).
//! 2. The claim is one Lua script: compare the stored tick, set the new one,
//!    and `LPUSH` the message onto its queue list (kombu's layout, as the
//!    Redis broker writes it) — atomically, so the run is sent exactly once
//!    even if a beat dies mid-claim.
//!
//! [`AppConfig::key_prefix`]: crate::AppConfig::key_prefix

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::Script;

use super::store::{from_ms, to_ms, Claim, LastRun, Store};
use super::BeatError;
use crate::broker::priority_step;
use crate::redis_support::{connect, Keys, RedisConn};

/// Compare-and-set the tick; publish in the same step.
/// KEYS: state hash [, queue list]. ARGV: tick, task id, claimed at, by
/// [, payload].
const CLAIM: &str = r"
local last = tonumber(redis.call('HGET', KEYS[1], 'tick'))
if last and last >= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'tick', ARGV[1], 'task_id', ARGV[2], 'at', ARGV[3], 'by', ARGV[4])
if KEYS[2] then
  redis.call('LPUSH', KEYS[2], ARGV[5])
end
return 1
";

/// Beat state in Redis.
pub(crate) struct RedisStore {
    conn: RedisConn,
    keys: Keys,
    claim: Script,
    publish: bool,
}

impl RedisStore {
    /// Connect to `url`; with `publish`, claims also push the message.
    pub(crate) async fn open(url: &str, prefix: &str, publish: bool) -> Result<Self, BeatError> {
        let (_, conn) = connect(url).await?;
        Ok(RedisStore {
            conn,
            keys: Keys::new(prefix),
            claim: Script::new(CLAIM),
            publish,
        })
    }

    fn key(&self, entry: &str) -> String {
        self.keys.value(&format!("celeriac.beat.{entry}"))
    }
}

fn redis_err(context: &'static str) -> impl Fn(redis::RedisError) -> BeatError {
    move |e| BeatError::store(context, e)
}

#[async_trait]
impl Store for RedisStore {
    async fn last_or_init(
        &self,
        entry: &str,
        baseline: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, BeatError> {
        let key = self.key(entry);
        let (_, tick): (i64, i64) = redis::pipe()
            .atomic()
            .hset_nx(&key, "tick", to_ms(baseline))
            .hget(&key, "tick")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("reading an entry's last run from Redis"))?;
        from_ms(tick)
    }

    async fn last(&self, entry: &str) -> Result<Option<LastRun>, BeatError> {
        let (tick, task_id): (Option<i64>, Option<String>) = redis::cmd("HMGET")
            .arg(self.key(entry))
            .arg("tick")
            .arg("task_id")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("reading an entry's last run from Redis"))?;
        match tick {
            Some(tick) => Ok(Some(LastRun {
                tick: from_ms(tick)?,
                task_id: task_id.filter(|id| !id.is_empty()),
            })),
            None => Ok(None),
        }
    }

    async fn claim(&self, claim: Claim<'_>) -> Result<bool, BeatError> {
        let mut invocation = self.claim.key(self.key(claim.entry));
        invocation
            .arg(to_ms(claim.tick))
            .arg(claim.task_id)
            .arg(Utc::now().timestamp_millis())
            .arg(claim.by);
        if let Some(message) = claim.message.filter(|_| self.publish) {
            invocation
                .key(
                    self.keys
                        .queue_list(&message.queue, priority_step(message.priority)),
                )
                .arg(&message.payload[..]);
        }
        let won: i64 = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("claiming a run in Redis"))?;
        Ok(won == 1)
    }

    fn publishes(&self) -> bool {
        self.publish
    }
}
