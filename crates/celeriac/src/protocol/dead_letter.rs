//! A dead letter: a message set aside with the reason it could not run.
//!
//! Our own format (not Celery's), stored as JSON: on Redis in the list
//! `celeriac.dead_letter`, on SQLite in the table `celeriac_dead_letters`.
//! The original bytes are kept exactly, so a fixed message can be requeued.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// A message the worker could not process, with why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Unique id of this dead letter.
    pub id: String,
    /// The queue the message came from.
    pub queue: String,
    /// Why it was set aside, e.g. `malformed envelope: expected value at line 1`.
    pub reason: String,
    /// When, ISO-8601 UTC.
    pub at: String,
    /// The original message bytes: text as is, or base64 when not UTF-8
    /// (see `payload_encoding`).
    pub payload: String,
    /// `utf-8` or `base64`.
    pub payload_encoding: String,
}

impl DeadLetter {
    /// A dead letter for `payload` taken from `queue`.
    pub fn new(queue: &str, reason: &str, payload: &[u8]) -> Self {
        let (payload, payload_encoding) = match std::str::from_utf8(payload) {
            Ok(text) => (text.to_owned(), "utf-8"),
            Err(_) => (
                base64::engine::general_purpose::STANDARD.encode(payload),
                "base64",
            ),
        };
        DeadLetter {
            id: uuid::Uuid::new_v4().to_string(),
            queue: queue.to_owned(),
            reason: reason.to_owned(),
            at: super::time::format(chrono::Utc::now()),
            payload,
            payload_encoding: payload_encoding.to_owned(),
        }
    }

    /// The original bytes.
    pub fn payload_bytes(&self) -> Vec<u8> {
        if self.payload_encoding == "base64" {
            base64::engine::general_purpose::STANDARD
                .decode(&self.payload)
                .unwrap_or_default()
        } else {
            self.payload.clone().into_bytes()
        }
    }

    /// The JSON stored for it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_any_bytes_exactly() {
        for bytes in [&b"{not json"[..], &[0xff, 0x00, 0x12][..], "ünï".as_bytes()] {
            let letter = DeadLetter::new("celery", "why", bytes);
            let back: DeadLetter = serde_json::from_str(&letter.to_json()).expect("json");
            assert_eq!(back.payload_bytes(), bytes);
        }
    }
}
