//! The beat loop: wake when a run is due, claim it, send it, sleep again.
//!
//! 1. [`Clock`]: where "now" comes from — the system clock, or tokio's
//!    (pausable) clock for tests.
//! 2. [`Scheduler::run`]: for each entry, read its last tick from the store
//!    (creating it at "now" the first time); whenever a tick is due, claim
//!    the latest due one and, if this beat won, send it; then sleep until
//!    the earliest next tick plus a small random jitter, or until shutdown.
//! 3. Failures of the store or broker are logged and retried with backoff
//!    per entry; they never stop the loop. A tick that could not be claimed
//!    stays due, so it is sent once the store is back (under the entry's
//!    catch-up policy).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::store::{Claim, Store};
use super::{BeatError, BeatOptions, CatchUp, ScheduleEntry};
use crate::broker::OutgoingMessage;
use crate::shutdown::Shutdown;
use crate::App;

/// The longest single sleep: the loop re-reads the clock at least this often,
/// so a wall-clock step (NTP, a suspended laptop) is noticed.
const MAX_NAP: Duration = Duration::from_secs(30);
/// First and largest pause after a store error, per entry.
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Where the beat reads the time.
///
/// [`Clock::system`] in production. [`Clock::tokio_anchored`] reads tokio's
/// clock from a fixed start, so a test on a runtime with paused time
/// (`#[tokio::test(start_paused = true)]`) controls the beat's "now".
#[derive(Debug, Clone, Default)]
pub struct Clock {
    anchor: Option<(DateTime<Utc>, tokio::time::Instant)>,
}

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Clock {
        Clock { anchor: None }
    }

    /// `start` plus the tokio time elapsed since this call.
    pub fn tokio_anchored(start: DateTime<Utc>) -> Clock {
        Clock {
            anchor: Some((start, tokio::time::Instant::now())),
        }
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        match self.anchor {
            None => Utc::now(),
            Some((start, at)) => {
                let elapsed = chrono::Duration::from_std(at.elapsed()).unwrap_or_default();
                start + elapsed
            }
        }
    }
}

/// What every entry's step needs.
struct Context {
    app: App,
    store: Arc<dyn Store>,
    options: BeatOptions,
    /// `pid@host`, recorded with each claim.
    by: String,
}

/// One entry and what this beat knows of it.
struct Slot {
    entry: ScheduleEntry,
    /// The last tick handled by any beat; `None` until read from the store.
    last: Option<DateTime<Utc>>,
    /// After a store error: do nothing for this entry before this time.
    retry_at: Option<DateTime<Utc>>,
    backoff: Duration,
}

/// The beat loop over a fixed set of entries.
pub(crate) struct Scheduler {
    ctx: Context,
    slots: Vec<Slot>,
}

impl Scheduler {
    pub(crate) fn new(
        app: App,
        store: Arc<dyn Store>,
        entries: Vec<ScheduleEntry>,
        options: BeatOptions,
    ) -> Self {
        let host = hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".to_owned());
        let slots = entries
            .into_iter()
            .map(|entry| Slot {
                entry,
                last: None,
                retry_at: None,
                backoff: MIN_BACKOFF,
            })
            .collect();
        Scheduler {
            ctx: Context {
                app,
                store,
                options,
                by: format!("{}@{host}", std::process::id()),
            },
            slots,
        }
    }

    /// Run until `shutdown`. Never fails: errors are logged and retried.
    pub(crate) async fn run(mut self, mut shutdown: Shutdown) {
        tracing::info!(
            entries = ?self.slots.iter().map(|s| s.entry.name()).collect::<Vec<_>>(),
            beat = %self.ctx.by,
            "beat ready"
        );
        while !shutdown.is_requested() {
            let now = self.ctx.options.clock.now();
            for slot in &mut self.slots {
                slot.step(&self.ctx, now).await;
            }
            let now = self.ctx.options.clock.now();
            let wake = self.slots.iter().filter_map(|s| s.wake_at(now)).min();
            let nap = wake
                .map(|w| (w - now).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(MAX_NAP)
                .min(MAX_NAP);
            // Sidekiq's poller trick: each beat adds its own random delay,
            // so beats sharing a store do not all hit it in the same
            // millisecond, and which one wins a run varies from run to run.
            // The claim keeps it exactly-once either way.
            let jitter = self.ctx.options.max_jitter.mul_f64(rand::random::<f64>());
            tokio::select! {
                () = tokio::time::sleep(nap + jitter) => {}
                () = shutdown.requested() => break,
            }
        }
        tracing::info!(beat = %self.ctx.by, "beat stopped");
    }
}

impl Slot {
    /// When this entry next needs attention, if ever.
    fn wake_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if let Some(retry) = self.retry_at {
            return Some(retry);
        }
        match self.last {
            None => Some(now),
            Some(last) => self.entry.schedule().next_after(last),
        }
    }

