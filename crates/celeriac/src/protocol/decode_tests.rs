//! `TaskMessage::decode` on every body encoding a Celery 5 producer can
//! choose, and on the messages it must refuse with a reason.

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::{identify, Compression, Embed, ProtocolError, TaskHeaders, TaskMessage};

fn message() -> TaskMessage {
    TaskMessage {
        headers: TaskHeaders::new("tasks.add", "id-1"),
        args: vec![json!(2), json!("x".repeat(100))],
        kwargs: Map::new(),
        embed: Embed::default(),
    }
}

/// The envelope of `message()` as JSON, for editing.
fn envelope() -> Value {
    serde_json::from_slice(&message().to_envelope("celery", Some(0)).to_vec()).expect("json")
}

/// `envelope` with `body` (raw bytes, base64-encoded here) and the given
/// content type and compression header.
fn with_body(body: &[u8], content_type: &str, compression: Option<&str>) -> Vec<u8> {
    let mut e = envelope();
    e["body"] = base64::engine::general_purpose::STANDARD
        .encode(body)
        .into();
    e["content-type"] = content_type.into();
    if let Some(c) = compression {
        e["headers"]["compression"] = c.into();
    }
    serde_json::to_vec(&e).expect("json")
}

const BODY: &[u8] =
    br#"[[2, "x"], {"k": 1}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]"#;

fn decoded(bytes: &[u8]) -> TaskMessage {
    TaskMessage::decode(bytes).expect("decodes").0
}

#[test]
fn reads_zlib_gzip_and_bzip2_bodies_under_every_kombu_name() {
    for (name, c) in [
        ("application/x-gzip", Compression::Zlib),
        ("zlib", Compression::Zlib),
        ("gzip", Compression::Zlib),
        ("application/x-bz2", Compression::Bzip2),
        ("bzip2", Compression::Bzip2),
    ] {
        let m = decoded(&with_body(
            &c.compress(BODY),
            "application/json",
            Some(name),
        ));
        assert_eq!(m.args, vec![json!(2), json!("x")], "{name}");
        assert_eq!(m.kwargs.get("k"), Some(&json!(1)), "{name}");
        // The slow path agrees with from_slice.
        let bytes = with_body(&c.compress(BODY), "application/json", Some(name));
        assert_eq!(TaskMessage::from_slice(&bytes).expect("from_slice").0, m);
    }
}

#[test]
fn reads_msgpack_bodies_plain_and_compressed() {
    let mut packed = Vec::new();
    let body = rmpv::Value::Array(vec![
        rmpv::Value::Array(vec![2.into(), "x".into()]),
        rmpv::Value::Map(vec![("k".into(), 1.into())]),
        rmpv::Value::Map(vec![("chain".into(), rmpv::Value::Nil)]),
    ]);
    rmpv::encode::write_value(&mut packed, &body).expect("pack");
    let plain = decoded(&with_body(&packed, "application/x-msgpack", None));
    assert_eq!(plain.args, vec![json!(2), json!("x")]);
    assert_eq!(plain.kwargs.get("k"), Some(&json!(1)));
    let squeezed = Compression::Bzip2.compress(&packed);
    let both = decoded(&with_body(
        &squeezed,
        "application/x-msgpack",
        Some("bzip2"),
    ));
    assert_eq!(both.args, plain.args);
    let mut not_a_body = Vec::new();
    rmpv::encode::write_value(&mut not_a_body, &rmpv::Value::from(5)).expect("pack");
    let err = TaskMessage::decode(&with_body(&not_a_body, "application/x-msgpack", None))
        .expect_err("not an array");
    assert!(err.to_string().contains("[args, kwargs, embed]"), "{err}");
}

