//! What a worker does with each kind of task and message, on the memory
//! broker (the same code path serves SQLite and Redis).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use celeriac::{
    task, App, Context, Error, SendOptions, SyncPool, TaskError, TaskState, Worker, WorkerOptions,
};
use serde_json::{json, Map, Value};

#[task(name = "tasks.add")]
fn add(x: i64, y: i64) -> Result<i64, TaskError> {
    Ok(x + y)
}

#[task(name = "tasks.greet")]
async fn greet(name: String, punctuation: String) -> Result<String, TaskError> {
    Ok(format!("hello {name}{punctuation}"))
}

#[task(name = "tasks.boom")]
fn boom() -> Result<(), TaskError> {
    panic!("the reactor melted")
}

#[task(name = "tasks.parse")]
fn parse(text: String) -> Result<i32, std::num::ParseIntError> {
    text.parse()
}

#[task(name = "tasks.forever", time_limit = 0.3)]
async fn forever() -> Result<(), TaskError> {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    Ok(())
}

#[task(name = "tasks.polite", bind, soft_time_limit = 0.1)]
async fn polite(ctx: &Context) -> Result<String, TaskError> {
    ctx.cancelled().await;
    Ok("stopped at the soft limit".into())
}

#[task(name = "tasks.progress", bind)]
async fn progress(ctx: &Context, total: u32) -> Result<u32, TaskError> {
    for current in 1..=total {
        ctx.update_state("PROGRESS", json!({"current": current, "total": total}))
            .await
            .map_err(|e| TaskError::new("BackendError", e.to_string()))?;
    }
    Ok(total)
}

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

#[task(name = "tasks.flaky", max_retries = 2)]
fn flaky() -> Result<u32, TaskError> {
    let n = FLAKY_CALLS.fetch_add(1, Ordering::SeqCst);
    if n < 2 {
        Err(TaskError::new("IOError", "try again").retry(Some(Duration::from_millis(50))))
    } else {
        Ok(n)
    }
}

#[task(name = "tasks.hopeless", max_retries = 1)]
fn hopeless() -> Result<(), TaskError> {
    Err(TaskError::new("IOError", "never works").retry(Some(Duration::from_millis(10))))
}

static ATTEMPTS: std::sync::Mutex<Vec<std::time::Instant>> = std::sync::Mutex::new(Vec::new());

#[task(
    name = "tasks.backoff",
    max_retries = 3,
    autoretry_for = ["IOError"],
    retry_backoff = 0.2,
    retry_jitter = false
)]
fn backoff() -> Result<usize, TaskError> {
    let mut attempts = ATTEMPTS.lock().expect("attempts");
    attempts.push(std::time::Instant::now());
    if attempts.len() <= 3 {
        Err(TaskError::new("IOError", "still down"))
    } else {
        Ok(attempts.len())
    }
}

#[task(name = "tasks.throttled", rate_limit = "20/s")]
async fn throttled() -> Result<(), TaskError> {
    Ok(())
}

static SLEEPERS_STARTED: AtomicU32 = AtomicU32::new(0);

#[task(name = "tasks.sleep_async")]
async fn sleep_async() -> Result<(), TaskError> {
    SLEEPERS_STARTED.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    Ok(())
}

static RELEASE_SYNC_SLEEPER: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Runs until the test releases it (a thread cannot be killed, and the test
/// runtime waits for it), at most 60 s.
#[task(name = "tasks.sleep_sync")]
fn sleep_sync() -> Result<(), TaskError> {
    SLEEPERS_STARTED.fetch_add(1, Ordering::SeqCst);
    let give_up = std::time::Instant::now() + Duration::from_secs(60);
    while !RELEASE_SYNC_SLEEPER.load(Ordering::SeqCst) && std::time::Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

static RELEASE_STUCK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Blocks its thread until the test releases it (at most 60 s): the body a
/// hard time limit gives up on.
#[task(name = "tasks.stuck_sync")]
fn stuck_sync() -> Result<(), TaskError> {
    let give_up = std::time::Instant::now() + Duration::from_secs(60);
    while !RELEASE_STUCK.load(Ordering::SeqCst) && std::time::Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(5));
    }
    STUCK_RETURNED.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

static STUCK_RETURNED: AtomicU32 = AtomicU32::new(0);

struct Running {
    app: App,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    worker: tokio::task::JoinHandle<celeriac::Result<()>>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.worker.await.expect("worker task").expect("worker ran");
    }
}

