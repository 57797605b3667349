//! The dashboard in a real headless Chromium (Debian's, driven through
//! chromedriver; `CELERIAC_TEST_CHROMIUM` / `CELERIAC_TEST_CHROMEDRIVER`
//! override the binaries), against real `celeriac serve` and `celeriac
//! worker` processes on a private Redis:
//!
//! 1. the worker shows up online;
//! 2. a task sent with `celeriac call` appears and completes, live;
//! 3. its detail page shows the arguments and result;
//! 4. a pending (countdown) task is revoked with the page's button;
//! 5. a long `tasks.sum_to_n_job` moves the progress bar forward;
//! 6. a group sent with the dashboard's "Send as group" button: its page's
//!    progress bar goes from part done to every member done, without a
//!    reload, and each member links to its task page, which links back.
//!
//! Screenshots of each step are saved under
//! `target/tmp/browser-screenshots/` and their paths printed.

#[path = "../../celeriac/tests/support/mod.rs"]
mod redis_support;
mod serve_support;
mod support;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use serve_support::webdriver::Browser;
use serve_support::{spawn_worker, ServeProcess};
use support::{stderr, stdout, Env};

const LIMIT: Duration = Duration::from_secs(60);

/// `celeriac call ARGS…` on `broker`; returns the task id.
fn call(env: &Env, broker: &str, args: &[&str]) -> String {
    let output = env
        .command(["call"])
        .args(args)
        .env("CELERIAC_BROKER_URL", broker)
        .env("CELERIAC_RESULT_BACKEND", broker)
        .output()
        .expect("celeriac call");
    assert!(output.status.success(), "call failed: {}", stderr(&output));
    stdout(&output).trim().to_owned()
}

