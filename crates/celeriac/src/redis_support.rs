//! What the Redis broker and backend share: connecting, and key names.
//!
//! Key names are kombu's and Celery's, so Python and Rust processes find
//! each other's data; `key_prefix` is kombu's `global_keyprefix` and
//! prefixes every key and channel.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::{Error, Result};

/// kombu's separator inside priority list names and binding members.
pub(crate) const SEP: &str = "\x06\x16";

/// Open a reconnecting, multiplexed connection. Commands sent during an
/// outage fail fast; the connection re-establishes itself in the background
/// and callers retry with their own backoff.
pub(crate) async fn connect(url: &str) -> Result<(redis::Client, ConnectionManager)> {
    // Celery's `ssl_*` query options (a private CA, a client certificate).
    let client = crate::redis_tls::RedisTls::parse(url)?.client(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(5))
        .set_response_timeout(Duration::from_secs(30))
        .set_number_of_retries(2)
        .set_factor(50)
        .set_max_delay(2000);
    let manager = ConnectionManager::new_with_config(client.clone(), config)
        .await
        .map_err(|e| Error::broker("connecting to Redis", e))?;
    Ok((client, manager))
}

/// The Redis key layout.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// The list holding `queue`'s messages of priority `step` (0 = the queue
    /// itself, 3/6/9 = `queue\x06\x16<step>`).
    pub(crate) fn queue_list(&self, queue: &str, step: u8) -> String {
        if step == 0 {
            format!("{}{queue}", self.prefix)
        } else {
            format!("{}{queue}{SEP}{step}", self.prefix)
        }
    }

    /// The set of bindings of `exchange`.
    pub(crate) fn binding(&self, exchange: &str) -> String {
        format!("{}_kombu.binding.{exchange}", self.prefix)
    }

    /// The prefix of binding sets, for the restore script's lookups.
    pub(crate) fn binding_prefix(&self) -> String {
        format!("{}_kombu.binding.", self.prefix)
    }

    pub(crate) fn unacked(&self) -> String {
        format!("{}unacked", self.prefix)
    }

    pub(crate) fn unacked_index(&self) -> String {
        format!("{}unacked_index", self.prefix)
    }

    pub(crate) fn unacked_mutex(&self) -> String {
        format!("{}unacked_mutex", self.prefix)
    }

    /// Our sorted set of delayed (ETA) messages, score = due time.
    pub(crate) fn delayed(&self) -> String {
        format!("{}celeriac.delayed", self.prefix)
    }

    /// The set of every consumer that holds or held reservations.
    pub(crate) fn consumers(&self) -> String {
        format!("{}celeriac.consumers", self.prefix)
    }

    /// A consumer's liveness key, refreshed while it runs.
    pub(crate) fn alive(&self, consumer: &str) -> String {
        format!("{}celeriac.alive.{consumer}", self.prefix)
    }

    /// Our sorted set of revoked task ids (score = when revoked).
    pub(crate) fn revoked(&self) -> String {
        format!("{}celeriac.revoked", self.prefix)
    }

    /// The list of dead letters of older versions (one JSON record with
    /// its payload each, newest first); migrated on first read.
    pub(crate) fn dead_letter(&self) -> String {
        format!("{}celeriac.dead_letter", self.prefix)
    }

    /// Our sorted set of dead-letter ids (score = when, Unix seconds).
    pub(crate) fn dead_letter_index(&self) -> String {
        format!("{}celeriac.dead_letter.index", self.prefix)
    }

    /// Our hash of dead-letter metadata JSON, by id.
    pub(crate) fn dead_letter_meta(&self) -> String {
        format!("{}celeriac.dead_letter.meta", self.prefix)
    }

    /// Our hash of dead-letter payloads (capped), by id.
    pub(crate) fn dead_letter_payload(&self) -> String {
        format!("{}celeriac.dead_letter.payload", self.prefix)
    }

    /// The result document of a task, and the channel it is announced on.
    pub(crate) fn result(&self, task_id: &str) -> String {
        format!("{}celery-task-meta-{task_id}", self.prefix)
    }

    /// A group's key (`celery-taskset-meta-<id>`); a chord's counters are
    /// this plus `.j`, `.t`, `.s`, `.d`, `.c`, as Celery names them.
    pub(crate) fn group(&self, group_id: &str) -> String {
        format!("{}celery-taskset-meta-{group_id}", self.prefix)
    }

    /// An explicit key set by a task.
    pub(crate) fn value(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The prefix, for scripts that build list names.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_kombu() {
        let keys = Keys::new("");
        assert_eq!(keys.queue_list("celery", 0), "celery");
        assert_eq!(keys.queue_list("celery", 3), "celery\x06\x163");
        assert_eq!(keys.binding("celery"), "_kombu.binding.celery");
        assert_eq!(Keys::new("app:").unacked(), "app:unacked");
    }
}
