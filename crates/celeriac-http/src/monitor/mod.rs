//! The monitor: what the server knows about tasks, workers and queues, and
//! the live updates it pushes to dashboards (Flower's role).
//!
//! 1. Inputs: Celery events ([`Monitor::apply_event`], fed by one
//!    subscription in [`crate::background`]), sends through this API
//!    ([`Monitor::record_sent`]), result documents read from the backend
//!    ([`Monitor::apply_meta`]) and queue-depth samples.
//! 2. State: the recent [`table::TaskTable`] (with how tasks relate:
//!    `groups`), the [`workers::WorkerTable`],
//!    the [`queues::QueueTable`] and the metric counters.
//! 3. Output: every change is broadcast as an [`Update`] (server-sent
//!    events); a slow listener skips updates rather than slowing others.
//!
//! One mutex guards the state; it is never held across an await.

pub(crate) mod groups;
pub(crate) mod query;
pub(crate) mod queues;
pub(crate) mod table;
pub(crate) mod tasks;
pub(crate) mod workers;

use std::sync::{Mutex, MutexGuard};

use celeriac::protocol::{Event, ResultMeta};
use serde_json::{Map, Value};
use tokio::sync::broadcast;

use crate::metrics::{Gauges, TaskStats};
use crate::views::{Overview, QueueView, TaskView, WorkerView};
use table::TaskTable;
use tasks::{SentCall, TaskRecord};

/// A change, pushed to live dashboards.
#[derive(Debug, Clone)]
pub(crate) enum Update {
    /// A task changed.
    Task(Box<TaskView>),
    /// A worker announced itself.
    Worker(WorkerView),
    /// New queue samples, with the dead-letter count.
    Queues {
        queues: Vec<QueueView>,
        dead_letters: usize,
        newest_dead_letter: Option<String>,
    },
    /// A raw Celery event, as received.
    Celery(Map<String, Value>),
}

struct Inner {
    tasks: TaskTable,
    workers: workers::WorkerTable,
    queues: queues::QueueTable,
    stats: TaskStats,
    dead_letters: usize,
}

/// Shared knowledge of the cluster.
pub(crate) struct Monitor {
    inner: Mutex<Inner>,
    updates: broadcast::Sender<Update>,
    /// Woken when a worker comes online (to ask it for task events now).
    pub(crate) worker_online: tokio::sync::Notify,
}

impl Monitor {
    /// A monitor remembering `history` tasks and watching `queues`.
    pub(crate) fn new(history: usize, queues: &[String]) -> Self {
        let mut table = queues::QueueTable::default();
        for queue in queues {
            table.watch(queue);
        }
        Monitor {
            inner: Mutex::new(Inner {
                tasks: TaskTable::new(history),
                workers: workers::WorkerTable::default(),
                queues: table,
                stats: TaskStats::default(),
                dead_letters: 0,
            }),
            updates: broadcast::channel(1024).0,
            worker_online: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, update: Update) {
        // No listener is fine: nobody is watching.
        let _ = self.updates.send(update);
    }

    /// True when a live stream is open (updates are only built then).
    fn watched(&self) -> bool {
        self.updates.receiver_count() > 0
    }

    /// Live updates from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Update> {
        self.updates.subscribe()
    }

    /// Apply one Celery event.
    pub(crate) fn apply_event(&self, event: &Event) {
        if celeriac::control::is_control_event(event.kind()) {
            return;
        }
        if event.kind() == "worker-online" {
            self.worker_online.notify_one();
        }
        let update = {
            let mut inner = self.lock();
            if event.kind().starts_with("worker-") {
                inner.workers.apply(event).map(Update::Worker)
            } else if let Some(id) = event.task_id() {
                if let Some(queue) = event.fields.get("queue").and_then(Value::as_str) {
                    inner.queues.watch(queue);
                }
                let record = inner.tasks.entry(id);
                let state = record.apply_event(event);
                let name = record.view.name.clone().unwrap_or_else(|| "unknown".into());
                let view = self.watched().then(|| record.to_view());
                if let Some(state) = state {
                    let runtime = event.fields.get("runtime").and_then(Value::as_f64);
                    inner.stats.event(&name, state, runtime);
                }
                view.map(|v| Update::Task(Box::new(v)))
            } else {
                None
            }
        };
        if let Some(update) = update {
            self.push(update);
        }
        if self.watched() {
            self.push(Update::Celery(event.fields.clone()));
        }
    }

