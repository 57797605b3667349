//! The JSON the API reads and writes: its contract with clients.
//!
//! This is the one module of the crate that derives `Serialize`,
//! `Deserialize` and `ToSchema` for API shapes (the OpenAPI document is
//! generated from them). Request bodies reject unknown fields, so a typo
//! (`"kwarg"`) is a 422 naming the field rather than silently ignored.
//!
//! 1. The producer routes' answers (the seed's shapes): [`JobPublished`],
//!    [`JobStatus`]; their request bodies are built from the declared
//!    fields ([`crate::ProducerRoute`]).
//! 2. Generic tasks: [`SendTaskRequest`], [`SendOptions`], [`TaskView`],
//!    [`TaskList`], [`RevokeResponse`].
//! 3. The cluster: [`WorkerView`], [`WorkerDetail`], [`RateLimitRequest`],
//!    [`ControlReply`], [`QueueView`], [`DeadLetterView`], [`Overview`],
//!    [`Health`].
//! 4. Groups (`views/groups.rs`): [`SendGroupRequest`], [`GroupSent`],
//!    [`GroupView`], [`GroupMember`].
//! 5. Scheduled tasks (`views/scheduled.rs`): [`ScheduledQuery`],
//!    [`ScheduledList`], [`ScheduledTask`].

mod groups;
mod scheduled;
pub use groups::{GroupMember, GroupSent, GroupView, SendGroupRequest};
pub use scheduled::{ScheduledList, ScheduledQuery, ScheduledTask};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

/// The answer to publishing a job on a producer route (the seed's shape).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobPublished {
    /// Always `"job published"`.
    pub message: String,
    /// The task id to poll.
    pub job_id: String,
}

impl JobPublished {
    /// The answer for task `job_id`.
    pub fn new(job_id: String) -> Self {
        JobPublished {
            message: "job published".to_owned(),
            job_id,
        }
    }
}

/// The answer to polling a job on a producer route (the seed's shape).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobStatus {
    /// True once the task finished (SUCCESS, FAILURE or REVOKED).
    pub ready: bool,
    /// The return value when ready (for a failure, the stored
    /// `{exc_type, exc_message, exc_module}`); null before. Any JSON value.
    pub result: Value,
}

/// Body of `POST /api/tasks/{name}`; every field may be left out.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendTaskRequest {
    /// Positional arguments: any JSON values.
    #[serde(default)]
    pub args: Vec<Value>,
    /// Keyword arguments.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub kwargs: Map<String, Value>,
    /// How to send it.
    #[serde(default)]
    pub options: SendOptions,
}

/// Sending options (Celery's `apply_async` keywords).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendOptions {
    /// Run no earlier than this many seconds from now.
    pub countdown: Option<f64>,
    /// Run no earlier than this time (ISO 8601; no offset means UTC).
    pub eta: Option<String>,
    /// Do not run after this many seconds from now (a number), or after
    /// this ISO 8601 time (a string).
    #[schema(schema_with = number_or_string)]
    pub expires: Option<Value>,
    /// 0 (highest) to 9 (lowest); larger values are refused (422).
    #[schema(maximum = 9)]
    pub priority: Option<u8>,
    /// The queue to send to (default: the app's default queue).
    pub queue: Option<String>,
    /// Use this task id instead of a fresh uuid.
    pub task_id: Option<String>,
}

/// The schema of [`SendOptions::expires`]: seconds from now (a number), an
/// ISO 8601 time (a string), or null.
fn number_or_string() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([
            Type::Number,
            Type::String,
            Type::Null,
        ]))
        .description(Some(
            "Do not run after this many seconds from now (a number), or after this \
             ISO 8601 time (a string).",
        ))
        .build()
}

/// Answer to sending a task.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskSent {
    /// The new task's id.
    pub task_id: String,
    /// The task name.
    pub name: String,
    /// The queue it went to.
    pub queue: String,
    /// For a retry: the task it repeats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<String>,
}

