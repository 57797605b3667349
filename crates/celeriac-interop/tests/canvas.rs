//! Canvas across languages on a real Redis: a real Python Celery producer's
//! chains, groups, chords, links, errbacks, chunks and maps run on Celeriac
//! workers (with one link, or half a chord's header and its body, on a
//! Python worker), a Rust producer's run on Python workers, and a chord of
//! 1,000 parts split over two Celeriac workers and one Python worker sends
//! its body exactly once, with the results in order — also when a Celeriac
//! worker holding parts is killed -9 under `acks_late`.
//!
//! Needs `redis-server` and the venv's Celery
//! (`scripts/test.sh --env-only -- cargo test -p celeriac-interop --test canvas`).

#[path = "../../celeriac/tests/support/mod.rs"]
mod support;

mod procs;

use std::time::Duration;

use celeriac::canvas::Sent;
use celeriac::{App, Error, SendOptions, Signature};
use procs::{python_worker, rust_worker};
use redis::Commands;
use serde_json::{json, Map, Value};
use support::{wait_until, RedisServer};

const WAIT: Duration = Duration::from_secs(30);

fn canvas_client(url: &str, args: &[&str]) -> Value {
    procs::python_json("canvas_client.py", args, url)
}

#[test]
fn a_python_producers_canvas_runs_on_celeriac_workers() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let _celeriac = rust_worker(&url, &["-c", "8", "-Q", "celery"], true);
    let _python = python_worker(&url, &[], &["-Q", "py", "-c", "2"]);
    let seen = canvas_client(&url, &["primitives"]);
    println!(
        "{}",
        serde_json::to_string_pretty(&seen).unwrap_or_default()
    );
    let value = |case: &str| seen[case]["value"].clone();
    assert_eq!(value("chain3"), json!(16), "{seen}");
    assert_eq!(value("chain_python_middle"), json!(112), "{seen}");
    assert_eq!(
        value("group20"),
        json!((0..20).map(|i| 2 * i).collect::<Vec<_>>())
    );
    assert_eq!(value("chord_celeriac_body")["sum"], json!(1045), "{seen}");
    assert_eq!(seen["chord_celeriac_body"]["body_runs"], json!(1));
    assert_eq!(
        value("chord_split_python_body")["values"],
        json!((1..=10).collect::<Vec<_>>()),
        "{seen}"
    );
    assert_eq!(seen["chord_split_python_body"]["body_runs"], json!(1));
    // `.get()` raises the failed part's error, as Celery's client does; the
    // body itself is stored as Celery's ChordError.
    let failed = value("chord_failed_part");
    assert_eq!(failed["raised"], json!("builtins.ValueError"), "{seen}");
    assert_eq!(failed["body_state"], json!("FAILURE"), "{seen}");
    assert_eq!(
        failed["body_exception"],
        json!("celery.exceptions.ChordError"),
        "{seen}"
    );
    assert!(
        failed["body_message"]
            .as_str()
            .unwrap_or("")
            .contains("part"),
        "{seen}"
    );
    assert_eq!(seen["chord_failed_part"]["body_runs"], json!(0));
    assert_eq!(value("link"), json!([3, [13]]), "{seen}");
    assert_eq!(value("link_error"), json!(true), "{seen}");
    assert_eq!(
        value("chunks"),
        json!([[0, 2, 4, 6, 8], [10, 12, 14, 16, 18]]),
        "{seen}"
    );
    assert_eq!(value("starmap"), json!([3, 7]), "{seen}");
    assert_eq!(value("map"), json!([1, "two", null]), "{seen}");
}

