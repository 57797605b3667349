//! Revocations on SQLite: one row per revoked task id in `celeriac_revoked`
//! (member, when, expiry); expired rows are deleted at each write.

use std::time::Duration;

use async_trait::async_trait;

use super::SqliteBroker;
use crate::broker::{Revocation, Revocations};
use crate::error::Error;
use crate::sqlite_db::now_secs;
use crate::Result;

#[async_trait]
impl Revocations for SqliteBroker {
    async fn revoke(&self, task_ids: &[String], terminate: bool, ttl: Duration) -> Result<()> {
        let members: Vec<String> = task_ids
            .iter()
            .map(|id| Revocation::member(id, terminate))
            .collect();
        self.db
            .write(move |conn| {
                let now = now_secs();
                conn.prepare_cached("DELETE FROM celeriac_revoked WHERE expires_at < ?1")?
                    .execute([now])?;
                let mut insert = conn.prepare_cached(
                    "INSERT OR REPLACE INTO celeriac_revoked (member, at, expires_at) VALUES (?1, ?2, ?3)",
                )?;
                for member in &members {
                    insert.execute(rusqlite::params![member, now, now + ttl.as_secs_f64()])?;
                }
                Ok(())
            })
            .await
            .map_err(|e| Error::broker("recording revocations in SQLite", e))
    }

    async fn revoked_since(&self, since: f64) -> Result<Vec<Revocation>> {
        self.db
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT member, at FROM celeriac_revoked WHERE at > ?1 AND expires_at > ?2",
                )?;
                let rows = stmt.query_map(rusqlite::params![since, now_secs()], |r| {
                    Ok(Revocation::from_member(&r.get::<_, String>(0)?, r.get(1)?))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await
            .map_err(|e| Error::broker("reading SQLite revocations", e))
    }
}
