//! Acknowledgements grouped into one `basic.ack(multiple=true)` where AMQP
//! allows it.
//!
//! Acknowledging every delivery with its own frame costs RabbitMQ a frame
//! per task. `multiple=true` acknowledges every delivery of the channel up
//! to a tag, so it may only be used when every delivery at or below that
//! tag is one we are acknowledging now: none still running, held for its
//! ETA, waiting in the reservation channel, or not yet seen. The
//! [`Ledger`] knows that, per session: RabbitMQ numbers a channel's
//! deliveries 1, 2, 3… across all its consumers, so the ledger records
//! every tag as its consumer receives it (which tags are all seen, and
//! which are unsettled); an acknowledgement batch is covered by one
//! `multiple` frame up to the lowest tag that is unsettled or unseen, and
//! the rest of the batch goes one frame each.
//!
//! Acknowledgements are grouped as a commit log groups writes: the first
//! caller to find the queue empty yields once, so acknowledgements made at
//! the same moment join it, then sends them all; every caller waits for
//! the frame that covers its own delivery. A tag settled some other way
//! (rejected, dead-lettered, sent on through a delay queue) is marked
//! settled only once its own frame is on its way, so a later `multiple`
//! never covers it first; one never marked just keeps `multiple` below it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use lapin::options::BasicAckOptions;
use tokio::sync::oneshot;

use super::{Inner, Received};
use crate::{Error, Result};

/// Which deliveries of each session are seen and which are unsettled.
#[derive(Default)]
pub(super) struct Ledger {
    sessions: Mutex<HashMap<u64, Channel>>,
}

/// One consuming channel's deliveries.
#[derive(Default, Debug)]
struct Channel {
    /// Every tag from 1 to this one has been seen.
    seen_through: u64,
    /// Seen tags above `seen_through + 1` (a consumer ran ahead of another).
    seen_ahead: BTreeSet<u64>,
    /// Seen and not settled.
    unsettled: BTreeSet<u64>,
}

impl Channel {
    fn seen(&mut self, tag: u64) {
        self.unsettled.insert(tag);
        if tag == self.seen_through + 1 {
            self.seen_through = tag;
            while self.seen_ahead.remove(&(self.seen_through + 1)) {
                self.seen_through += 1;
            }
        } else if tag > self.seen_through {
            self.seen_ahead.insert(tag);
        }
    }

    /// Take `tags` (being acknowledged now) off the unsettled set and say
    /// up to which tag one `multiple` frame may cover them: below the
    /// lowest tag still unsettled or not yet seen.
    fn settle(&mut self, tags: &[u64]) -> u64 {
        for tag in tags {
            self.unsettled.remove(tag);
        }
        let unseen = self.seen_through + 1;
        let unsettled = self.unsettled.first().copied().unwrap_or(u64::MAX);
        unseen.min(unsettled)
    }
}

impl Ledger {
    fn channels(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Channel>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A consumer of session `generation` received delivery `tag`.
    pub(super) fn seen(&self, generation: u64, tag: u64) {
        self.channels().entry(generation).or_default().seen(tag);
    }

    /// Delivery `tag` was settled by a frame of its own, already sent.
    pub(super) fn settled(&self, generation: u64, tag: u64) {
        if let Some(channel) = self.channels().get_mut(&generation) {
            channel.unsettled.remove(&tag);
        }
    }

    /// Forget the sessions before `generation`: their channels are closed.
    pub(super) fn forget_older_than(&self, generation: u64) {
        self.channels().retain(|g, _| *g >= generation);
    }

    fn settle(&self, generation: u64, tags: &[u64]) -> u64 {
        self.channels().entry(generation).or_default().settle(tags)
    }
}

/// What became of a frame: shared by every caller it covers, so a string.
type FrameOutcome = std::result::Result<(), String>;

/// A delivery to acknowledge and its caller's answer.
type Waiting = (Received, oneshot::Sender<FrameOutcome>);

/// Acknowledgements waiting to be sent, each with its caller's answer.
#[derive(Default)]
pub(super) struct AckQueue {
    waiting: Mutex<Vec<Waiting>>,
    sending: tokio::sync::Mutex<()>,
}

/// Acknowledge `received`, grouped with whatever is acknowledged at the
/// same moment.
pub(super) async fn ack(inner: &Inner, received: Received) -> Result<()> {
    let (answer, answered) = oneshot::channel();
    let lead = {
        let mut waiting = inner.acks.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.push((received, answer));
        waiting.len() == 1
    };
    if lead {
        tokio::task::yield_now().await;
        send_waiting(inner).await;
    }
    match answered.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(reason)) => Err(Error::broker("acknowledging a message", reason)),
        Err(_) => Err(Error::broker(
            "acknowledging a message",
            "the acknowledgement was dropped before it was sent",
        )),
    }
}

