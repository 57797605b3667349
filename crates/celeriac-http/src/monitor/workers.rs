//! Workers, from their `worker-online`, `worker-heartbeat` and
//! `worker-offline` events.
//!
//! A worker is online while heartbeats keep coming: Celery's rule is "a
//! heartbeat within two heartbeat periods" (`expire_window` 200 %); we add
//! a second of slack for transports that poll (SQLite). The time of arrival
//! here is used, not the worker's clock, so clock skew does not matter.
//! Workers silent for an hour are forgotten.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use celeriac::protocol::Event;
use serde_json::Value;

use crate::views::WorkerView;

const FORGET_AFTER: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
struct WorkerRecord {
    last_seen: Instant,
    offline: bool,
    active: u64,
    processed: u64,
    loadavg: Vec<f64>,
    freq: f64,
    sw_ident: Option<String>,
    sw_ver: Option<String>,
    sw_sys: Option<String>,
    pid: Option<u64>,
}

/// Every worker seen recently, by node name.
#[derive(Debug, Default)]
pub(crate) struct WorkerTable {
    workers: BTreeMap<String, WorkerRecord>,
}

fn text(event: &Event, key: &str) -> Option<String> {
    event
        .fields
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

impl WorkerTable {
    /// Apply a `worker-*` event; returns the worker's new view.
    pub(crate) fn apply(&mut self, event: &Event) -> Option<WorkerView> {
        let offline = match event.kind() {
            "worker-online" | "worker-heartbeat" => false,
            "worker-offline" => true,
            _ => return None,
        };
        let hostname = event.hostname().to_owned();
        let f = &event.fields;
        let record = WorkerRecord {
            last_seen: Instant::now(),
            offline,
            active: f.get("active").and_then(Value::as_u64).unwrap_or(0),
            processed: f.get("processed").and_then(Value::as_u64).unwrap_or(0),
            loadavg: f
                .get("loadavg")
                .and_then(Value::as_array)
                .map(|l| l.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default(),
            freq: f
                .get("freq")
                .and_then(Value::as_f64)
                .filter(|f| f.is_finite() && *f > 0.0)
                .unwrap_or(2.0),
            sw_ident: text(event, "sw_ident"),
            sw_ver: text(event, "sw_ver"),
            sw_sys: text(event, "sw_sys"),
            pid: f.get("pid").and_then(Value::as_u64),
        };
        self.workers.insert(hostname.clone(), record);
        self.view(&hostname)
    }

    fn view(&self, hostname: &str) -> Option<WorkerView> {
        let r = self.workers.get(hostname)?;
        let age = r.last_seen.elapsed().as_secs_f64();
        Some(WorkerView {
            hostname: hostname.to_owned(),
            online: !r.offline && age <= r.freq * 2.0 + 1.0,
            last_seen_secs: age,
            active: r.active,
            processed: r.processed,
            loadavg: r.loadavg.clone(),
            freq: r.freq,
            sw_ident: r.sw_ident.clone(),
            sw_ver: r.sw_ver.clone(),
            sw_sys: r.sw_sys.clone(),
            pid: r.pid,
        })
    }

    /// Every worker, by name; forgets those silent for an hour.
    pub(crate) fn list(&mut self) -> Vec<WorkerView> {
        self.workers
            .retain(|_, r| r.last_seen.elapsed() < FORGET_AFTER);
        self.workers
            .keys()
            .filter_map(|name| self.view(name))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_and_offline() {
        let mut table = WorkerTable::default();
        let beat = Event::new("worker-heartbeat", "w1@h", 1)
            .with("freq", 2.0)
            .with("active", 3)
            .with("processed", 10)
            .with("loadavg", serde_json::json!([0.5, 0.25, 0.1]));
        let view = table.apply(&beat).expect("worker");
        assert!(view.online);
        assert_eq!((view.active, view.processed), (3, 10));
        assert_eq!(view.loadavg, vec![0.5, 0.25, 0.1]);
        let off = table
            .apply(&Event::new("worker-offline", "w1@h", 2))
            .expect("worker");
        assert!(!off.online);
        assert_eq!(table.list().len(), 1);
        assert!(table
            .apply(&Event::new("task-started", "w1@h", 3))
            .is_none());
    }
}
