//! Celery task message, protocol v2.
//!
//! Headers describe the task (name, id, retries, eta, expires, limits); the
//! body is the JSON array `[args, kwargs, embed]`. Headers we do not model are
//! kept in `extra`, so a message re-published after a retry or a restore
//! carries everything its producer put in it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::codec::{self, Compression, Serializer, JSON};
use super::{time, wire, Envelope, Properties, ProtocolError};

/// The largest body [`TaskMessage::decode`] decompresses a message into
/// (64 MiB); a worker passes its own limit to
/// [`TaskMessage::decode_within`].
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The header kombu names a body's compression in.
const COMPRESSION_HEADER: &str = "compression";

/// Protocol v2 task headers. (Read by a hand-written visitor in
/// `headers_de.rs`, one pass; the serde attributes below say how they are
/// written.)
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskHeaders {
    /// Producer language, `py` for Celery; we send `rust`.
    pub lang: Option<String>,
    /// Registered task name.
    pub task: String,
    /// Task id (a uuid).
    pub id: String,
    /// Id of the first task of a workflow.
    pub root_id: Option<String>,
    /// Id of the task that sent this one.
    pub parent_id: Option<String>,
    /// Group id when part of a group.
    pub group: Option<String>,
    /// Position inside the group.
    pub group_index: Option<i64>,
    /// How many times this task has been retried.
    pub retries: u32,
    /// Run no earlier than this ISO-8601 time.
    pub eta: Option<String>,
    /// Do not run after this ISO-8601 time.
    pub expires: Option<String>,
    /// `[hard, soft]` time limits in seconds, either may be null.
    #[serde(serialize_with = "seconds_pair")]
    pub timelimit: (Option<f64>, Option<f64>),
    /// `repr` of the args, for monitors.
    pub argsrepr: Option<String>,
    /// `repr` of the kwargs, for monitors.
    pub kwargsrepr: Option<String>,
    /// `pid@hostname` of the producer.
    pub origin: Option<String>,
    /// Name shown instead of `task` in logs.
    pub shadow: Option<String>,
    /// Do not store the result (Celery sends `null` for "not set").
    pub ignore_result: bool,
    /// Names of stamped headers (Celery 5.3+).
    pub stamped_headers: Option<Value>,
    /// Stamps (Celery 5.3+).
    pub stamps: Option<Value>,
    /// Headers we do not model, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Write whole seconds as integers, as Python does for `time_limit=30`.
fn seconds_pair<S: serde::Serializer>(
    pair: &(Option<f64>, Option<f64>),
    serializer: S,
) -> Result<S::Ok, S::Error> {
    fn number(v: Option<f64>) -> Value {
        match v {
            Some(s) if s.fract() == 0.0 && s.abs() < 1e15 => Value::from(s as i64),
            Some(s) => Value::from(s),
            None => Value::Null,
        }
    }
    Value::Array(vec![number(pair.0), number(pair.1)]).serialize(serializer)
}

/// The third body element: workflow links.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Embed {
    /// Signatures to call with the result on success.
    #[serde(default)]
    pub callbacks: Option<Value>,
    /// Signatures to call on failure.
    #[serde(default)]
    pub errbacks: Option<Value>,
    /// Remaining chain.
    #[serde(default)]
    pub chain: Option<Value>,
    /// Chord callback.
    #[serde(default)]
    pub chord: Option<Value>,
}

impl Embed {
    /// Whether a success sends something: callbacks or a next chain step.
    pub fn has_links(&self) -> bool {
        let present = |v: &Option<Value>| v.as_ref().is_some_and(|v| !v.is_null());
        present(&self.callbacks) || present(&self.chain)
    }
}

/// One task message: headers, positional and keyword arguments, links.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskMessage {
    /// Protocol headers.
    pub headers: TaskHeaders,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Map<String, Value>,
    /// Workflow links.
    pub embed: Embed,
}

impl TaskHeaders {
    /// Headers for a new task, as a Rust producer sends them.
    pub fn new(task: &str, id: &str) -> Self {
        TaskHeaders {
            lang: Some("py".to_owned()),
            task: task.to_owned(),
            id: id.to_owned(),
            root_id: Some(id.to_owned()),
            parent_id: None,
            group: None,
            group_index: None,
            retries: 0,
            eta: None,
            expires: None,
            timelimit: (None, None),
            argsrepr: None,
            kwargsrepr: None,
            origin: None,
            shadow: None,
            ignore_result: false,
            stamped_headers: None,
            stamps: None,
            extra: Map::new(),
        }
    }