/// Send every waiting acknowledgement, one `multiple` frame per session
/// where the ledger allows and one frame each for the rest.
///
/// The frames of one batch are all queued before any is waited for (lapin
/// queues a frame when its future is first polled, in order), so a batch
/// costs one wait, not one per frame; batches go one after another, so a
/// later batch's `multiple` never overtakes an earlier one's single frames.
async fn send_waiting(inner: &Inner) {
    let _one_at_a_time = inner.acks.sending.lock().await;
    let batch = std::mem::take(&mut *inner.acks.waiting.lock().unwrap_or_else(|e| e.into_inner()));
    let mut by_session: HashMap<u64, Vec<Waiting>> = HashMap::new();
    for entry in batch {
        by_session
            .entry(entry.0.generation)
            .or_default()
            .push(entry);
    }
    // (the delivery whose frame to send, multiple?, the callers it answers)
    let mut frames: Vec<(Received, bool, Vec<oneshot::Sender<FrameOutcome>>)> = Vec::new();
    for (generation, mut entries) in by_session {
        entries.sort_by_key(|(r, _)| r.delivery.delivery_tag);
        let tags: Vec<u64> = entries
            .iter()
            .map(|(r, _)| r.delivery.delivery_tag)
            .collect();
        let bound = inner.ledger.settle(generation, &tags);
        let covered = tags.iter().take_while(|t| **t < bound).count();
        let rest = entries.split_off(covered);
        if covered >= 2 {
            let mut answers = Vec::with_capacity(covered);
            let mut last = None;
            for (received, answer) in entries {
                answers.push(answer);
                last = Some(received);
            }
            if let Some(last) = last {
                frames.push((last, true, answers));
            }
        } else {
            frames.extend(entries.into_iter().map(|(r, a)| (r, false, vec![a])));
        }
        frames.extend(rest.into_iter().map(|(r, a)| (r, false, vec![a])));
    }
    let sent = futures::future::join_all(
        frames
            .iter()
            .map(|(received, multiple, _)| frame(received, *multiple)),
    )
    .await;
    for ((_, _, answers), outcome) in frames.into_iter().zip(sent) {
        for answer in answers {
            let _ = answer.send(outcome.clone());
        }
    }
}

/// One `basic.ack` frame; `multiple` covers every delivery up to this one.
async fn frame(received: &Received, multiple: bool) -> FrameOutcome {
    received
        .delivery
        .acker
        .ack(BasicAckOptions { multiple })
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(seen: &[u64]) -> Channel {
        let mut channel = Channel::default();
        for tag in seen {
            channel.seen(*tag);
        }
        channel
    }

    #[test]
    fn a_whole_prefix_is_covered_by_one_frame() {
        let mut c = channel(&[1, 2, 3, 4]);
        // Acknowledging 1–3 with 4 still running: `multiple` up to 3.
        assert_eq!(c.settle(&[1, 2, 3]), 4);
        assert_eq!(c.settle(&[4]), 5, "nothing unsettled, 5 not yet seen");
    }

    #[test]
    fn a_delivery_still_held_bounds_the_frame() {
        let mut c = channel(&[1, 2, 3, 4, 5]);
        // 2 is held for its ETA: only 1 may be covered.
        assert_eq!(c.settle(&[1, 3, 4]), 2);
        assert_eq!(c.settle(&[5]), 2);
        // Settled on its own (e.g. rejected): the way is clear.
        c.unsettled.remove(&2);
        assert_eq!(c.settle(&[]), 6);
    }

    #[test]
    fn a_tag_not_yet_seen_bounds_the_frame() {
        // Two consumers on one channel: 3 arrived before 2.
        let mut c = channel(&[1, 3]);
        assert_eq!(c.seen_through, 1);
        assert_eq!(
            c.settle(&[1, 3]),
            2,
            "2 is unseen: 3 needs a frame of its own"
        );
        c.seen(2);
        assert_eq!(c.seen_through, 3);
        assert_eq!(c.settle(&[2]), 4);
    }

    #[test]
    fn the_ledger_forgets_closed_sessions() {
        let ledger = Ledger::default();
        ledger.seen(1, 1);
        ledger.seen(2, 1);
        ledger.forget_older_than(2);
        assert_eq!(
            ledger.channels().keys().copied().collect::<Vec<_>>(),
            vec![2]
        );
        // A tag settled on its own leaves the unsettled set.
        ledger.seen(2, 2);
        ledger.settled(2, 1);
        assert_eq!(ledger.settle(2, &[]), 2);
    }
}