/// Progress reported with `update_state("PROGRESS", {"current", "total"})`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Progress {
    /// Work done.
    pub current: f64,
    /// Work in all.
    pub total: f64,
    /// `current / total` as a percentage, 0 to 100.
    pub percent: f64,
}

impl Progress {
    /// Read `{"current", "total"}` meta; `None` when it is not progress.
    pub fn from_meta(meta: &Value) -> Option<Progress> {
        let current = meta.get("current")?.as_f64()?;
        let total = meta.get("total")?.as_f64()?;
        let percent = if total > 0.0 {
            (current / total * 100.0).clamp(0.0, 100.0)
        } else {
            0.0
        };
        Some(Progress {
            current,
            total,
            percent,
        })
    }
}

/// Everything known about one task: the result backend's document merged
/// with what the monitor saw in events and sends.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct TaskView {
    /// Task id.
    pub id: String,
    /// State: PENDING, RECEIVED, STARTED, a custom one such as PROGRESS,
    /// RETRY, SUCCESS, FAILURE, REVOKED, REJECTED. An id nobody knows reads
    /// PENDING, as in Celery.
    pub state: String,
    /// True once finished (SUCCESS, FAILURE, REVOKED).
    pub ready: bool,
    /// False when neither the backend nor the monitor knows the id.
    pub known: bool,
    /// Task name, when known.
    pub name: Option<String>,
    /// Positional arguments as JSON (when sent through this API).
    #[schema(value_type = Option<Vec<Value>>)]
    pub args: Option<Value>,
    /// Keyword arguments as JSON (when sent through this API).
    #[schema(value_type = Option<Object>)]
    pub kwargs: Option<Value>,
    /// Positional arguments as the sender showed them (Python repr).
    pub argsrepr: Option<String>,
    /// Keyword arguments as the sender showed them (Python repr).
    pub kwargsrepr: Option<String>,
    /// The return value (SUCCESS), the stored error (FAILURE/REVOKED), or
    /// a custom state's meta; null when there is none. Any JSON value.
    pub result: Value,
    /// The result as the worker's event showed it, when no document exists.
    pub result_repr: Option<String>,
    /// The exception, e.g. `ValueError('boom')`.
    pub exception: Option<String>,
    /// Traceback text of a failure.
    pub traceback: Option<String>,
    /// Progress, when the task reported `{"current", "total"}`.
    pub progress: Option<Progress>,
    /// The worker that ran it.
    pub worker: Option<String>,
    /// Retries so far.
    pub retries: Option<u64>,
    /// The queue it was sent to, when known.
    pub queue: Option<String>,
    /// When sent through this API (Unix seconds).
    pub sent_at: Option<f64>,
    /// When a worker received it (Unix seconds).
    pub received_at: Option<f64>,
    /// When it started (Unix seconds).
    pub started_at: Option<f64>,
    /// When it finished (Unix seconds).
    pub finished_at: Option<f64>,
    /// Run time in seconds.
    pub runtime: Option<f64>,
    /// ETA, ISO 8601.
    pub eta: Option<String>,
    /// Expiry, ISO 8601.
    pub expires: Option<String>,
    /// When the backend document was written, ISO 8601.
    pub date_done: Option<String>,
    /// Can be sent again with `POST /api/tasks/{id}/retry`.
    pub retryable: bool,
    /// The task that sent this one (a chain's previous step, a callback's
    /// task), from the result document or the `task-received` event.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// The first task of its workflow.
    #[serde(default)]
    pub root_id: Option<String>,
    /// The group it belongs to (`GET /api/groups/{id}`).
    #[serde(default)]
    pub group_id: Option<String>,
    /// Its position in the group, when known.
    #[serde(default)]
    pub group_index: Option<i64>,
    /// For a chord header part: the task id of the chord's body.
    #[serde(default)]
    pub chord_id: Option<String>,
    /// The tasks it sent when it finished (callbacks, the next step of a
    /// chain), from the result document's `children`.
    #[serde(default)]
    pub children: Vec<String>,
    /// The groups among its children (each listed member is in `children`).
    #[serde(default)]
    pub child_groups: Vec<String>,
}

