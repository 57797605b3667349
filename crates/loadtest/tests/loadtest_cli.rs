//! The load-test binary end to end against an in-process `celeriac serve`
//! on the memory broker (loopback only, a few seconds each): it passes
//! when jobs complete, and exits 1 when a threshold is broken (jobs never
//! ready, or a p99 bound no server can meet).

use std::process::{Command, Output};
use std::time::Duration;

use celeriac::{task, App, TaskError, Worker, WorkerOptions};
use tokio::sync::oneshot;

#[task(name = "tasks.sum_to_n_job")]
async fn sum_to_n_job(n: u64) -> Result<u64, TaskError> {
    Ok(n * (n + 1) / 2)
}

/// A server (and, if asked, a worker) on a private memory broker; returns
/// its URL and the senders that stop them.
async fn start(with_worker: bool) -> (String, Vec<oneshot::Sender<()>>) {
    let url = format!("memory://loadtest-{}", uuid::Uuid::new_v4());
    let app = App::builder()
        .broker_url(&url)
        .backend_url(&url)
        .task(sum_to_n_job)
        .build()
        .await
        .expect("app");
    let mut stops = Vec::new();
    if with_worker {
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(
            Worker::new(app.clone(), WorkerOptions::default()).run(async move {
                let _ = rx.await;
            }),
        );
        stops.push(tx);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(celeriac_http::serve(
        listener,
        app,
        celeriac_http::HttpConfig {
            // The seed's route the scenario drives, as its app declares it.
            producer_routes: vec![
                celeriac_http::ProducerRoute::new("sum", "tasks.sum_to_n_job")
                    .arg("number", celeriac_http::ArgType::UnsignedInteger),
            ],
            ..celeriac_http::HttpConfig::default()
        },
        async move {
            let _ = rx.await;
        },
    ));
    stops.push(tx);
    (format!("http://{addr}"), stops)
}

async fn loadtest(host: &str, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_celeriac-loadtest"));
    command
        .args([
            "--host",
            host,
            "--users",
            "4",
            "--hatch-rate",
            "4",
            "--run-time",
            "2",
        ])
        .args(args)
        .env_remove("CELERIAC_API_TOKEN");
    tokio::task::spawn_blocking(move || command.output().expect("run celeriac-loadtest"))
        .await
        .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_when_jobs_complete() {
    let (host, _stops) = start(true).await;
    let out = loadtest(&host, &[]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("PASS") && text.contains("POST /producer/api/sum"),
        "{text}"
    );
    assert!(text.contains("errors: 0 "), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_when_a_threshold_is_broken() {
    // No worker: no job is ever ready.
    let (host, _stops) = start(false).await;
    let out = loadtest(&host, &["--job-timeout", "0.3"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL"), "{text}");

    // A latency bound nothing meets.
    let (host, _stops) = start(true).await;
    let out = loadtest(&host, &["--max-p99-ms", "0.000001"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL: p99"), "{text}");
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[test]
fn bad_flags_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_celeriac-loadtest"))
        .args(["--max-error-rate", "2"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-error-rate"));
}
