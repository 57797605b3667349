//! Processes the interop and chaos suites start: the Celeriac test worker,
//! each killed (-9) when its handle is dropped.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Proc {
    /// Kill -9 now and reap it.
    pub fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Start `celeriac-interop-worker --broker URL EXTRA…`; its stderr goes to
/// the test's when `show_logs`.
pub fn rust_worker(url: &str, extra: &[&str], show_logs: bool) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_celeriac-interop-worker"))
        .args(["--broker", url])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(if show_logs {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .expect("start the Celeriac worker");
    Proc(child)
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's Python (`CELERIAC_TEST_PYTHON`, else `.venv/bin/python`).
pub fn python() -> PathBuf {
    std::env::var_os("CELERIAC_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"))
}

/// Start a Python Celery worker of `tests/python/pytasks.py` (`-n
/// py@interop`, no gossip/mingle/heartbeat) with `env` and `extra` worker
/// arguments.
pub fn python_worker(url: &str, env: &[(&str, &str)], extra: &[&str]) -> Proc {
    let mut cmd = Command::new(python());
    cmd.args(["-m", "celery", "-A", "pytasks", "worker", "-l", "WARNING"])
        .args([
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ])
        .args(extra)
        .current_dir(repo_root().join("tests/python"))
        .env("CELERIAC_TEST_REDIS_URL", url)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if !extra
        .iter()
        .any(|a| *a == "-n" || a.starts_with("--hostname"))
    {
        cmd.args(["-n", "py@interop"]);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc(
        cmd.spawn()
            .expect("start the Python Celery worker (is celery installed?)"),
    )
}

/// Run `tests/python/<script> ARGS…` against the Redis at `url` and parse
/// the JSON it prints; panics with its stderr when it fails.
pub fn python_json(script: &str, args: &[&str], url: &str) -> serde_json::Value {
    let output = Command::new(python())
        .arg(repo_root().join("tests/python").join(script))
        .args(args)
        .current_dir(repo_root().join("tests/python"))
        .env("CELERIAC_TEST_REDIS_URL", url)
        .output()
        .expect("run the Python client");
    assert!(
        output.status.success(),
        "python {script} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the client prints JSON")
}
