//! The Celery wire contract: task messages (protocol v2), the kombu envelope
//! that carries them, and the stored result format.
//!
//! Architecture invariant: this module does no I/O. It is the only place that
//! derives `Serialize`/`Deserialize` for wire types, because these types *are*
//! the contract with Python Celery 5.x; changing a field here changes what a
//! Python producer or worker sees.
//!
//! 1. [`TaskMessage`]: headers + `[args, kwargs, embed]` body of one task.
//! 2. [`Envelope`]: kombu's JSON wrapper with the base64 body, as it sits in a
//!    Redis list (and, unchanged, in the SQLite and memory brokers).
//! 3. [`ResultMeta`]: the `celery-task-meta-<id>` document.
//! 4. [`time`]: ISO-8601 times as Celery writes and reads them.
//! 5. [`Event`]: worker and task events, as Flower reads them.
//! 6. [`DeadLetter`]: our record of a message set aside (not Celery's).

mod dead_letter;
mod envelope;
mod event;
mod headers_de;
mod message;
mod result;
pub mod time;
mod wire;

pub use dead_letter::DeadLetter;
pub use envelope::{DeliveryInfo, Envelope, Properties};
pub use event::Event;
pub use message::{Embed, TaskHeaders, TaskMessage};
pub use result::{ExceptionInfo, ResultMeta, TaskState};

/// Why bytes could not be read as a Celery message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The envelope is not the JSON object kombu writes.
    #[error("malformed envelope: {0}")]
    Envelope(String),
    /// The body is not valid base64.
    #[error("body is not valid base64: {0}")]
    Base64(String),
    /// The body is not the `[args, kwargs, embed]` JSON array.
    #[error("malformed body: {0}")]
    Body(String),
    /// The headers lack a field protocol v2 requires, or have a wrong type.
    #[error("malformed headers: {0}")]
    Headers(String),
    /// A protocol v1 message (no `task` header); Celery 4+ sends v2.
    #[error("protocol v1 messages are not supported (no `task` header); send with Celery's task_protocol=2")]
    ProtocolV1,
    /// A content type other than JSON (e.g. pickle), which we refuse.
    #[error("unsupported content type {0:?}: only application/json is accepted")]
    ContentType(String),
}

/// Read `null` as the type's default: Celery writes `null` for unset fields.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + serde::Deserialize<'de>,
{
    use serde::Deserialize;
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