async fn start(name: &str) -> Running {
    start_with(
        name,
        WorkerOptions {
            concurrency: 4,
            ..WorkerOptions::default()
        },
    )
    .await
}

async fn start_with(name: &str, options: WorkerOptions) -> Running {
    let url = format!("memory://{name}");
    let app = App::builder()
        .broker_url(&url)
        .backend_url(&url)
        .task(add)
        .task(greet)
        .task(boom)
        .task(parse)
        .task(forever)
        .task(polite)
        .task(progress)
        .task(flaky)
        .task(hopeless)
        .task(backoff)
        .task(throttled)
        .task(sleep_async)
        .task(sleep_sync)
        .task(stuck_sync)
        .build()
        .await
        .expect("app");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(Worker::new(app.clone(), options).run(async move {
        let _ = stopped.await;
    }));
    Running {
        app,
        stop: Some(stop),
        worker,
    }
}

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn typed_calls_return_typed_values() {
    let w = start("typed").await;
    assert_eq!(
        add::delay(&w.app, 2, 3)
            .await
            .expect("send")
            .get(WAIT)
            .await
            .expect("get"),
        5
    );
    let greeting = greet::delay(&w.app, "Ada".into(), "!".into())
        .await
        .expect("send");
    assert_eq!(greeting.get(WAIT).await.expect("get"), "hello Ada!");
    assert_eq!(greeting.state().await.expect("state"), TaskState::Success);
    w.stop().await;
}

#[tokio::test]
async fn limits_and_times_too_far_ahead_never_panic() {
    let w = start("huge-limits").await;
    let options = SendOptions::new()
        .time_limit(1e300)
        .soft_time_limit(f64::MAX);
    let r = add::apply_async(&w.app, (2, 3), options)
        .await
        .expect("send");
    assert_eq!(r.get(WAIT).await.expect("ran without a limit"), 5);
    let after = add::delay(&w.app, 1, 1).await.expect("send");
    assert_eq!(after.get(WAIT).await.expect("the worker goes on"), 2);
    // Far-off times: never expiring is allowed, an unwritable countdown is
    // refused with a reason; neither panics.
    let never = SendOptions::new().expires_in(Duration::MAX);
    let r = add::apply_async(&w.app, (1, 2), never).await.expect("send");
    assert_eq!(r.get(WAIT).await.expect("not expired"), 3);
    match add::apply_async(&w.app, (1, 2), SendOptions::new().countdown(Duration::MAX)).await {
        Err(Error::InvalidArgument(why)) => assert!(why.contains("countdown"), "{why}"),
        other => panic!("expected a refused countdown, got {other:?}"),
    }
    w.stop().await;
}

#[tokio::test]
async fn kwargs_bind_by_name_and_bad_calls_fail_with_type_error() {
    let w = start("kwargs").await;
    let mut kwargs = Map::new();
    kwargs.insert("y".into(), json!(40));
    let r = w
        .app
        .send_task("tasks.add", vec![json!(2)], kwargs, SendOptions::new())
        .await
        .expect("send");
    assert_eq!(r.get(WAIT).await.expect("get"), json!(42));

    let r = w
        .app
        .send_task(
            "tasks.add",
            vec![json!("two"), json!(3)],
            Map::new(),
            SendOptions::new(),
        )
        .await
        .expect("send");
    match r.get(WAIT).await {
        Err(Error::TaskFailed {
            exc_type,
            exc_message,
            ..
        }) => {
            assert_eq!(exc_type, "TypeError");
            assert!(exc_message.contains("argument 'x'"), "{exc_message}");
        }
        other => panic!("expected a TypeError, got {other:?}"),
    }
    w.stop().await;
}

