//! kombu's message envelope.
//!
//! On Redis every queued item is this JSON object; the task message itself is
//! in `body`, base64-encoded. The memory and SQLite brokers store the same
//! bytes so that a message can move between brokers unchanged.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ProtocolError;

/// A kombu envelope: body plus transport properties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The serialized body; base64 when `properties.body_encoding` says so.
    pub body: String,
    /// Text encoding of the body, `utf-8`.
    #[serde(rename = "content-encoding", default = "utf8")]
    pub content_encoding: String,
    /// MIME type of the body, `application/json`.
    #[serde(rename = "content-type", default = "json_type")]
    pub content_type: String,
    /// Message headers: the task headers for task messages, `{}` for events.
    #[serde(default)]
    pub headers: Map<String, Value>,
    /// Transport properties.
    pub properties: Properties,
}

/// kombu message properties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Properties {
    /// The task id, for task messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Reply queue name (Celery sets a uuid; unused on Redis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// 2 = persistent.
    #[serde(default = "persistent")]
    pub delivery_mode: u8,
    /// Where the message was routed.
    #[serde(default)]
    pub delivery_info: DeliveryInfo,
    /// Message priority, 0–255 as sent; Redis maps it to steps 0/3/6/9.
    /// Read as kombu does: clamped into range, the default when not a number.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::wire::lenient_priority"
    )]
    pub priority: Option<u8>,
    /// `base64` on Redis.
    #[serde(default = "base64_name")]
    pub body_encoding: String,
    /// Unique per delivery; the field name in the `unacked` hash.
    #[serde(default)]
    pub delivery_tag: String,
    /// Any property we do not model, kept so re-publishing loses nothing.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Exchange and routing key of a delivery.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveryInfo {
    /// Exchange name; `""` is the default direct exchange.
    #[serde(default)]
    pub exchange: String,
    /// Routing key; the queue name for the default exchange.
    #[serde(default)]
    pub routing_key: String,
    /// Anything else kombu put here (e.g. `redelivered`), kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn utf8() -> String {
    "utf-8".to_owned()
}
fn json_type() -> String {
    "application/json".to_owned()
}
fn persistent() -> u8 {
    2
}
fn base64_name() -> String {
    "base64".to_owned()
}

impl Envelope {
    /// Wrap a JSON body the way kombu does on Redis.
    pub fn new(body: &[u8], headers: Map<String, Value>, properties: Properties) -> Self {
        use base64::Engine as _;
        Envelope {
            body: base64::engine::general_purpose::STANDARD.encode(body),
            content_encoding: utf8(),
            content_type: json_type(),
            headers,
            properties,
        }
    }

    /// Parse an envelope from the bytes stored in a queue.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ProtocolError> {
        serde_json::from_slice(bytes).map_err(|e| ProtocolError::Envelope(e.to_string()))
    }

    /// The bytes to store in a queue.
    pub fn to_vec(&self) -> Vec<u8> {
        // Serializing these plain maps and strings cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The decoded body bytes.
    pub fn decoded_body(&self) -> Result<Vec<u8>, ProtocolError> {
        use base64::Engine as _;
        if self.content_type != "application/json" {
            return Err(ProtocolError::ContentType(self.content_type.clone()));
        }
        if self.properties.body_encoding == "base64" {
            base64::engine::general_purpose::STANDARD
                .decode(self.body.as_bytes())
                .map_err(|e| ProtocolError::Base64(e.to_string()))
        } else {
            Ok(self.body.clone().into_bytes())
        }
    }
}

impl Properties {
    /// Properties for a task message routed to `queue`.
    pub fn for_task(task_id: &str, queue: &str, priority: Option<u8>) -> Self {
        Properties {
            correlation_id: Some(task_id.to_owned()),
            reply_to: Some(uuid::Uuid::new_v4().to_string()),
            delivery_mode: 2,
            delivery_info: DeliveryInfo {
                exchange: String::new(),
                routing_key: queue.to_owned(),
                extra: Map::new(),
            },
            priority: Some(priority.unwrap_or(0)),
            body_encoding: base64_name(),
            delivery_tag: uuid::Uuid::new_v4().to_string(),
            extra: Map::new(),
        }
    }
}
