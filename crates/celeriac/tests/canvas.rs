//! Canvas on a real worker, on the memory and the SQLite backend: chains,
//! groups, chords, `link`/`link_error`, map/starmap/chunks, and a chord
//! whose header part fails. (The Redis backend and Python interop are in
//! `celeriac-interop`'s canvas tests.)

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use celeriac::canvas::Sent;
use celeriac::{task, App, Error, SendOptions, Signature, TaskError, Worker, WorkerOptions};
use serde_json::{json, Map, Value};

#[task(name = "tasks.add")]
fn add(x: i64, y: i64) -> Result<i64, TaskError> {
    Ok(x + y)
}

/// How many times each chord body ran, by tag.
static BODY_RUNS: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);

#[task(name = "tasks.tsum")]
fn tsum(values: Vec<i64>, tag: String) -> Result<Value, TaskError> {
    let mut runs = BODY_RUNS.lock().unwrap_or_else(|e| e.into_inner());
    *runs
        .get_or_insert_with(HashMap::new)
        .entry(tag)
        .or_insert(0) += 1;
    Ok(json!({"sum": values.iter().sum::<i64>(), "values": values}))
}

#[task(name = "tasks.fail")]
fn fail(message: String) -> Result<i64, TaskError> {
    Err(TaskError::new("ValueError", message))
}

/// The ids the errback was called with.
static ERRBACK_CALLS: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[task(name = "tasks.on_error")]
fn on_error(task_id: String) -> Result<(), TaskError> {
    ERRBACK_CALLS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(task_id);
    Ok(())
}

struct Running {
    app: App,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(url: impl Fn(&std::path::Path) -> String) -> Running {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let url = url(dir.path());
    let app = App::builder()
        .broker_url(&url)
        .backend_url(&url)
        .task(add)
        .task(tsum)
        .task(fail)
        .task(on_error)
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = WorkerOptions {
        concurrency: 4,
        ..WorkerOptions::default()
    };
    tokio::spawn(Worker::new(app.clone(), options).run(async move {
        let _ = stopped.await;
    }));
    Running {
        app,
        stop: Some(stop),
        _dir: dir,
    }
}

fn sig(task: &str, args: Value) -> Signature {
    Signature::new(
        task,
        args.as_array().cloned().unwrap_or_default(),
        Map::new(),
    )
}

const WAIT: Duration = Duration::from_secs(20);

fn body_runs(tag: &str) -> usize {
    BODY_RUNS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|m| m.get(tag).copied())
        .unwrap_or(0)
}

