//! Celery's event transport on Redis: a fanout exchange emulated with
//! pub/sub on `/<db>.celeryev/<routing key>`.

use async_trait::async_trait;
use futures::StreamExt;
use redis::aio::ConnectionManager;

use super::{EventBus, EventStream};
use crate::protocol::{Envelope, Event};
use crate::redis_support::connect;
use crate::{Error, Result};

/// Events on Redis, readable by Flower and `celery events`.
pub struct RedisEvents {
    client: redis::Client,
    conn: ConnectionManager,
    channel_prefix: String,
}

impl RedisEvents {
    /// Connect; `key_prefix` is kombu's `global_keyprefix` (channels carry it too).
    ///
    /// # Errors
    /// When the URL is invalid or the server cannot be reached.
    pub async fn open(url: &str, key_prefix: &str) -> Result<Self> {
        let (client, conn) = connect(url).await?;
        let db = client.get_connection_info().redis.db;
        Ok(RedisEvents {
            client,
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
        let mut pubsub = self
            .client
            .get_async_pubsub()
            .await
            .map_err(|e| Error::broker("subscribing to Redis events", e))?;
        pubsub
            .psubscribe(format!("{}*", self.channel_prefix))
            .await
            .map_err(|e| Error::broker("subscribing to Redis events", e))?;
        let stream = pubsub.into_on_message().flat_map(|message| {
            let events = Envelope::from_slice(message.get_payload_bytes())
                .and_then(|envelope| Event::from_envelope(&envelope))
                .unwrap_or_default();
            futures::stream::iter(events)
        });
        Ok(stream.boxed())
    }
}
