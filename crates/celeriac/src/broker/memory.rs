//! `memory://`: an in-process broker for tests and single-process use.
//!
//! Same semantics as the durable brokers (priorities, delayed messages,
//! leases with a visibility timeout) so that tests written against it hold
//! for SQLite and Redis too. Nothing survives the process.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::dead_letters::{describe, truncated_refusal, DeadLetterInfo};
use super::{
    priority_step, Broker, DeadLetters, Delivery, OutgoingMessage, QueueAdmin, Revocation,
    Revocations,
};
use crate::Result;

/// An in-memory broker.
pub struct MemoryBroker {
    state: Mutex<State>,
    arrived: Notify,
    visibility_timeout: Duration,
}

#[derive(Default)]
struct State {
    /// Per queue: (priority step, order) → payload. Requeued messages get a
    /// negative order so they go first.
    queues: HashMap<String, BTreeMap<(u8, i64), Stored>>,
    /// Which queue goes first in the next reservation.
    rotation: usize,
    delayed: BTreeMap<(DateTime<Utc>, i64), (String, Stored)>,
    reserved: HashMap<String, Reserved>,
    /// Oldest first: (metadata, stored payload).
    dead: Vec<(DeadLetterInfo, Vec<u8>)>,
    revoked: Vec<Revocation>,
    next_order: i64,
    next_front: i64,
}

#[derive(Clone)]
struct Stored {
    priority: u8,
    payload: Vec<u8>,
    redelivered: bool,
}

struct Reserved {
    queue: String,
    stored: Stored,
    deadline: Instant,
}

impl MemoryBroker {
    /// A broker whose reservations last `visibility_timeout`.
    pub fn new(visibility_timeout: Duration) -> Self {
        MemoryBroker {
            state: Mutex::new(State::default()),
            arrived: Notify::new(),
            visibility_timeout,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the maps half-updated
        // in a way that matters more than losing the process, so recover.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn unix_now() -> f64 {
    Utc::now().timestamp_micros() as f64 / 1e6
}

impl Default for MemoryBroker {
    fn default() -> Self {
        Self::new(Duration::from_secs(3600))
    }
}

impl State {
    fn push_back(&mut self, queue: String, stored: Stored) {
        self.next_order += 1;
        let key = (priority_step(stored.priority), self.next_order);
        self.queues.entry(queue).or_default().insert(key, stored);
    }

    fn push_front(&mut self, queue: String, stored: Stored) {
        self.next_front -= 1;
        let key = (priority_step(stored.priority), self.next_front);
        self.queues.entry(queue).or_default().insert(key, stored);
    }

    /// Move due delayed messages to their queues and expired leases back.
    fn housekeep(&mut self, now: Instant) {
        let wall = Utc::now();
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > wall {
                break;
            }
            let (queue, stored) = entry.remove();
            self.push_back(queue, stored);
        }
        let expired: Vec<String> = self
            .reserved
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(tag, _)| tag.clone())
            .collect();
        for tag in expired {
            if let Some(mut r) = self.reserved.remove(&tag) {
                r.stored.redelivered = true;
                self.push_front(r.queue, r.stored);
            }
        }
    }

