//! `worker --reload` on a scratch crate built like a user's: a steady stream
//! of `acks_late` tasks flows while a source edit changes what the task
//! returns. New results carry the new value within the build time plus 5 s;
//! every task has exactly one result and ran exactly once; a syntax error
//! keeps the old worker serving and prints the compiler's error. Then
//! `beat --reload` on the same crate: an edit restarts beat, which goes on
//! sending, and no tick is sent twice across the restart.
//!
//! The scratch crate depends on this workspace's `celeriac` and
//! `celeriac-cli` by path, uses its `Cargo.lock` and profiles, and builds
//! into its target directory, so only what the crate's own features change
//! is compiled again.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use celeriac::{App, AsyncResult, SendOptions};
use serde_json::{json, Map, Value};

const TASK: &str = "probe.multiply";

/// What the producer sent: `(x, its result)` in order.
type Sent = Mutex<Vec<(i64, AsyncResult<Value>)>>;

/// The probe's source with `offset` as what it adds to `x * y`. Each run
/// appends `x` to the file `PROBE_RUNS` names, and takes a little time, so
/// some tasks are running when the worker is replaced.
fn probe_source(offset: &str) -> String {
    format!(
        r#"use std::io::Write as _;

use celeriac::task;

const OFFSET: i64 = {offset};

#[task(name = "{TASK}", acks_late)]
fn multiply(x: i64, y: i64) -> Result<i64, std::io::Error> {{
    let runs = std::env::var("PROBE_RUNS").map_err(std::io::Error::other)?;
    let mut file = std::fs::OpenOptions::new().append(true).create(true).open(runs)?;
    // One write per line: two threads (or two processes during a reload)
    // append to the same file.
    file.write_all(format!("{{x}}\n").as_bytes())?;
    std::thread::sleep(std::time::Duration::from_millis(30));
    Ok(x * y + OFFSET)
}}

fn main() -> std::process::ExitCode {{
    celeriac_cli::Project::new("reload-probe").tasks(|app| app.task(multiply)).run()
}}
"#
    )
}

/// The workspace root and its target directory (the one this test binary
/// was built in).
fn workspace_and_target() -> (PathBuf, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root");
    let exe = std::env::current_exe().expect("test binary");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("target directory above profile/deps/")
        .to_path_buf();
    (root, target)
}

/// Write the scratch crate: manifest with path dependencies, the
/// workspace's lock file and profiles, and the probe's source.
fn write_probe_crate(dir: &Path, root: &Path) {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("workspace manifest");
    let profiles = manifest
        .find("\n[profile.")
        .map_or("", |at| &manifest[at..]);
    let crates = root.join("crates");
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"reload-probe\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
             [dependencies]\nceleriac = {{ path = {:?} }}\nceleriac-cli = {{ path = {:?} }}\n\n\
             [workspace]\n{profiles}",
            crates.join("celeriac").display().to_string(),
            crates.join("celeriac-cli").display().to_string(),
        ),
    )
    .expect("write manifest");
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).expect("copy Cargo.lock");
    std::fs::create_dir_all(dir.join("src")).expect("src");
    std::fs::write(dir.join("src/main.rs"), probe_source("0")).expect("write main.rs");
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// The supervisor, stopped on drop (if the test fails half-way): SIGTERM,
/// then SIGKILL if it has not exited after 30 s. Its worker follows it
/// either way (it watches its parent).
struct Supervisor(Child);

