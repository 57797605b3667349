//! The README tour's setup in a real headless Chromium (Debian's, through
//! chromedriver; `CELERIAC_TEST_CHROMIUM` / `CELERIAC_TEST_CHROMEDRIVER`
//! override the binaries): the default SQLite file, `celeriac worker -c 4`
//! WITHOUT `-E`, and `celeriac serve`, all run in one directory with no
//! broker URL given.
//!
//! 1. A task sent with `celeriac call` (not through `serve`) shows up and
//!    completes live: `serve` asked the worker for task events over the
//!    SQLite file (remote control carried by its event table).
//! 2. A `tasks.sum_to_n_job` that reports PROGRESS and then succeeds shows
//!    its result — never its last progress — in the list and on its page.
//! 3. The search box finds a task by an argument value (server-side).
//! 4. The worker page changes a rate limit (the worker's own answer shows
//!    it) and shuts the worker down (its process exits).
//! 5. A task sent with a one-hour countdown is on the Scheduled page,
//!    reached from the header's link: its ETA as date and time, the time
//!    left, its arguments.
//!
//! Screenshots go to `target/tmp/tour-screenshots/` (not committed).

mod serve_support;
mod support;

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use serve_support::webdriver::Browser;
use serve_support::ServeProcess;
use support::{eventually, stderr, stdout, Env};

const LIMIT: Duration = Duration::from_secs(60);

/// `celeriac ARGS…` in the tour's way: no broker URL, the default file.
fn tour_command(env: &Env, args: &[&str]) -> std::process::Command {
    let mut cmd = env.command(args);
    cmd.env_remove("CELERIAC_BROKER_URL")
        .env_remove("CELERIAC_RESULT_BACKEND")
        .env_remove("CELERIAC_API_TOKEN");
    cmd
}

fn call(env: &Env, args: &[&str]) -> String {
    let mut all = vec!["call"];
    all.extend_from_slice(args);
    let output = tour_command(env, &all).output().expect("celeriac call");
    assert!(output.status.success(), "call failed: {}", stderr(&output));
    stdout(&output).trim().to_owned()
}

/// The worker, killed on drop unless it exited.
struct Worker {
    child: Child,
    log: PathBuf,
}

impl Worker {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- worker log ---\n{}", self.log_text());
        }
    }
}

