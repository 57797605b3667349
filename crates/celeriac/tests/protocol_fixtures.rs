//! The protocol types against literal bytes produced by a real Python
//! Celery 5.x (captured by `scripts/capture_celery_fixtures.py`; see
//! `tests/fixtures/celery/README.md`).

use std::path::{Path, PathBuf};

use celeriac::protocol::{Envelope, ResultMeta, TaskMessage, TaskState};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/celery")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every captured task message (`task_*.json`, not the decoded bodies).
fn task_fixtures() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures())
        .expect("fixtures dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("task_") && n.ends_with(".json") && !n.ends_with(".body.json"))
        .collect();
    names.sort();
    names
}

#[test]
fn every_captured_task_message_decodes_and_matches_its_body() {
    let names = task_fixtures();
    assert!(
        names.len() >= 20,
        "expected the captured task messages, found {names:?}"
    );
    for name in names {
        let raw = read(&name);
        let (message, envelope) =
            TaskMessage::from_slice(&raw).unwrap_or_else(|e| panic!("{name}: {e}"));
        let body: Value = serde_json::from_slice(&read(&name.replace(".json", ".body.json")))
            .unwrap_or_else(|e| panic!("{name} body: {e}"));
        assert_eq!(Value::Array(message.args.clone()), body[0], "{name}: args");
        assert_eq!(
            Value::Object(message.kwargs.clone()),
            body[1],
            "{name}: kwargs"
        );
        assert_eq!(
            envelope.properties.correlation_id.as_deref(),
            Some(message.headers.id.as_str()),
            "{name}: correlation id is the task id"
        );
        assert!(!message.headers.task.is_empty(), "{name}: task name");
        // The worker's one-pass decoder reads exactly the same message.
        let (fast, priority) =
            TaskMessage::decode(&raw).unwrap_or_else(|e| panic!("{name} (decode): {e}"));
        assert_eq!(fast, message, "{name}: decode agrees with from_slice");
        assert_eq!(priority, envelope.properties.priority, "{name}: priority");
    }
}

#[test]
fn the_worker_decoder_refuses_what_from_slice_refuses_with_the_same_reason() {
    use celeriac::protocol::ProtocolError;
    let good = read(&task_fixtures()[0]);
    let mut v1: Value = serde_json::from_slice(&good).expect("json");
    v1["headers"] = serde_json::json!({"lang": "py"});
    let mut pickle = serde_json::from_slice::<Value>(&good).expect("json");
    pickle["content-type"] = "application/x-python-serialize".into();
    let mut no_id = serde_json::from_slice::<Value>(&good).expect("json");
    no_id["headers"]
        .as_object_mut()
        .expect("headers")
        .remove("id");
    let cases: Vec<Vec<u8>> = vec![
        b"not json".to_vec(),
        br#"{"body": "x"}"#.to_vec(),
        serde_json::to_vec(&v1).expect("json"),
        serde_json::to_vec(&pickle).expect("json"),
        serde_json::to_vec(&no_id).expect("json"),
    ];
    for raw in cases {
        let slow = TaskMessage::from_slice(&raw).expect_err("from_slice refuses");
        let fast = TaskMessage::decode(&raw).expect_err("decode refuses");
        assert_eq!(
            std::mem::discriminant(&slow),
            std::mem::discriminant(&fast),
            "{slow} / {fast}"
        );
        if matches!(fast, ProtocolError::Headers(_)) {
            assert!(fast.to_string().contains("missing field `id`"), "{fast}");
        }
    }
}

#[test]
fn envelopes_survive_a_round_trip_field_for_field() {
    for name in task_fixtures() {
        let original: Value = serde_json::from_slice(&read(&name)).expect("json");
        let envelope = Envelope::from_slice(&read(&name)).expect("envelope");
        let again: Value = serde_json::from_slice(&envelope.to_vec()).expect("json");
        assert_eq!(again, original, "{name}: re-encoded envelope differs");
        // And through the typed task message: headers keep unknown fields.
        let message = TaskMessage::from_envelope(&envelope).expect("task message");
        let headers = serde_json::to_value(&message.headers).expect("headers");
        for (key, value) in original["headers"].as_object().expect("headers object") {
            let ours = &headers[key];
            let same = ours == value
                || (value.is_null() && (ours == &Value::Bool(false) || ours == &Value::from(0)));
            assert!(same, "{name}: header {key}: {value} became {ours}");
        }
    }
}

