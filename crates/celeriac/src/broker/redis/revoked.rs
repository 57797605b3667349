//! Revocations on Redis: the sorted set `celeriac.revoked`, member = task id
//! (with `|terminate` when asked), score = when (Unix seconds). Old entries
//! are dropped at each write, and the key expires after the TTL.

use std::time::Duration;

use async_trait::async_trait;

use super::{now_secs, redis_err, RedisBroker};
use crate::broker::{Revocation, Revocations};
use crate::Result;

#[async_trait]
impl Revocations for RedisBroker {
    async fn revoke(&self, task_ids: &[String], terminate: bool, ttl: Duration) -> Result<()> {
        let now = now_secs();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .zrembyscore(self.keys.revoked(), "-inf", now - ttl.as_secs_f64())
            .ignore();
        for id in task_ids {
            pipe.zadd(self.keys.revoked(), Revocation::member(id, terminate), now)
                .ignore();
        }
        pipe.expire(self.keys.revoked(), ttl.as_secs().max(1) as i64)
            .ignore();
        let _: () = pipe
            .query_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("recording revocations in Redis"))?;
        Ok(())
    }

    async fn revoked_since(&self, since: f64) -> Result<Vec<Revocation>> {
        let rows: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(self.keys.revoked())
            .arg(format!("({since}"))
            .arg("+inf")
            .arg("BYSCORE")
            .arg("WITHSCORES")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("reading Redis revocations"))?;
        Ok(rows
            .into_iter()
            .map(|(member, at)| Revocation::from_member(&member, at))
            .collect())
    }
}