/// Filters, search, order and page of `GET /api/tasks`, applied by the
/// server over every task it remembers (`serve --history`).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TaskFilter {
    /// Only tasks in these states, comma-separated (e.g. `SUCCESS` or
    /// `FAILURE,RETRY`); case does not matter.
    pub state: Option<String>,
    /// Only tasks whose name contains this text.
    pub name: Option<String>,
    /// Only tasks run (or received) by this worker (its node name).
    pub worker: Option<String>,
    /// Search: tasks whose id, name, arguments, result or exception
    /// contains this text (case-insensitive).
    pub q: Option<String>,
    /// Only tasks first seen at or after this time: Unix seconds or ISO
    /// 8601 (`2024-05-01T12:00:00Z`; no offset means UTC).
    pub since: Option<String>,
    /// Only tasks first seen before this time (as `since`).
    pub until: Option<String>,
    /// Order by: `newest` (the default: the order the server learnt of
    /// them), `received`, `started`, `finished`, `runtime`, `name`,
    /// `state`, `worker`. Tasks without the value come last.
    pub sort: Option<TaskSort>,
    /// `desc` (the default) or `asc`.
    pub order: Option<SortOrder>,
    /// Skip this many matches (paging).
    pub offset: Option<usize>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// What `GET /api/tasks` orders by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskSort {
    /// The order the server learnt of them.
    #[default]
    Newest,
    /// When first seen (received by a worker, else sent).
    Received,
    /// When started.
    Started,
    /// When finished.
    Finished,
    /// Run time.
    Runtime,
    /// Task name.
    Name,
    /// State.
    State,
    /// Worker node name.
    Worker,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    /// Largest (newest, latest, Z) first.
    #[default]
    Desc,
    /// Smallest first.
    Asc,
}

/// `GET /api/tasks`: one page of the matching tasks.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskList {
    /// The tasks of this page.
    pub tasks: Vec<TaskView>,
    /// How many tasks matched (all pages).
    pub total: usize,
    /// Matches skipped before this page.
    #[serde(default)]
    pub offset: usize,
    /// The page size used.
    #[serde(default)]
    pub limit: usize,
    /// Tasks the server remembers in all (matching or not).
    #[serde(default)]
    pub remembered: usize,
}

/// A worker in detail (`GET /api/workers/{name}`): its heartbeats, its
/// counts, and what it answers to remote control.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WorkerDetail {
    /// What its heartbeats say.
    pub worker: WorkerView,
    /// Tasks it finished successfully: its own count when it answered
    /// `stats`, else the tasks this server saw it succeed.
    pub succeeded: u64,
    /// Tasks that failed on it (as `succeeded`).
    pub failed: u64,
    /// Tasks this server saw it run, by state.
    pub seen_by_state: std::collections::BTreeMap<String, u64>,
    /// Registered tasks with their current rate limit (`null`: none),
    /// from its `registered` answer.
    pub registered: Vec<RegisteredTask>,
    /// Queues it consumes, from its `active_queues` answer.
    pub queues: Vec<String>,
    /// Its `stats` answer, as given.
    #[schema(value_type = Object)]
    pub stats: Value,
    /// How commands reach it: `pidbox` (Celery's, on Redis), `events`
    /// (the event bus of a SQLite or memory broker).
    pub control: String,
    /// Why the remote-control answers are missing, if they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_error: Option<String>,
}

/// A task a worker has, with its rate limit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisteredTask {
    /// Task name.
    pub name: String,
    /// Rate limit, e.g. `10/m`; null when none.
    pub rate_limit: Option<String>,
}

/// Body of `POST /api/workers/{name}/rate-limit`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitRequest {
    /// The task whose limit changes.
    pub task_name: String,
    /// Celery's rate: `10/s`, `100/m`, `1000/h`, a bare number (per
    /// second), or `0`/empty for no limit.
    pub rate_limit: String,
}