    /// Ask for the body to be compressed (kombu's `compression` header, as
    /// Celery's `task_compression` sets it), or for none.
    pub fn set_compression(&mut self, compression: Option<Compression>) {
        match compression {
            Some(c) => {
                self.extra
                    .insert(COMPRESSION_HEADER.into(), c.content_type().into());
            }
            None => {
                self.extra.remove(COMPRESSION_HEADER);
            }
        }
    }

    /// The parsed `eta`, if set and readable.
    pub fn eta_time(&self) -> Option<DateTime<Utc>> {
        self.eta.as_deref().and_then(time::parse)
    }

    /// The parsed `expires`, if set and readable.
    pub fn expires_time(&self) -> Option<DateTime<Utc>> {
        self.expires.as_deref().and_then(time::parse)
    }
}

impl TaskMessage {
    /// Decode a task message from a kombu envelope.
    ///
    /// # Errors
    /// [`ProtocolError`] naming what is wrong: the content type, the base64,
    /// the body shape, a missing header, or a protocol v1 message.
    pub fn from_envelope(envelope: &Envelope) -> Result<Self, ProtocolError> {
        if !envelope.headers.contains_key("task") {
            return Err(ProtocolError::ProtocolV1);
        }
        let headers: TaskHeaders = serde_json::from_value(Value::Object(envelope.headers.clone()))
            .map_err(|e| ProtocolError::Headers(e.to_string()))?;
        let serializer = codec::serializer(&envelope.content_type)?;
        let raw = match envelope.properties.body_encoding.as_str() {
            "base64" => base64_decode(envelope.body.as_bytes())?,
            _ => envelope.body.clone().into_bytes(),
        };
        let compression = compression_of(&headers)?;
        let (args, kwargs, embed) =
            read_any_body(&raw, serializer, compression, DEFAULT_MAX_BODY_BYTES)?;
        Ok(TaskMessage {
            headers,
            args,
            kwargs,
            embed,
        })
    }

    /// Decode a task message from the bytes stored in a queue, with the
    /// priority it was sent with: the worker's path. Unlike [`Self::from_slice`]
    /// it builds no [`Envelope`]: the headers are read once, straight into
    /// [`TaskHeaders`], and the transport properties other than the
    /// priority and body encoding are skipped without being copied.
    ///
    /// # Errors
    /// As [`Self::from_envelope`], and [`ProtocolError::Envelope`] when the
    /// bytes are not a kombu envelope.
    pub fn decode(bytes: &[u8]) -> Result<(Self, Option<u8>), ProtocolError> {
        Self::decode_within(bytes, DEFAULT_MAX_BODY_BYTES)
    }

    /// [`Self::decode`], refusing a compressed body that expands past
    /// `max_body_bytes`.
    ///
    /// Plain JSON bodies take the fast path; compressed and msgpack bodies
    /// a slower one. Refused, each with its reason: pickle, yaml and other
    /// content types, unknown compressions, NaN/Infinity in the arguments,
    /// an `eta` or `expires` that is not a time Python can hold (Celery
    /// refuses those too, rather than run the task at once). A priority
    /// out of range or not a number is read as kombu's Redis transport
    /// reads it (clamped, or the default), not refused.
    ///
    /// # Errors
    /// As [`Self::decode`].
    pub fn decode_within(
        bytes: &[u8],
        max_body_bytes: usize,
    ) -> Result<(Self, Option<u8>), ProtocolError> {
        let wire = wire::read_envelope(bytes)?;
        let headers = wire.headers.ok_or(ProtocolError::ProtocolV1)?;
        let content_type = wire.content_type.as_deref().unwrap_or(JSON);
        let serializer = match content_type {
            JSON => Serializer::Json,
            other => codec::serializer(other)?,
        };
        check_times(&headers)?;
        let raw = match wire.body_encoding.as_deref() {
            None | Some("base64") => base64_decode(wire.body.as_bytes())?,
            Some(_) => wire.body.into_owned().into_bytes(),
        };
        let compression = compression_of(&headers)?;
        let (args, kwargs, embed) = match (serializer, compression) {
            (Serializer::Json, None) => wire::read_body(&raw)?,
            _ => read_any_body(&raw, serializer, compression, max_body_bytes)?,
        };
        let message = TaskMessage {
            headers,
            args,
            kwargs,
            embed,
        };
        Ok((message, wire.priority))
    }

    /// Decode a task message from the bytes stored in a queue.
    pub fn from_slice(bytes: &[u8]) -> Result<(Self, Envelope), ProtocolError> {
        let envelope = Envelope::from_slice(bytes)?;
        let message = Self::from_envelope(&envelope)?;
        Ok((message, envelope))
    }

