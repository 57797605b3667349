//! `celeriac beat` as real processes: three beats on one Redis with one
//! killed -9 midway send each run exactly once; a restarted beat neither
//! repeats nor skips; `--list`; bad files; `celeriac worker -B`.

#[path = "../../celeriac/tests/support/mod.rs"]
mod redis_support;
mod support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use celeriac::beat::BEAT_HEADER;
use celeriac::protocol::TaskMessage;
use chrono::{DateTime, Utc};
use support::{eventually, stderr, stdout, Env};

/// An every-second entry whose only argument is its run's time.
const EVERY_SECOND: &str = r#"
[[schedule]]
name = "pulse"
task = "tasks.pulse"
every = "1s"
args = ["{now}"]
"#;

/// One run as found on the queue.
#[derive(Debug, Clone)]
struct Run {
    tick: DateTime<Utc>,
    task_id: String,
    /// The pid of the beat that sent it (from the `origin` header).
    pid: u32,
}

fn decode(payload: &[u8]) -> Run {
    let (m, _) = TaskMessage::from_slice(payload).unwrap_or_else(|e| panic!("{e}"));
    let tick: DateTime<Utc> = m.headers.extra[BEAT_HEADER]["tick"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no tick header in {:?}", m.headers));
    assert_eq!(
        m.args,
        vec![serde_json::json!(tick
            .format("%Y-%m-%d %H:%M:%S")
            .to_string())],
        "{{now}} renders the run's tick"
    );
    let pid = m
        .headers
        .origin
        .as_deref()
        .and_then(|o| o.split('@').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in origin {:?}", m.headers.origin));
    Run {
        tick,
        task_id: m.headers.id,
        pid,
    }
}

/// A `celeriac beat` child whose log goes to a file; killed on drop.
struct BeatProcess {
    child: Child,
    log: PathBuf,
    exited: bool,
}

impl BeatProcess {
    fn start(env: &Env, name: &str, broker: &str, schedule: &Path, extra: &[&str]) -> Self {
        let log = env.path(&format!("{name}.log"));
        let child = env
            .command(["beat", "--schedule"])
            .arg(schedule)
            .args(extra)
            .env("CELERIAC_BROKER_URL", broker)
            .env("CELERIAC_RESULT_BACKEND", broker)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap_or_else(|e| panic!("log: {e}")))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn beat: {e}"));
        let beat = BeatProcess {
            child,
            log,
            exited: false,
        };
        eventually(
            &format!("beat {name} ready"),
            Duration::from_secs(20),
            || beat.log_text().contains("beat ready"),
        );
        beat
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.exited = true;
    }

    /// SIGTERM, then expect a clean exit within a few seconds.
    fn terminate(&mut self) {
        let pid = self.pid().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let mut status = None;
        eventually("beat exits on SIGTERM", Duration::from_secs(10), || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        self.exited = true;
        assert!(
            status.is_some_and(|s| s.success()),
            "exit status {status:?}:\n{}",
            self.log_text()
        );
    }
}

impl Drop for BeatProcess {
    fn drop(&mut self) {
        if !self.exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- beat log {} ---\n{}",
                self.log.display(),
                self.log_text()
            );
        }
    }
}

/// Every run in Redis's `celery` list, oldest first.
fn redis_runs(server: &redis_support::RedisServer) -> Vec<Run> {
    let mut conn = server.connection();
    let items: Vec<Vec<u8>> = redis::cmd("LRANGE")
        .arg("celery")
        .arg(0)
        .arg(-1)
        .query(&mut conn)
        .unwrap_or_else(|e| panic!("LRANGE: {e}"));
    let mut runs: Vec<Run> = items.iter().map(|p| decode(p)).collect();
    runs.sort_by_key(|r| r.tick);
    runs
}

/// No tick twice, one task id per tick, and no tick missing between the
/// first and the last, except inside `downtimes` (when no beat ran, the
/// missed runs are collapsed into one by design).
fn assert_each_run_once(runs: &[Run], downtimes: &[(DateTime<Utc>, DateTime<Utc>)]) {
    for pair in runs.windows(2) {
        assert_ne!(pair[0].tick, pair[1].tick, "tick sent twice: {pair:?}");
        let mut missing = pair[0].tick + chrono::Duration::seconds(1);
        while missing < pair[1].tick {
            assert!(
                downtimes
                    .iter()
                    .any(|(down, up)| *down <= missing && missing <= *up),
                "run at {missing} skipped while a beat was running"
            );
            missing += chrono::Duration::seconds(1);
        }
    }
    let mut ids: Vec<&str> = runs.iter().map(|r| r.task_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), runs.len(), "a task id was sent twice");
}

#[test]
fn three_beats_on_one_redis_send_each_run_once_through_a_kill() {
    let env = Env::new();
    let server = redis_support::RedisServer::start();
    let url = server.url(0);
    let schedule = env.path("beat.toml");
    std::fs::write(&schedule, EVERY_SECOND).unwrap_or_else(|e| panic!("{e}"));
    let mut beats: Vec<BeatProcess> = (0..3)
        .map(|i| BeatProcess::start(&env, &format!("beat{i}"), &url, &schedule, &[]))
        .collect();
    let start = Utc::now();
    let seconds = |n: i64| start + chrono::Duration::seconds(n);

    // Midway, kill -9 the beat that sent the latest run.
    eventually("10 s of runs", Duration::from_secs(30), || {
        redis_runs(&server)
            .last()
            .is_some_and(|r| r.tick >= seconds(10))
    });
    let latest = redis_runs(&server).last().map(|r| r.pid);
    let victim = beats
        .iter()
        .position(|b| Some(b.pid()) == latest)
        .unwrap_or(0);
    beats[victim].kill9();
    let killed_at = Utc::now();

    eventually("20 s of runs", Duration::from_secs(30), || {
        redis_runs(&server)
            .last()
            .is_some_and(|r| r.tick >= seconds(20))
    });
    for beat in beats.iter_mut().filter(|b| !b.exited) {
        beat.terminate();
    }

    let runs = redis_runs(&server);
    assert_each_run_once(&runs, &[]);
    let in_window = runs
        .iter()
        .filter(|r| r.tick > start && r.tick <= seconds(20))
        .count();
    assert!((19..=21).contains(&in_window), "{in_window} runs in 20 s");
    assert!(
        runs.iter().any(|r| r.tick > killed_at),
        "the survivors carry on after the kill"
    );
}