    /// Handle the entry at `now`: claim and send a due run, if any.
    async fn step(&mut self, ctx: &Context, now: DateTime<Utc>) {
        if self.retry_at.is_some_and(|r| r > now) {
            return;
        }
        self.retry_at = None;
        let name = self.entry.name().to_owned();
        let last = match self.last {
            Some(last) => last,
            None => match ctx.store.last_or_init(&name, now).await {
                Ok(last) => {
                    tracing::debug!(entry = %name, last = %last, "entry loaded");
                    self.last = Some(last);
                    last
                }
                Err(e) => return self.failed(now, &e),
            },
        };
        let schedule = self.entry.schedule();
        let Some(next) = schedule.next_after(last).filter(|n| *n <= now) else {
            return;
        };
        let tick = schedule.latest_due(last, now).unwrap_or(next);
        let missed = tick > next;
        let send = match self.entry.catch_up_policy() {
            CatchUp::Once => true,
            CatchUp::Skip => (now - tick).to_std().unwrap_or_default() <= ctx.options.grace,
        };
        let message: Option<(String, OutgoingMessage)> = if send {
            match self.entry.message(&ctx.app, tick) {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::error!(entry = %name, tick = %tick, "cannot build the run's message, skipping it: {e}");
                    None
                }
            }
        } else {
            None
        };
        let claim = Claim {
            entry: &name,
            tick,
            task_id: message.as_ref().map_or("", |(id, _)| id.as_str()),
            by: &ctx.by,
            message: message.as_ref().map(|(_, m)| m),
        };
        let won = match ctx.store.claim(claim).await {
            Ok(won) => won,
            Err(e) => return self.failed(now, &e),
        };
        self.last = Some(tick);
        self.backoff = MIN_BACKOFF;
        if !won {
            tracing::debug!(entry = %name, tick = %tick, "run already claimed by another beat");
            return;
        }
        let Some((task_id, outgoing)) = message else {
            if !send {
                tracing::info!(entry = %name, tick = %tick, since = %last, "missed runs skipped (catch_up = skip)");
            }
            return;
        };
        if !ctx.store.publishes() {
            if let Err(e) = publish(ctx, outgoing).await {
                // Claimed but not sent: the one way a run is lost, and only
                // when the store cannot publish inside the claim.
                tracing::error!(entry = %name, tick = %tick, task_id = %task_id, "run claimed but NOT sent, it is lost: {e}");
                return;
            }
        }
        tracing::info!(
            entry = %name,
            task = %self.entry.task(),
            tick = %tick,
            task_id = %task_id,
            caught_up = missed,
            "sent"
        );
    }

    fn failed(&mut self, now: DateTime<Utc>, error: &BeatError) {
        tracing::warn!(entry = %self.entry.name(), retry_in = ?self.backoff, "beat store unavailable: {error}");
        let backoff = chrono::Duration::from_std(self.backoff).unwrap_or_default();
        self.retry_at = Some(now + backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }
}

/// Publish through the app's broker, retrying a few times: this beat holds
/// the claim, so no other beat will send the run.
async fn publish(ctx: &Context, message: OutgoingMessage) -> Result<(), BeatError> {
    let mut pause = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        match ctx.app.broker().publish(message.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 5 => {
                tracing::warn!(attempt, "publishing a beat run failed, retrying: {e}");
                tokio::time::sleep(pause).await;
                pause *= 2;
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