impl Supervisor {
    /// SIGTERM, then wait for the exit.
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.0.try_wait() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if self.stop().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn log_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Wait until the log holds `needle`; the log on failure.
fn wait_for_log(path: &Path, needle: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let text = log_text(path);
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the log within {limit:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `build_secs=…` of the last reload line of the log.
fn last_build_secs(log: &str) -> f64 {
    log.lines()
        .rev()
        .find(|line| line.contains("reloaded"))
        .and_then(|line| line.split("build_secs=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|secs| secs.parse().ok())
        .unwrap_or_else(|| panic!("no build_secs in:\n{log}"))
}

/// Send `probe.multiply(x, 1)` for x = 0, 1, 2, … every 15 ms until
/// `stop`; every sent `(x, result)` is pushed to `sent`.
async fn keep_sending(app: App, sent: Arc<Sent>, stop: Arc<AtomicBool>) {
    let mut x = 0_i64;
    while !stop.load(Ordering::Relaxed) {
        let result = app
            .send_task(
                TASK,
                vec![json!(x), json!(1)],
                Map::new(),
                SendOptions::new(),
            )
            .await
            .expect("send");
        sent.lock().expect("sent").push((x, result));
        x += 1;
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

/// The value of the newest sent task that has a result, if any.
async fn newest_value(sent: &Sent) -> Option<(i64, i64)> {
    let recent: Vec<(i64, AsyncResult<Value>)> = {
        let sent = sent.lock().expect("sent");
        sent.iter().rev().take(40).cloned().collect()
    };
    for (x, result) in recent {
        if let Ok(Some(meta)) = result.info().await {
            if let Some(value) = meta.result.as_i64() {
                return Some((x, value));
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_edit_reloads_the_worker_without_losing_or_repeating_a_task() {
    let (root, target) = workspace_and_target();
    let probe = tempfile::tempdir().expect("probe crate dir");
    let data = tempfile::tempdir().expect("data dir");
    write_probe_crate(probe.path(), &root);

    let started = Instant::now();
    let built = Command::new(cargo())
        .args(["build", "--offline", "--bin", "reload-probe"])
        .current_dir(probe.path())
        .env("CARGO_TARGET_DIR", &target)
        .stdin(Stdio::null())
        .output()
        .expect("cargo build");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    eprintln!("first build of the probe: {:?}", started.elapsed());

    let url = format!("sqlite://{}", data.path().join("probe.db").display());
    let log = data.path().join("worker.log");
    let runs = data.path().join("runs.txt");
    let mut supervisor = Supervisor(
        Command::new(target.join("debug/reload-probe"))
            .args(["worker", "--reload", "-c", "2", "-n", "probe@test"])
            .current_dir(probe.path())
            .env("CELERIAC_BROKER_URL", &url)
            .env("CELERIAC_RESULT_BACKEND", &url)
            .env("CARGO_TARGET_DIR", &target)
            .env("PROBE_RUNS", &runs)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start the worker"),
    );

    let app = App::builder()
        .broker_url(&url)
        .backend_url(&url)
        .build()
        .await
        .expect("producer");
    let sent = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn(keep_sending(
        app.clone(),
        Arc::clone(&sent),
        Arc::clone(&stop),
    ));

    // The old build serves: x * 1 + 0.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((x, value)) = newest_value(&sent).await {
            assert_eq!(value, x, "before the edit");
            break;
        }
        assert!(Instant::now() < deadline, "no result:\n{}", log_text(&log));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The edit: results gain 1000 once the new build runs.
    let edited = Instant::now();
    std::fs::write(probe.path().join("src/main.rs"), probe_source("1000")).expect("edit");
    let new_value_seen = loop {
        if let Some((x, value)) = newest_value(&sent).await {
            if value == x + 1000 {
                break edited.elapsed();
            }
        }
        assert!(
            edited.elapsed() < Duration::from_secs(300),
            "no new value:\n{}",
            log_text(&log)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let reloaded = wait_for_log(&log, "reloaded", Duration::from_secs(10));
    let build_secs = last_build_secs(&reloaded);
    eprintln!("new value after {new_value_seen:?}; the build took {build_secs} s");
    assert!(
        new_value_seen.as_secs_f64() <= build_secs + 5.0,
        "new results {new_value_seen:?} after the edit, the build took {build_secs} s"
    );

    // A syntax error: the compiler's error is printed and the running
    // worker keeps serving the last good build.
    std::fs::write(probe.path().join("src/main.rs"), probe_source("")).expect("break");
    let failed = wait_for_log(&log, "build failed", Duration::from_secs(300));
    assert!(failed.contains("error: expected expression"), "{failed}");
    let after_failure = sent.lock().expect("sent").len();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((x, value)) = newest_value(&sent).await {
            if x as usize > after_failure {
                assert_eq!(value, x + 1000, "the last good build serves");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no result after the failed build"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    stop.store(true, Ordering::Relaxed);
    sender.await.expect("sender");
    // Every result is stored before the worker stops; then the supervisor
    // stops its worker warmly and exits 0.
    let sent: Vec<(i64, AsyncResult<Value>)> = sent.lock().expect("sent").clone();
    let mut old = 0;
    let mut new = 0;
    for (x, result) in &sent {
        let value = result
            .get(Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("task {x}: {e}\n{}", log_text(&log)));
        match value.as_i64() {
            Some(v) if v == *x => old += 1,
            Some(v) if v == x + 1000 => new += 1,
            other => panic!("task {x} returned {other:?}"),
        }
    }
    assert!(old > 0 && new > 0, "old {old}, new {new}");
    let stopped = supervisor.stop();
    assert!(
        stopped.is_some_and(|s| s.success()),
        "the supervisor exited with {stopped:?}:\n{}",
        log_text(&log)
    );
    let ran = std::fs::read_to_string(&runs).expect("runs");
    let mut counts = vec![0_u32; sent.len()];
    for line in ran.lines() {
        let x: usize = line.parse().expect("a run");
        counts[x] += 1;
    }
    let twice: Vec<usize> = (0..counts.len()).filter(|&x| counts[x] != 1).collect();
    assert!(
        twice.is_empty(),
        "tasks not run exactly once: {twice:?} ({} sent)",
        sent.len()
    );

    beat_reloads_and_sends_no_tick_twice(probe.path(), &target, &url, data.path());
}

/// `beat --reload`, the same supervisor around beat: an edit rebuilds and
/// restarts it, it goes on sending after the restart, and no tick is sent
/// twice across it (a tick's task id is derived from the tick, so each
/// `sent` line's id names its tick).
fn beat_reloads_and_sends_no_tick_twice(probe: &Path, target: &Path, url: &str, data: &Path) {
    // Back to the last good source (the binary on disk), so starting
    // changes nothing; then a schedule that sends every second.
    std::fs::write(probe.join("src/main.rs"), probe_source("1000")).expect("repair");
    std::fs::write(
        probe.join("beat.toml"),
        format!("[[schedule]]\nname = \"probe-every-second\"\ntask = \"{TASK}\"\nevery = \"1s\"\nargs = [1, 1]\n"),
    )
    .expect("schedule");
    let log = data.join("beat.log");
    let mut beat = Supervisor(
        Command::new(target.join("debug/reload-probe"))
            .args(["beat", "--reload", "--schedule", "beat.toml"])
            .current_dir(probe)
            .env("CELERIAC_BROKER_URL", url)
            .env("CELERIAC_RESULT_BACKEND", url)
            .env("CARGO_TARGET_DIR", target)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("beat log"))
            .spawn()
            .expect("start beat"),
    );
    const SENT: &str = " sent entry=";
    wait_for_log(&log, SENT, Duration::from_secs(60));

    std::fs::write(probe.join("src/main.rs"), probe_source("2000")).expect("edit");
    let edited = Instant::now();
    wait_for_log(&log, "reloaded", Duration::from_secs(300));
    let deadline = Instant::now() + Duration::from_secs(30);
    let resumed = loop {
        let text = log_text(&log);
        let after = text.rfind("reloaded").map_or("", |at| &text[at..]);
        if after.contains(SENT) {
            break edited.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "beat sent nothing after the reload:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let stopped = beat.stop();
    let text = log_text(&log);
    assert!(
        stopped.is_some_and(|s| s.success()),
        "beat's supervisor exited with {stopped:?}:\n{text}"
    );
    let ids: Vec<&str> = text
        .lines()
        .filter(|line| line.contains(SENT))
        .filter_map(|line| line.split("task_id=").nth(1)?.split_whitespace().next())
        .collect();
    let distinct: std::collections::HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        ids.len(),
        "a tick was sent twice across the reload:\n{text}"
    );
    eprintln!(
        "beat restarted on the new build and sent again {resumed:?} after the edit; {} ticks \
         sent, none twice",
        ids.len()
    );
}