#[test]
fn a_restarted_beat_neither_repeats_nor_skips() {
    let env = Env::new();
    let schedule = env.path("beat.toml");
    std::fs::write(&schedule, EVERY_SECOND).unwrap_or_else(|e| panic!("{e}"));
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let app = runtime.block_on(env.app());
    let mut runs: Vec<Run> = Vec::new();
    let take = |runs: &mut Vec<Run>| {
        let got = runtime
            .block_on(
                app.broker()
                    .reserve(&["celery".to_owned()], 100, Duration::ZERO),
            )
            .unwrap_or_else(|e| panic!("reserve: {e}"));
        runs.extend(got.iter().map(|d| decode(&d.payload)));
        runs.len()
    };
    let mut downtimes = Vec::new();
    let mut beat = BeatProcess::start(&env, "first", &env.url, &schedule, &[]);
    for (i, stop_by_kill) in [(1, false), (2, true)] {
        let want = take(&mut runs) + 3;
        eventually("3 runs", Duration::from_secs(20), || {
            take(&mut runs) >= want
        });
        let down = Utc::now();
        if stop_by_kill {
            beat.kill9();
        } else {
            beat.terminate();
        }
        beat = BeatProcess::start(&env, &format!("restart{i}"), &env.url, &schedule, &[]);
        downtimes.push((down, Utc::now()));
    }
    let want = take(&mut runs) + 3;
    eventually("3 runs", Duration::from_secs(20), || {
        take(&mut runs) >= want
    });
    beat.terminate();
    take(&mut runs);
    runs.sort_by_key(|r| r.tick);
    assert!(runs.len() >= 9, "{runs:?}");
    assert_each_run_once(&runs, &downtimes);

    // --list shows the entry, its last run and the next.
    let out = env.run([
        OsArg::from("beat"),
        "--list".into(),
        "--schedule".into(),
        schedule.into(),
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.starts_with("NAME"), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("pulse"))
        .unwrap_or_default();
    assert!(
        line.contains("tasks.pulse") && line.contains("every 1s"),
        "{text}"
    );
    let last = runs
        .last()
        .map(|r| r.tick.format("%Y-%m-%d %H:%M:%S UTC").to_string());
    assert!(
        last.is_some_and(|l| line.contains(&l)),
        "last run in {line}"
    );
}

#[test]
fn list_shows_entries_before_any_run() {
    let env = Env::new();
    let schedule = env.path("beat.toml");
    std::fs::write(
        &schedule,
        format!("{EVERY_SECOND}\n[[schedule]]\nname = \"nightly\"\ntask = \"tasks.report\"\ncron = \"0 3 * * *\"\ntimezone = \"Europe/Berlin\"\n"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = env.run([
        OsArg::from("beat"),
        "--list".into(),
        "--schedule".into(),
        schedule.into(),
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    let nightly = text
        .lines()
        .find(|l| l.starts_with("nightly"))
        .unwrap_or_default();
    assert!(
        nightly.contains("cron \"0 3 * * *\" (Europe/Berlin)")
            && nightly.contains("never")
            && nightly.contains("(in "),
        "{text}"
    );
}

type OsArg = std::ffi::OsString;

#[test]
fn bad_schedule_files_are_refused_with_the_entry_and_field() {
    let env = Env::new();
    let schedule = env.path("bad.toml");
    std::fs::write(
        &schedule,
        "[[schedule]]\nname = \"nightly\"\ntask = \"tasks.report\"\ncron = \"0 25 * * *\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = env.run([
        OsArg::from("beat"),
        "--schedule".into(),
        schedule.clone().into(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("bad.toml: entry \"nightly\": field `cron`") && err.contains("hour: 25"),
        "{err}"
    );
    let out = env.run([
        OsArg::from("beat"),
        "--schedule".into(),
        env.path("missing.toml").into(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("missing.toml: cannot read it"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn worker_dash_b_runs_the_beat_in_the_worker() {
    let env = Env::new();
    let record = env.path("record.txt");
    let schedule = env.path("beat.toml");
    std::fs::write(
        &schedule,
        format!(
            "[[schedule]]\nname = \"record\"\ntask = \"tasks.record\"\nevery = \"1s\"\nargs = [{:?}, \"{{now}}\"]\n",
            record.display().to_string()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let schedule = schedule.display().to_string();
    let mut worker = env.test_worker("embedded", &["-B", "--schedule", &schedule, "-c", "2"]);
    eventually("3 scheduled runs executed", Duration::from_secs(20), || {
        support::recorded(&record).len() >= 3
    });
    worker.terminate();
    assert!(worker.wait_exit(Duration::from_secs(15)).success());
    let mut values: Vec<String> = support::recorded(&record)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let n = values.len();
    values.dedup();
    assert_eq!(values.len(), n, "a run executed twice: {values:?}");
}
