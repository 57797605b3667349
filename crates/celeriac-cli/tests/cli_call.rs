//! `celeriac call` and `celeriac result` against a real worker: results,
//! failures (unknown task, panic, task error) and exit codes.

mod support;

use serde_json::{json, Value};
use support::{stderr, stdout, Env};

/// Exit codes of `call --wait` and `result --wait` (see `src/exit.rs`).
const TASK_FAILED: i32 = 1;
const ERROR: i32 = 2;
const TIMED_OUT: i32 = 3;

fn json_line(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

#[test]
fn call_wait_prints_the_result_and_exits_by_outcome() {
    let env = Env::new();
    let _worker = env.worker("w@test", &["-c", "2"]);

    let out = env.run([
        "call",
        "tasks.add",
        "--args",
        "[2, 3]",
        "--wait",
        "--timeout",
        "20",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_line(&stdout(&out)), json!(5));

    let out = env.run(["call", "tasks.add", "--args", "[2.5, 1]", "--wait"]);
    assert_eq!(json_line(&stdout(&out)), json!(3.5));

    let out = env.run([
        "call",
        "tasks.add",
        "--kwargs",
        r#"{"x": 40, "y": 2}"#,
        "-w",
        "-t",
        "20",
    ]);
    assert_eq!(json_line(&stdout(&out)), json!(42));

    // The task raised: exit 1, the remote type and message on stderr.
    let out = env.run([
        "call",
        "tasks.fail",
        "--args",
        r#"["boom"]"#,
        "--wait",
        "-t",
        "20",
    ]);
    assert_eq!(out.status.code(), Some(TASK_FAILED));
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("ValueError: boom"),
        "{}",
        stderr(&out)
    );

    // Waiting too long: a distinct exit code.
    let out = env.run([
        "call",
        "tasks.sleep",
        "--args",
        "[5]",
        "--wait",
        "--timeout",
        "0.2",
    ]);
    assert_eq!(out.status.code(), Some(TIMED_OUT), "{}", stderr(&out));
}

#[test]
fn unknown_task_fails_clearly_and_the_worker_goes_on() {
    let env = Env::new();
    let worker = env.worker("w@test", &["-c", "2"]);
    let out = env.run(["call", "tasks.does_not_exist", "--wait", "--timeout", "20"]);
    assert_eq!(out.status.code(), Some(TASK_FAILED));
    let err = stderr(&out);
    assert!(
        err.contains("NotRegistered") && err.contains("tasks.does_not_exist"),
        "{err}"
    );

    let out = env.run([
        "call",
        "tasks.add",
        "--args",
        "[1, 1]",
        "--wait",
        "--timeout",
        "20",
    ]);
    assert_eq!(json_line(&stdout(&out)), json!(2), "{}", worker.log_text());
}

#[test]
fn a_panicking_task_fails_with_the_panic_message() {
    let env = Env::new();
    let _worker = env.worker("w@test", &["-c", "2"]);
    let out = env.run(["call", "tasks.panic", "--wait", "--timeout", "20"]);
    assert_eq!(out.status.code(), Some(TASK_FAILED));
    assert!(
        stderr(&out).contains("tasks.panic was called"),
        "{}",
        stderr(&out)
    );

    // The failure is stored like Celery stores one.
    // `task id: ID (waiting for its result on BACKEND)`
    let line = stderr(&out)
        .lines()
        .find_map(|l| l.strip_prefix("task id: "))
        .expect("task id on stderr")
        .to_owned();
    assert!(
        line.contains(&env.url),
        "the backend waited on is named: {line}"
    );
    let id = line.split_whitespace().next().expect("an id").to_owned();
    let out = env.run(["result", &id]);
    assert_eq!(out.status.code(), Some(0));
    let doc = json_line(&stdout(&out));
    assert_eq!(doc["status"], "FAILURE");
    assert_eq!(doc["result"]["exc_type"], "Panic");

    let out = env.run([
        "call",
        "tasks.echo",
        "--args",
        r#"[{"still": "alive"}]"#,
        "-w",
        "-t",
        "20",
    ]);
    assert_eq!(json_line(&stdout(&out)), json!({"still": "alive"}));
}

#[test]
fn result_reports_pending_progress_and_success() {
    let env = Env::new();
    // No worker yet: the task is pending.
    let out = env.run(["call", "tasks.sum_to_n_job", "--args", "[100]"]);
    assert_eq!(out.status.code(), Some(0));
    let id = stdout(&out).trim().to_owned();
    assert_eq!(id.len(), 36, "a uuid: {id:?}");
    let out = env.run(["result", &id]);
    assert_eq!(json_line(&stdout(&out))["status"], "PENDING");
    let out = env.run(["result", &id, "--wait", "--timeout", "0.1"]);
    assert_eq!(out.status.code(), Some(TIMED_OUT));

    let _worker = env.worker("w@test", &["-c", "1"]);
    let out = env.run(["result", &id, "--wait", "--timeout", "20"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc = json_line(&stdout(&out));
    assert_eq!(doc["status"], "SUCCESS");
    assert_eq!(doc["result"], json!(5050));
    assert_eq!(doc["task_id"], json!(id));
}

#[test]
fn bad_input_is_refused_with_a_clear_message() {
    let env = Env::new();
    let out = env.run(["call", "tasks.add", "--args", r#"{"x": 1}"#]);
    assert_eq!(out.status.code(), Some(ERROR));
    assert!(
        stderr(&out).contains("--args must be a JSON array"),
        "{}",
        stderr(&out)
    );

    let out = env.run(["call", "tasks.add", "--kwargs", "[1]"]);
    assert_eq!(out.status.code(), Some(ERROR));
    assert!(
        stderr(&out).contains("--kwargs must be a JSON object"),
        "{}",
        stderr(&out)
    );

    let out = env.run(["call", "tasks.add", "--eta", "soon"]);
    assert_eq!(out.status.code(), Some(ERROR));

    // A password in a bad URL never reaches the output.
    let out = env
        .command(["worker"])
        .env("CELERIAC_BROKER_URL", "kafka://user:hunter2@host//")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(ERROR));
    let err = stderr(&out);
    assert!(
        err.contains("unknown scheme") && !err.contains("hunter2"),
        "{err}"
    );

    // An unreachable Redis is reported once, naming what was tried.
    let out = env.run(["call", "tasks.add", "--broker", "redis://127.0.0.1:1/0"]);
    assert_eq!(out.status.code(), Some(ERROR));
    let err = stderr(&out);
    assert!(err.contains("redis://127.0.0.1:1/0"), "{err}");
    assert_eq!(
        err.matches("refused").count(),
        1,
        "the cause said once: {err}"
    );
}

/// Precedence at the binary: a flag beats the environment, which beats the
/// TOML file, which beats the default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_environment_and_flags_take_turns() {
    let env = Env::new();
    let url = |name: &str| format!("sqlite://{}", env.path(name).display());
    let config = env.path("celeriac.toml");
    std::fs::write(
        &config,
        format!(
            "broker_url = \"{}\"\nresult_backend = \"{}\"\n",
            url("file.db"),
            url("file.db")
        ),
    )
    .expect("write config");
    let config = config.to_string_lossy().into_owned();
    let send = |extra_env: Option<&str>, flag: Option<&str>| {
        let mut cmd = env.command(["call", "tasks.noop", "--config", &config]);
        cmd.env_remove("CELERIAC_BROKER_URL");
        if let Some(u) = extra_env {
            cmd.env("CELERIAC_BROKER_URL", u);
        }
        if let Some(u) = flag {
            cmd.args(["--broker", u]);
        }
        let out = cmd.output().expect("run call");
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    };
    send(None, None);
    send(Some(&url("env.db")), None);
    send(Some(&url("env.db")), Some(&url("flag.db")));
    for name in ["file.db", "env.db", "flag.db"] {
        let app = celeriac::App::builder()
            .broker_url(url(name))
            .backend_url(url(name))
            .build()
            .await
            .expect("open");
        let depth = app.broker().queues().depth("celery").await.expect("depth");
        assert_eq!(depth, 1, "one message in {name}");
    }
}
