//! What a caller sees when its message is refused: a FAILURE whose
//! exception class is the one a Python Celery/kombu would name.
//!
//! Celery rebuilds a stored exception from `sys.modules[exc_module]`, so
//! every class named here lives in a module a Celery client has loaded:
//! `kombu.exceptions` (`DecodeError`, `ContentDisallowed`,
//! `LimitExceeded`) or `celery.exceptions` (`InvalidTaskError`, what a
//! Celery worker raises for a bad `eta`/`expires` or a malformed request).

use serde_json::Value;

use super::{ExceptionInfo, ProtocolError, ResultMeta, TaskState};

const KOMBU: &str = "kombu.exceptions";
const CELERY: &str = "celery.exceptions";

impl ProtocolError {
    /// The Python exception `(module, class)` a caller's `get()` raises for
    /// a message refused with this error.
    pub fn python_exception(&self) -> (&'static str, &'static str) {
        match self {
            ProtocolError::ContentType(_) => (KOMBU, "ContentDisallowed"),
            ProtocolError::TooLarge { .. } => (KOMBU, "LimitExceeded"),
            ProtocolError::ProtocolV1 | ProtocolError::InvalidTime { .. } => {
                (CELERY, "InvalidTaskError")
            }
            ProtocolError::Envelope(_)
            | ProtocolError::Base64(_)
            | ProtocolError::Body(_)
            | ProtocolError::Headers(_)
            | ProtocolError::Compression(_)
            | ProtocolError::NonFinite => (KOMBU, "DecodeError"),
        }
    }

    /// The FAILURE document stored for task `task_id` whose message was
    /// refused with this error, so that its caller's `get()` raises at once.
    pub fn failure_meta(&self, task_id: &str) -> ResultMeta {
        let (module, class) = self.python_exception();
        let message = self.to_string();
        let info = ExceptionInfo {
            exc_type: class.to_owned(),
            exc_message: Value::Array(vec![Value::String(message.clone())]),
            exc_module: Some(module.to_owned()),
        };
        let mut meta = ResultMeta::new(
            task_id,
            TaskState::Failure,
            serde_json::to_value(info).unwrap_or(Value::Null),
        );
        meta.traceback = Some(format!(
            "Traceback (most recent call last):\n  Celeriac worker, decoding the message\n{module}.{class}: {message}\n"
        ));
        meta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_kombu_and_celery_classes_with_the_reason() {
        let meta =
            ProtocolError::ContentType("application/x-python-serialize".into()).failure_meta("t1");
        assert_eq!(meta.status, TaskState::Failure);
        let info = meta.exception().expect("exception info");
        assert_eq!(info.exc_type, "ContentDisallowed");
        assert_eq!(info.exc_module.as_deref(), Some("kombu.exceptions"));
        let text = info.message_text();
        assert!(text.contains("task_serializer='json'"), "{text}");
        assert!(text.contains("accept_content"), "{text}");
        let time = ProtocolError::InvalidTime {
            field: "ETA",
            value: "not-a-date".into(),
        };
        assert_eq!(time.python_exception(), (CELERY, "InvalidTaskError"));
        assert!(time.to_string().contains("\"not-a-date\""));
        assert_eq!(
            ProtocolError::NonFinite.python_exception(),
            (KOMBU, "DecodeError")
        );
    }
}
