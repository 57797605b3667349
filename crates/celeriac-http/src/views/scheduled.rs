//! The JSON of `GET /api/scheduled`: tasks waiting for their ETA or
//! countdown (Celery's `inspect scheduled`, Flower's scheduled tasks).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Query of `GET /api/scheduled`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ScheduledQuery {
    /// At most this many, soonest first (default 100, 1 to 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// One task waiting in the broker for its ETA.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScheduledTask {
    /// Task id (absent when the message cannot be read).
    pub id: Option<String>,
    /// Task name (absent when the message cannot be read).
    pub name: Option<String>,
    /// The queue it goes to when due.
    pub queue: String,
    /// When it is due, ISO-8601 in UTC (`2024-05-01T12:34:56.789000+00:00`).
    pub eta: String,
    /// The same instant in seconds since the Unix epoch.
    pub eta_unix: f64,
    /// Seconds left until it is due (0 when due already: the next worker
    /// to poll moves it to its queue).
    pub countdown: f64,
    /// Positional arguments as the sender showed them (Python repr, as in
    /// the task table; a sender may hide secrets there), cut at 1,000
    /// characters.
    pub argsrepr: Option<String>,
    /// Keyword arguments as the sender showed them, cut the same way.
    pub kwargsrepr: Option<String>,
    /// Its priority, when the message carries one.
    pub priority: Option<u8>,
    /// How many times it was retried before (a retry waits here for its
    /// countdown too).
    pub retries: u64,
}

/// `GET /api/scheduled`: the tasks waiting for their ETA, soonest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScheduledList {
    /// False when the broker cannot list waiting messages without taking
    /// them (AMQP): `tasks` is then empty and `note` says why.
    pub supported: bool,
    /// Why the list is empty or incomplete, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// True when more tasks wait than `limit` allowed.
    pub truncated: bool,
    /// The waiting tasks, soonest first.
    pub tasks: Vec<ScheduledTask>,
}