#[tokio::test]
async fn unknown_tasks_and_panics_fail_and_the_worker_goes_on() {
    let w = start("failures").await;
    let unknown = w
        .app
        .send_task("tasks.nope", vec![], Map::new(), SendOptions::new())
        .await
        .expect("send");
    let panicking = boom::delay(&w.app).await.expect("send");
    let error = parse::delay(&w.app, "x1".into()).await.expect("send");
    let after = add::delay(&w.app, 1, 1).await.expect("send");

    match unknown.get(WAIT).await {
        Err(Error::TaskFailed {
            exc_type,
            exc_message,
            ..
        }) => {
            assert_eq!(exc_type, "NotRegistered");
            assert!(exc_message.contains("tasks.nope"), "{exc_message}");
        }
        other => panic!("expected NotRegistered, got {other:?}"),
    }
    match panicking.get(WAIT).await {
        Err(Error::TaskFailed {
            exc_type,
            exc_message,
            ..
        }) => {
            assert_eq!(exc_type, "Panic");
            assert_eq!(exc_message, "the reactor melted");
        }
        other => panic!("expected a panic failure, got {other:?}"),
    }
    match error.get(WAIT).await {
        Err(Error::TaskFailed {
            exc_type,
            traceback,
            ..
        }) => {
            assert_eq!(exc_type, "ParseIntError");
            assert!(traceback.is_some_and(|t| t.contains("tasks.parse")));
        }
        other => panic!("expected ParseIntError, got {other:?}"),
    }
    assert_eq!(after.get(WAIT).await.expect("the worker survived"), 2);
    w.stop().await;
}

#[tokio::test]
async fn time_limits_stop_tasks() {
    let w = start("limits").await;
    let hard = forever::delay(&w.app).await.expect("send");
    match hard.get(WAIT).await {
        Err(Error::TaskFailed { exc_type, .. }) => assert_eq!(exc_type, "TimeLimitExceeded"),
        other => panic!("expected TimeLimitExceeded, got {other:?}"),
    }
    let soft = polite::delay(&w.app).await.expect("send");
    assert_eq!(
        soft.get(WAIT).await.expect("get"),
        "stopped at the soft limit"
    );
    w.stop().await;
}

/// With one slot, a sync body stuck past its hard limit must not hold the
/// only thread: the next sync task runs while the stuck one is still
/// blocked (on both pools).
#[tokio::test]
async fn a_sync_task_stuck_past_its_hard_limit_does_not_take_the_slot_with_it() {
    for pool in [SyncPool::Threads, SyncPool::Blocking] {
        let options = WorkerOptions {
            concurrency: 1,
            sync_pool: pool,
            ..WorkerOptions::default()
        };
        let w = start_with(&format!("stuck-{pool:?}"), options).await;
        let stuck = stuck_sync::apply_async(&w.app, (), SendOptions::new().time_limit(0.2))
            .await
            .expect("send");
        match stuck.get(WAIT).await {
            Err(Error::TaskFailed { exc_type, .. }) => assert_eq!(exc_type, "TimeLimitExceeded"),
            other => panic!("{pool:?}: expected TimeLimitExceeded, got {other:?}"),
        }
        let next = parse::delay(&w.app, "7".to_owned()).await.expect("send");
        assert_eq!(
            next.get(WAIT).await.expect("the next task runs"),
            7,
            "{pool:?}"
        );
        assert_eq!(
            STUCK_RETURNED.load(Ordering::SeqCst),
            0,
            "{pool:?}: the next task ran while the stuck body was still running"
        );
        w.stop().await;
    }
    RELEASE_STUCK.store(true, Ordering::SeqCst);
}