fn sig(task: &str, args: Value) -> Signature {
    Signature::new(
        task,
        args.as_array().cloned().unwrap_or_default(),
        Map::new(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_producers_canvas_runs_on_python_workers() -> Result<(), Error> {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let _python = python_worker(&url, &[], &["-Q", "celery", "-c", "4"]);
    let app = App::builder()
        .broker_url(&url)
        .backend_url(&url)
        .build()
        .await?;

    let chain = Signature::chain(vec![
        sig("tasks.add", json!([2, 2])),
        sig("tasks.add", json!([4])),
        sig("tasks.add", json!([8])),
    ]);
    let sent = app.apply_signature(&chain).await?;
    assert_eq!(app.async_result(sent.id()).get(WAIT).await?, json!(16));

    let group = Signature::group((0..20).map(|i| sig("tasks.add", json!([i, i]))).collect());
    let sent = app.apply_signature(&group).await?;
    assert!(matches!(&sent, Sent::Group(_, m) if m.len() == 20));
    assert_eq!(
        app.group_result(&sent).join(WAIT).await?,
        (0..20).map(|i| json!(2 * i)).collect::<Vec<_>>()
    );

    let body_runs = "rust-producer:chord";
    let chord = Signature::chord(
        (0..10).map(|i| sig("tasks.add", json!([i, 100]))).collect(),
        sig("tasks.chord_sum", json!([body_runs])),
    );
    let sent = app.apply_signature(&chord).await?;
    let body = app.async_result(sent.id()).get(WAIT).await?;
    assert_eq!(body["sum"], json!(1045));
    let mut conn = redis.connection();
    let runs: i64 = conn.get(body_runs).unwrap_or(0);
    assert_eq!(runs, 1);

    let parent = app
        .send_task(
            "tasks.add",
            vec![json!(1), json!(2)],
            Map::new(),
            SendOptions::new().link(sig("tasks.add", json!([10]))),
        )
        .await?;
    assert_eq!(parent.get(WAIT).await?, json!(3));
    let children = parent.children().await?;
    assert_eq!(children.len(), 1, "Python stored the child's id");
    assert_eq!(children[0].get(WAIT).await?, json!(13));

    let marks = "rust-producer:errbacks";
    let failing = app
        .send_task(
            "tasks.fail",
            vec![json!("boom")],
            Map::new(),
            SendOptions::new().link_error(sig("tasks.errback_mark", json!([marks]))),
        )
        .await?;
    assert!(matches!(
        failing.get(WAIT).await,
        Err(Error::TaskFailed { .. })
    ));
    let failed_id = failing.id().to_owned();
    wait_until(WAIT, || conn.sismember(marks, &failed_id).unwrap_or(false));

    let mut kwargs = Map::new();
    kwargs.insert("task".into(), sig("tasks.add", json!([])).to_value());
    kwargs.insert("it".into(), json!([[1, 2], [3, 4]]));
    let starmap = app
        .send_task("celery.starmap", vec![], kwargs, SendOptions::new())
        .await?;
    assert_eq!(starmap.get(WAIT).await?, json!([3, 7]));
    Ok(())
}

/// A chord of 1,000 parts over two Celeriac workers and a Python worker on
/// one queue: the body runs once, with the results in header order.
#[test]
fn a_thousand_part_chord_across_languages_completes_once() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let _a = rust_worker(
        &url,
        &["-c", "8", "--hostname", "celeriac-a@interop"],
        false,
    );
    let _b = rust_worker(
        &url,
        &["-c", "8", "--hostname", "celeriac-b@interop"],
        false,
    );
    let _python = python_worker(&url, &[], &["-Q", "celery", "-c", "2"]);
    let seen = canvas_client(&url, &["big_chord", "1000"]);
    println!("{seen}");
    assert_eq!(seen["error"], Value::Null, "{seen}");
    assert_eq!(seen["in_order"], json!(true), "{seen}");
    assert_eq!(seen["sum"], json!(499_500), "{seen}");
    assert_eq!(seen["body_runs"], json!(1), "{seen}");
}

/// A Celeriac worker holding chord parts is killed -9 under `acks_late`:
/// another worker gets them back and the chord still completes once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chord_survives_a_killed_worker_under_acks_late() -> Result<(), Error> {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let late = ["--acks-late", "-c", "4", "--prefetch", "8"];
    let mut doomed = rust_worker(
        &url,
        &[&late[..], &["--hostname", "doomed@interop"]].concat(),
        false,
    );
    let app = App::builder()
        .broker_url(&url)
        .backend_url(&url)
        .build()
        .await?;
    let body_runs = "killed:chord";
    let marks = "killed:parts";
    // Slow parts, so the doomed worker is holding some when it dies.
    let chord = Signature::chord(
        (0..16)
            .map(|i| sig("tasks.slow_mark", json!([marks, i, 0.5])))
            .collect(),
        sig("tasks.chord_sum", json!([body_runs])),
    );
    let mut conn = redis.connection();
    let sent = app.apply_signature(&chord).await?;
    // Wait until the doomed worker holds parts, then kill it.
    wait_until(WAIT, || {
        let held: i64 = conn.hlen("unacked").unwrap_or(0);
        held > 0
    });
    doomed.kill9();
    let _survivor = rust_worker(
        &url,
        &[&late[..], &["--hostname", "survivor@interop"]].concat(),
        false,
    );
    let body = app
        .async_result(sent.id())
        .get(Duration::from_secs(60))
        .await?;
    assert_eq!(body["values"], json!((0..16).collect::<Vec<_>>()));
    let runs: i64 = conn.get(body_runs).unwrap_or(0);
    assert_eq!(runs, 1);
    Ok(())
}