    /// Remember a task sent through this API, with its exact call.
    pub(crate) fn record_sent(
        &self,
        id: &str,
        name: &str,
        queue: &str,
        call: SentCall,
        reprs: (String, String),
    ) {
        let view = {
            let mut inner = self.lock();
            inner.queues.watch(queue);
            inner.stats.sent(name);
            let record = inner.tasks.entry(id);
            record.view.name = Some(name.to_owned());
            record.view.queue = Some(queue.to_owned());
            record.view.sent_at = Some(chrono::Utc::now().timestamp_micros() as f64 / 1e6);
            record.view.args = Some(Value::Array(call.args.clone()));
            record.view.kwargs = Some(Value::Object(call.kwargs.clone()));
            record.view.argsrepr = Some(reprs.0);
            record.view.kwargsrepr = Some(reprs.1);
            record.call = Some(call);
            self.watched().then(|| record.to_view())
        };
        if let Some(view) = view {
            self.push(Update::Task(Box::new(view)));
        }
    }

    /// Remember that task `id`, sent through this API, is member `index` of
    /// group `group_id` (call before [`Monitor::record_sent`], which
    /// announces it).
    pub(crate) fn record_group_member(&self, id: &str, group_id: &str, index: usize) {
        let mut inner = self.lock();
        let record = inner.tasks.entry(id);
        record.view.group_id = Some(group_id.to_owned());
        record.view.group_index = i64::try_from(index).ok();
    }

    /// The members of `group_id` seen so far, in group order, and the
    /// chord body's id when the group is a chord's header.
    pub(crate) fn group_members(&self, group_id: &str) -> (Vec<TaskView>, Option<String>) {
        groups::members(&self.lock().tasks, group_id)
    }

    /// Mark a task REVOKED unless it finished; returns its state after.
    pub(crate) fn mark_revoked(&self, id: &str) -> String {
        let (state, view) = {
            let mut inner = self.lock();
            let record = inner.tasks.entry(id);
            let changed = record.set_state("REVOKED");
            (record.view.state.clone(), changed.then(|| record.to_view()))
        };
        if let Some(view) = view {
            self.push(Update::Task(Box::new(view)));
        }
        state
    }

    /// Apply the backend's document for `id` (read by a poll).
    pub(crate) fn apply_meta(&self, id: &str, meta: Option<&ResultMeta>) {
        let view = {
            let mut inner = self.lock();
            let Some(record) = inner.tasks.get_mut(id) else {
                return;
            };
            let before = (
                record.view.state.clone(),
                record.view.progress,
                record.view.name.clone(),
                record.view.result.clone(),
            );
            record.apply_meta(meta);
            let after = (
                record.view.state.clone(),
                record.view.progress,
                record.view.name.clone(),
                record.view.result.clone(),
            );
            (before != after).then(|| record.to_view())
        };
        if let Some(view) = view {
            self.push(Update::Task(Box::new(view)));
        }
    }

    /// A copy of the record for `id`, if the monitor has one.
    pub(crate) fn task(&self, id: &str) -> Option<TaskRecord> {
        self.lock().tasks.get(id).cloned()
    }

    /// The view of `id` merged with its backend document: the document
    /// (fresh) applied over what events and sends told.
    pub(crate) fn view_with(&self, id: &str, meta: Option<&ResultMeta>) -> TaskView {
        let mut record = self.task(id).unwrap_or_else(|| {
            let mut r = TaskRecord::new(id);
            r.view.known = meta.is_some();
            r
        });
        record.apply_meta(meta);
        record.to_view()
    }

    /// One page of the tasks matching `query`, how many matched, and how
    /// many are remembered in all.
    pub(crate) fn list(&self, query: &query::Query) -> (Vec<TaskView>, usize, usize) {
        let mut inner = self.lock();
        let (page, total) = query::run(&mut inner.tasks, query);
        (page, total, inner.tasks.len())
    }