async fn wait_for(condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn every_primitive(w: &Running, tag: &str) -> Result<(), Error> {
    let app = &w.app;
    // chain(add(2, 2), add(4), add(8)) = 16, with the typed signatures.
    let chain = celeriac::chain![add::s(2, 2)?, add::sig().arg(4), add::sig().arg(8)];
    let sent = app.apply_signature(&chain).await?;
    assert_eq!(app.async_result(sent.id()).get(WAIT).await?, json!(16));

    // A chain's own link goes to its last step; its link_error to every step.
    let linked = Signature::chain(vec![add::s(1, 2)?, add::sig().arg(3)])
        .link(add::sig().arg(100))
        .set("task_id", "the-chain-result");
    let sent = app.apply_signature(&linked).await?;
    assert_eq!(sent.id(), "the-chain-result");
    let last = app.async_result("the-chain-result");
    assert_eq!(last.get(WAIT).await?, json!(6));
    let children = last.children().await?;
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].get(WAIT).await?, json!(106));

    // An immutable step ignores its parent's result.
    let chain = Signature::chain(vec![add::s(1, 1)?, add::si(10, 10)?]);
    let sent = app.apply_signature(&chain).await?;
    assert_eq!(app.async_result(sent.id()).get(WAIT).await?, json!(20));

    // A group of 20, results in order.
    let group = Signature::group((0..20).map(|i| sig("tasks.add", json!([i, i]))).collect());
    let sent = app.apply_signature(&group).await?;
    assert!(matches!(&sent, Sent::Group(_, members) if members.len() == 20));
    let group = app.group_result(&sent);
    let values = group.join(WAIT).await?;
    assert_eq!(values, (0..20).map(|i| json!(2 * i)).collect::<Vec<_>>());
    assert_eq!(group.completed_count().await?, 20);
    // Saved where Celery saves groups, and restored from there.
    group.save(Duration::from_secs(60)).await?;
    let restored = app
        .restore_group(group.id())
        .await?
        .unwrap_or_else(|| panic!("group {} not saved", group.id()));
    assert_eq!(restored.results().len(), 20);
    assert_eq!(restored.join(WAIT).await?, values);
    let member = app.async_result(restored.results()[3].id()).info().await?;
    assert_eq!(
        member.and_then(|m| m.group_id),
        Some(group.id().to_owned()),
        "members store their group_id"
    );

    // A chord: the body runs once, with the header's results in order.
    let chord_tag = format!("{tag}-chord");
    let chord = Signature::chord(
        (0..10).map(|i| sig("tasks.add", json!([i, 100]))).collect(),
        sig("tasks.tsum", json!([chord_tag])),
    );
    let sent = app.apply_signature(&chord).await?;
    let body = app.async_result(sent.id()).get(WAIT).await?;
    assert_eq!(body["sum"], json!(1045));
    assert_eq!(
        body["values"],
        json!((0..10).map(|i| i + 100).collect::<Vec<_>>())
    );
    assert_eq!(body_runs(&chord_tag), 1);

    // A chain through a group: group then a step = a chord.
    let through = Signature::chain(vec![
        sig("tasks.add", json!([1, 1])),
        Signature::group(vec![
            sig("tasks.add", json!([1])),
            sig("tasks.add", json!([2])),
        ]),
        sig("tasks.tsum", json!([format!("{tag}-through")])),
    ]);
    let sent = app.apply_signature(&through).await?;
    let body = app.async_result(sent.id()).get(WAIT).await?;
    assert_eq!(body["values"], json!([3, 4]));

    // link: the callback gets the result; children name it.
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
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].get(WAIT).await?, json!(13));

    // link_error: the errback is sent with the failed task's id.
    let failing = app
        .send_task(
            "tasks.fail",
            vec![json!("nope")],
            Map::new(),
            SendOptions::new().link_error(sig("tasks.on_error", json!([]))),
        )
        .await?;
    assert!(matches!(
        failing.get(WAIT).await,
        Err(Error::TaskFailed { .. })
    ));
    let failed_id = failing.id().to_owned();
    wait_for(|| {
        ERRBACK_CALLS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&failed_id)
    })
    .await;

    // A failed header part fails the chord with ChordError; the body never runs.
    let failed_tag = format!("{tag}-failed");
    let chord = Signature::chord(
        vec![
            sig("tasks.add", json!([1, 1])),
            sig("tasks.fail", json!(["part"])),
        ],
        sig("tasks.tsum", json!([failed_tag])),
    );
    let sent = app.apply_signature(&chord).await?;
    match app.async_result(sent.id()).get(WAIT).await {
        Err(Error::TaskFailed {
            exc_type,
            exc_module,
            exc_message,
            ..
        }) => {
            assert_eq!(exc_type, "ChordError");
            assert_eq!(exc_module.as_deref(), Some("celery.exceptions"));
            assert!(exc_message.contains("ValueError"), "{exc_message}");
        }
        other => panic!("expected ChordError, got {other:?}"),
    }
    assert_eq!(body_runs(&failed_tag), 0);

    // celery.map / celery.starmap / chunks.
    let mut map = Map::new();
    map.insert("task".into(), sig("tasks.add", json!([])).to_value());
    map.insert("it".into(), json!([[1, 2], [3, 4]]));
    let starmap = app
        .send_task("celery.starmap", vec![], map, SendOptions::new())
        .await?;
    assert_eq!(starmap.get(WAIT).await?, json!([3, 7]));
    let mut chunks = Signature::new(
        "celery.chunks",
        vec![],
        Map::from_iter([
            ("task".to_owned(), sig("tasks.add", json!([])).to_value()),
            ("it".to_owned(), json!([[0, 0], [1, 1], [2, 2], [3, 3]])),
            ("n".to_owned(), json!(2)),
        ]),
    );
    chunks.subtask_type = Some("chunks".into());
    let sent = app.apply_signature(&chunks).await?;
    assert_eq!(
        app.group_result(&sent).join(WAIT).await?,
        vec![json!([0, 2]), json!([4, 6])]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_primitive_on_the_memory_backend() -> Result<(), Error> {
    let w = start(|_| "memory://canvas".to_owned()).await;
    every_primitive(&w, "memory").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_primitive_on_the_sqlite_backend() -> Result<(), Error> {
    let w = start(|dir| format!("sqlite://{}", dir.join("canvas.db").display())).await;
    every_primitive(&w, "sqlite").await
}
