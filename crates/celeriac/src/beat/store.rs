//! Where each entry's last run is kept, and the exactly-once claim.
//!
//! 1. [`Store`]: three operations — read an entry's last tick (creating it
//!    at a baseline the first time), read it for display, and *claim* a tick:
//!    atomically, "if the stored tick is older than T, store T and say yes".
//!    Every beat computes the same ticks, so for each run exactly one claim
//!    succeeds, whichever beat makes it first.
//! 2. [`open`]: the store follows the app's broker URL — `redis://` keeps
//!    state in Redis (`<prefix>celeriac.beat.<entry name>`), `sqlite://` in
//!    the same file (table `celeriac_beat`), `memory://` in this process.
//! 3. When the broker was built from that same URL, the Redis and SQLite
//!    stores also *publish* the run's message inside the claim (one Lua
//!    script; one transaction), so a crash can neither lose a claimed run
//!    nor send one twice. Otherwise (memory, or an app given a broker
//!    object) the beat claims, then publishes through the app's broker.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};

use super::BeatError;
use crate::broker::OutgoingMessage;
use crate::App;

/// What a store remembers of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastRun {
    /// The last tick claimed (sent, skipped, or the baseline set when the
    /// entry was first seen).
    pub tick: DateTime<Utc>,
    /// The task id sent for it; `None` for a baseline or a skipped run.
    pub task_id: Option<String>,
}

/// One claim attempt.
pub(crate) struct Claim<'a> {
    pub(crate) entry: &'a str,
    pub(crate) tick: DateTime<Utc>,
    /// The task id to record; empty when nothing is sent (a skipped run).
    pub(crate) task_id: &'a str,
    /// `pid@host` of this beat, recorded for operators.
    pub(crate) by: &'a str,
    /// The message to publish atomically with the claim, when the store
    /// [publishes](Store::publishes) and a run is to be sent.
    pub(crate) message: Option<&'a OutgoingMessage>,
}

/// Per-entry state shared by every beat on one broker.
#[async_trait]
pub(crate) trait Store: Send + Sync {
    /// The entry's last tick; if there is none, record `baseline` (ticks at
    /// or before it are not due) and return that.
    async fn last_or_init(
        &self,
        entry: &str,
        baseline: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, BeatError>;

    /// The entry's state, without creating it.
    async fn last(&self, entry: &str) -> Result<Option<LastRun>, BeatError>;

    /// Record `claim.tick` if the stored tick is older (or absent), and
    /// publish `claim.message` in the same atomic step. True if this call
    /// won; false if a tick at or after it was already claimed.
    ///
    /// Cancel safety: the claim is one round trip; a cancelled call may or
    /// may not have won, and the caller then treats the tick as handled.
    async fn claim(&self, claim: Claim<'_>) -> Result<bool, BeatError>;

    /// True when [`Store::claim`] publishes the message itself.
    fn publishes(&self) -> bool;
}

/// Milliseconds since the epoch, as ticks are stored.
pub(crate) fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The inverse of [`to_ms`].
pub(crate) fn from_ms(ms: i64) -> Result<DateTime<Utc>, BeatError> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| BeatError::store("reading a stored tick", format!("{ms} is out of range")))
}

/// The store for `app`'s broker URL.
///
/// # Errors
/// [`BeatError::Celeriac`] for an unknown scheme; [`BeatError::Store`] when
/// Redis or the SQLite file cannot be opened.
pub(crate) async fn open(app: &App) -> Result<Arc<dyn Store>, BeatError> {
    use crate::transport::Transport;
    let url = app.config().broker_url.as_str();
    // Publish inside the claim only when the app's broker *is* the one this
    // URL names; an app given a broker object keeps its own publish path.
    let publish = app.broker_from_url();
    match Transport::parse(url)? {
        Transport::Memory { name } => Ok(Arc::new(super::store_memory::MemoryStore::named(&name))),
        #[cfg(feature = "sqlite")]
        Transport::Sqlite { .. } => Ok(Arc::new(
            super::store_sqlite::SqliteStore::open(url, publish).await?,
        )),
        #[cfg(feature = "redis")]
        transport @ (Transport::Redis { .. } | Transport::Sentinel(_)) => Ok(Arc::new(
            super::store_redis::RedisStore::open(
                &transport.redis_connect_url(app.config())?,
                &app.config().key_prefix,
                publish,
            )
            .await?,
        )),
        #[allow(unreachable_patterns)]
        other => Err(crate::Error::InvalidUrl {
            url: other.to_string(),
            reason: format!("the beat keeps no state on {} brokers", other.scheme()),
        }
        .into()),
    }
}
