//! Event transport: how worker and task events reach monitors.
//!
//! | broker URL | transport |
//! |---|---|
//! | `redis://` | Celery's: `PUBLISH /<db>.celeryev/<routing key>`, read with `PSUBSCRIBE` — Flower and `celery events` see Celeriac workers |
//! | `amqp://` | Celery's: the topic exchange `celeryev`, routing key = event type — Flower and `celery events` see Celeriac workers |
//! | `sqlite://` | a capped table in the same file, polled by subscribers (other processes on the host see events) |
//! | `memory://` | an in-process broadcast channel |
//!
//! Publishing never blocks a worker on a slow monitor: on Redis it is one
//! command; on SQLite one row in the next group commit; in memory a lagging
//! subscriber drops old events rather than slowing the sender.

use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Stream;

use crate::protocol::Event;
use crate::Result;

#[cfg(feature = "amqp")]
mod amqp;
mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "amqp")]
pub use amqp::AmqpEvents;
pub use memory::MemoryEvents;
#[cfg(feature = "redis")]
pub use redis::RedisEvents;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteEvents;

/// A stream of events, in the order the transport delivers them.
pub type EventStream = Pin<Box<dyn Stream<Item = Event> + Send>>;

/// Publishes and delivers events.
///
/// Cancel safety: dropping a subscription stream unsubscribes; a cancelled
/// `publish` may or may not have been sent (events are best-effort, as in
/// Celery).
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Announce one event.
    ///
    /// # Errors
    /// When the transport cannot be reached.
    async fn publish(&self, event: &Event) -> Result<()>;

    /// Receive every event published from now on.
    ///
    /// # Errors
    /// When the transport cannot be reached.
    async fn subscribe(&self) -> Result<EventStream>;
}

/// The event transport that goes with a broker URL
/// ([`crate::transport::Transport::events`]).
///
/// # Errors
/// When the URL is invalid or the server cannot be reached.
pub async fn events_from_url(url: &str, key_prefix: &str) -> Result<Arc<dyn EventBus>> {
    let config = crate::AppConfig {
        key_prefix: key_prefix.to_owned(),
        ..crate::AppConfig::default()
    };
    crate::transport::Transport::parse(url)?
        .events(&config)
        .await
}
