//! Helpers for the `celeriac serve` tests.
//!
//! 1. [`ServeProcess`]: `celeriac serve --port 0` as a child; the address
//!    is read from its first stdout line; killed on drop.
//! 2. [`spawn_worker`]: a `celeriac worker` child on any broker URL, ready
//!    once its log says so.
//! 3. [`Browser`]: a minimal WebDriver client for a headless Chromium
//!    driven by chromedriver (`CELERIAC_TEST_CHROMIUM`,
//!    `CELERIAC_TEST_CHROMEDRIVER`, else `/usr/bin/chromium` and
//!    `chromedriver` on PATH; `scripts/test.sh` installs both).

#![allow(dead_code, unreachable_pub)]

pub mod webdriver;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{eventually, Env};

/// A running `celeriac serve`.
pub struct ServeProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Everything it printed on stdout before the address, and the address line.
    pub banner: String,
    log: std::path::PathBuf,
}

impl ServeProcess {
    /// Start `celeriac serve --port 0 ARGS…` from `command` (an
    /// [`Env::command`] with its environment set) and wait for its address.
    pub fn start(mut command: Command, log: &Path) -> ServeProcess {
        command
            .arg("--port")
            .arg("0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("serve log"));
        let mut child = command.spawn().expect("spawn celeriac serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut banner = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                banner.push_str(&line);
                if line.starts_with("listening on ") {
                    let _ = tx.send(banner.clone());
                }
                line.clear();
            }
            // Drain the rest so the child never blocks on a full pipe.
            let _ = reader.read_to_end(&mut Vec::new());
        });
        let banner = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(banner) => banner,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "celeriac serve printed no address; log:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
        };
        let url = banner
            .lines()
            .find_map(|l| l.strip_prefix("listening on "))
            .expect("address line")
            .trim()
            .to_owned();
        ServeProcess {
            child,
            url,
            banner,
            log: log.to_owned(),
        }
    }

    /// What it logged on stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then wait up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "serve did not exit within {timeout:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- log of celeriac serve ---\n{}", self.log_text());
        }
    }
}

/// A `celeriac worker -n NAME` child on `broker` (also the backend),
/// ready once it logs so; its log is `env.path("NAME.log")`.
pub fn spawn_worker(env: &Env, name: &str, broker: &str, args: &[&str]) -> WorkerChild {
    let log = env.path(&format!("{name}.log"));
    let child = env
        .command(["worker", "-n", name])
        .args(args)
        .env("CELERIAC_BROKER_URL", broker)
        .env("CELERIAC_RESULT_BACKEND", broker)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("worker log"))
        .spawn()
        .expect("spawn worker");
    let worker = WorkerChild { child, log };
    eventually(
        &format!("worker {name} ready"),
        Duration::from_secs(30),
        || worker.log_text().contains("worker ready"),
    );
    worker
}

/// A worker child, killed on drop.
pub struct WorkerChild {
    child: Child,
    log: std::path::PathBuf,
}

impl WorkerChild {
    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for WorkerChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- worker log ---\n{}", self.log_text());
        }
    }
}

/// Poll `GET url` (JSON) until `done` holds; returns the last answer.
pub async fn poll_json(
    client: &reqwest::Client,
    url: &str,
    limit: Duration,
    mut done: impl FnMut(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = std::time::Instant::now();
    loop {
        let value: serde_json::Value = match client.get(url).send().await {
            Ok(r) => r.json().await.unwrap_or(serde_json::Value::Null),
            Err(_) => serde_json::Value::Null,
        };
        if done(&value) {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "{url} not done within {limit:?}: {value}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