/// Text of the element `#id`.
async fn text_of(browser: &Browser, id: &str) -> String {
    browser
        .eval(
            "const e = document.getElementById(arguments[0]); return e ? e.textContent : null;",
            vec![json!(id)],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_follows_tasks_live_in_chromium() {
    let redis = redis_support::RedisServer::start();
    let broker = redis.url(0);
    let env = Env::new();
    let _worker = spawn_worker(&env, "browser@test", &broker, &["-c", "4"]);
    let mut serve_cmd = env.command(["serve"]);
    serve_cmd
        .env("CELERIAC_BROKER_URL", &broker)
        .env("CELERIAC_RESULT_BACKEND", &broker)
        .env_remove("CELERIAC_API_TOKEN");
    let serve = ServeProcess::start(serve_cmd, &env.path("serve.log"));
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    let browser = Browser::start().await;

    // 1. The dashboard lists the worker, online, from its heartbeats.
    browser.goto(&format!("{}/dashboard", serve.url)).await;
    browser
        .wait_for(
            "the worker is online",
            LIMIT,
            "const r = document.querySelector('tr[data-worker=\"browser@test\"]'); \
             return !!r && r.textContent.includes('online');",
            vec![],
        )
        .await;

    // 2. A task sent from the CLI appears and completes without a reload.
    let id = call(&env, &broker, &["tasks.add", "--args", "[2, 3]"]);
    browser
        .wait_for(
            "the CLI's task completes on the dashboard",
            LIMIT,
            "const r = document.querySelector(`tr[data-task-id=\"${arguments[0]}\"]`); \
             return !!r && r.dataset.state === 'SUCCESS';",
            vec![json!(id)],
        )
        .await;
    browser
        .screenshot(&shots.join("1-dashboard-task-done.png"))
        .await;

    // 3. Its detail page: name, arguments, result.
    browser.click(&format!("tr[data-task-id=\"{id}\"] a")).await;
    browser
        .wait_for(
            "the detail page shows SUCCESS",
            LIMIT,
            "const s = document.getElementById('state'); return !!s && s.textContent === 'SUCCESS';",
            vec![],
        )
        .await;
    assert!(browser
        .current_url()
        .await
        .ends_with(&format!("/dashboard/tasks/{id}")));
    assert_eq!(text_of(&browser, "task-name").await, "tasks.add");
    assert_eq!(text_of(&browser, "result").await, "5");
    assert!(text_of(&browser, "args").await.contains("(2, 3)"));
    browser.screenshot(&shots.join("2-task-detail.png")).await;

    // 4. A pending task (five minutes of countdown) is revoked from its page.
    let pending = call(
        &env,
        &broker,
        &["tasks.add", "--args", "[1, 1]", "--countdown", "300"],
    );
    browser
        .goto(&format!("{}/dashboard/tasks/{pending}", serve.url))
        .await;
    browser
        .wait_for(
            "the countdown task reads PENDING",
            LIMIT,
            "const s = document.getElementById('state'); const b = document.getElementById('revoke'); \
             return !!s && s.textContent === 'PENDING' && !b.disabled;",
            vec![],
        )
        .await;
    browser.click("#revoke").await;
    browser
        .wait_for(
            "the revoked task reads REVOKED",
            LIMIT,
            "const s = document.getElementById('state'); return !!s && s.textContent === 'REVOKED';",
            vec![],
        )
        .await;
    browser.screenshot(&shots.join("3-revoked.png")).await;
    let result = env
        .command(["result", &pending])
        .env("CELERIAC_BROKER_URL", &broker)
        .env("CELERIAC_RESULT_BACKEND", &broker)
        .output()
        .expect("celeriac result");
    assert!(stdout(&result).contains("REVOKED"), "{}", stdout(&result));

    // 5. A long sum reports PROGRESS; the bar advances, then fills.
    // About 5-10 s of work in either build profile.
    let n = if cfg!(debug_assertions) {
        "150000000"
    } else {
        "4000000000"
    };
    let long = call(
        &env,
        &broker,
        &["tasks.sum_to_n_job", "--args", &format!("[{n}]")],
    );
    browser
        .goto(&format!("{}/dashboard/tasks/{long}", serve.url))
        .await;
    let mut seen: Vec<f64> = Vec::new();
    let mut shot_mid = false;
    let start = std::time::Instant::now();
    loop {
        let state: Value = browser
            .eval(
                "const s = document.getElementById('state'); \
                 const p = document.getElementById('progress'); \
                 return [s ? s.textContent : '', Number(p.getAttribute('aria-valuenow'))];",
                vec![],
            )
            .await;
        let label = state[0].as_str().unwrap_or_default().to_owned();
        let percent = state[1].as_f64().unwrap_or(0.0);
        if seen.last() != Some(&percent) {
            seen.push(percent);
        }
        if !shot_mid && percent > 0.0 && percent < 100.0 {
            browser.screenshot(&shots.join("4-progress.png")).await;
            shot_mid = true;
        }
        if label == "SUCCESS" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the long task did not finish; progress seen: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.screenshot(&shots.join("5-progress-done.png")).await;
    let middle: Vec<f64> = seen
        .iter()
        .copied()
        .filter(|p| *p > 0.0 && *p < 100.0)
        .collect();
    assert!(
        middle.len() >= 2,
        "the bar moved through at least two intermediate values: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "the bar only moves forward: {seen:?}"
    );
    assert_eq!(seen.last(), Some(&100.0), "{seen:?}");
    assert!(text_of(&browser, "progress-text").await.contains("100%"));

    // 6. A group from the dashboard's form; its page fills its bar live.
    // It is the sixth page with a live stream in this session: pages left
    // must close theirs, or the browser's six connections to the server
    // are used up and the page's requests stall.
    browser.goto(&format!("{}/dashboard", serve.url)).await;
    browser
        .wait_for(
            "the send form lists tasks.sleep",
            LIMIT,
            "return !!document.querySelector('#send-name option[value=\"tasks.sleep\"]');",
            vec![],
        )
        .await;
    // Four members finishing 1, 2, 3 and 4 s after they are sent (-c 4).
    browser
        .eval(
            "document.getElementById('send-name').value = 'tasks.sleep'; \
             document.getElementById('send-args').value = '[[1], [2], [3], [4]]'; \
             document.getElementById('send-kwargs').value = '{}'; \
             document.getElementById('send-countdown').value = ''; return true;",
            vec![],
        )
        .await;
    browser.click("#send-group").await;
    browser.click("#sent-group-link").await;
    let group_id = browser
        .wait_for(
            "the group page shows its members",
            LIMIT,
            "const p = document.getElementById('group-progress'); \
             return p && p.dataset.total === '4' ? document.getElementById('group-id').textContent : null;",
            vec![],
        )
        .await;
    let group_id = group_id.as_str().unwrap_or_default().to_owned();
    assert!(browser
        .current_url()
        .await
        .ends_with(&format!("/dashboard/groups/{group_id}")));
    // A reload would drop this marker.
    browser
        .eval("window.celeriacNoReload = true; return true;", vec![])
        .await;
    let mut counts: Vec<u64> = Vec::new();
    let start = std::time::Instant::now();
    loop {
        let count = browser
            .eval(
                "return Number(document.getElementById('group-progress').dataset.completed);",
                vec![],
            )
            .await
            .as_u64()
            .unwrap_or(0);
        if counts.last() != Some(&count) {
            counts.push(count);
            if count > 0 && count < 4 {
                browser
                    .screenshot(&shots.join("7-group-progress.png"))
                    .await;
            }
        }
        if count == 4 {
            break;
        }
        assert!(
            start.elapsed() < LIMIT,
            "the group's bar did not reach 4 of 4: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The bar's width is animated: wait until it is drawn full.
    browser
        .wait_for(
            "the group's bar is drawn full",
            LIMIT,
            "const bar = document.getElementById('group-progress-bar'); \
             return bar.getBoundingClientRect().width >= bar.parentElement.getBoundingClientRect().width - 1;",
            vec![],
        )
        .await;
    browser.screenshot(&shots.join("8-group-done.png")).await;
    assert!(
        counts.first().is_some_and(|c| *c < 4),
        "the page showed the group unfinished first: {counts:?}"
    );
    assert!(
        counts.windows(2).all(|w| w[0] < w[1]),
        "the bar only moves forward: {counts:?}"
    );
    // Members finish a second apart; the page's fallback re-read is every
    // 2 s, so two intermediate steps show the live events at work.
    assert!(
        counts.iter().filter(|c| **c > 0 && **c < 4).count() >= 2,
        "the bar moved member by member: {counts:?}"
    );
    let page = browser
        .eval(
            "return [window.celeriacNoReload === true, \
              document.getElementById('group-progress-bar').style.width, \
              document.getElementById('group-progress-text').textContent, \
              document.querySelectorAll('#members tbody tr[data-state=\"SUCCESS\"]').length];",
            vec![],
        )
        .await;
    assert_eq!(page[0], true, "the page was not reloaded");
    assert_eq!(page[1], "100%");
    assert!(
        page[2]
            .as_str()
            .is_some_and(|t| t.contains("4 of 4 succeeded")),
        "{page}"
    );
    assert_eq!(page[3], 4);
    // A member's page links back to its group.
    browser.click("#members tbody tr:first-child a").await;
    browser
        .wait_for(
            "the member's page links to its group",
            LIMIT,
            "const a = document.querySelector('#group a'); \
             return !!a && a.textContent === arguments[0];",
            vec![json!(group_id)],
        )
        .await;
    browser
        .screenshot(&shots.join("9-member-of-group.png"))
        .await;

    // The whole dashboard at the end.
    browser.goto(&format!("{}/dashboard", serve.url)).await;
    browser
        .wait_for(
            "the long task is listed as done",
            LIMIT,
            "const r = document.querySelector(`tr[data-task-id=\"${arguments[0]}\"]`); \
             return !!r && r.dataset.state === 'SUCCESS';",
            vec![json!(long)],
        )
        .await;
    browser.screenshot(&shots.join("6-dashboard.png")).await;
}