    /// Encode into a kombu envelope routed to `queue`: a JSON body,
    /// compressed when the `compression` header names a compression
    /// Celeriac supports (so a retried message keeps its producer's
    /// compression; an unsupported one is dropped from the headers).
    pub fn to_envelope(&self, queue: &str, priority: Option<u8>) -> Envelope {
        let body = Value::Array(vec![
            Value::Array(self.args.clone()),
            Value::Object(self.kwargs.clone()),
            serde_json::to_value(&self.embed).unwrap_or(Value::Null),
        ]);
        let mut headers = match serde_json::to_value(&self.headers) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        let mut body = serde_json::to_vec(&body).unwrap_or_default();
        if let Some(named) = headers.get(COMPRESSION_HEADER) {
            match named.as_str().and_then(Compression::from_name) {
                Some(compression) => {
                    body = compression.compress(&body);
                    headers.insert(COMPRESSION_HEADER.into(), compression.content_type().into());
                }
                None => {
                    headers.remove(COMPRESSION_HEADER);
                }
            }
        }
        Envelope::new(
            &body,
            headers,
            Properties::for_task(&self.headers.id, queue, priority),
        )
    }
}

fn base64_decode(text: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| ProtocolError::Base64(e.to_string()))
}

/// The compression the headers name, if any.
fn compression_of(headers: &TaskHeaders) -> Result<Option<Compression>, ProtocolError> {
    if headers.extra.is_empty() {
        return Ok(None);
    }
    match headers.extra.get(COMPRESSION_HEADER) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(name)) => codec::compression(name).map(Some),
        Some(other) => Err(ProtocolError::Compression(format!(
            "the compression header is {}, not a name",
            kind_of(other)
        ))),
    }
}

/// The slow path: decompress, then read JSON or msgpack.
fn read_any_body(
    raw: &[u8],
    serializer: Serializer,
    compression: Option<Compression>,
    max_body_bytes: usize,
) -> Result<wire::Body, ProtocolError> {
    let inflated;
    let plain = match compression {
        Some(c) => {
            inflated = c.decompress(raw, max_body_bytes)?;
            &inflated[..]
        }
        None => raw,
    };
    match serializer {
        Serializer::Json => wire::read_body(plain),
        Serializer::Msgpack => wire::body_from_value(super::msgpack::to_json(plain)?),
    }
}

/// Refuse an `eta` or `expires` that is set but not a time Python can
/// hold, as a Celery worker does (`InvalidTaskError`); an empty one means
/// unset, as in Celery.
fn check_times(headers: &TaskHeaders) -> Result<(), ProtocolError> {
    for (field, value) in [("ETA", &headers.eta), ("expires", &headers.expires)] {
        if let Some(text) = value.as_deref().filter(|t| !t.is_empty()) {
            if time::parse(text).is_none_or(|at| at > time::latest()) {
                return Err(ProtocolError::InvalidTime {
                    field,
                    value: text.to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// The JSON type of a value, for error messages.
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_through_an_envelope() {
        let mut message = TaskMessage {
            headers: TaskHeaders::new("tasks.add", "abc"),
            args: vec![json!(2), json!(3)],
            kwargs: Map::new(),
            embed: Embed::default(),
        };
        message.headers.extra.insert("custom".into(), json!(1));
        let envelope = message.to_envelope("celery", Some(3));
        let bytes = envelope.to_vec();
        let (back, envelope) = TaskMessage::from_slice(&bytes).expect("decodes");
        assert_eq!(back, message);
        assert_eq!(envelope.properties.priority, Some(3));
        assert_eq!(envelope.properties.delivery_info.routing_key, "celery");
    }

    #[test]
    fn refuses_protocol_v1_and_bad_bodies_with_reasons() {
        let v1 = Envelope::new(b"{}", Map::new(), Properties::for_task("x", "celery", None));
        assert!(matches!(
            TaskMessage::from_envelope(&v1),
            Err(ProtocolError::ProtocolV1)
        ));
        let mut headers = Map::new();
        headers.insert("task".into(), json!("t"));
        headers.insert("id".into(), json!("i"));
        let bad = Envelope::new(
            br#"[1, {}, {}]"#,
            headers,
            Properties::for_task("i", "celery", None),
        );
        let err = TaskMessage::from_envelope(&bad).expect_err("args not a list");
        assert!(err.to_string().contains("args must be an array"), "{err}");
    }
}
