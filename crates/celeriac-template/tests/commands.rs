//! The template's binary runs the commands of `celeriac` with the same
//! flags and environment: a worker for the template's tasks, `call --wait`,
//! `inspect ping` and `beat --list`, on a scratch SQLite file.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const NODE: &str = "template@test";

/// `my-tasks ARGS…` on the scratch file in `dir`, environment cleaned.
fn my_tasks(dir: &Path, args: &[&str]) -> Command {
    let url = format!("sqlite://{}", dir.join("my-tasks.db").display());
    let mut command = Command::new(env!("CARGO_BIN_EXE_my-tasks"));
    command
        .args(args)
        .current_dir(dir)
        .env("CELERIAC_BROKER_URL", &url)
        .env("CELERIAC_RESULT_BACKEND", &url)
        .env_remove("CELERIAC_CONFIG")
        .stdin(Stdio::null());
    command
}

fn run(dir: &Path, args: &[&str]) -> Output {
    my_tasks(dir, args).output().expect("run my-tasks")
}

fn text(out: &Output) -> String {
    text_or_log(out, None)
}

/// The command's standard output, or a panic with its error output and,
/// when given, the worker's log (what a failure needs to be understood).
fn text_or_log(out: &Output, log: Option<&Path>) -> String {
    if !out.status.success() {
        let worker_log = log
            .map(|path| std::fs::read_to_string(path).unwrap_or_else(|e| format!("({e})")))
            .unwrap_or_default();
        panic!(
            "{}\n--- worker log ---\n{worker_log}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_template_runs_worker_call_inspect_and_beat() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log_path = dir.path().join("worker.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let mut worker = my_tasks(dir.path(), &["worker", "-c", "2", "-n", NODE])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the worker");

    let product = run(
        dir.path(),
        &[
            "call",
            "my_tasks.multiply",
            "--args",
            "[6, 7]",
            "--wait",
            "--timeout",
            "60",
        ],
    );
    let greeting = run(
        dir.path(),
        &[
            "call",
            "my_tasks.greet",
            "--kwargs",
            r#"{"name": "Ada"}"#,
            "--wait",
            "--timeout",
            "60",
        ],
    );
    let ping = run(dir.path(), &["inspect", "ping", "-d", NODE, "-t", "10"]);
    let _ = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status();
    let stopped = worker.wait().expect("wait for the worker");

    let log = Some(log_path.as_path());
    assert_eq!(text_or_log(&product, log).trim(), "42");
    assert_eq!(text_or_log(&greeting, log).trim(), "\"Hello, Ada!\"");
    assert_eq!(
        text_or_log(&ping, log),
        format!("->  {NODE}: OK\n        pong\n\n1 node online.\n")
    );
    assert!(stopped.success(), "the worker exited with {stopped}");

    let schedule = Path::new(env!("CARGO_MANIFEST_DIR")).join("beat.toml");
    let listed = text(&run(
        dir.path(),
        &[
            "beat",
            "--schedule",
            &schedule.display().to_string(),
            "--list",
        ],
    ));
    assert!(listed.contains("multiply-every-minute"), "{listed}");
    assert!(listed.contains("my_tasks.multiply"), "{listed}");
}
