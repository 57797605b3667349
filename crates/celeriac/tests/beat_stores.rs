//! Beats sharing real stores (a SQLite file, a private Redis), in real time:
//! each run is claimed and queued in one step, once across beats; a
//! restarted beat resumes from the stored tick; messages land where the
//! broker reads them (kombu's list names, key prefix included).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use celeriac::beat::{self, BeatOptions, Schedule, ScheduleEntry, BEAT_HEADER};
use celeriac::broker::memory::MemoryBroker;
use celeriac::protocol::TaskMessage;
use celeriac::shutdown::{Shutdown, ShutdownTrigger};
use celeriac::{App, AppConfig};
use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;

const PERIOD_MS: i64 = 500;

fn entry() -> ScheduleEntry {
    let every =
        Schedule::every(Duration::from_millis(PERIOD_MS as u64)).unwrap_or_else(|e| panic!("{e}"));
    ScheduleEntry::new("report", "tasks.report", every)
}

struct Running {
    trigger: ShutdownTrigger,
    handle: JoinHandle<Result<(), beat::BeatError>>,
}

fn start(app: &App) -> Running {
    let (trigger, shutdown) = Shutdown::new();
    let options = BeatOptions {
        max_jitter: Duration::from_millis(20),
        ..BeatOptions::default()
    };
    let handle = beat::spawn(app.clone(), vec![entry()], options, shutdown);
    Running { trigger, handle }
}

impl Running {
    async fn stop(self) {
        self.trigger.fire();
        match tokio::time::timeout(Duration::from_secs(5), self.handle).await {
            Ok(Ok(Ok(()))) => {}
            other => panic!("beat did not stop cleanly: {other:?}"),
        }
    }
}

/// Collects the ticks of the messages the broker hands out.
struct Collector {
    app: App,
    ticks: Vec<DateTime<Utc>>,
    ids: Vec<String>,
}

impl Collector {
    fn new(app: &App) -> Self {
        Collector {
            app: app.clone(),
            ticks: Vec::new(),
            ids: Vec::new(),
        }
    }

    /// Reserve until `n` more runs arrived (panics after 20 s).
    async fn more(&mut self, n: usize) {
        let want = self.ticks.len() + n;
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.ticks.len() < want {
            assert!(
                Instant::now() < deadline,
                "only {} runs arrived",
                self.ticks.len()
            );
            self.take(Duration::from_millis(100)).await;
        }
    }

    async fn take(&mut self, wait: Duration) {
        let queues = [self.app.config().default_queue.clone()];
        let got = self
            .app
            .broker()
            .reserve(&queues, 100, wait)
            .await
            .unwrap_or_else(|e| panic!("reserve: {e}"));
        for d in got {
            let (m, _) = TaskMessage::from_slice(&d.payload).unwrap_or_else(|e| panic!("{e}"));
            let tick = m.headers.extra[BEAT_HEADER]["tick"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no tick in {:?}", m.headers.extra));
            assert_eq!(
                m.headers.id,
                entry().task_id(tick),
                "task id is v5(name, tick)"
            );
            self.ticks.push(tick);
            self.ids.push(m.headers.id);
            let _ = self.app.broker().ack(&d.tag).await;
        }
    }

    /// Every run once, none missing between the first and the last.
    fn assert_each_tick_once(&mut self) {
        self.ticks.sort_unstable();
        let steps: Vec<i64> = self
            .ticks
            .windows(2)
            .map(|w| (w[1] - w[0]).num_milliseconds())
            .collect();
        assert!(
            steps.iter().all(|s| *s == PERIOD_MS),
            "ticks must be consecutive and unique, steps were {steps:?}"
        );
    }
}

/// Two beats, then one stops and a fresh one takes its place.
async fn two_beats_then_a_restart(app: &App) {
    let mut runs = Collector::new(app);
    let a = start(app);
    let b = start(app);
    runs.more(4).await;
    a.stop().await;
    runs.more(2).await;
    b.stop().await;
    let c = start(app);
    runs.more(3).await;
    c.stop().await;
    runs.take(Duration::ZERO).await;
    runs.assert_each_tick_once();

    // The store remembers the last run, by tick and task id.
    let status = beat::status(app, &[entry()], Utc::now())
        .await
        .unwrap_or_else(|e| panic!("status: {e}"));
    let last = status[0]
        .last_run
        .clone()
        .unwrap_or_else(|| panic!("no last run"));
    assert_eq!(Some(&last.tick), runs.ticks.last());
    assert_eq!(last.task_id, Some(entry().task_id(last.tick)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_beats_claim_and_queue_in_one_transaction() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let url = format!("sqlite://{}", dir.path().join("beat.db").display());
    let app = App::builder()
        .broker_url(&url)
        .backend_url(&url)
        .build()
        .await
        .unwrap_or_else(|e| panic!("app: {e}"));
    two_beats_then_a_restart(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_beats_claim_and_push_in_one_script() {
    let server = support::RedisServer::start();
    let config = AppConfig {
        broker_url: server.url(0),
        backend_url: server.url(0),
        key_prefix: "app:".to_owned(),
        ..AppConfig::default()
    };
    let app = App::builder()
        .config(config)
        .build()
        .await
        .unwrap_or_else(|e| panic!("app: {e}"));
    two_beats_then_a_restart(&app).await;
    // State lives under the documented key, beside kombu's.
    let mut conn = server.connection();
    let tick: Option<i64> = redis::cmd("HGET")
        .arg("app:celeriac.beat.report")
        .arg("tick")
        .query(&mut conn)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(tick.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_object_keeps_its_own_publish_path() {
    // State in the SQLite file of the URL, messages through the given broker.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let url = format!("sqlite://{}", dir.path().join("state.db").display());
    let app = App::builder()
        .broker_url(&url)
        .backend_url("memory://beat-stores-object")
        .broker(Arc::new(MemoryBroker::default()))
        .build()
        .await
        .unwrap_or_else(|e| panic!("app: {e}"));
    let mut runs = Collector::new(&app);
    let a = start(&app);
    runs.more(3).await;
    a.stop().await;
    runs.take(Duration::ZERO).await;
    runs.assert_each_tick_once();
    let queued_in_file = App::builder()
        .broker_url(&url)
        .backend_url("memory://beat-stores-object")
        .build()
        .await
        .unwrap_or_else(|e| panic!("app: {e}"))
        .broker()
        .queues()
        .depth("celery")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(queued_in_file, 0, "nothing may bypass the app's broker");
}
