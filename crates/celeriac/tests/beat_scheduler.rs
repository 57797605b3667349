//! The beat loop on tokio's paused clock, with the memory broker: runs are
//! sent on time, once each across beats, missed runs caught up or skipped,
//! and shutdown wakes a sleeping beat at once.

use std::time::Duration;

use celeriac::beat::{self, BeatOptions, CatchUp, Clock, Schedule, ScheduleEntry, BEAT_HEADER};
use celeriac::protocol::TaskMessage;
use celeriac::shutdown::{Shutdown, ShutdownTrigger};
use celeriac::App;
use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::task::JoinHandle;

/// 2024-01-01T00:00:00.5Z: half a second before tick 1 of an every-second entry.
fn start() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_704_067_200_500).unwrap_or_default()
}

/// Seconds from `start()`'s whole second, as the entry's tick numbers.
fn tick_no(tick: DateTime<Utc>) -> i64 {
    (tick.timestamp_millis() - 1_704_067_200_000) / 1000
}

async fn app(name: &str) -> App {
    let url = format!("memory://beat-scheduler-{name}");
    App::builder()
        .broker_url(&url)
        .backend_url(&url)
        .build()
        .await
        .unwrap_or_else(|e| panic!("app: {e}"))
}

fn every_second(name: &str) -> ScheduleEntry {
    let every = Schedule::every(Duration::from_secs(1)).unwrap_or_else(|e| panic!("{e}"));
    ScheduleEntry::new(name, "tasks.report", every).args(vec![json!("{now-1h}"), json!("{now}")])
}

fn options(clock: &Clock) -> BeatOptions {
    BeatOptions {
        clock: clock.clone(),
        ..BeatOptions::default()
    }
}

struct Running {
    trigger: ShutdownTrigger,
    handle: JoinHandle<Result<(), beat::BeatError>>,
}

fn spawn(app: &App, entries: Vec<ScheduleEntry>, options: BeatOptions) -> Running {
    let (trigger, shutdown) = Shutdown::new();
    let handle = beat::spawn(app.clone(), entries, options, shutdown);
    Running { trigger, handle }
}

impl Running {
    /// Stop the beat; it must wake at once, not at its next tick.
    async fn stop(self) {
        let before = tokio::time::Instant::now();
        self.trigger.fire();
        match self.handle.await {
            Ok(Ok(())) => {}
            other => panic!("beat ended badly: {other:?}"),
        }
        assert_eq!(
            before.elapsed(),
            Duration::ZERO,
            "a sleeping beat must wake on shutdown"
        );
    }
}

