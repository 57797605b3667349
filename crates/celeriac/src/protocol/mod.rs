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
//! 7. [`Compression`], `msgpack`: the body encodings besides plain JSON, and
//!    [`identify`], which reads who a refused message was for so that its
//!    caller gets a FAILURE instead of waiting at PENDING.

mod codec;
mod dead_letter;
#[cfg(test)]
mod decode_tests;
mod envelope;
mod event;
mod headers_de;
mod message;
mod msgpack;
mod refusal;
mod result;
mod salvage;
pub mod time;
mod wire;

pub use codec::Compression;
pub use dead_letter::DeadLetter;
pub use envelope::{DeliveryInfo, Envelope, Properties};
pub use event::Event;
pub use message::{Embed, TaskHeaders, TaskMessage, DEFAULT_MAX_BODY_BYTES};
pub use result::{ExceptionInfo, ResultMeta, TaskState};
pub use salvage::{identify, MessageIdentity};

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
    /// A content type we refuse (pickle, yaml, anything but JSON and
    /// msgpack); the message names the setting to change.
    #[error("content type {0:?} is refused: {advice}", advice = codec::refusal_advice(.0))]
    ContentType(String),
    /// The `compression` header names a compression we do not support, or
    /// the body is not valid for it, or expands past the size limit.
    #[error("cannot decompress the body: {0}")]
    Compression(String),
    /// The arguments hold NaN or ±Infinity (Python's `json.dumps` writes
    /// them), which JSON values, and so Rust tasks, cannot hold.
    #[error("the arguments contain NaN or Infinity, which Celeriac tasks cannot receive (JSON has no such numbers): send None or a string instead")]
    NonFinite,
    /// `eta` or `expires` is not a time (or not one Python can hold);
    /// Celery refuses such a task rather than run it at once.
    #[error("invalid {field} value {value:?}: not an ISO-8601 time between years 1 and 9999")]
    InvalidTime {
        /// `ETA` or `expires`.
        field: &'static str,
        /// The header as sent.
        value: String,
    },
    /// The message is larger than the worker accepts.
    #[error("message of {size} bytes is over the worker's {limit}-byte limit (max_message_bytes)")]
    TooLarge {
        /// Its size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
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