    fn take(&mut self, queues: &[String], max: usize, lease: Duration) -> Vec<Delivery> {
        let mut out = Vec::new();
        // Highest priority first; between queues, the order rotates from
        // one reservation to the next (kombu's queue cycle), so a backlog
        // on one queue cannot starve another.
        self.rotation = self.rotation.wrapping_add(1);
        let first_queue = self.rotation % queues.len().max(1);
        while out.len() < max {
            let best = queues
                .iter()
                .enumerate()
                .filter_map(|(i, q)| {
                    let first = self.queues.get(q)?.keys().next()?;
                    let turn = (i + queues.len() - first_queue) % queues.len();
                    Some(((first.0, turn, first.1), *first, q))
                })
                .min();
            let Some((_, key, queue)) = best else { break };
            let queue = queue.clone();
            let Some(stored) = self.queues.get_mut(&queue).and_then(|m| m.remove(&key)) else {
                break;
            };
            let tag = uuid::Uuid::new_v4().to_string();
            out.push(Delivery {
                tag: tag.clone(),
                queue: queue.clone(),
                payload: stored.payload.clone(),
                redelivered: stored.redelivered,
            });
            self.reserved.insert(
                tag,
                Reserved {
                    queue,
                    stored,
                    deadline: crate::deadline(lease),
                },
            );
        }
        out
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn publish(&self, message: OutgoingMessage) -> Result<()> {
        let stored = Stored {
            priority: message.priority,
            payload: message.payload,
            redelivered: false,
        };
        {
            let mut state = self.lock();
            match message.not_before {
                Some(at) if at > Utc::now() => {
                    state.next_order += 1;
                    let order = state.next_order;
                    state.delayed.insert((at, order), (message.queue, stored));
                }
                _ => state.push_back(message.queue, stored),
            }
        }
        self.arrived.notify_waiters();
        Ok(())
    }

    async fn reserve(
        &self,
        queues: &[String],
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>> {
        let deadline = crate::deadline(wait);
        loop {
            let notified = self.arrived.notified();
            {
                let mut state = self.lock();
                state.housekeep(Instant::now());
                let got = state.take(queues, max, self.visibility_timeout);
                if !got.is_empty() {
                    return Ok(got);
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            // Wake for new messages, or every 50 ms for due ETAs and leases.
            let nap = (deadline - now).min(Duration::from_millis(50));
            let _ = tokio::time::timeout(nap, notified).await;
        }
    }

    async fn ack(&self, tag: &str) -> Result<()> {
        self.lock().reserved.remove(tag);
        Ok(())
    }

    async fn requeue(&self, tag: &str) -> Result<()> {
        {
            let mut state = self.lock();
            if let Some(r) = state.reserved.remove(tag) {
                state.push_front(r.queue, r.stored);
            }
        }
        self.arrived.notify_waiters();
        Ok(())
    }

    async fn defer(&self, tag: &str, until: DateTime<Utc>) -> Result<()> {
        let mut state = self.lock();
        if let Some(r) = state.reserved.remove(tag) {
            state.next_order += 1;
            let order = state.next_order;
            state.delayed.insert((until, order), (r.queue, r.stored));
        }
        Ok(())
    }

    async fn extend(&self, tag: &str) -> Result<()> {
        let lease = self.visibility_timeout;
        if let Some(r) = self.lock().reserved.get_mut(tag) {
            r.deadline = crate::deadline(lease);
        }
        Ok(())
    }

    fn visibility_timeout(&self) -> Duration {
        self.visibility_timeout
    }

    fn dead_letters(&self) -> &dyn DeadLetters {
        self
    }

    fn revocations(&self) -> &dyn Revocations {
        self
    }

    fn queues(&self) -> &dyn QueueAdmin {
        self
    }
}

#[async_trait]
impl DeadLetters for MemoryBroker {
    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<()> {
        let letter = describe(&delivery.queue, reason, &delivery.payload);
        let mut state = self.lock();
        state.reserved.remove(&delivery.tag);
        state.dead.push(letter);
        Ok(())
    }

    async fn count(&self) -> Result<u64> {
        Ok(self.lock().dead.len() as u64)
    }

    async fn page(&self, offset: usize, limit: usize) -> Result<Vec<DeadLetterInfo>> {
        let state = self.lock();
        Ok(state
            .dead
            .iter()
            .rev()
            .skip(offset)
            .take(limit)
            .map(|(info, _)| info.clone())
            .collect())
    }

    async fn fetch(&self, id: &str) -> Result<Option<(DeadLetterInfo, Vec<u8>)>> {
        let state = self.lock();
        Ok(state.dead.iter().find(|(info, _)| info.id == id).cloned())
    }

    async fn requeue(&self, id: &str) -> Result<bool> {
        {
            let mut state = self.lock();
            let Some(i) = state.dead.iter().position(|(info, _)| info.id == id) else {
                return Ok(false);
            };
            if state.dead[i].0.truncated() {
                return Err(truncated_refusal(&state.dead[i].0));
            }
            let (info, payload) = state.dead.remove(i);
            let stored = Stored {
                priority: 0,
                payload,
                redelivered: false,
            };
            state.push_back(info.queue, stored);
        }
        self.arrived.notify_waiters();
        Ok(true)
    }

    async fn purge(&self) -> Result<u64> {
        let mut state = self.lock();
        let n = state.dead.len() as u64;
        state.dead.clear();
        Ok(n)
    }
}

#[async_trait]
impl Revocations for MemoryBroker {
    async fn revoke(&self, task_ids: &[String], terminate: bool, ttl: Duration) -> Result<()> {
        let now = unix_now();
        let mut state = self.lock();
        state.revoked.retain(|r| r.at > now - ttl.as_secs_f64());
        for id in task_ids {
            state.revoked.push(Revocation {
                task_id: id.clone(),
                at: now,
                terminate,
            });
        }
        Ok(())
    }

    async fn revoked_since(&self, since: f64) -> Result<Vec<Revocation>> {
        let state = self.lock();
        Ok(state
            .revoked
            .iter()
            .filter(|r| r.at > since)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl QueueAdmin for MemoryBroker {
    async fn depth(&self, queue: &str) -> Result<u64> {
        Ok(self.lock().queues.get(queue).map_or(0, |q| q.len() as u64))
    }

    async fn names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self.lock().queues.keys().cloned().collect();
        names.sort_unstable();
        Ok(names)
    }

    async fn delayed(&self, limit: usize) -> Result<Vec<super::DelayedInfo>> {
        let state = self.lock();
        Ok(state
            .delayed
            .iter()
            .take(limit)
            .map(|((eta, _), (queue, stored))| {
                super::DelayedInfo::read(queue.clone(), *eta, stored.payload.clone())
            })
            .collect())
    }

    async fn purge(&self, queue: &str) -> Result<u64> {
        let mut state = self.lock();
        let ready = state.queues.remove(queue).map_or(0, |q| q.len() as u64);
        let before = state.delayed.len();
        state.delayed.retain(|_, (q, _)| q != queue);
        Ok(ready + (before - state.delayed.len()) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(queue: &str, priority: u8, body: &str) -> OutgoingMessage {
        OutgoingMessage {
            queue: queue.into(),
            priority,
            not_before: None,
            payload: body.as_bytes().to_vec(),
        }
    }

    #[tokio::test]
    async fn higher_priority_first_then_fifo() -> Result<()> {
        let broker = MemoryBroker::default();
        for (p, body) in [(9, "low"), (0, "high-1"), (0, "high-2"), (3, "mid")] {
            broker.publish(message("celery", p, body)).await?;
        }
        let queues = vec!["celery".to_string()];
        let got = broker.reserve(&queues, 10, Duration::ZERO).await?;
        let order: Vec<_> = got.iter().map(|d| d.payload.as_slice()).collect();
        assert_eq!(order, vec![&b"high-1"[..], b"high-2", b"mid", b"low"]);
        Ok(())
    }

    #[tokio::test]
    async fn unacked_messages_come_back_after_the_visibility_timeout() -> Result<()> {
        let broker = MemoryBroker::new(Duration::from_millis(20));
        broker.publish(message("q", 0, "x")).await?;
        let queues = vec!["q".to_string()];
        let first = broker.reserve(&queues, 1, Duration::ZERO).await?;
        assert_eq!(first.len(), 1);
        assert!(!first[0].redelivered);
        let again = broker.reserve(&queues, 1, Duration::from_secs(2)).await?;
        assert_eq!(again.len(), 1);
        assert!(again[0].redelivered);
        broker.ack(&again[0].tag).await?;
        let none = broker
            .reserve(&queues, 1, Duration::from_millis(60))
            .await?;
        assert!(none.is_empty());
        Ok(())
    }
}
