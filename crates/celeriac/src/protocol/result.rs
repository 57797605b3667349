//! The stored result document, `celery-task-meta-<id>`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A task state as Celery names it. Custom states (e.g. `PROGRESS`) are kept
/// as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Unknown to the backend: not sent, not yet received, or forgotten.
    Pending,
    /// Received by a worker.
    Received,
    /// Started (only when track-started is on).
    Started,
    /// Finished with a value.
    Success,
    /// Finished with an error.
    Failure,
    /// Will be retried.
    Retry,
    /// Revoked or expired; will not run.
    Revoked,
    /// Rejected by the worker.
    Rejected,
    /// Result deliberately not stored.
    Ignored,
    /// Any other state a task reported with `update_state`.
    Custom(String),
}

impl TaskState {
    /// The state's wire name.
    pub fn as_str(&self) -> &str {
        match self {
            TaskState::Pending => "PENDING",
            TaskState::Received => "RECEIVED",
            TaskState::Started => "STARTED",
            TaskState::Success => "SUCCESS",
            TaskState::Failure => "FAILURE",
            TaskState::Retry => "RETRY",
            TaskState::Revoked => "REVOKED",
            TaskState::Rejected => "REJECTED",
            TaskState::Ignored => "IGNORED",
            TaskState::Custom(name) => name,
        }
    }

    /// Parse a wire name; unknown names become [`TaskState::Custom`].
    pub fn from_name(name: &str) -> Self {
        match name {
            "PENDING" => TaskState::Pending,
            "RECEIVED" => TaskState::Received,
            "STARTED" => TaskState::Started,
            "SUCCESS" => TaskState::Success,
            "FAILURE" => TaskState::Failure,
            "RETRY" => TaskState::Retry,
            "REVOKED" => TaskState::Revoked,
            "REJECTED" => TaskState::Rejected,
            "IGNORED" => TaskState::Ignored,
            other => TaskState::Custom(other.to_owned()),
        }
    }

    /// Finished for good: SUCCESS, FAILURE or REVOKED (Celery's READY_STATES).
    pub fn is_ready(&self) -> bool {
        matches!(
            self,
            TaskState::Success | TaskState::Failure | TaskState::Revoked
        )
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for TaskState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TaskState {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Ok(TaskState::from_name(&name))
    }
}

/// The result document Celery stores per task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultMeta {
    /// Current state.
    pub status: TaskState,
    /// The return value; for FAILURE an [`ExceptionInfo`] object; for custom
    /// states the meta given to `update_state`.
    #[serde(default)]
    pub result: Value,
    /// Traceback text for failures.
    #[serde(default)]
    pub traceback: Option<String>,
    /// Child task results.
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub children: Vec<Value>,
    /// When the state was stored, ISO-8601 UTC.
    #[serde(default)]
    pub date_done: Option<String>,
    /// The task id.
    pub task_id: String,
    /// Group id, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// Parent task id, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// Extended result: task name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Extended result: positional arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    /// Extended result: keyword arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kwargs: Option<Value>,
    /// Extended result: worker hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Extended result: retries so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Extended result: queue the task came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
}

/// How a failure is stored: `{exc_type, exc_message, exc_module}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExceptionInfo {
    /// Exception class name, e.g. `ValueError`.
    pub exc_type: String,
    /// Exception message; Celery stores the exception args (a list) here.
    pub exc_message: Value,
    /// Module of the exception class, e.g. `builtins`.
    #[serde(default)]
    pub exc_module: Option<String>,
}

impl ExceptionInfo {
    /// The message as text: Celery stores `exc.args`, usually a one-element list.
    pub fn message_text(&self) -> String {
        match &self.exc_message {
            Value::String(s) => s.clone(),
            Value::Array(items) if items.len() == 1 => match &items[0] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
            Value::Array(items) if items.is_empty() => String::new(),
            other => other.to_string(),
        }
    }
}

impl ResultMeta {
    /// A new document in `status` for `task_id`, stamped now.
    pub fn new(task_id: &str, status: TaskState, result: Value) -> Self {
        ResultMeta {
            status,
            result,
            traceback: None,
            children: Vec::new(),
            date_done: Some(super::time::format(chrono::Utc::now())),
            task_id: task_id.to_owned(),
            group_id: None,
            parent_id: None,
            name: None,
            args: None,
            kwargs: None,
            worker: None,
            retries: None,
            queue: None,
        }
    }

    /// A FAILURE document for a built-in exception `exc_type` with `message`.
    pub fn failure(
        task_id: &str,
        exc_type: &str,
        message: &str,
        traceback: Option<String>,
    ) -> Self {
        Self::failure_in_module(task_id, "builtins", exc_type, message, traceback)
    }

    /// A FAILURE document for the exception `exc_module.exc_type` with
    /// `message` (Celery rebuilds the class from both names, so
    /// `("sqlite3", "OperationalError")` raises `sqlite3.OperationalError`).
    pub fn failure_in_module(
        task_id: &str,
        exc_module: &str,
        exc_type: &str,
        message: &str,
        traceback: Option<String>,
    ) -> Self {
        let info = ExceptionInfo {
            exc_type: exc_type.to_owned(),
            exc_message: Value::Array(vec![Value::String(message.to_owned())]),
            exc_module: Some(exc_module.to_owned()),
        };
        let mut meta = Self::new(
            task_id,
            TaskState::Failure,
            serde_json::to_value(info).unwrap_or(Value::Null),
        );
        meta.traceback = traceback;
        meta
    }

    /// The failure details, when this is a FAILURE with a readable result.
    pub fn exception(&self) -> Option<ExceptionInfo> {
        serde_json::from_value(self.result.clone()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_states_survive_a_round_trip() {
        let meta = ResultMeta::new("id", TaskState::Custom("PROGRESS".into()), Value::Null);
        let text = serde_json::to_string(&meta).expect("serializes");
        let back: ResultMeta = serde_json::from_str(&text).expect("parses");
        assert_eq!(back.status, TaskState::Custom("PROGRESS".into()));
        assert!(!back.status.is_ready());
    }

    #[test]
    fn failure_reads_like_celery_wrote_it() {
        let meta = ResultMeta::failure("id", "ValueError", "bad value", None);
        let exc = meta.exception().expect("exception info");
        assert_eq!(exc.exc_type, "ValueError");
        assert_eq!(exc.message_text(), "bad value");
    }
}