#[test]
fn refuses_pickle_yaml_and_unknown_compressions_naming_the_fix() {
    for (content_type, says) in [
        ("application/x-python-serialize", "task_serializer='json'"),
        ("application/x-yaml", "task_serializer='json'"),
        ("text/plain", "task_serializer='json'"),
    ] {
        let err = TaskMessage::decode(&with_body(b"x", content_type, None)).expect_err("refused");
        assert!(matches!(err, ProtocolError::ContentType(_)), "{err}");
        assert!(err.to_string().contains(says), "{err}");
        assert_eq!(err.python_exception().1, "ContentDisallowed");
    }
    let err = TaskMessage::decode(&with_body(
        BODY,
        "application/json",
        Some("application/x-lzma"),
    ))
    .expect_err("lzma");
    assert!(err.to_string().contains("gzip/zlib or bzip2"), "{err}");
    let err = TaskMessage::decode(&with_body(BODY, "application/json", Some("zlib")))
        .expect_err("not really compressed");
    assert!(matches!(err, ProtocolError::Compression(_)), "{err}");
    let bomb = Compression::Zlib.compress(&vec![b' '; 4096]);
    let err = TaskMessage::decode_within(&with_body(&bomb, "application/json", Some("zlib")), 1000)
        .expect_err("bomb");
    assert!(err.to_string().contains("1000-byte limit"), "{err}");
}

#[test]
fn refuses_nan_and_infinity_with_the_reason() {
    for body in [&b"[[NaN], {}, {}]"[..], b"[[1], {\"x\": -Infinity}, {}]"] {
        let err = TaskMessage::decode(&with_body(body, "application/json", None)).expect_err("NaN");
        assert!(matches!(err, ProtocolError::NonFinite), "{err}");
        assert!(err.to_string().contains("NaN or Infinity"), "{err}");
    }
    // A string that spells NaN is just a string.
    let m = decoded(&with_body(
        br#"[["NaN"], {}, {}]"#,
        "application/json",
        None,
    ));
    assert_eq!(m.args, vec![json!("NaN")]);
}

#[test]
fn refuses_an_eta_or_expiry_that_is_not_a_time() {
    for (field, value) in [
        ("eta", json!("not-a-date")),
        ("eta", json!("99999-01-01T00:00:00")),
        ("expires", json!("2024-13-45T00:00:00")),
    ] {
        let mut e = envelope();
        e["headers"][field] = value.clone();
        let bytes = serde_json::to_vec(&e).expect("json");
        let err = TaskMessage::decode(&bytes).expect_err("refused");
        assert!(
            matches!(err, ProtocolError::InvalidTime { .. }),
            "{field}: {err}"
        );
        assert_eq!(err.python_exception().1, "InvalidTaskError");
        // Its caller can still be told.
        assert_eq!(identify(&bytes).map(|m| m.id), Some("id-1".into()));
    }
    // An ETA that is not a string is a header error, also identifiable.
    let mut e = envelope();
    e["headers"]["eta"] = json!(12);
    let bytes = serde_json::to_vec(&e).expect("json");
    assert!(matches!(
        TaskMessage::decode(&bytes),
        Err(ProtocolError::Headers(_))
    ));
    assert_eq!(
        identify(&bytes).and_then(|m| m.task),
        Some("tasks.add".into())
    );
    // Empty means unset, as in Celery; a date alone is midnight.
    for ok in ["", "2030-01-01"] {
        let mut e = envelope();
        e["headers"]["eta"] = ok.into();
        assert!(
            TaskMessage::decode(&serde_json::to_vec(&e).expect("json")).is_ok(),
            "{ok}"
        );
    }
}

#[test]
fn re_encoding_keeps_the_compression() {
    let mut m = message();
    m.headers.set_compression(Some(Compression::Zlib));
    assert_eq!(m.headers.extra["compression"], json!("application/x-gzip"));
    let zlib = m.to_envelope("celery", None);
    assert_eq!(
        TaskMessage::decode(&zlib.to_vec()).expect("zlib").0.args,
        m.args
    );
    m.headers.set_compression(None);
    assert!(m.headers.extra.is_empty());
    m.headers.extra.insert("compression".into(), json!("bzip2"));
    let envelope = m.to_envelope("celery", None);
    assert_eq!(envelope.headers["compression"], json!("application/x-bz2"));
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&envelope.body)
        .expect("base64");
    assert!(raw.starts_with(b"BZh"), "the body is bzip2");
    let (back, _) = TaskMessage::decode(&envelope.to_vec()).expect("decodes");
    assert_eq!(back.args, m.args);
    // An unknown compression is dropped rather than written unhonoured.
    m.headers.extra.insert("compression".into(), json!("lzma"));
    let envelope = m.to_envelope("celery", None);
    assert!(!envelope.headers.contains_key("compression"));
    assert!(TaskMessage::decode(&envelope.to_vec()).is_ok());
}
