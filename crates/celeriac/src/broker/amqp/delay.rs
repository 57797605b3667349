//! ETA and countdown on AMQP, without holding messages forever.
//!
//! Celery's workers keep a message whose ETA is not due unacknowledged in
//! memory until it is. Celeriac does the same for a message due within
//! [`HOLD_WINDOW`], at most [`HOLD_MAX`] at a time: it stays reserved on
//! RabbitMQ (a crash gives it back at once) and is handed to the worker
//! again when due.
//!
//! A message due later *hops*: it is republished, unchanged, to the delay
//! queue `celeriac.delay.<ms>` whose `x-message-ttl` is the largest power
//! of two milliseconds not above the time left (capped at 2^31 ms), and
//! only then acknowledged. Each delay queue is reached through a fanout
//! exchange of the same name and dead-letters to the default exchange, so
//! when the TTL passes RabbitMQ moves the message back to the queue named
//! by its routing key: its own. All messages in one delay queue share one
//! TTL, so they expire in order (no head-of-line blocking); each hop at
//! least halves the time left. Python workers that receive a message after
//! a hop hold it until due, as usual.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::ExchangeKind;
use tokio::sync::Notify;

use super::session::Session;
use super::{wire, Inner, Received};
use crate::{Error, Result};

/// Messages due sooner than this are held in memory.
pub(super) const HOLD_WINDOW: Duration = Duration::from_secs(60);
/// At most this many ETA messages are held at once.
pub(super) const HOLD_MAX: usize = 4096;
/// The longest delay queue: 2^31 ms, about 24.9 days.
const MAX_BUCKET_MS: u64 = 1 << 31;

struct Held {
    due: DateTime<Utc>,
    seq: u64,
    received: Received,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// ETA messages held unacknowledged until due, earliest first.
#[derive(Default)]
pub(super) struct Holds {
    heap: Mutex<BinaryHeap<Reverse<Held>>>,
    seq: AtomicU64,
    changed: Arc<Notify>,
}

impl Holds {
    fn heap(&self) -> std::sync::MutexGuard<'_, BinaryHeap<Reverse<Held>>> {
        self.heap.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many are held.
    pub(super) fn len(&self) -> usize {
        self.heap().len()
    }

    fn hold(&self, due: DateTime<Utc>, received: Received) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.heap().push(Reverse(Held { due, seq, received }));
        self.changed.notify_one();
    }

    /// Drop what an earlier session delivered: RabbitMQ requeued it when
    /// that session's channel closed.
    pub(super) fn forget_older_than(&self, generation: u64) {
        self.heap()
            .retain(|h| h.0.received.generation >= generation);
    }

    /// The due messages, and when the next one is due.
    fn take_due(&self, now: DateTime<Utc>) -> (Vec<Received>, Option<DateTime<Utc>>) {
        let mut heap = self.heap();
        let mut due = Vec::new();
        while heap.peek().is_some_and(|h| h.0.due <= now) {
            if let Some(Reverse(held)) = heap.pop() {
                due.push(held.received);
            }
        }
        (due, heap.peek().map(|h| h.0.due))
    }
}

/// The task that hands held messages back to [`super::consume::reserve`]
/// when due; it ends with the broker.
pub(super) fn spawn_timer(inner: &Arc<Inner>) {
    let weak: Weak<Inner> = Arc::downgrade(inner);
    tokio::spawn(async move {
        loop {
            let Some(inner) = weak.upgrade() else { return };
            let (due, next) = inner.holds.take_due(Utc::now());
            for received in due {
                let _ = inner.ready_tx.send(received);
            }
            let pause = next
                .map(|at| (at - Utc::now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            let changed = Arc::clone(&inner.holds.changed);
            drop(inner);
            tokio::select! {
                _ = changed.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    });
}

/// Settle a reservation whose ETA is `until`: hold it, or send it through
/// the delay queues.
pub(super) async fn defer(inner: &Inner, tag: &str, until: DateTime<Utc>) -> Result<()> {
    let Some(received) = inner.take_pending(tag) else {
        return Ok(());
    };
    let left = (until - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    if left <= HOLD_WINDOW && inner.holds.len() < HOLD_MAX {
        inner.holds.hold(until, received);
        return Ok(());
    }
    match hop(inner, &received, left).await {
        Ok(()) => {
            inner
                .ack_alone(&received, "acknowledging a delayed message")
                .await
        }
        Err(err) => {
            // Still unacknowledged: hold it rather than lose track of it;
            // should this process die, RabbitMQ gives it back.
            tracing::warn!(error = %err, "could not move a delayed message to a delay queue; holding it");
            inner.holds.hold(until, received);
            Ok(())
        }
    }
}

/// The delay queue for `left`: the largest power of two milliseconds not
/// above it (at least 1 ms, at most [`MAX_BUCKET_MS`]).
pub(super) fn bucket_ms(left: Duration) -> u64 {
    let ms = u64::try_from(left.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_BUCKET_MS);
    1 << (63 - ms.leading_zeros())
}

async fn hop(inner: &Inner, received: &Received, left: Duration) -> Result<()> {
    let session = inner.session().await?;
    if session.generation != received.generation {
        return Err(Error::broker(
            "delaying a message",
            "the channel that delivered it is closed",
        ));
    }
    let bucket = bucket_ms(left);
    let name = format!("celeriac.delay.{bucket}");
    declare_delay_queue(&session, &name, bucket).await?;
    let d = &received.delivery;
    inner
        .publish_confirmed(
            &session,
            &name,
            &received.queue,
            &d.data,
            d.properties.clone(),
        )
        .await
}

async fn declare_delay_queue(session: &Session, name: &str, bucket: u64) -> Result<()> {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-message-ttl".into(),
        AMQPValue::LongLongInt(i64::try_from(bucket).unwrap_or(i64::MAX)),
    );
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(LongString::from(Vec::new())),
    );
    session.declare_own(name, arguments).await?;
    let exchange = format!("exchange:{name}");
    if session
        .declared
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&exchange)
    {
        return Ok(());
    }
    let short = wire::short("exchange name", name)?;
    session
        .publish
        .exchange_declare(
            short.clone(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| session.failed("declaring a delay exchange", e))?;
    session
        .publish
        .queue_bind(
            short.clone(),
            short,
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| session.failed("binding a delay queue", e))?;
    session
        .declared
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(exchange);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_hop_takes_the_largest_power_of_two_below_the_time_left() {
        assert_eq!(bucket_ms(Duration::from_millis(0)), 1);
        assert_eq!(bucket_ms(Duration::from_millis(1000)), 512);
        assert_eq!(bucket_ms(Duration::from_secs(61)), 32_768);
        assert_eq!(bucket_ms(Duration::from_secs(3600)), 2_097_152);
        assert_eq!(bucket_ms(Duration::from_secs(100 * 86_400)), MAX_BUCKET_MS);
        // The time left after a hop is less than the hop.
        for secs in [61_u64, 100, 1000, 86_400] {
            let left = Duration::from_secs(secs);
            let hop = Duration::from_millis(bucket_ms(left));
            assert!(left - hop < hop);
        }
    }
}