/// The tick numbers of every message queued so far, and check each message.
async fn sent_ticks(app: &App) -> Vec<i64> {
    let deliveries = app
        .broker()
        .reserve(&["celery".to_owned()], 10_000, Duration::ZERO)
        .await
        .unwrap_or_else(|e| panic!("reserve: {e}"));
    let mut ticks = Vec::new();
    for d in deliveries {
        let (message, _) = TaskMessage::from_slice(&d.payload).unwrap_or_else(|e| panic!("{e}"));
        let marker = &message.headers.extra[BEAT_HEADER];
        let tick: DateTime<Utc> = marker["tick"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no tick in {marker}"));
        assert_eq!(message.headers.task, "tasks.report");
        // `{now}` renders the run's tick, `{now-1h}` an hour before.
        let now = tick.format("%Y-%m-%d %H:%M:%S").to_string();
        let hour_ago = (tick - chrono::Duration::hours(1))
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        assert_eq!(message.args, vec![json!(hour_ago), json!(now)]);
        ticks.push(tick_no(tick));
    }
    ticks.sort_unstable();
    ticks
}

#[tokio::test(start_paused = true)]
async fn sends_each_tick_on_time_and_wakes_on_shutdown() {
    let app = app("on-time").await;
    let clock = Clock::tokio_anchored(start());
    let beat = spawn(&app, vec![every_second("report")], options(&clock));
    tokio::time::sleep(Duration::from_secs(10)).await;
    beat.stop().await;
    assert_eq!(sent_ticks(&app).await, (1..=10).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn three_beats_send_each_run_once() {
    let app = app("three").await;
    let clock = Clock::tokio_anchored(start());
    let beats: Vec<Running> = (0..3)
        .map(|_| spawn(&app, vec![every_second("report")], options(&clock)))
        .collect();
    tokio::time::sleep(Duration::from_secs(20)).await;
    for beat in beats {
        beat.stop().await;
    }
    assert_eq!(sent_ticks(&app).await, (1..=20).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn a_restart_neither_repeats_nor_skips() {
    let app = app("restart").await;
    let clock = Clock::tokio_anchored(start());
    let first = spawn(&app, vec![every_second("report")], options(&clock));
    tokio::time::sleep(Duration::from_millis(4_700)).await;
    first.stop().await;
    // Down for half a second, across tick 5.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = spawn(&app, vec![every_second("report")], options(&clock));
    tokio::time::sleep(Duration::from_millis(4_800)).await;
    second.stop().await;
    assert_eq!(sent_ticks(&app).await, (1..=10).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn missed_runs_are_sent_once_not_many_times() {
    let app = app("catch-up").await;
    let clock = Clock::tokio_anchored(start());
    let first = spawn(&app, vec![every_second("report")], options(&clock));
    tokio::time::sleep(Duration::from_secs(3)).await;
    first.stop().await;
    // No beat from 3.5 to 13.5: ticks 4..=13 fall due unseen.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let second = spawn(&app, vec![every_second("report")], options(&clock));
    tokio::time::sleep(Duration::from_secs(2)).await;
    second.stop().await;
    assert_eq!(sent_ticks(&app).await, vec![1, 2, 3, 13, 14, 15]);
}

#[tokio::test(start_paused = true)]
async fn missed_runs_can_be_skipped() {
    let app = app("skip").await;
    let clock = Clock::tokio_anchored(start());
    let entry = || every_second("report").catch_up(CatchUp::Skip);
    let grace = BeatOptions {
        grace: Duration::from_millis(200),
        max_jitter: Duration::ZERO,
        ..options(&clock)
    };
    let first = spawn(&app, vec![entry()], grace.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;
    first.stop().await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    // Restarted at 13.5: tick 13 is 0.5 s old, beyond the grace: skipped.
    let second = spawn(&app, vec![entry()], grace);
    tokio::time::sleep(Duration::from_secs(2)).await;
    second.stop().await;
    assert_eq!(sent_ticks(&app).await, vec![1, 2, 3, 14, 15]);
}

#[tokio::test(start_paused = true)]
async fn one_off_runs_once_and_never_for_a_time_already_past() {
    let app = app("one-off").await;
    let clock = Clock::tokio_anchored(start());
    let at = |secs: i64| {
        Schedule::at(
            start() - chrono::Duration::milliseconds(500) + chrono::Duration::seconds(secs),
        )
    };
    let entries = vec![
        ScheduleEntry::new("soon", "tasks.report", at(3))
            .args(vec![json!("{now-1h}"), json!("{now}")]),
        ScheduleEntry::new("past", "tasks.report", at(-60)),
    ];
    let beat = spawn(&app, entries, options(&clock));
    tokio::time::sleep(Duration::from_secs(10)).await;
    beat.stop().await;
    assert_eq!(sent_ticks(&app).await, vec![3]);
    let status = beat::status(
        &app,
        &[ScheduleEntry::new("soon", "tasks.report", at(3))],
        clock.now(),
    )
    .await
    .unwrap_or_else(|e| panic!("status: {e}"));
    assert_eq!(
        status[0].next_run, None,
        "a one-off that ran has no next run"
    );
    assert!(status[0]
        .last_run
        .as_ref()
        .and_then(|l| l.task_id.as_ref())
        .is_some());
}

#[tokio::test(start_paused = true)]
async fn invalid_entries_stop_the_beat_before_it_starts() {
    let app = app("invalid").await;
    let twice = vec![every_second("same"), every_second("same")];
    let err = beat::run(
        app.clone(),
        twice,
        BeatOptions::default(),
        std::future::pending(),
    )
    .await
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        err.contains("\"same\"") && err.contains("two entries"),
        "{err}"
    );
    let bad = vec![every_second("bad").priority(12)];
    let err = beat::run(app, bad, BeatOptions::default(), std::future::pending())
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("priority"), "{err}");
}
