//! The seed 002 deployment: `deploy/nginx/celeriac.conf` run by a real
//! nginx (Debian's package; `CELERIAC_TEST_NGINX` names the binary,
//! `scripts/test.sh` installs it) on a free loopback port, in front of real
//! `post-history serve`, `post-history rank-server` and `post-history worker`
//! processes on one SQLite file. The config is used as committed, with its
//! listen port and the two upstream addresses replaced by free ports.
//!
//! Every route goes through nginx: the seed's producer API (publish and
//! poll to the result), the task, group, worker and cluster API, the
//! dashboard pages and assets, the live stream (an event arrives while the
//! task runs: nginx does not buffer it), OpenAPI, health, metrics, and the
//! ranking server under /rank. The cross-site guard still works behind the
//! proxy (nginx passes the browser's Host), and bodies over the services'
//! 1 MiB limit get a 413 (from nginx, which has the same limit).

#[path = "../../celeriac-cli/tests/serve_support/mod.rs"]
mod serve_support;
#[path = "../../celeriac-cli/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use serve_support::ServeProcess;
use support::Env;

const LIMIT: Duration = Duration::from_secs(30);

fn nginx_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CELERIAC_TEST_NGINX") {
        return PathBuf::from(path);
    }
    for candidate in ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!(
        "nginx not found: install Debian's nginx (scripts/test.sh does) or set CELERIAC_TEST_NGINX"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child process killed on drop, its log shown if the test fails.
struct Process {
    child: Child,
    name: &'static str,
    log: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- {} log ---\n{}",
                self.name,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// `deploy/nginx/celeriac.conf` with its ports replaced; each address must
/// be found exactly once, so a change of the file's shape fails here.
fn site_config(listen: u16, serve: &str, rank: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/nginx/celeriac.conf");
    let text = std::fs::read_to_string(&path).expect("deploy/nginx/celeriac.conf");
    for (from, count) in [
        ("listen 80;", 1),
        ("server 127.0.0.1:8080;", 1),
        ("server 127.0.0.1:8000;", 1),
    ] {
        assert_eq!(text.matches(from).count(), count, "{from:?} in {path:?}");
    }
    text.replace("listen 80;", &format!("listen 127.0.0.1:{listen};"))
        .replace("server 127.0.0.1:8080;", &format!("server {serve};"))
        .replace("server 127.0.0.1:8000;", &format!("server {rank};"))
}

fn start_nginx(dir: &Path, site: &str) -> Process {
    std::fs::create_dir_all(dir).expect("nginx dir");
    std::fs::write(dir.join("celeriac.conf"), site).expect("site");
    let d = dir.display();
    let main = format!(
        "daemon off;\nworker_processes 1;\nuser root;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
         types {{ text/html html; }}\n  include {d}/celeriac.conf;\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), main).expect("nginx.conf");
    let log = dir.join("error.log");
    let child = Command::new(nginx_binary())
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr.log")).expect("stderr"))
        .spawn()
        .expect("spawn nginx");
    Process {
        child,
        name: "nginx",
        log,
    }
}

/// `post-history rank-server` on `port`, ready once it prints its address.
fn start_rank_server(env: &Env, port: u16) -> Process {
    let log = env.path("rank.log");
    let mut child = env
        .command(["rank-server", "--port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("rank log"))
        .spawn()
        .expect("spawn rank-server");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(LIMIT)
        .expect("rank-server printed its address");
    assert!(line.starts_with("ranking server on http://"), "{line}");
    Process {
        child,
        name: "rank-server",
        log,
    }
}

async fn poll_until(
    client: &reqwest::Client,
    url: &str,
    mut done: impl FnMut(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let value = match client.get(url).send().await {
            Ok(r) if r.status().is_success() => r.json().await.unwrap_or(Value::Null),
            _ => Value::Null,
        };
        if done(&value) {
            return value;
        }
        assert!(
            start.elapsed() < LIMIT,
            "{url}: not done within {LIMIT:?}: {value}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_puts_every_service_behind_one_port() {
    let env = Env::new();
    let worker_name = "deploy@test";
    let worker_log = env.path("worker.log");
    let _worker = Process {
        child: env
            .command(["worker", "-n", worker_name, "-c", "2"])
            // The seed's wait_and_return sleeps 20 s; not here.
            .env("CELERIAC_WAIT_AND_RETURN_SECS", "0.2")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&worker_log).expect("worker log"))
            .spawn()
            .expect("spawn worker"),
        name: "worker",
        log: worker_log.clone(),
    };
    support::eventually("the worker is ready", LIMIT, || {
        std::fs::read_to_string(&worker_log)
            .unwrap_or_default()
            .contains("worker ready")
    });
    let serve = ServeProcess::start(env.command(["serve"]), &env.path("serve.log"));
    let rank_port = free_port();
    let _rank = start_rank_server(&env, rank_port);
    let port = free_port();
    let site = site_config(
        port,
        serve.url.trim_start_matches("http://"),
        &format!("127.0.0.1:{rank_port}"),
    );
    let _nginx = start_nginx(&env.path("nginx"), &site);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let health = poll_until(&client, &format!("{base}/health"), |v| v["status"] == "ok").await;
    assert_eq!(health["status"], "ok");
    let get = |path: &str| client.get(format!("{base}{path}")).send();

    // The dashboard: redirect, pages with their security headers, assets.
    let root = get("/").await.expect("GET /");
    assert_eq!(root.status(), 303);
    assert_eq!(root.headers()["location"], "/dashboard");
    for page in [
        "/dashboard",
        "/dashboard/tasks/some-id",
        "/dashboard/groups/some-id",
        "/dashboard/workers/deploy@test",
    ] {
        let response = get(page).await.expect("page");
        assert_eq!(response.status(), 200, "{page}");
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap_or("")
            .to_owned();
        assert!(csp.contains("script-src 'self'"), "{page}: {csp}");
        assert!(response
            .text()
            .await
            .unwrap_or_default()
            .contains("<!doctype html>"));
    }
    for (asset, kind) in [
        ("style.css", "text/css"),
        ("dashboard.js", "text/javascript"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let response = get(&format!("/dashboard/assets/{asset}"))
            .await
            .expect("asset");
        assert_eq!(response.status(), 200, "{asset}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap_or("")
                .starts_with(kind),
            "{asset}"
        );
    }
    let openapi: Value = get("/openapi.json")
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    assert!(openapi["paths"]["/producer/api/sum"].is_object());

    // The live stream through nginx: open it first, then run a task; its
    // events must arrive while the stream stays open (no buffering).
    let mut stream = get("/api/events/stream").await.expect("stream");
    assert_eq!(stream.status(), 200);
    assert!(stream.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/event-stream"));

    // The seed's producer API, to the result.
    let published: Value = client
        .post(format!("{base}/producer/api/sum"))
        .json(&json!({"number": 10}))
        .send()
        .await
        .expect("publish")
        .json()
        .await
        .expect("json");
    assert_eq!(published["message"], "job published");
    let job = published["job_id"].as_str().expect("job id").to_owned();
    let done = poll_until(&client, &format!("{base}/producer/api/sum/{job}"), |v| {
        v["ready"] == true
    })
    .await;
    assert_eq!(done["result"], 55);
    let published: Value = client
        .post(format!("{base}/producer/api/wait_and_return"))
        .send()
        .await
        .expect("publish")
        .json()
        .await
        .expect("json");
    let job = published["job_id"].as_str().expect("job id").to_owned();
    let done = poll_until(
        &client,
        &format!("{base}/producer/api/wait_and_return/{job}"),
        |v| v["ready"] == true,
    )
    .await;
    assert!(done["result"].is_string(), "{done}");

    // The stream carried the sum's task events.
    let mut seen = String::new();
    let start = Instant::now();
    while !(seen.contains("event: task") && seen.contains(&job)) {
        let left = LIMIT.saturating_sub(start.elapsed());
        assert!(!left.is_zero(), "no task event through nginx; got:\n{seen}");
        match tokio::time::timeout(left, stream.chunk()).await {
            Ok(Ok(Some(bytes))) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            other => panic!("the stream ended or failed: {other:?}; got:\n{seen}"),
        }
    }
    assert!(seen.starts_with("event: hello"), "{seen}");
    drop(stream);

    // The task API: send, read, search; groups.
    let sent: Value = client
        .post(format!("{base}/api/tasks/tasks.add"))
        .json(&json!({"args": [20, 22]}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let id = sent["task_id"].as_str().expect("id").to_owned();
    let task = poll_until(&client, &format!("{base}/api/tasks/{id}"), |v| {
        v["state"] == "SUCCESS"
    })
    .await;
    assert_eq!(task["result"], 42);
    let page = poll_until(&client, &format!("{base}/api/tasks?q=(20,%2022)"), |v| {
        v["total"] == 1
    })
    .await;
    assert_eq!(page["tasks"][0]["id"], id.as_str());
    let group: Value = client
        .post(format!("{base}/api/groups"))
        .json(&json!({"task": "tasks.add", "args_list": [[1, 1], [2, 2]]}))
        .send()
        .await
        .expect("group")
        .json()
        .await
        .expect("json");
    let group_id = group["group_id"].as_str().expect("group id").to_owned();
    poll_until(&client, &format!("{base}/api/groups/{group_id}"), |v| {
        v["completed"] == 2
    })
    .await;
    let retry = client
        .post(format!("{base}/api/tasks/{id}/retry"))
        .send()
        .await
        .expect("retry");
    assert_eq!(retry.status(), 200);
    let revoke = client
        .post(format!("{base}/api/tasks/{id}/revoke"))
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoke.status(), 200);

    // The cluster API, the worker page's API over remote control.
    poll_until(&client, &format!("{base}/api/workers"), |v| {
        v.as_array()
            .into_iter()
            .flatten()
            .any(|w| w["hostname"] == worker_name && w["online"] == true)
    })
    .await;
    let detail = poll_until(&client, &format!("{base}/api/workers/{worker_name}"), |v| {
        v["registered"].as_array().is_some_and(|r| !r.is_empty())
    })
    .await;
    assert_eq!(detail["control"], "events");
    let reply = client
        .post(format!("{base}/api/workers/{worker_name}/rate-limit"))
        .json(&json!({"task_name": "tasks.add", "rate_limit": "100/s"}))
        .send()
        .await
        .expect("rate limit");
    assert_eq!(reply.status(), 200);
    for path in ["/api/queues", "/api/overview", "/api/dead-letters"] {
        let response = get(path).await.expect(path);
        assert_eq!(response.status(), 200, "{path}");
        let _: Value = response.json().await.expect(path);
    }
    let metrics = get("/metrics")
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("celeriac_tasks_total"), "{metrics}");

    // The ranking server under /rank.
    let request: Value =
        serde_json::from_str(include_str!("../../loadtest/data/rank_request.json"))
            .expect("sample request");
    let ranked = client
        .post(format!("{base}/rank"))
        .json(&request)
        .send()
        .await
        .expect("rank");
    assert_eq!(ranked.status(), 200);
    let ranked: Value = ranked.json().await.expect("json");
    assert!(ranked["ranked_ids"].is_array(), "{ranked}");
    let rank_health = get("/rank/health").await.expect("rank health");
    assert_eq!(rank_health.status(), 200);
    let rank_api: Value = get("/rank/openapi.json")
        .await
        .expect("rank openapi")
        .json()
        .await
        .expect("json");
    assert!(
        rank_api["paths"]["/rank"].is_object(),
        "the ranking server's document"
    );

    // Behind the proxy the cross-site guard still sees the browser's Host.
    let cross = client
        .post(format!("{base}/api/tasks/tasks.add"))
        .header("origin", "https://evil.example")
        .json(&json!({"args": [1, 1]}))
        .send()
        .await
        .expect("cross-site");
    assert_eq!(cross.status(), 403);
    let same = client
        .post(format!("{base}/api/tasks/tasks.add"))
        .header("origin", base.as_str())
        .json(&json!({"args": [1, 1]}))
        .send()
        .await
        .expect("same-site");
    assert_eq!(same.status(), 200, "the page's own origin passes");
    // Over the services' 1 MiB limit: 413 at the edge (the same limit in
    // nginx, so never a 502 from a service that stopped reading); unknown
    // paths are nginx's 404.
    let big = client
        .post(format!("{base}/api/tasks/tasks.echo"))
        .header("content-type", "application/json")
        .body(format!("{{\"args\": [\"{}\"]}}", "x".repeat(1_500_000)))
        .send()
        .await
        .expect("big body");
    assert_eq!(big.status(), 413);
    assert_eq!(get("/nothing-here").await.expect("404").status(), 404);
    assert_eq!(get("/rankings").await.expect("404").status(), 404);
}
