//! Celery's event transport on Redis: a fanout exchange emulated with
//! pub/sub on `/<db>.celeryev/<routing key>`.

use async_trait::async_trait;
use futures::StreamExt;

use super::{EventBus, EventStream};
use crate::protocol::{Envelope, Event};
use crate::redis_support::{connect, Endpoint, RedisConn};
use crate::{Error, Result};

/// Events on Redis, readable by Flower and `celery events`.
pub struct RedisEvents {
    endpoint: Endpoint,
    conn: RedisConn,
    channel_prefix: String,
}

impl RedisEvents {
    /// Connect; `key_prefix` is kombu's `global_keyprefix` (channels carry it too).
    ///
    /// # Errors
    /// When the URL is invalid or the server cannot be reached.
    pub async fn open(url: &str, key_prefix: &str) -> Result<Self> {
        let (endpoint, conn) = connect(url).await?;
        let db = endpoint.db();
        Ok(RedisEvents {
            endpoint,
            conn,
            channel_prefix: format!("{key_prefix}/{db}.celeryev/"),
        })
    }
}

#[async_trait]
impl EventBus for RedisEvents {
    async fn publish(&self, event: &Event) -> Result<()> {
        let channel = format!("{}{}", self.channel_prefix, event.routing_key());
        let _: i64 = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(event.to_envelope().to_vec())
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| Error::broker("publishing an event to Redis", e))?;
        Ok(())
    }

    async fn subscribe(&self) -> Result<EventStream> {
        // Subscribed again, on the current master, when the connection drops.
        let messages = self
            .endpoint
            .subscribe(format!("{}*", self.channel_prefix), true)
            .await
            .map_err(|e| Error::broker("subscribing to Redis events", e))?;
        let stream = messages.flat_map(|message| {
            let events = Envelope::from_slice(message.get_payload_bytes())
                .and_then(|envelope| Event::from_envelope(&envelope))
                .unwrap_or_default();
            futures::stream::iter(events)
        });
        Ok(stream.boxed())
    }
}