#[tokio::test]
async fn revoke_with_terminate_stops_running_tasks_and_the_worker_goes_on() {
    let w = start("terminate").await;
    let slow_async = sleep_async::delay(&w.app).await.expect("send");
    let slow_sync = sleep_sync::delay(&w.app).await.expect("send");
    let deadline = tokio::time::Instant::now() + WAIT;
    while SLEEPERS_STARTED.load(Ordering::SeqCst) < 2 {
        assert!(tokio::time::Instant::now() < deadline, "both tasks start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ids = [slow_async.id().to_owned(), slow_sync.id().to_owned()];
    w.app.revoke(&ids, true).await.expect("revoke");
    for running in [&slow_async, &slow_sync] {
        match running.get(WAIT).await {
            Err(Error::TaskRevoked { .. }) => {}
            other => panic!("expected the task terminated, got {other:?}"),
        }
    }
    RELEASE_SYNC_SLEEPER.store(true, Ordering::SeqCst);
    let info = slow_async.info().await.expect("info").expect("stored");
    assert_eq!(info.status, TaskState::Revoked);
    let after = add::delay(&w.app, 2, 3).await.expect("send");
    assert_eq!(after.get(WAIT).await.expect("the worker goes on"), 5);
    w.stop().await;
}

#[tokio::test]
async fn progress_is_visible_and_the_final_state_wins() {
    let w = start("progress").await;
    let r = progress::delay(&w.app, 5).await.expect("send");
    assert_eq!(r.get(WAIT).await.expect("get"), 5);
    let info = r.info().await.expect("info").expect("stored");
    assert_eq!(info.status, TaskState::Success);
    w.stop().await;
}

#[tokio::test]
async fn retries_until_success_or_exhaustion() {
    let w = start("retries").await;
    let r = flaky::delay(&w.app).await.expect("send");
    assert_eq!(r.get(WAIT).await.expect("third try succeeds"), 2);
    let r = hopeless::delay(&w.app).await.expect("send");
    match r.get(WAIT).await {
        Err(Error::TaskFailed { exc_type, .. }) => assert_eq!(exc_type, "IOError"),
        other => panic!("expected IOError after the last retry, got {other:?}"),
    }
    let info = r.info().await.expect("info").expect("stored");
    assert_eq!(info.retries, Some(1));
    w.stop().await;
}

#[tokio::test]
async fn countdown_waits_and_expired_tasks_are_revoked() {
    let w = start("timing").await;
    let sent = std::time::Instant::now();
    let later = add::apply_async(
        &w.app,
        (1, 2),
        SendOptions::new().countdown(Duration::from_millis(300)),
    )
    .await
    .expect("send");
    assert_eq!(later.get(WAIT).await.expect("get"), 3);
    assert!(
        sent.elapsed() >= Duration::from_millis(290),
        "ran before its countdown"
    );

    let expired = add::apply_async(
        &w.app,
        (1, 2),
        SendOptions::new()
            .countdown(Duration::from_millis(200))
            .expires_in(Duration::from_millis(50)),
    )
    .await
    .expect("send");
    match expired.get(WAIT).await {
        Err(Error::TaskRevoked { .. }) => {}
        other => panic!("expected REVOKED, got {other:?}"),
    }
    w.stop().await;
}

#[tokio::test]
async fn get_times_out_when_nothing_runs_it() {
    let app = App::builder()
        .broker_url("memory://nobody")
        .backend_url("memory://nobody")
        .build()
        .await
        .expect("app");
    let r = app
        .send_task(
            "tasks.add",
            vec![json!(1), json!(2)],
            Map::new(),
            SendOptions::new(),
        )
        .await
        .expect("send");
    assert!(matches!(
        r.get(Duration::from_millis(100)).await,
        Err(Error::Timeout(_))
    ));
    assert_eq!(r.state().await.expect("state"), TaskState::Pending);
    let _: Value = json!(null);
}

#[tokio::test]
async fn autoretry_follows_the_backoff_curve() {
    let w = start("backoff").await;
    let r = backoff::delay(&w.app).await.expect("send");
    assert_eq!(r.get(WAIT).await.expect("fourth attempt succeeds"), 4);
    let attempts = ATTEMPTS.lock().expect("attempts").clone();
    let gaps: Vec<f64> = attempts
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    // factor 0.2 s, no jitter: 0.2, 0.4, 0.8 s, plus a little dispatch time.
    for (gap, expected) in gaps.iter().zip([0.2, 0.4, 0.8]) {
        assert!(
            *gap >= expected - 0.01 && *gap < expected + 0.25,
            "gaps {gaps:?} do not follow 0.2 × 2^n"
        );
    }
    w.stop().await;
}

#[tokio::test]
async fn rate_limits_spread_a_burst() {
    let w = start("rate").await;
    let started = std::time::Instant::now();
    let mut results = Vec::new();
    for _ in 0..10 {
        results.push(throttled::delay(&w.app).await.expect("send"));
    }
    for r in results {
        r.get(WAIT).await.expect("ran");
    }
    // 10 starts at 20/s take at least 9 intervals of 50 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(440),
        "{:?}",
        started.elapsed()
    );
    w.stop().await;
}

static RUNS: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

#[task(name = "tasks.counted", acks_late)]
async fn counted(n: u32) -> Result<u32, TaskError> {
    RUNS.lock().expect("runs").push(n);
    tokio::time::sleep(Duration::from_millis(150)).await;
    Ok(n)
}

/// See the bug this guards against: a prefetched message waiting for a slot
/// longer than the visibility timeout used to be delivered to a second
/// worker and run twice. Its lease is now renewed while it waits.
#[tokio::test]
async fn held_messages_waiting_for_a_slot_are_not_redelivered() {
    let url = "memory://held-leases";
    let broker: std::sync::Arc<dyn celeriac::broker::Broker> = std::sync::Arc::new(
        celeriac::broker::memory::MemoryBroker::new(Duration::from_millis(200)),
    );
    let app = App::builder()
        .broker(broker)
        .backend_url(url)
        .task(counted)
        .build()
        .await
        .expect("app");
    let mut stops = Vec::new();
    let mut workers = Vec::new();
    for _ in 0..2 {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let options = WorkerOptions {
            concurrency: 1,
            prefetch: 6,
            ..WorkerOptions::default()
        };
        workers.push(tokio::spawn(Worker::new(app.clone(), options).run(
            async move {
                let _ = stopped.await;
            },
        )));
        stops.push(stop);
    }
    let mut results = Vec::new();
    for n in 0..8 {
        results.push(counted::delay(&app, n).await.expect("send"));
    }
    for r in results {
        r.get(WAIT).await.expect("ran");
    }
    let mut runs = RUNS.lock().expect("runs").clone();
    runs.sort_unstable();
    assert_eq!(runs, (0..8).collect::<Vec<_>>(), "every task exactly once");
    for stop in stops {
        let _ = stop.send(());
    }
    for w in workers {
        w.await.expect("join").expect("worker");
    }
}

/// What a task reads through `Context::state`.
struct Prefix(String);

#[task(name = "tasks.prefixed", bind)]
fn prefixed(ctx: &Context, name: String) -> Result<String, TaskError> {
    Ok(format!("{}{name}", ctx.state::<Prefix>()?.0))
}

/// Application state reaches a task run by a worker; a task whose state
/// was never registered fails with a RuntimeError naming the type.
#[tokio::test]
async fn tasks_reach_application_state_through_their_context() {
    for (name, state) in [("with-state", true), ("without-state", false)] {
        let url = format!("memory://{name}");
        let mut builder = App::builder()
            .broker_url(&url)
            .backend_url(&url)
            .task(prefixed);
        if state {
            builder = builder.state(Prefix("dr. ".into()));
        }
        let app = builder.build().await.expect("app");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let worker = tokio::spawn(Worker::new(app.clone(), WorkerOptions::default()).run(
            async move {
                let _ = stopped.await;
            },
        ));
        let sent = prefixed::delay(&app, "who".into()).await.expect("send");
        match (state, sent.get(WAIT).await) {
            (true, Ok(value)) => assert_eq!(value, "dr. who"),
            (
                false,
                Err(Error::TaskFailed {
                    exc_type,
                    exc_message,
                    ..
                }),
            ) => {
                assert_eq!(exc_type, "RuntimeError");
                assert!(exc_message.contains("Prefix"), "{exc_message}");
            }
            (_, other) => panic!("{name}: unexpected {other:?}"),
        }
        assert_eq!(app.state::<Prefix>().is_some(), state);
        let _ = stop.send(());
        worker.await.expect("worker task").expect("worker ran");
    }
}