/// A worker's answer to a control command.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ControlReply {
    /// The worker that answered.
    pub worker: String,
    /// Its answer, e.g. `{"ok": "new rate limit set successfully"}`.
    #[schema(value_type = Object)]
    pub reply: Value,
}

/// Query of `POST /api/tasks/{id}/revoke`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RevokeQuery {
    /// Also stop it if it is running.
    #[serde(default)]
    pub terminate: bool,
}

/// Answer to a revoke.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RevokeResponse {
    /// The revoked task.
    pub task_id: String,
    /// Whether running tasks are stopped too.
    pub terminate: bool,
    /// The task's state afterwards.
    pub state: String,
}

/// A worker, from its heartbeats.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WorkerView {
    /// Node name, e.g. `celeriac@host`.
    pub hostname: String,
    /// A heartbeat arrived within two heartbeat periods and no
    /// `worker-offline` since.
    pub online: bool,
    /// Seconds since the last event from it.
    pub last_seen_secs: f64,
    /// Tasks executing at the last heartbeat.
    pub active: u64,
    /// Tasks finished since it started.
    pub processed: u64,
    /// 1, 5 and 15 minute load averages.
    pub loadavg: Vec<f64>,
    /// Heartbeat period, seconds.
    pub freq: f64,
    /// Software, e.g. `celeriac` or `py-celery`.
    pub sw_ident: Option<String>,
    /// Its version.
    pub sw_ver: Option<String>,
    /// Its operating system.
    pub sw_sys: Option<String>,
    /// Process id.
    pub pid: Option<u64>,
}

/// A queue and its depth.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueueView {
    /// Queue name.
    pub name: String,
    /// Messages waiting (ready ones), when the broker answered.
    pub depth: Option<u64>,
    /// Change of depth per second over the last sampling period.
    pub rate: f64,
    /// Recent depth samples, oldest first.
    pub history: Vec<u64>,
    /// Why the depth is missing, if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A dead letter (a message no worker could run), with why.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterView {
    /// Dead letter id (for requeue).
    pub id: String,
    /// The queue it came from.
    pub queue: String,
    /// Why it was set aside.
    pub reason: String,
    /// When, ISO 8601.
    pub at: String,
    /// The task id in the message, if it could be read.
    pub task_id: Option<String>,
    /// The task name in the message, if it could be read.
    pub task: Option<String>,
    /// The start of the original message.
    pub preview: String,
}

/// Query of `GET /api/dead-letters`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// A cluster summary for the dashboard's header.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Overview {
    /// Workers online.
    pub workers_online: usize,
    /// Recent tasks per state.
    pub tasks_by_state: std::collections::BTreeMap<String, u64>,
    /// Tasks finished per second over the last 10 seconds (from events).
    pub finished_per_sec: f64,
    /// Messages waiting in all listed queues.
    pub queued: u64,
    /// Dead letters stored.
    pub dead_letters: usize,
    /// Task names this server can send.
    pub registered: Vec<String>,
    /// The broker's scheme (`redis`, `sqlite`, `memory`).
    pub transport: String,
}

/// `GET /health`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` when the broker does not answer.
    pub status: String,
    /// Why, when unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Answer to requeueing a dead letter.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Requeued {
    /// The dead letter put back on its queue.
    pub id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn progress_reads_current_and_total() {
        let p = Progress::from_meta(&json!({"current": 5, "total": 20})).expect("progress");
        assert_eq!(p.percent, 25.0);
        assert!(Progress::from_meta(&json!({"current": 5})).is_none());
        let zero = Progress::from_meta(&json!({"current": 0, "total": 0})).expect("progress");
        assert_eq!(zero.percent, 0.0);
    }

    #[test]
    fn bodies_reject_unknown_fields() {
        assert!(serde_json::from_value::<SendTaskRequest>(json!({"kwarg": {}})).is_err());
        let empty: SendTaskRequest = serde_json::from_value(json!({})).expect("defaults");
        assert!(empty.args.is_empty());
    }
}
