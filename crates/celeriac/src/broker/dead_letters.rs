//! Dead letters as every broker stores them: metadata apart from payloads.
//!
//! A dead letter is two records under one id:
//!
//! 1. [`DeadLetterInfo`], a few hundred bytes of JSON: id, queue, reason,
//!    time, task name and task id (read from the message when it can be),
//!    the original size, the stored size and a short preview. Counting and
//!    listing read only these (and the count is one O(1) call on Redis).
//! 2. The payload, read only on demand ([`DeadLetters::fetch`],
//!    [`DeadLetters::requeue`]). It is capped at
//!    [`MAX_STORED_PAYLOAD`] bytes: a longer message (typically one refused
//!    for its size) keeps its first bytes only, and stays identifiable by
//!    the task id and name in its metadata. A truncated payload is not a
//!    runnable message, so requeueing it is refused.
//!
//! [`DeadLetters::fetch`]: super::DeadLetters::fetch
//! [`DeadLetters::requeue`]: super::DeadLetters::requeue

use serde::{Deserialize, Serialize};

use crate::protocol::DeadLetter;

/// Payload bytes kept per dead letter (256 KiB); the rest is dropped.
pub const MAX_STORED_PAYLOAD: usize = 256 * 1024;

/// Characters of the payload kept in the metadata as a preview.
const PREVIEW_CHARS: usize = 200;

/// What is known about a dead letter without reading its payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterInfo {
    /// Unique id of this dead letter.
    pub id: String,
    /// The queue the message came from.
    pub queue: String,
    /// Why it was set aside.
    pub reason: String,
    /// When, ISO-8601 UTC.
    pub at: String,
    /// The task name in the message, when it could be read.
    #[serde(default)]
    pub task: Option<String>,
    /// The task id in the message, when it could be read.
    #[serde(default)]
    pub task_id: Option<String>,
    /// Size of the original message in bytes.
    pub size: u64,
    /// Bytes of it stored (less than `size` when truncated).
    pub stored: u64,
    /// The start of the message, as text (invalid UTF-8 replaced).
    #[serde(default)]
    pub preview: String,
}

impl DeadLetterInfo {
    /// True when only the first [`MAX_STORED_PAYLOAD`] bytes were kept.
    pub fn truncated(&self) -> bool {
        self.stored < self.size
    }

    /// The metadata JSON, as stored and as `celeriac dlq list --json` prints it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The full record (protocol form, with the stored payload) for `show`.
    pub fn with_payload(&self, payload: &[u8]) -> DeadLetter {
        let mut letter = DeadLetter::new(&self.queue, &self.reason, payload);
        letter.id.clone_from(&self.id);
        letter.at.clone_from(&self.at);
        letter
    }
}

/// A new dead letter's metadata and the payload bytes to store (capped).
pub(crate) fn describe(queue: &str, reason: &str, payload: &[u8]) -> (DeadLetterInfo, Vec<u8>) {
    let at = crate::protocol::time::format(chrono::Utc::now());
    let id = uuid::Uuid::new_v4().to_string();
    describe_with(id, at, queue, reason, payload)
}

/// As [`describe`], keeping a known id and time (legacy records).
pub(crate) fn describe_with(
    id: String,
    at: String,
    queue: &str,
    reason: &str,
    payload: &[u8],
) -> (DeadLetterInfo, Vec<u8>) {
    let (task, task_id) = identify(payload);
    let kept = &payload[..payload.len().min(MAX_STORED_PAYLOAD)];
    let head = &payload[..payload.len().min(PREVIEW_CHARS * 4)];
    let preview: String = String::from_utf8_lossy(head)
        .chars()
        .take(PREVIEW_CHARS)
        .collect();
    let info = DeadLetterInfo {
        id,
        queue: queue.to_owned(),
        reason: reason.to_owned(),
        at,
        task,
        task_id,
        size: payload.len() as u64,
        stored: kept.len() as u64,
        preview,
    };
    (info, kept.to_vec())
}

