//! The bench's raw task messages: what Python Celery 5.x sends for
//! `tasks.add.delay(2, 2)` (with results stored), byte for byte, with fresh
//! ids.
//!
//! The template is the captured `crates/celeriac/tests/fixtures/celery/
//! task_add_args.json` (Python's `json.dumps` spacing and key order, `lang:
//! py`, `ignore_result: null`, a base64 body) with the arguments changed;
//! only the task id (in `id`, `root_id` and `correlation_id`), the delivery
//! tag, `reply_to` and the routing key differ between messages. Both the
//! Celeriac and the Python Celery workers drain these same bytes.

use std::fmt::Write as _;

/// The task the messages call.
pub(super) const TASK: &str = "tasks.add";

/// What each message's task returns (`2 + 2`).
pub(super) const RESULT: i64 = 4;

/// `[[2, 2], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`,
/// base64 (kombu's `body_encoding`).
const BODY: &str = "W1syLCAyXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d";

/// Makes distinct uuid-shaped ids (random per bench run, then counted) and
/// the messages that carry them.
pub(super) struct Messages {
    state: u64,
    reply_to: String,
    queue: String,
}

impl Messages {
    /// Messages routed to `queue`.
    pub(super) fn new(queue: &str) -> Messages {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ (u64::from(std::process::id()) << 32);
        let mut messages = Messages {
            state: seed,
            reply_to: String::new(),
            queue: queue.to_owned(),
        };
        messages.reply_to = messages.next_id();
        messages
    }

    /// A fresh uuid4-shaped id (splitmix64 over a per-run seed).
    pub(super) fn next_id(&mut self) -> String {
        let mut word = || {
            self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let (a, b) = (word(), word());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    }

    /// One message for `task_id`: the envelope's bytes.
    pub(super) fn message(&mut self, task_id: &str) -> Vec<u8> {
        let tag = self.next_id();
        render(task_id, &tag, &self.reply_to, &self.queue).into_bytes()
    }
}

/// The envelope as Python Celery writes it.
fn render(id: &str, delivery_tag: &str, reply_to: &str, queue: &str) -> String {
    let mut s = String::with_capacity(1100);
    let _ = write!(
        s,
        concat!(
            r#"{{"body": "{body}", "content-encoding": "utf-8", "content-type": "application/json", "#,
            r#""headers": {{"lang": "py", "task": "{task}", "id": "{id}", "shadow": null, "eta": null, "#,
            r#""expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "#,
            r#""root_id": "{id}", "parent_id": null, "argsrepr": "(2, 2)", "kwargsrepr": "{{}}", "#,
            r#""origin": "gen13370@vm", "ignore_result": null, "replaced_task_nesting": 0, "#,
            r#""stamped_headers": null, "stamps": {{}}}}, "properties": {{"correlation_id": "{id}", "#,
            r#""reply_to": "{reply_to}", "delivery_mode": 2, "delivery_info": {{"exchange": "", "#,
            r#""routing_key": "{queue}"}}, "priority": 0, "body_encoding": "base64", "#,
            r#""delivery_tag": "{tag}"}}}}"#
        ),
        body = BODY,
        task = TASK,
        id = id,
        reply_to = reply_to,
        queue = json_str(queue),
        tag = delivery_tag,
    );
    s
}

/// `text` as the inside of a JSON string.
fn json_str(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap_or_default();
    quoted[1..quoted.len() - 1].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use celeriac::protocol::TaskMessage;

    /// The captured message of `tasks.add.delay(2, 3)` sent by Python Celery.
    const CAPTURED: &str =
        include_str!("../../../../celeriac/tests/fixtures/celery/task_add_args.json");

    #[test]
    fn a_message_is_the_captured_celery_message_with_other_ids_and_arguments() {
        let captured: serde_json::Value =
            serde_json::from_str(CAPTURED).expect("the captured message is JSON");
        let field = |path: &str| {
            captured
                .pointer(path)
                .and_then(serde_json::Value::as_str)
                .expect("a string field of the captured message")
                .to_owned()
        };
        let ours = render(
            &field("/headers/id"),
            &field("/properties/delivery_tag"),
            &field("/properties/reply_to"),
            "celery",
        );
        let expected = CAPTURED
            .trim_end()
            .replace(&field("/body"), BODY)
            .replace("\"(2, 3)\"", "\"(2, 2)\"");
        assert_eq!(ours, expected);
    }

    #[test]
    fn messages_decode_as_tasks_add_of_2_and_2_with_their_own_ids() {
        let mut messages = Messages::new("celeriac \"bench\"");
        let ids: Vec<String> = (0..1000).map(|_| messages.next_id()).collect();
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        for id in &ids[..3] {
            assert_eq!(id.len(), 36, "{id}");
            assert_eq!(id.as_bytes()[14], b'4', "{id}");
            let bytes = messages.message(id);
            let (message, envelope) =
                TaskMessage::from_slice(&bytes).expect("a message the worker reads");
            assert_eq!(message.headers.task, TASK);
            assert_eq!(message.headers.id, *id);
            assert_eq!(message.headers.lang.as_deref(), Some("py"));
            assert!(!message.headers.ignore_result);
            assert_eq!(
                message.args,
                vec![serde_json::json!(2), serde_json::json!(2)]
            );
            let value: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
            assert_eq!(
                value["properties"]["delivery_info"]["routing_key"],
                "celeriac \"bench\""
            );
            assert_eq!(value["properties"]["correlation_id"], id.as_str());
            drop(envelope);
        }
    }
}
