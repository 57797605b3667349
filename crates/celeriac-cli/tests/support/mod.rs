//! Helpers for tests that run the real `celeriac` binary.
//!
//! 1. [`Env`]: a temp directory with its own SQLite file, and commands for
//!    the binary pointed at it (environment cleaned of the caller's
//!    `CELERIAC_*` settings).
//! 2. [`WorkerProcess`]: a `celeriac worker` child whose log goes to a file
//!    ([`Env::test_worker`]: with the test-only tasks, writing in the env's
//!    directory);
//!    SIGTERM, SIGKILL, wait with a deadline; killed on drop, and its log
//!    printed if the test is failing.
//! 3. [`eventually`]: poll a condition until a deadline (tests never sleep
//!    in place of synchronisation).
//! 4. [`Env::app`]: a producer on the same file, through the library.

#![allow(dead_code, unreachable_pub)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use celeriac::App;

/// The binary under test: `celeriac` in this crate's tests, `post-history`
/// in that crate's (which share this file).
pub const BIN: &str = match (
    option_env!("CARGO_BIN_EXE_celeriac"),
    option_env!("CARGO_BIN_EXE_post-history"),
) {
    (Some(bin), _) | (None, Some(bin)) => bin,
    (None, None) => panic!("no binary under test"),
};

/// A scratch directory with one SQLite file for broker and backend.
pub struct Env {
    dir: tempfile::TempDir,
    /// `sqlite:///…/celeriac.db`.
    pub url: String,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("celeriac-cli-test-")
            .tempdir()
            .expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("celeriac.db").display());
        Env { dir, url }
    }

    /// A path inside the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `celeriac ARGS…` on this env's file.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("CELERIAC_BROKER_URL", &self.url)
            .env("CELERIAC_RESULT_BACKEND", &self.url)
            .env_remove("CELERIAC_CONFIG")
            .env_remove("CELERIAC_CONCURRENCY")
            .env_remove("CELERIAC_VISIBILITY_TIMEOUT")
            .env_remove("CELERIAC_TEST_TASKS_DIR")
            .env_remove("RUST_LOG")
            .current_dir(self.dir.path());
        cmd
    }

    /// Run `celeriac ARGS…` to completion.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .expect("run celeriac")
    }

    /// Start `celeriac worker -n NAME ARGS…` and wait until it is consuming.
    pub fn worker(&self, name: &str, args: &[&str]) -> WorkerProcess {
        self.worker_on(&self.url.clone(), name, args)
    }

    /// As [`Env::worker`], on the broker (and backend) at `broker`.
    pub fn worker_on(&self, broker: &str, name: &str, args: &[&str]) -> WorkerProcess {
        let log = self.path(&format!("{name}.log"));
        let mut cmd = self.command(["worker", "-n", name]);
        cmd.env("CELERIAC_BROKER_URL", broker)
            .env("CELERIAC_RESULT_BACKEND", broker)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("worker log"));
        let child = cmd.spawn().expect("spawn worker");
        let worker = WorkerProcess {
            name: name.to_owned(),
            child,
            log,
            exited: None,
        };
        eventually(
            &format!("worker {name} ready"),
            Duration::from_secs(20),
            || worker.log_text().contains("worker ready"),
        );
        worker
    }

    /// As [`Env::worker`], with the test-only tasks (`tasks.record`,
    /// `tasks.slow_record`) allowed to write in this env's directory.
    pub fn test_worker(&self, name: &str, args: &[&str]) -> WorkerProcess {
        let dir = self.dir.path().display().to_string();
        let mut all = vec!["--with-test-tasks", dir.as_str()];
        all.extend_from_slice(args);
        self.worker(name, &all)
    }

    /// A producer (and result reader) on this env's file.
    pub async fn app(&self) -> App {
        App::builder()
            .broker_url(&self.url)
            .backend_url(&self.url)
            .build()
            .await
            .expect("producer app")
    }
}

/// A running `celeriac worker`.
pub struct WorkerProcess {
    pub name: String,
    child: Child,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl WorkerProcess {
    /// What the worker has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Send SIGTERM (as `kill` or a service manager would).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {} failed", self.child.id());
    }

    /// SIGKILL: the worker gets no chance to give anything back.
    pub fn kill9(&mut self) {
        self.child.kill().expect("kill -9");
        self.exited = Some(self.child.wait().expect("reap"));
    }

    /// Wait up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.exited {
            return status;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.exited = Some(status);
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "worker {} did not exit within {timeout:?}; log:\n{}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- log of worker {} ---\n{}", self.name, self.log_text());
        }
    }
}

/// Poll `condition` every few milliseconds until it holds; panic naming
/// `what` after `timeout`.
pub fn eventually(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// As [`eventually`], for async conditions.
pub async fn eventually_async<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !condition().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The lines `tasks.record`/`tasks.slow_record` appended: (task id, value).
pub fn recorded(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (id, value) = line.split_once('\t')?;
            Some((id.to_owned(), value.to_owned()))
        })
        .collect()
}

/// Standard output as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The longest a test waits for a server to close a slow connection.
const SLOW_CLIENT_LIMIT: Duration = Duration::from_secs(30);

/// Connect to `addr` and read until the server closes the connection;
/// returns how long that took (or fails after `SLOW_CLIENT_LIMIT`).
pub fn closed_after(addr: &str, send: &[u8]) -> Duration {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let started = Instant::now();
    std::io::Write::write_all(&mut stream, send).expect("write");
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    let mut buf = [0u8; 1024];
    loop {
        match std::io::Read::read(&mut stream, &mut buf) {
            Ok(0) => return started.elapsed(),
            Ok(n) => panic!("answered: {:?}", String::from_utf8_lossy(&buf[..n])),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return started.elapsed(),
        }
        assert!(
            started.elapsed() < SLOW_CLIENT_LIMIT,
            "{addr}: connection still open after {SLOW_CLIENT_LIMIT:?}"
        );
    }
}

/// Both a silent client and one that stops half-way through its request
/// head are cut off after about `timeout` (the server's header timeout).
pub fn assert_slow_clients_are_closed(addr: &str, timeout: Duration) {
    for send in [&b""[..], b"POST /rank HTTP/1.1\r\nHost: x\r\nContent-Le"] {
        let waited = closed_after(addr, send);
        assert!(
            waited >= timeout - Duration::from_millis(20) && waited < timeout * 10,
            "{addr} {send:?}: closed after {waited:?}"
        );
    }
}