/// Set an input's value as typing would (the page listens for `input`).
async fn type_into(browser: &Browser, id: &str, text: &str) {
    browser
        .eval(
            "const e = document.getElementById(arguments[0]); e.value = arguments[1]; \
             e.dispatchEvent(new Event('input', {bubbles: true})); \
             e.dispatchEvent(new Event('change', {bubbles: true})); return true;",
            vec![json!(id), json!(text)],
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_tour_shows_tasks_live_without_dash_e_in_chromium() {
    let env = Env::new();
    let log = env.path("worker.log");
    let child = tour_command(&env, &["worker", "-c", "4"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("worker log"))
        .spawn()
        .expect("spawn worker");
    let mut worker = Worker { child, log };
    eventually("the worker is ready", Duration::from_secs(30), || {
        worker.log_text().contains("worker ready")
    });
    assert!(
        env.path("celeriac.db").exists(),
        "the tour's default file is used"
    );
    let serve = ServeProcess::start(tour_command(&env, &["serve"]), &env.path("serve.log"));
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tour-screenshots");
    let browser = Browser::start().await;

    browser.goto(&format!("{}/dashboard", serve.url)).await;
    let worker_name = browser
        .wait_for(
            "the worker is online",
            LIMIT,
            "const r = document.querySelector('tr[data-worker]'); \
             return r && r.textContent.includes('online') ? r.dataset.worker : null;",
            vec![],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned();

    // 1. A task sent around `serve` appears and completes, live.
    let add = call(&env, &["tasks.add", "--args", "[123456789, 1]"]);
    browser
        .wait_for(
            "the CLI's task shows SUCCESS with its result",
            LIMIT,
            "const r = document.querySelector(`tr[data-task-id=\"${arguments[0]}\"]`); \
             return !!r && r.dataset.state === 'SUCCESS' && r.querySelector('td.result').textContent === '123456790';",
            vec![json!(add)],
        )
        .await;
    browser
        .screenshot(&shots.join("1-tour-task-live.png"))
        .await;

    // 2. Progress, then success: the list shows the result, not progress.
    let n: u64 = if cfg!(debug_assertions) {
        150_000_000
    } else {
        4_000_000_000
    };
    let expected = (n * (n + 1) / 2).to_string();
    let long = call(&env, &["tasks.sum_to_n_job", "--args", &format!("[{n}]")]);
    browser
        .wait_for(
            "the long task shows its progress in the list",
            LIMIT,
            "const r = document.querySelector(`tr[data-task-id=\"${arguments[0]}\"]`); \
             return !!r && r.dataset.state === 'PROGRESS' && !!r.querySelector('.progress');",
            vec![json!(long)],
        )
        .await;
    browser.screenshot(&shots.join("2-tour-progress.png")).await;
    let start = Instant::now();
    loop {
        let row: Value = browser
            .eval(
                "const r = document.querySelector(`tr[data-task-id=\"${arguments[0]}\"]`); \
                 return r ? [r.dataset.state, r.querySelector('td.result').textContent] : null;",
                vec![json!(long)],
            )
            .await;
        let state = row[0].as_str().unwrap_or_default();
        let shown = row[1].as_str().unwrap_or_default();
        if state == "SUCCESS" {
            assert!(
                !shown.contains("current") && !shown.contains("total"),
                "a finished task shows its last progress as its result: {shown}"
            );
            // The browser's own rendering of the number (it is a JS number).
            let want = browser
                .eval(
                    "return JSON.stringify(JSON.parse(arguments[0]));",
                    vec![json!(expected)],
                )
                .await;
            if Some(shown) == want.as_str() {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the long task's result never showed: {row}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser
        .screenshot(&shots.join("3-tour-result-in-list.png"))
        .await;
    browser
        .goto(&format!("{}/dashboard/tasks/{long}", serve.url))
        .await;
    let page = browser
        .wait_for(
            "its page shows SUCCESS and the result",
            LIMIT,
            "const s = document.getElementById('state'); \
             return s && s.textContent === 'SUCCESS' ? document.getElementById('result').textContent : null;",
            vec![],
        )
        .await;
    let want = browser
        .eval(
            "return JSON.stringify(JSON.parse(arguments[0]), null, 2);",
            vec![json!(expected)],
        )
        .await;
    assert_eq!(page, want, "the task page shows the sum");
    browser
        .screenshot(&shots.join("4-tour-task-page.png"))
        .await;

    // 3. Search by an argument value, on the server.
    for i in 0..5 {
        call(&env, &["tasks.add", "--args", &format!("[{}, 2]", 500 + i)]);
    }
    browser.goto(&format!("{}/dashboard", serve.url)).await;
    browser
        .wait_for(
            "the list shows several tasks",
            LIMIT,
            "return document.querySelectorAll('#tasks tbody tr').length >= 6;",
            vec![],
        )
        .await;
    type_into(&browser, "filter-q", "123456789").await;
    browser
        .wait_for(
            "the search finds the task by its argument, and only it",
            LIMIT,
            "const rows = [...document.querySelectorAll('#tasks tbody tr')]; \
             return rows.length === 1 && rows[0].dataset.taskId === arguments[0];",
            vec![json!(add)],
        )
        .await;
    assert!(
        browser
            .eval(
                "return document.getElementById('tasks-count').textContent;",
                vec![]
            )
            .await
            .as_str()
            .is_some_and(|t| t.contains("of 1 matching")),
        "the count says one match"
    );
    browser.screenshot(&shots.join("5-tour-search.png")).await;

    // 4. The worker page: rate limit, then shutdown.
    browser
        .goto(&format!(
            "{}/dashboard/workers/{}",
            serve.url,
            worker_name.replace('@', "%40")
        ))
        .await;
    browser
        .wait_for(
            "the worker page lists tasks.add",
            LIMIT,
            "return !!document.querySelector('#registered tr[data-task-name=\"tasks.add\"]') \
             && document.getElementById('worker-status').dataset.online === 'true';",
            vec![],
        )
        .await;
    browser
        .eval(
            "document.getElementById('rate-task').value = 'tasks.add'; \
             document.getElementById('rate-value').value = '7/m'; return true;",
            vec![],
        )
        .await;
    browser.click("#rate-submit").await;
    browser
        .wait_for(
            "the worker answers with the new rate limit",
            LIMIT,
            "const c = document.querySelector('#registered tr[data-task-name=\"tasks.add\"] td.rate'); \
             return !!c && c.textContent === '7/m' \
               && document.getElementById('control-result').textContent.includes('new rate limit set successfully');",
            vec![],
        )
        .await;
    browser
        .screenshot(&shots.join("6-tour-rate-limit.png"))
        .await;
    browser.click("#shutdown").await;
    browser.click("#shutdown-confirm").await;
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = worker.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the worker did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "the worker exits cleanly: {status}");
    browser
        .wait_for(
            "the page shows the worker offline",
            LIMIT,
            "return document.getElementById('worker-status').dataset.online === 'false' \
             && document.getElementById('control-result').textContent.includes('shutting down');",
            vec![],
        )
        .await;
    browser.screenshot(&shots.join("7-tour-shutdown.png")).await;

    // 5. The Scheduled page: a countdown task waits in the SQLite file.
    let later = call(
        &env,
        &["tasks.add", "--args", "[5, 6]", "--countdown", "3600"],
    );
    browser.goto(&format!("{}/dashboard", serve.url)).await;
    browser.click("#nav-scheduled").await;
    browser
        .wait_for(
            "the countdown task is listed with its ETA, time left and arguments",
            LIMIT,
            "const r = document.querySelector(`#scheduled tr[data-task-id=\"${arguments[0]}\"]`); \
             if (!r) return false; \
             const when = r.querySelector('td.when').textContent; \
             const left = r.querySelector('td.left').textContent; \
             return /^\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2}$/.test(when) \
               && /^in (59 min|1 h 0 min)/.test(left) \
               && r.textContent.includes('(5, 6)') && r.textContent.includes('tasks.add');",
            vec![json!(later)],
        )
        .await;
    browser
        .screenshot(&shots.join("8-tour-scheduled.png"))
        .await;
}
