//! No message silently loses work, on the memory broker: a message the
//! worker cannot or will not decode gets a FAILURE for its task id (so
//! `get()` fails at once, with the class a Python caller would see) and a
//! dead letter with the reason; compressed and msgpack messages run. The
//! same code path serves SQLite and Redis (see also the Python-driven
//! `celeriac-interop` suite `encodings`).

use std::time::Duration;

use base64::Engine as _;
use celeriac::broker::OutgoingMessage;
use celeriac::protocol::{Compression, Embed, TaskHeaders, TaskMessage};
use celeriac::{task, App, Error, TaskError, Worker, WorkerOptions};
use serde_json::{json, Map, Value};

#[task(name = "tasks.add")]
fn add(x: i64, y: i64) -> Result<i64, TaskError> {
    Ok(x + y)
}

const WAIT: Duration = Duration::from_secs(5);

/// A `tasks.add(x, 1)` envelope with id `id`, as JSON to edit.
fn envelope(id: &str, x: i64) -> Value {
    let message = TaskMessage {
        headers: TaskHeaders::new("tasks.add", id),
        args: vec![json!(x), json!(1)],
        kwargs: Map::new(),
        embed: Embed::default(),
    };
    serde_json::from_slice(&message.to_envelope("celery", None).to_vec()).expect("json")
}

fn with_body(mut e: Value, body: &[u8]) -> Value {
    e["body"] = base64::engine::general_purpose::STANDARD
        .encode(body)
        .into();
    e
}

fn msgpack_body(x: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let body = rmpv::Value::Array(vec![
        rmpv::Value::Array(vec![x.into(), 1.into()]),
        rmpv::Value::Map(vec![]),
        rmpv::Value::Map(vec![]),
    ]);
    rmpv::encode::write_value(&mut out, &body).expect("pack");
    out
}

#[tokio::test]
async fn refused_messages_fail_at_once_and_encoded_ones_run() {
    let url = "memory://refusals";
    let app = App::builder()
        .broker_url(url)
        .backend_url(url)
        .task(add)
        .build()
        .await
        .expect("app");
    let body = br#"[[5, 1], {}, {}]"#;

    let mut runs: Vec<(&str, Value, i64)> = Vec::new();
    let mut e = with_body(envelope("zlib", 0), &Compression::Zlib.compress(body));
    e["headers"]["compression"] = "application/x-gzip".into();
    runs.push(("zlib", e, 6));
    let mut e = with_body(envelope("bz2", 0), &Compression::Bzip2.compress(body));
    e["headers"]["compression"] = "bzip2".into();
    runs.push(("bz2", e, 6));
    let mut e = with_body(envelope("msgpack", 0), &msgpack_body(9));
    e["content-type"] = "application/x-msgpack".into();
    runs.push(("msgpack", e, 10));
    let mut e = envelope("priority", 2);
    e["properties"]["priority"] = json!(1000);
    runs.push(("priority", e, 3));

    // (id, envelope, exc_module, exc_type, words in the message)
    let mut refused: Vec<(&str, Value, &str, &str, &str)> = Vec::new();
    let mut e = envelope("pickle", 1);
    e["content-type"] = "application/x-python-serialize".into();
    refused.push((
        "pickle",
        e,
        "kombu.exceptions",
        "ContentDisallowed",
        "accept_content",
    ));
    refused.push((
        "nan",
        with_body(envelope("nan", 1), b"[[NaN, 1], {}, {}]"),
        "kombu.exceptions",
        "DecodeError",
        "NaN",
    ));
    let mut e = envelope("eta", 1);
    e["headers"]["eta"] = "not-a-date".into();
    refused.push((
        "eta",
        e,
        "celery.exceptions",
        "InvalidTaskError",
        "not-a-date",
    ));
    let mut e = envelope("expires", 1);
    e["headers"]["expires"] = "99999-12-31T00:00:00".into();
    refused.push((
        "expires",
        e,
        "celery.exceptions",
        "InvalidTaskError",
        "99999",
    ));
    refused.push((
        "garbage",
        with_body(envelope("garbage", 1), b"\x00garbage"),
        "kombu.exceptions",
        "DecodeError",
        "malformed body",
    ));
    let mut e = envelope("big", 1);
    e["headers"]["padding"] = "x".repeat(70_000).into();
    refused.push((
        "big",
        e,
        "kombu.exceptions",
        "LimitExceeded",
        "65536-byte limit",
    ));

    for e in runs
        .iter()
        .map(|r| &r.1)
        .chain(refused.iter().map(|r| &r.1))
    {
        let outgoing = OutgoingMessage {
            queue: "celery".into(),
            priority: 0,
            not_before: None,
            payload: serde_json::to_vec(e).expect("json"),
        };
        app.broker().publish(outgoing).await.expect("publish");
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = WorkerOptions {
        max_message_bytes: 65_536,
        ..WorkerOptions::default()
    };
    let worker = tokio::spawn(Worker::new(app.clone(), options).run(async move {
        let _ = stopped.await;
    }));

    for (id, _, want) in &runs {
        let got = app.async_result(*id).get(WAIT).await;
        assert_eq!(got.ok(), Some(json!(want)), "{id}");
    }
    for (id, _, module, class, words) in &refused {
        match app.async_result(*id).get(WAIT).await {
            Err(Error::TaskFailed {
                exc_type,
                exc_module,
                exc_message,
                ..
            }) => {
                assert_eq!(
                    (exc_module.as_deref(), exc_type.as_str()),
                    (Some(*module), *class),
                    "{id}"
                );
                assert!(exc_message.contains(words), "{id}: {exc_message}");
            }
            other => panic!("{id}: expected a FAILURE, got {other:?}"),
        }
    }
    let letters = app
        .broker()
        .dead_letters()
        .newest(100)
        .await
        .expect("dead letters");
    assert_eq!(letters.len(), refused.len(), "one dead letter per refusal");
    for (id, _, _, _, words) in &refused {
        assert!(
            letters.iter().any(|l| l.reason.contains(words)),
            "{id}: no dead letter says {words:?}"
        );
    }
    let _ = stop.send(());
    worker.await.expect("worker task").expect("worker ran");
}