/// The task name and id in the message, when readable (the lenient
/// reading of [`crate::protocol::identify`]: a broken message often still
/// names its task).
fn identify(payload: &[u8]) -> (Option<String>, Option<String>) {
    match crate::protocol::identify(payload) {
        Some(identity) => (identity.task, Some(identity.id)),
        None => (None, None),
    }
}

/// The refusal to requeue a dead letter whose payload was cut.
pub(crate) fn truncated_refusal(info: &DeadLetterInfo) -> crate::Error {
    crate::Error::InvalidArgument(format!(
        "dead letter {} kept only the first {} of its {} bytes, so it cannot be requeued",
        info.id, info.stored, info.size
    ))
}

#[cfg(any(feature = "sqlite", feature = "redis"))]
/// Read a stored metadata record; `None` when it is not one.
pub(crate) fn parse_info(text: &[u8]) -> Option<DeadLetterInfo> {
    serde_json::from_slice(text).ok()
}

#[cfg(any(feature = "sqlite", feature = "redis"))]
/// Convert a dead letter of the old single-record layout (full JSON with
/// the payload) into metadata and a capped payload.
pub(crate) fn from_legacy(text: &[u8]) -> (DeadLetterInfo, Vec<u8>) {
    match serde_json::from_slice::<DeadLetter>(text) {
        Ok(old) => describe_with(
            old.id.clone(),
            old.at.clone(),
            &old.queue,
            &old.reason,
            &old.payload_bytes(),
        ),
        Err(e) => {
            let (mut info, payload) = describe("unknown", "", text);
            info.reason = format!("unreadable dead letter of an older version: {e}");
            (info, payload)
        }
    }
}

#[cfg(any(feature = "sqlite", feature = "redis"))]
/// Seconds since the epoch of an ISO time, for ordering (0 when unreadable).
pub(crate) fn sort_key(at: &str) -> f64 {
    crate::protocol::time::parse(at).map_or(0.0, |t| t.timestamp_micros() as f64 / 1e6)
}

#[cfg(all(test, any(feature = "sqlite", feature = "redis")))]
mod tests {
    use super::*;

    #[test]
    fn a_long_message_keeps_its_start_and_stays_identifiable() {
        let message = crate::protocol::TaskMessage {
            headers: crate::protocol::TaskHeaders::new("tasks.big", "id-big"),
            args: vec![serde_json::json!("x".repeat(MAX_STORED_PAYLOAD * 2))],
            kwargs: Default::default(),
            embed: Default::default(),
        };
        let bytes = message.to_envelope("celery", None).to_vec();
        let (info, kept) = describe("celery", "too big", &bytes);
        assert_eq!(kept.len(), MAX_STORED_PAYLOAD);
        assert_eq!(kept[..], bytes[..MAX_STORED_PAYLOAD]);
        assert!(info.truncated());
        assert_eq!(info.size, bytes.len() as u64);
        assert_eq!(info.task.as_deref(), Some("tasks.big"));
        assert_eq!(info.task_id.as_deref(), Some("id-big"));
        assert!(info.preview.chars().count() <= PREVIEW_CHARS);
        assert_eq!(parse_info(info.to_json().as_bytes()), Some(info));
    }

    #[test]
    fn legacy_records_keep_their_id_time_and_bytes() {
        let old = DeadLetter::new("q", "why", &[0xff, 0x01]);
        let (info, payload) = from_legacy(old.to_json().as_bytes());
        assert_eq!(
            (info.id.as_str(), info.at.as_str()),
            (old.id.as_str(), old.at.as_str())
        );
        assert_eq!(payload, vec![0xff, 0x01]);
        assert!(!info.truncated());
        let (broken, raw) = from_legacy(b"{not json");
        assert!(broken.reason.contains("unreadable"), "{}", broken.reason);
        assert_eq!(raw, b"{not json");
    }
}