#[test]
fn specific_fields_read_as_celery_meant_them() {
    let (m, _) = TaskMessage::from_slice(&read("task_add_kwargs.json")).expect("kwargs");
    assert!(m.args.is_empty() && m.kwargs.len() == 2);

    let (m, e) = TaskMessage::from_slice(&read("task_add_priority_5.json")).expect("priority");
    assert_eq!(e.properties.priority, Some(5));
    assert_eq!(m.headers.task, "tasks.add");

    let (m, _) = TaskMessage::from_slice(&read("task_add_time_limits.json")).expect("limits");
    assert!(m.headers.timelimit.0.is_some() && m.headers.timelimit.1.is_some());

    for eta in [
        "task_add_countdown.json",
        "task_add_eta_utc.json",
        "task_add_eta_naive.json",
        "task_add_eta_offset.json",
    ] {
        let (m, _) = TaskMessage::from_slice(&read(eta)).expect("eta");
        assert!(
            m.headers.eta_time().is_some(),
            "{eta}: eta unreadable: {:?}",
            m.headers.eta
        );
    }
    for expires in [
        "task_add_expires_seconds.json",
        "task_add_expires_datetime.json",
    ] {
        let (m, _) = TaskMessage::from_slice(&read(expires)).expect("expires");
        assert!(m.headers.expires_time().is_some(), "{expires}");
    }
    let (m, _) = TaskMessage::from_slice(&read("task_add_link.json")).expect("link");
    assert!(m.embed.callbacks.is_some(), "link callback kept");

    let (m, _) = TaskMessage::from_slice(&read("task_echo_unicode.json")).expect("unicode");
    assert!(m
        .args
        .iter()
        .any(|a| a.as_str().is_some_and(|s| !s.is_ascii())));
}

#[test]
fn captured_results_decode_with_states_and_exceptions() {
    let meta: ResultMeta =
        serde_json::from_slice(&read("result_success_int.json")).expect("success");
    assert_eq!(meta.status, TaskState::Success);
    assert!(meta.result.is_number());

    let meta: ResultMeta = serde_json::from_slice(&read("result_failure.json")).expect("failure");
    assert_eq!(meta.status, TaskState::Failure);
    let exc = meta.exception().expect("exception info");
    assert_eq!(
        (exc.exc_type.as_str(), exc.message_text().as_str()),
        ("ValueError", "bad value")
    );
    assert!(meta
        .traceback
        .is_some_and(|t| t.contains("ValueError: bad value")));

    for (name, state) in [
        ("result_retry.json", TaskState::Retry),
        ("result_revoked.json", TaskState::Revoked),
        ("result_extended_started.json", TaskState::Started),
        ("result_extended_success.json", TaskState::Success),
    ] {
        let meta: ResultMeta =
            serde_json::from_slice(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(meta.status, state, "{name}");
    }
    let extended: ResultMeta =
        serde_json::from_slice(&read("result_extended_success.json")).expect("extended");
    assert!(extended.name.is_some() && extended.worker.is_some());
}

#[test]
fn a_result_we_write_reads_like_one_celery_wrote() {
    let celery: Value = serde_json::from_slice(&read("result_failure.json")).expect("json");
    let ours = serde_json::to_value(ResultMeta::failure(
        "id",
        "ValueError",
        "bad value",
        Some("tb".into()),
    ))
    .expect("ours");
    for key in [
        "status",
        "result",
        "traceback",
        "children",
        "date_done",
        "task_id",
    ] {
        assert!(ours.get(key).is_some(), "missing {key}");
        assert_eq!(
            std::mem::discriminant(&ours[key]),
            std::mem::discriminant(&celery[key]),
            "{key} has another JSON type than Celery's"
        );
    }
    assert_eq!(
        ours["result"]["exc_message"],
        celery["result"]["exc_message"]
    );
}
