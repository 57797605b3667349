//! Celery events: what workers announce and monitors (Flower) read.
//!
//! An event is a flat JSON object with at least `type, hostname, timestamp,
//! utcoffset, pid, clock`; the rest depends on the type (`uuid` for task
//! events, `freq, active, processed, loadavg, sw_*` for heartbeats). On
//! Redis it travels in a kombu envelope published on the channel
//! `/<db>.celeryev/<routing key>`, routing key = type with `-` as `.`.
//! Python workers batch task events into one list on `task.multi`.

use serde_json::{Map, Value};

use super::{DeliveryInfo, Envelope, Properties, ProtocolError};

/// One event, as a field map (types vary by event, as in Celery).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The fields, `type` included.
    pub fields: Map<String, Value>,
}

impl Event {
    /// A new event of `kind` from `hostname`, stamped now.
    pub fn new(kind: &str, hostname: &str, clock: u64) -> Self {
        let mut fields = Map::new();
        fields.insert("hostname".into(), hostname.into());
        fields.insert("utcoffset".into(), Value::from(0.0));
        fields.insert("pid".into(), std::process::id().into());
        fields.insert("clock".into(), clock.into());
        let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
        fields.insert("timestamp".into(), Value::from(now));
        fields.insert("type".into(), kind.into());
        Event { fields }
    }

    /// Add a field.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.to_owned(), value.into());
        self
    }

    /// The event type, e.g. `task-succeeded`.
    pub fn kind(&self) -> &str {
        self.fields
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The sender's node name.
    pub fn hostname(&self) -> &str {
        self.fields
            .get("hostname")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The task id of a task event.
    pub fn task_id(&self) -> Option<&str> {
        self.fields.get("uuid").and_then(Value::as_str)
    }

    /// The routing key: the type with `-` turned into `.`.
    pub fn routing_key(&self) -> String {
        self.kind().replace('-', ".")
    }

    /// The kombu envelope a Celery worker would publish for this event.
    pub fn to_envelope(&self) -> Envelope {
        let body = serde_json::to_vec(&self.fields).unwrap_or_default();
        let mut headers = Map::new();
        headers.insert("hostname".into(), self.hostname().into());
        let properties = Properties {
            correlation_id: None,
            reply_to: None,
            delivery_mode: 1,
            delivery_info: DeliveryInfo {
                exchange: "celeryev".into(),
                routing_key: self.routing_key(),
                extra: Map::new(),
            },
            priority: Some(0),
            body_encoding: "base64".into(),
            delivery_tag: uuid::Uuid::new_v4().to_string(),
            extra: Map::new(),
        };
        Envelope::new(&body, headers, properties)
    }

    /// Read the events in an envelope: one, or a `task.multi` batch.
    pub fn from_envelope(envelope: &Envelope) -> Result<Vec<Event>, ProtocolError> {
        let body = envelope.decoded_body()?;
        let value: Value =
            serde_json::from_slice(&body).map_err(|e| ProtocolError::Body(e.to_string()))?;
        let objects = match value {
            Value::Object(map) => vec![map],
            Value::Array(items) => items
                .into_iter()
                .filter_map(|v| match v {
                    Value::Object(map) => Some(map),
                    _ => None,
                })
                .collect(),
            _ => {
                return Err(ProtocolError::Body(
                    "an event must be an object or a list".into(),
                ))
            }
        };
        Ok(objects.into_iter().map(|fields| Event { fields }).collect())
    }
}
