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
fn bench_reports_rates_and_latency_as_json() {
    let env = Env::new();
    let out = env.run([
        "bench", "-n", "300", "--chunk", "20", "-c", "8", "--rate", "3000", "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).expect("JSON report");
    for phase in ["enqueue", "drain", "end_to_end"] {
        let rate = report[phase]["tasks_per_second"].as_f64().unwrap_or(0.0);
        assert!(rate > 0.0, "{phase}: {report}");
    }
    let p99 = report["end_to_end"]["latency_ms"]["p99"]
        .as_f64()
        .unwrap_or(-1.0);
    assert!(p99 >= 0.0, "{report}");
    assert_eq!(report["paced_at"], 3000.0);
}

#[test]
fn bench_with_worker_processes_and_without_results() {
    let env = Env::new();
    let out = env.run([
        "bench",
        "-n",
        "200",
        "--processes",
        "--workers",
        "2",
        "-c",
        "4",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("end to end"), "{}", stdout(&out));

    let out = env.run(["bench", "-n", "200", "--no-results", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).expect("JSON report");
    assert_eq!(report["results_stored"], false);
}
