//! `celeriac demo` and `celeriac bench` run end to end and exit 0.

mod support;

use serde_json::Value;
use support::{stderr, stdout, Env};

#[test]
fn demo_runs_the_example_tasks() {
    let env = Env::new();
    // No broker given: the demo uses a scratch file of its own.
    let out = env
        .command(["demo", "--wait-secs", "0"])
        .env_remove("CELERIAC_BROKER_URL")
        .env_remove("CELERIAC_RESULT_BACKEND")
        .output()
        .expect("run demo");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("tasks.add(2, 3)") && text.contains("= 5"),
        "{text}"
    );
    assert!(text.contains("\"Hello World!\""), "{text}");
    assert!(text.contains("all as expected"), "{text}");
}

#[test]
fn bench_in_process_row_reports_rates_and_latency_as_json() {
    let env = Env::new();
    let out = env.run([
        "bench",
        "--only",
        "in-process",
        "-n",
        "300",
        "--chunk",
        "20",
        "-c",
        "8",
        "--rate",
        "3000",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).expect("JSON report");
    assert!(report.get("worker").is_none(), "{report}");
    let row = &report["in_process"];
    for phase in ["enqueue", "drain", "end_to_end"] {
        let rate = row[phase]["tasks_per_second"].as_f64().unwrap_or(0.0);
        assert!(rate > 0.0, "{phase}: {report}");
    }
    let p99 = row["end_to_end"]["latency_ms"]["p99"]
        .as_f64()
        .unwrap_or(-1.0);
    assert!(p99 >= 0.0, "{report}");
    assert_eq!(row["paced_at"], 3000.0);
    assert_eq!(row["concurrency"], 8);
    assert_eq!(row["task"], "tasks.noop");

    let out = env.run([
        "bench",
        "--only",
        "in-process",
        "-n",
        "200",
        "--no-results",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).expect("JSON report");
    assert_eq!(report["in_process"]["results_stored"], false);
}

#[test]
fn bench_by_default_runs_worker_processes_at_default_flags_then_the_in_process_row() {
    let env = Env::new();
    let out = env.run(["bench", "-n", "200", "--workers", "2", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).expect("JSON report");
    let row = &report["worker"];
    assert_eq!(row["task"], "tasks.add", "{report}");
    assert_eq!(row["workers"], 2);
    // Nothing passed to the workers: their own defaults are measured.
    assert_eq!(row["concurrency"], Value::Null);
    assert_eq!(row["prefetch"], Value::Null);
    assert_eq!(row["results_stored"], true);
    for phase in ["enqueue", "drain", "end_to_end"] {
        let rate = row[phase]["tasks_per_second"].as_f64().unwrap_or(0.0);
        assert!(rate > 0.0, "{phase}: {report}");
    }
    let drain = &row["drain"];
    assert!(
        drain["steady_tasks_per_second"].as_f64().unwrap_or(0.0) > 0.0,
        "{report}"
    );
    assert!(
        drain["cpu_per_task"]["workers_us"].as_f64().unwrap_or(0.0) > 0.0,
        "{report}"
    );
    let p50 = row["end_to_end"]["latency_ms"]["p50"].as_f64();
    assert!(p50.is_some_and(|ms| ms >= 0.0), "{report}");
    for rss in ["idle", "peak", "after_run"] {
        let mib = row["rss_mib"][rss].as_f64().unwrap_or(0.0);
        assert!(mib > 1.0, "{rss}: {report}");
    }
    assert!(report["in_process"]["drain"]["tasks_per_second"]
        .as_f64()
        .is_some_and(|r| r > 0.0));
    assert!(report["load_average_before"].is_array(), "{report}");

    // The worker row is observed through stored results only.
    let out = env.run(["bench", "--only", "worker", "--no-results"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("--no-results"), "{}", stderr(&out));
}
