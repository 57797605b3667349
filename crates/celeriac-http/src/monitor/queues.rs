//! Queues: which ones to watch and their sampled depths.
//!
//! The names come from the configuration (the default queue and `--queue`
//! flags), from sends through this API, from `task-sent` events and from
//! dead letters. A sampler reads every depth periodically
//! ([`crate::background`]); each queue keeps its last [`HISTORY`] samples,
//! from which the dashboard draws a sparkline and the rate (change of depth
//! per second) is computed.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use crate::views::QueueView;

/// Samples kept per queue.
pub(crate) const HISTORY: usize = 60;
/// At most this many queue names are tracked (names come from clients).
const MAX_QUEUES: usize = 200;

#[derive(Debug, Default)]
struct QueueRecord {
    history: VecDeque<u64>,
    last: Option<(Instant, u64)>,
    rate: f64,
    error: Option<String>,
}

/// The watched queues and their samples.
#[derive(Debug, Default)]
pub(crate) struct QueueTable {
    queues: BTreeMap<String, QueueRecord>,
}

impl QueueTable {
    /// Watch `name` (no-op if already watched or too many are).
    pub(crate) fn watch(&mut self, name: &str) {
        if name.is_empty() || self.queues.contains_key(name) || self.queues.len() >= MAX_QUEUES {
            return;
        }
        self.queues.insert(name.to_owned(), QueueRecord::default());
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.queues.keys().cloned().collect()
    }

    /// Record a sample: a depth, or why it could not be read.
    pub(crate) fn sample(&mut self, name: &str, depth: Result<u64, String>) {
        let Some(record) = self.queues.get_mut(name) else {
            return;
        };
        match depth {
            Ok(depth) => {
                let now = Instant::now();
                if let Some((then, before)) = record.last {
                    let dt = now.duration_since(then).as_secs_f64();
                    if dt > 0.0 {
                        record.rate = (depth as f64 - before as f64) / dt;
                    }
                }
                record.last = Some((now, depth));
                record.history.push_back(depth);
                while record.history.len() > HISTORY {
                    record.history.pop_front();
                }
                record.error = None;
            }
            Err(error) => record.error = Some(error),
        }
    }

    pub(crate) fn list(&self) -> Vec<QueueView> {
        self.queues
            .iter()
            .map(|(name, r)| QueueView {
                name: name.clone(),
                depth: r.last.map(|(_, d)| d),
                rate: r.rate,
                history: r.history.iter().copied().collect(),
                error: r.error.clone(),
            })
            .collect()
    }

    /// Messages waiting in all queues, at the last samples.
    pub(crate) fn total(&self) -> u64 {
        self.queues
            .values()
            .filter_map(|r| r.last.map(|(_, d)| d))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_build_history() {
        let mut table = QueueTable::default();
        table.watch("celery");
        table.watch("celery");
        table.sample("celery", Ok(3));
        table.sample("celery", Ok(5));
        table.sample("other", Ok(1));
        let list = table.list();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].history, vec![3, 5]);
        assert_eq!(list[0].depth, Some(5));
        assert_eq!(table.total(), 5);
        table.sample("celery", Err("down".into()));
        assert_eq!(table.list()[0].error.as_deref(), Some("down"));
    }
}
