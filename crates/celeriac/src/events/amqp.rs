//! Celery's event transport on AMQP: the topic exchange `celeryev`.
//!
//! As Celery's `EventDispatcher` on RabbitMQ: each event is published to
//! the durable topic exchange `celeryev` with the event type as routing key
//! (`-` turned into `.`, e.g. `worker.heartbeat`), the event dict as the
//! JSON body, the header `hostname`, non-persistent. Subscribers (Flower,
//! `celery events`, `celeriac serve`) bind a queue of their own with `#`.
//! Events are best-effort: no publisher confirms; a failed publish drops
//! the connection, and the next event opens a new one.

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection, ExchangeKind};
use tokio::sync::Mutex;

use super::{EventBus, EventStream};
use crate::broker::amqp::{connect, wire};
use crate::protocol::{Envelope, Event};
use crate::{Error, Result};

/// The exchange Celery publishes events to.
pub(crate) const EXCHANGE: &str = "celeryev";

/// Events on RabbitMQ, readable by Flower and `celery events`.
pub struct AmqpEvents {
    url: String,
    publisher: Mutex<Option<(Connection, Channel)>>,
}

impl AmqpEvents {
    /// Connect to the broker at `url` (`amqp://`/`amqps://`).
    ///
    /// # Errors
    /// When the URL is invalid or the broker cannot be reached.
    pub async fn open(url: &str) -> Result<Self> {
        let events = AmqpEvents {
            url: url.to_owned(),
            publisher: Mutex::new(None),
        };
        let opened = events.channel().await?;
        *events.publisher.lock().await = Some(opened);
        Ok(events)
    }

    async fn channel(&self) -> Result<(Connection, Channel)> {
        let connection = connect(&self.url).await?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| Error::broker("opening an AMQP channel for events", e))?;
        declare_exchange(&channel).await?;
        Ok((connection, channel))
    }
}

/// `celeryev`: topic, durable, as kombu declares `Exchange('celeryev', type='topic')`.
async fn declare_exchange(channel: &Channel) -> Result<()> {
    channel
        .exchange_declare(
            EXCHANGE.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| Error::broker("declaring the celeryev exchange", e))
}

#[async_trait]
impl EventBus for AmqpEvents {
    async fn publish(&self, event: &Event) -> Result<()> {
        let mut message = wire::from_envelope(&event.to_envelope().to_vec())?;
        let mut headers = FieldTable::default();
        headers.insert(
            "hostname".into(),
            AMQPValue::LongString(LongString::from(event.hostname().as_bytes().to_vec())),
        );
        message.properties = message
            .properties
            .with_headers(headers)
            .with_delivery_mode(1);
        let routing_key = wire::short("event routing key", &event.routing_key())?;
        let mut publisher = self.publisher.lock().await;
        if publisher
            .as_ref()
            .is_none_or(|(c, ch)| !c.status().connected() || !ch.status().connected())
        {
            *publisher = Some(self.channel().await?);
        }
        let Some((_, channel)) = publisher.as_ref() else {
            return Ok(());
        };
        let sent = channel
            .basic_publish(
                EXCHANGE.into(),
                routing_key,
                BasicPublishOptions::default(),
                &message.body,
                message.properties,
            )
            .await;
        if let Err(err) = sent {
            *publisher = None;
            return Err(Error::broker("publishing an event", err));
        }
        Ok(())
    }

    async fn subscribe(&self) -> Result<EventStream> {
        let connection = Arc::new(connect(&self.url).await?);
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| Error::broker("opening an AMQP channel for events", e))?;
        declare_exchange(&channel).await?;
        let queue = format!("celeryev.{}", uuid::Uuid::new_v4());
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| Error::broker("declaring an event queue", e))?;
        channel
            .queue_bind(
                queue.as_str().into(),
                EXCHANGE.into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| Error::broker("binding an event queue", e))?;
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| Error::broker("consuming events", e))?;
        let stream = consumer.flat_map(move |delivery| {
            // The stream owns the connection: dropping it unsubscribes.
            let _keep = (&connection, &channel);
            let events = delivery
                .ok()
                .and_then(|d| {
                    let bytes = wire::to_envelope(
                        &d.properties,
                        &d.data,
                        EXCHANGE,
                        d.routing_key.as_str(),
                        "",
                    );
                    Envelope::from_slice(&bytes).ok()
                })
                .and_then(|envelope| Event::from_envelope(&envelope).ok())
                .unwrap_or_default();
            futures::stream::iter(events)
        });
        Ok(stream.boxed())
    }
}
