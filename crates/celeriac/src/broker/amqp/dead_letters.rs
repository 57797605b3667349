//! Dead letters on AMQP: the durable queue `celeriac.dead_letter`.
//!
//! Each dead letter is one message: the body is the refused message as the
//! worker saw it (the kombu envelope, capped at
//! [`crate::broker::dead_letters::MAX_STORED_PAYLOAD`]), and the header
//! `x-celeriac-dead-letter` holds its [`DeadLetterInfo`] as JSON. The
//! count is the queue's message count (one passive declare). Listing and
//! fetching read the queue with `basic_get` on a channel of their own and
//! never acknowledge, so closing that channel puts every letter back
//! (RabbitMQ marks them redelivered; nothing else changes). Requeueing
//! acknowledges the one letter it republished. Reads stop after
//! [`SCAN_LIMIT`] letters.

use async_trait::async_trait;
use lapin::options::{BasicAckOptions, BasicGetOptions, QueuePurgeOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel};

use super::{wire, AmqpBroker, Inner};
use crate::broker::dead_letters::{describe, truncated_refusal};
use crate::broker::{DeadLetterInfo, DeadLetters, Delivery};
use crate::{Error, Result};

/// The queue dead letters live in.
pub(super) const QUEUE: &str = "celeriac.dead_letter";
/// The header holding a dead letter's metadata.
const INFO_HEADER: &str = "x-celeriac-dead-letter";
/// The most dead letters one listing or search reads.
pub(super) const SCAN_LIMIT: usize = 10_000;

#[async_trait]
impl DeadLetters for AmqpBroker {
    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<()> {
        put(&self.inner, delivery, reason).await
    }

    async fn count(&self) -> Result<u64> {
        count(&self.inner).await
    }

    async fn page(&self, offset: usize, limit: usize) -> Result<Vec<DeadLetterInfo>> {
        page(&self.inner, offset, limit).await
    }

    async fn fetch(&self, id: &str) -> Result<Option<(DeadLetterInfo, Vec<u8>)>> {
        fetch(&self.inner, id).await
    }

    async fn requeue(&self, id: &str) -> Result<bool> {
        requeue(&self.inner, id).await
    }

    async fn purge(&self) -> Result<u64> {
        purge(&self.inner).await
    }
}

/// Move a reserved message to the dead letters, then acknowledge it.
async fn put(inner: &Inner, delivery: &Delivery, reason: &str) -> Result<()> {
    let Some(received) = inner.take_pending(&delivery.tag) else {
        // Its channel closed; RabbitMQ gave it back and it will be refused again.
        return Ok(());
    };
    let (info, stored) = describe(&delivery.queue, reason, &delivery.payload);
    let session = inner.session().await?;
    session.declare_own(QUEUE, FieldTable::default()).await?;
    let mut headers = FieldTable::default();
    headers.insert(
        INFO_HEADER.into(),
        AMQPValue::LongString(LongString::from(info.to_json().into_bytes())),
    );
    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_headers(headers);
    if let Err(err) = inner
        .publish_confirmed(&session, "", QUEUE, &stored, properties)
        .await
    {
        // Not stored: give it back rather than lose it.
        let _ = super::consume::reject(inner, &received).await;
        return Err(err);
    }
    inner
        .ack_alone(&received, "acknowledging a dead-lettered message")
        .await
}

/// How many dead letters there are.
async fn count(inner: &Inner) -> Result<u64> {
    let session = inner.session().await?;
    let count = session.message_count(&QUEUE.into()).await?;
    Ok(u64::from(count.unwrap_or(0)))
}

/// A channel to read the dead letters on; closing it puts back what it read.
async fn reader(inner: &Inner) -> Result<Option<Channel>> {
    let session = inner.session().await?;
    if !session.exists(&QUEUE.into()).await? {
        return Ok(None);
    }
    Ok(Some(session.side_channel().await?))
}

/// One letter read (not acknowledged): its metadata, payload and the
/// delivery to acknowledge it by.
struct Letter {
    info: DeadLetterInfo,
    payload: Vec<u8>,
    delivery: lapin::message::Delivery,
}

