//! Processes the interop and chaos suites start: the Celeriac test worker,
//! each killed (-9) when its handle is dropped.

#![allow(dead_code, unreachable_pub)]

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