    /// How many of the remembered tasks `worker` ran, by state.
    pub(crate) fn worker_task_counts(
        &self,
        worker: &str,
    ) -> std::collections::BTreeMap<String, u64> {
        let inner = self.lock();
        let mut counts = std::collections::BTreeMap::new();
        for record in inner.tasks.newest() {
            if record.view.worker.as_deref() == Some(worker) {
                *counts.entry(record.view.state.clone()).or_insert(0) += 1;
            }
        }
        counts
    }

    /// The heartbeat view of `hostname`, if it was seen.
    pub(crate) fn worker(&self, hostname: &str) -> Option<WorkerView> {
        self.lock()
            .workers
            .list()
            .into_iter()
            .find(|w| w.hostname == hostname)
    }

    /// Unfinished tasks to read from the backend now.
    pub(crate) fn due_for_poll(&self, max: usize, min_age: std::time::Duration) -> Vec<String> {
        self.lock().tasks.due_for_poll(max, min_age)
    }

    /// Every worker seen recently.
    pub(crate) fn workers(&self) -> Vec<WorkerView> {
        self.lock().workers.list()
    }

    /// Watch one more queue.
    pub(crate) fn watch_queue(&self, name: &str) {
        self.lock().queues.watch(name);
    }

    /// The watched queue names.
    pub(crate) fn queue_names(&self) -> Vec<String> {
        self.lock().queues.names()
    }

    /// Record depth samples and the dead-letter count, and push them.
    pub(crate) fn record_samples(
        &self,
        samples: Vec<(String, Result<u64, String>)>,
        dead_letters: Option<(usize, Option<String>)>,
    ) {
        let update = {
            let mut inner = self.lock();
            for (name, depth) in samples {
                inner.queues.sample(&name, depth);
            }
            let newest = match dead_letters {
                Some((count, newest)) => {
                    inner.dead_letters = count;
                    newest
                }
                None => None,
            };
            Update::Queues {
                queues: inner.queues.list(),
                dead_letters: inner.dead_letters,
                newest_dead_letter: newest,
            }
        };
        self.push(update);
    }

    /// Queues with their last samples.
    pub(crate) fn queues(&self) -> Vec<QueueView> {
        self.lock().queues.list()
    }

    /// The dashboard header's summary (registry and transport left empty).
    pub(crate) fn overview(&self) -> Overview {
        let mut inner = self.lock();
        let workers_online = inner.workers.list().iter().filter(|w| w.online).count();
        let tasks_by_state = inner.tasks.count_by_state();
        Overview {
            workers_online,
            tasks_by_state,
            finished_per_sec: inner.stats.finished_per_sec(),
            queued: inner.queues.total(),
            dead_letters: inner.dead_letters,
            ..Overview::default()
        }
    }

    /// The Prometheus exposition.
    pub(crate) fn metrics(&self) -> String {
        let mut inner = self.lock();
        let workers = inner.workers.list();
        let queues = inner.queues.list();
        crate::metrics::render(
            &inner.stats,
            &Gauges {
                queues: &queues,
                workers_online: workers.iter().filter(|w| w.online).count(),
                workers_known: workers.len(),
                dead_letters: inner.dead_letters,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_update_tasks_workers_and_metrics() {
        let monitor = Monitor::new(10, &["celery".to_owned()]);
        let mut updates = monitor.subscribe();
        monitor.apply_event(
            &Event::new("task-received", "w@h", 1)
                .with("uuid", "t1")
                .with("name", "tasks.add"),
        );
        monitor.apply_event(
            &Event::new("task-succeeded", "w@h", 2)
                .with("uuid", "t1")
                .with("runtime", 0.5),
        );
        monitor.apply_event(&Event::new("worker-heartbeat", "w@h", 3).with("active", 1));
        assert!(matches!(updates.try_recv(), Ok(Update::Task(_))));
        let (tasks, total, _) = monitor.list(
            &query::Query::parse(&crate::views::TaskFilter {
                state: Some("success".into()),
                ..crate::views::TaskFilter::default()
            })
            .expect("query"),
        );
        assert_eq!((tasks.len(), total), (1, 1));
        assert_eq!(monitor.workers().len(), 1);
        let text = monitor.metrics();
        assert!(text.contains("celeriac_tasks_total{name=\"tasks.add\",state=\"SUCCESS\"} 1"));
        assert!(text.contains("celeriac_workers_online 1"));
        assert_eq!(monitor.overview().workers_online, 1);
    }
}
