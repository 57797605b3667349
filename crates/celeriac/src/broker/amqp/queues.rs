//! Queue statistics and administration on RabbitMQ: a queue's depth is
//! its `message_count` (a passive declare), a purge is `queue.purge` on a
//! side channel. RabbitMQ cannot list its queues or the ETA messages held
//! by workers or hopping through TTL queues, so `names`, `delayed` and
//! `flush_delayed` keep [`QueueAdmin`]'s defaults (none, none, 0).

use async_trait::async_trait;

use super::{wire, AmqpBroker};
use crate::broker::QueueAdmin;
use crate::{Error, Result};

#[async_trait]
impl QueueAdmin for AmqpBroker {
    async fn depth(&self, queue: &str) -> Result<u64> {
        let session = self.inner.session().await?;
        let count = session
            .message_count(&wire::short("queue name", queue)?)
            .await?;
        Ok(u64::from(count.unwrap_or(0)))
    }

    async fn purge(&self, queue: &str) -> Result<u64> {
        let session = self.inner.session().await?;
        let name = wire::short("queue name", queue)?;
        if !session.exists(&name).await? {
            return Ok(0);
        }
        let channel = session.side_channel().await?;
        let purged = channel
            .queue_purge(name, lapin::options::QueuePurgeOptions::default())
            .await
            .map_err(|e| Error::broker("purging a queue", e));
        let _ = channel.close(200, "purged".into()).await;
        Ok(u64::from(purged?))
    }
}
