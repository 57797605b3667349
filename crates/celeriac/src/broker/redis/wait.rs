//! Waiting for a message without polling: an idle reservation blocks on
//! `BLMOVE list list RIGHT RIGHT`, which returns as soon as the list holds
//! a message and moves nothing (the last element goes back where it was).
//! It runs on a connection of its own, so a blocked wait never delays the
//! acknowledgements and result stores sharing the main one.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::sync::Mutex;

use crate::redis_support::Endpoint;

/// The longest single block: a message on another list or queue than the
/// one watched is seen at the latest after this.
pub(super) const PAUSE: Duration = Duration::from_millis(20);

/// A dedicated connection for blocking waits, opened on first use.
pub(super) struct Waiter {
    endpoint: Endpoint,
    conn: Mutex<Option<MultiplexedConnection>>,
}

impl Waiter {
    pub(super) fn new(endpoint: Endpoint) -> Self {
        Waiter {
            endpoint,
            conn: Mutex::new(None),
        }
    }

    /// Block up to `pause` until `list` holds a message. `false` when the
    /// wait could not be made (no connection): the caller polls instead.
    pub(super) async fn wait(&self, list: &str, pause: Duration) -> bool {
        // Whole milliseconds: Redis takes decimal seconds, and 0 would
        // block forever.
        let seconds = (pause.as_millis().max(1) as f64) / 1000.0;
        let mut guard = self.conn.lock().await;
        if guard.is_none() {
            *guard = self.endpoint.multiplexed().await.ok();
        }
        let Some(conn) = guard.as_mut() else {
            return false;
        };
        let waited: redis::RedisResult<Option<Vec<u8>>> = redis::cmd("BLMOVE")
            .arg(list)
            .arg(list)
            .arg("RIGHT")
            .arg("RIGHT")
            .arg(seconds)
            .query_async(conn)
            .await;
        if let Err(e) = waited {
            // Reconnect next time (Redis restarting, connection dropped, a
            // Sentinel failover: the master is looked for again).
            self.endpoint.report(&e);
            *guard = None;
            return false;
        }
        true
    }
}
