//! The events a worker sends, as a Celery worker sends them.
//!
//! 1. Worker events (`worker-online`, `worker-heartbeat` every 2 s,
//!    `worker-offline`) are always sent, like Celery's, so monitors see
//!    every worker.
//! 2. Task events (`task-received`, `-started`, `-succeeded`, `-failed`,
//!    `-retried`, `-revoked`, `-rejected`) only while enabled: by the
//!    worker's `send_events` option (`-E`) or a monitor's `enable_events`.
//! 3. A Lamport clock stamps every event.
//!
//! A failed publish is logged at debug level and dropped: monitoring must
//! never slow down or stop task execution.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::events::EventBus;
use crate::protocol::Event;

/// Seconds between heartbeats (Celery's default).
pub(crate) const HEARTBEAT_FREQ: f64 = 2.0;

pub(crate) struct WorkerEvents {
    bus: Arc<dyn EventBus>,
    hostname: String,
    clock: AtomicU64,
    task_events: AtomicBool,
}

impl WorkerEvents {
    pub(crate) fn new(bus: Arc<dyn EventBus>, hostname: &str, task_events: bool) -> Self {
        WorkerEvents {
            bus,
            hostname: hostname.to_owned(),
            clock: AtomicU64::new(0),
            task_events: AtomicBool::new(task_events),
        }
    }

    /// Turn task events on or off (remote `enable_events`/`disable_events`).
    pub(crate) fn set_task_events(&self, on: bool) {
        self.task_events.store(on, Ordering::Relaxed);
    }

    pub(crate) fn task_events_enabled(&self) -> bool {
        self.task_events.load(Ordering::Relaxed)
    }

    fn event(&self, kind: &str) -> Event {
        let clock = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
        Event::new(kind, &self.hostname, clock)
    }

    async fn send(&self, event: Event) {
        if let Err(err) = self.bus.publish(&event).await {
            tracing::debug!(error = %err, kind = event.kind(), "could not send an event");
        }
    }

    /// `worker-online`, `worker-heartbeat` or `worker-offline`.
    pub(crate) async fn worker(&self, kind: &str, active: u64, processed: u64) {
        let event = self
            .event(kind)
            .with("freq", HEARTBEAT_FREQ)
            .with("active", active)
            .with("processed", processed)
            .with("loadavg", loadavg())
            .with("sw_ident", "celeriac")
            .with("sw_ver", env!("CARGO_PKG_VERSION"))
            .with("sw_sys", std::env::consts::OS);
        self.send(event).await;
    }

    /// A task event with `fields`, when task events are on.
    pub(crate) async fn task(&self, kind: &str, task_id: &str, fields: Vec<(&str, Value)>) {
        if !self.task_events_enabled() {
            return;
        }
        let mut event = self.event(kind).with("uuid", task_id);
        for (key, value) in fields {
            event = event.with(key, value);
        }
        self.send(event).await;
    }

    /// Heartbeats every [`HEARTBEAT_FREQ`] seconds until dropped.
    pub(crate) fn spawn_heartbeats(
        self: &Arc<Self>,
        stats: Arc<super::WorkerStats>,
    ) -> tokio::task::JoinHandle<()> {
        let events = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(HEARTBEAT_FREQ));
            tick.tick().await;
            loop {
                tick.tick().await;
                let active = stats.active.load(Ordering::Relaxed);
                let processed = stats.processed.load(Ordering::Relaxed);
                events.worker("worker-heartbeat", active, processed).await;
            }
        })
    }
}

/// The 1, 5 and 15 minute load averages, as Celery reports them.
fn loadavg() -> Value {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let values: Vec<Value> = text
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse::<f64>().ok())
        .map(Value::from)
        .collect();
    if values.len() == 3 {
        Value::Array(values)
    } else {
        Value::Array(vec![0.0.into(), 0.0.into(), 0.0.into()])
    }
}
