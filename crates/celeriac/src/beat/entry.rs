//! One periodic task: what to send, and when.
//!
//! 1. [`ScheduleEntry`]: a name, a task name, a [`Schedule`], arguments
//!    (which may hold time templates) and sending options — one item of
//!    Celery's `beat_schedule`, or one `app.add_periodic_task(...)` call.
//! 2. [`CatchUp`]: what to do with runs missed while no beat was running.
//! 3. Building the run's message: rendered arguments, the deterministic task
//!    id of (entry, tick), and a `celeriac_beat` header naming both.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{template, BeatError, Schedule};
use crate::{App, SendOptions};

/// Header on every message the beat sends: `{"entry": name, "tick": time}`.
/// Python workers ignore it; monitors and tests can read which run it is.
pub const BEAT_HEADER: &str = "celeriac_beat";

/// What to do with runs that fell due while no beat was running (or while
/// the store was unreachable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CatchUp {
    /// Send the missed runs as one run, for the latest missed tick (default).
    #[default]
    Once,
    /// Send nothing for missed runs; a run is only sent if its tick is
    /// within the beat's grace period (see
    /// [`BeatOptions::grace`](super::BeatOptions::grace)).
    Skip,
}

/// A periodic task: Celery's `beat_schedule` item, or what
/// `app.add_periodic_task(schedule, sig, name=...)` declares.
///
/// ```
/// use celeriac::beat::{CatchUp, Schedule, ScheduleEntry};
/// use serde_json::json;
/// use std::time::Duration;
///
/// let entry = ScheduleEntry::new(
///     "top-entities",
///     "tasks.count_top_named_entities",
///     Schedule::every(Duration::from_secs(300))?,
/// )
/// .args(vec![json!(10), json!("{now-24h}"), json!("{now}")])
/// .queue("celery")
/// .expires(Duration::from_secs(240))
/// .catch_up(CatchUp::Once);
/// assert_eq!(entry.name(), "top-entities");
/// # Ok::<(), celeriac::beat::BeatError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleEntry {
    name: String,
    task: String,
    schedule: Schedule,
    args: Vec<Value>,
    kwargs: Map<String, Value>,
    queue: Option<String>,
    priority: Option<u8>,
    expires: Option<Duration>,
    catch_up: CatchUp,
}

impl ScheduleEntry {
    /// Send task `task` on `schedule`. `name` identifies the entry across
    /// beats and restarts: its last run is stored under it.
    pub fn new(name: impl Into<String>, task: impl Into<String>, schedule: Schedule) -> Self {
        ScheduleEntry {
            name: name.into(),
            task: task.into(),
            schedule,
            args: Vec::new(),
            kwargs: Map::new(),
            queue: None,
            priority: None,
            expires: None,
            catch_up: CatchUp::default(),
        }
    }

    /// Positional arguments; strings may hold time templates (`{now-24h}`).
    pub fn args(mut self, args: Vec<Value>) -> Self {
        self.args = args;
        self
    }

    /// Keyword arguments; strings may hold time templates.
    pub fn kwargs(mut self, kwargs: Map<String, Value>) -> Self {
        self.kwargs = kwargs;
        self
    }

    /// Send to this queue instead of the task's or app's default.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Priority 0 (highest) to 9 (lowest).
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority);
        self
    }

    /// A run not started within `after` of being sent is not run (REVOKED);
    /// Celery's `options={"expires": ...}`.
    pub fn expires(mut self, after: Duration) -> Self {
        self.expires = Some(after);
        self
    }

    /// What to do with runs missed while no beat ran.
    pub fn catch_up(mut self, catch_up: CatchUp) -> Self {
        self.catch_up = catch_up;
        self
    }

    /// The entry's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The task it sends.
    pub fn task(&self) -> &str {
        &self.task
    }

    /// When it runs.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The missed-run policy.
    pub fn catch_up_policy(&self) -> CatchUp {
        self.catch_up
    }

    /// Check the entry: a name and task, a priority in range, templates
    /// that parse.
    ///
    /// # Errors
    /// [`BeatError::Entry`] naming the entry and what is wrong.
    pub fn validate(&self) -> Result<(), BeatError> {
        if self.name.trim().is_empty() {
            return Err(BeatError::entry(&self.name, "the name is empty"));
        }
        if self.task.trim().is_empty() {
            return Err(BeatError::entry(&self.name, "the task name is empty"));
        }
        if let Some(p) = self.priority.filter(|p| *p > 9) {
            return Err(BeatError::entry(
                &self.name,
                format!("priority must be 0 (highest) to 9 (lowest), got {p}"),
            ));
        }
        self.render(Utc::now())
            .map_err(|e| BeatError::entry(&self.name, e.to_string()))?;
        Ok(())
    }

    /// The arguments with time templates rendered for the run at `tick`.
    ///
    /// # Errors
    /// [`BeatError::Template`] for a malformed template.
    pub fn render(
        &self,
        tick: DateTime<Utc>,
    ) -> Result<(Vec<Value>, Map<String, Value>), BeatError> {
        let args = self
            .args
            .iter()
            .map(|v| template::render(v, tick))
            .collect::<Result<_, _>>()?;
        let kwargs = self
            .kwargs
            .iter()
            .map(|(k, v)| Ok((k.clone(), template::render(v, tick)?)))
            .collect::<Result<_, BeatError>>()?;
        Ok((args, kwargs))
    }

    /// The task id of this entry's run at `tick`: a UUID v5 of the name and
    /// the tick, the same in every beat, so a duplicate would be visible.
    pub fn task_id(&self, tick: DateTime<Utc>) -> String {
        let name = format!("celeriac-beat/{}/{}", self.name, tick.timestamp_millis());
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()).to_string()
    }

    /// The broker message for the run at `tick`, and its task id.
    pub(crate) fn message(
        &self,
        app: &App,
        tick: DateTime<Utc>,
    ) -> Result<(String, crate::broker::OutgoingMessage), BeatError> {
        let (args, kwargs) = self.render(tick)?;
        let id = self.task_id(tick);
        let mut options = SendOptions::new().task_id(&id);
        if let Some(queue) = &self.queue {
            options = options.queue(queue.clone());
        }
        if let Some(priority) = self.priority {
            options = options.priority(priority);
        }
        if let Some(after) = self.expires {
            options = options.expires_in(after);
        }
        let (mut message, mut outgoing) = app.prepare(&self.task, args, kwargs, options)?;
        let mut marker = Map::new();
        marker.insert("entry".into(), Value::String(self.name.clone()));
        marker.insert(
            "tick".into(),
            Value::String(crate::protocol::time::format(tick)),
        );
        message
            .headers
            .extra
            .insert(BEAT_HEADER.into(), Value::Object(marker));
        outgoing.payload = message
            .to_envelope(&outgoing.queue, Some(outgoing.priority))
            .to_vec();
        Ok((id, outgoing))
    }
}