async fn next(channel: &Channel) -> Result<Option<Letter>> {
    let got = channel
        .basic_get(QUEUE.into(), BasicGetOptions { no_ack: false })
        .await
        .map_err(|e| Error::broker("reading dead letters", e))?;
    let Some(got) = got else { return Ok(None) };
    let delivery = got.delivery;
    let info = delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(INFO_HEADER))
        .and_then(|v| match v {
            AMQPValue::LongString(s) => serde_json::from_slice::<DeadLetterInfo>(s.as_bytes()).ok(),
            _ => None,
        })
        .unwrap_or_else(|| describe("unknown", "not a celeriac dead letter", &delivery.data).0);
    Ok(Some(Letter {
        info,
        payload: delivery.data.clone(),
        delivery,
    }))
}

async fn read_all(channel: &Channel) -> Result<Vec<Letter>> {
    let mut letters = Vec::new();
    while letters.len() < SCAN_LIMIT {
        match next(channel).await? {
            Some(letter) => letters.push(letter),
            None => break,
        }
    }
    Ok(letters)
}

/// A page of dead letters, newest first.
async fn page(inner: &Inner, offset: usize, limit: usize) -> Result<Vec<DeadLetterInfo>> {
    let Some(channel) = reader(inner).await? else {
        return Ok(Vec::new());
    };
    let letters = read_all(&channel).await;
    let _ = channel.close(200, "read".into()).await;
    Ok(letters?
        .into_iter()
        .rev()
        .skip(offset)
        .take(limit)
        .map(|l| l.info)
        .collect())
}

/// One dead letter with its payload.
async fn fetch(inner: &Inner, id: &str) -> Result<Option<(DeadLetterInfo, Vec<u8>)>> {
    let Some(channel) = reader(inner).await? else {
        return Ok(None);
    };
    let found = find(&channel, id).await;
    let _ = channel.close(200, "read".into()).await;
    Ok(found?.map(|l| (l.info, l.payload)))
}

async fn find(channel: &Channel, id: &str) -> Result<Option<Letter>> {
    for _ in 0..SCAN_LIMIT {
        match next(channel).await? {
            Some(letter) if letter.info.id == id => return Ok(Some(letter)),
            Some(_) => {}
            None => break,
        }
    }
    Ok(None)
}

/// Put a dead letter's message back on its queue and drop the letter.
async fn requeue(inner: &Inner, id: &str) -> Result<bool> {
    let Some(channel) = reader(inner).await? else {
        return Ok(false);
    };
    let outcome = requeue_on(inner, &channel, id).await;
    let _ = channel.close(200, "requeued".into()).await;
    outcome
}

async fn requeue_on(inner: &Inner, channel: &Channel, id: &str) -> Result<bool> {
    let Some(letter) = find(channel, id).await? else {
        return Ok(false);
    };
    if letter.info.truncated() {
        return Err(truncated_refusal(&letter.info));
    }
    let amqp = wire::from_envelope(&letter.payload)?;
    let session = inner.session().await?;
    session
        .declare_queue(&letter.info.queue, inner.max_priority)
        .await?;
    inner
        .publish_confirmed(
            &session,
            "",
            &letter.info.queue,
            &amqp.body,
            amqp.properties,
        )
        .await?;
    letter
        .delivery
        .acker
        .ack(BasicAckOptions::default())
        .await
        .map_err(|e| Error::broker("removing a requeued dead letter", e))?;
    Ok(true)
}

/// Delete every dead letter.
async fn purge(inner: &Inner) -> Result<u64> {
    let session = inner.session().await?;
    if !session.exists(&QUEUE.into()).await? {
        return Ok(0);
    }
    let channel = session.side_channel().await?;
    let purged = channel
        .queue_purge(QUEUE.into(), QueuePurgeOptions::default())
        .await
        .map_err(|e| Error::broker("purging dead letters", e));
    let _ = channel.close(200, "purged".into()).await;
    Ok(u64::from(purged?))
}
