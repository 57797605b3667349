//! Publishing, consuming and settling task messages.
//!
//! One consumer per queue on the session's consuming channel, each feeding
//! one in-process channel that [`reserve`] reads. The channel-wide prefetch
//! count follows what the worker can take: the messages it holds
//! unsettled, plus the room it asks for, plus the ETA messages held here
//! (which, as in Celery, stay unacknowledged and must not use up the
//! prefetch).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicRejectOptions};
use lapin::types::FieldTable;
use lapin::PublisherConfirm;

use super::session::Session;
use super::{wire, Inner, Received};
use crate::broker::{Delivery, OutgoingMessage};
use crate::{Error, Result};

/// Publish every message, then wait for all their confirms.
pub(super) async fn publish_batch(inner: &Inner, messages: Vec<OutgoingMessage>) -> Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let session = inner.session().await?;
    let mut confirms: Vec<PublisherConfirm> = Vec::with_capacity(messages.len());
    for message in messages {
        let amqp = wire::from_envelope(&message.payload)?;
        session
            .declare_queue(&message.queue, inner.max_priority)
            .await?;
        // Celery's route: the queue's own direct exchange, the queue's name
        // as routing key (the ETA, if any, is in the headers: the consuming
        // worker holds the message until due, as Celery's do).
        let confirm = session
            .send(&message.queue, &message.queue, &amqp.body, amqp.properties)
            .await?;
        confirms.push(confirm);
    }
    for confirm in confirms {
        session.confirmed(confirm).await?;
    }
    Ok(())
}

/// Up to `max` deliveries from `queues`, waiting up to `wait` for the first.
pub(super) async fn reserve(
    inner: &Inner,
    queues: &[String],
    max: usize,
    wait: Duration,
) -> Result<Vec<Delivery>> {
    let session = inner.session().await?;
    let held = inner
        .pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .len();
    let wanted = held + max.max(1) + inner.holds.len();
    session
        .set_qos(qos_for(wanted, session.current_qos()))
        .await?;
    for queue in queues {
        ensure_consumer(inner, &session, queue).await?;
    }
    let deadline = tokio::time::Instant::now() + wait;
    let mut out = Vec::new();
    let mut ready = inner.ready_rx.lock().await;
    while out.len() < max {
        let next = match ready.try_recv() {
            Ok(received) => Some(received),
            Err(_) if !out.is_empty() => None,
            Err(_) => tokio::time::timeout_at(deadline, ready.recv())
                .await
                .ok()
                .flatten(),
        };
        let Some(received) = next else { break };
        if received.generation != session.generation {
            // Its channel is closed: RabbitMQ has put it back already.
            continue;
        }
        out.push(take(inner, received));
    }
    Ok(out)
}

/// The prefetch count to ask RabbitMQ for when `wanted` deliveries may be
/// unsettled at once and `current` is set. Every `basic.qos` is a round
/// trip that RabbitMQ also pays for, and the worker's window moves on every
/// reservation: so the count goes up in powers of two, and comes down only
/// once it is more than four times what is wanted.
fn qos_for(wanted: usize, current: u16) -> u16 {
    let wanted = wanted.clamp(1, usize::from(u16::MAX));
    let current_n = usize::from(current);
    if current_n >= wanted && current_n <= wanted.saturating_mul(4) {
        return current;
    }
    let rounded = wanted.checked_next_power_of_two().unwrap_or(usize::MAX);
    u16::try_from(rounded).unwrap_or(u16::MAX)
}

/// Hand a delivery to the worker as the kombu envelope it decodes, and
/// remember it until it is settled.
fn take(inner: &Inner, received: Received) -> Delivery {
    let tag = received.tag();
    let d = &received.delivery;
    let payload = wire::to_envelope(
        &d.properties,
        &d.data,
        d.exchange.as_str(),
        d.routing_key.as_str(),
        &tag,
    );
    let delivery = Delivery {
        tag: tag.clone(),
        queue: received.queue.clone(),
        payload,
        redelivered: d.redelivered,
    };
    inner
        .pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(tag, received);
    delivery
}

/// Start consuming `queue` on this session unless already done.
async fn ensure_consumer(inner: &Inner, session: &Arc<Session>, queue: &str) -> Result<()> {
    if session
        .consuming
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(queue)
    {
        return Ok(());
    }
    session.declare_queue(queue, inner.max_priority).await?;
    let mut consumer = session
        .consume
        .basic_consume(
            wire::short("queue name", queue)?,
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| session.failed("starting to consume a queue", e))?;
    session
        .consuming
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(queue.to_owned());
    let tx = inner.ready_tx.clone();
    let ledger = Arc::clone(&inner.ledger);
    let generation = session.generation;
    let queue = queue.to_owned();
    let weak = Arc::downgrade(session);
    tokio::spawn(async move {
        while let Some(item) = consumer.next().await {
            match item {
                Ok(delivery) => {
                    ledger.seen(generation, delivery.delivery_tag);
                    let received = Received {
                        generation,
                        queue: queue.clone(),
                        delivery,
                    };
                    if tx.send(received).is_err() {
                        return;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, queue = %crate::printable::printable(&queue), "AMQP consumer failed; reconnecting");
                    break;
                }
            }
        }
        // The channel closed or the server cancelled us (queue deleted):
        // the next reservation opens a new session and consumes again.
        if let Some(session) = weak.upgrade() {
            session.break_off();
        }
    });
    Ok(())
}

/// Acknowledge; a tag of a closed channel is already back in its queue.
pub(super) async fn ack(inner: &Inner, tag: &str) -> Result<()> {
    let Some(received) = inner.take_pending(tag) else {
        return Ok(());
    };
    super::acks::ack(inner, received).await
}

/// Give a message back to its queue (`basic_reject(requeue=True)`).
pub(super) async fn requeue(inner: &Inner, tag: &str) -> Result<()> {
    let Some(received) = inner.take_pending(tag) else {
        return Ok(());
    };
    reject(inner, &received).await
}

/// `basic_reject(requeue=True)` of a delivery no longer pending.
pub(super) async fn reject(inner: &Inner, received: &Received) -> Result<()> {
    received
        .delivery
        .acker
        .reject(BasicRejectOptions { requeue: true })
        .await
        .map(drop)
        .map_err(|e| Error::broker("giving a message back", e))?;
    inner
        .ledger
        .settled(received.generation, received.delivery.delivery_tag);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::qos_for;

    #[test]
    fn the_prefetch_count_moves_in_steps() {
        assert_eq!(qos_for(5, 0), 8, "first: rounded up to a power of two");
        assert_eq!(qos_for(7, 8), 8, "within range: unchanged");
        assert_eq!(qos_for(2, 8), 8, "four times what is wanted: kept");
        assert_eq!(qos_for(9, 8), 16, "more wanted: the next power of two");
        assert_eq!(qos_for(1, 16), 1, "far above what is wanted: lowered");
        assert_eq!(qos_for(100_000, 8), u16::MAX, "capped");
        assert_eq!(qos_for(0, 0), 1);
    }
}
