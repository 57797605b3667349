//! `celeriac-loadtest`: load tests with pass/fail thresholds, built on goose.
//!
//! Run with `cargo run --release -p celeriac-loadtest -- --help`.
//!
//! Scenarios (`--scenario`):
//! - `producer` replays the seed's Locust scenario against `celeriac serve`:
//!   each user POSTs `/producer/api/sum` with a random number, then polls
//!   `GET /producer/api/sum/{job_id}` until the job is ready, and checks the
//!   sum. A round trip that is not ready within `--job-timeout` fails.
//! - `rank` POSTs a `RankingRequest` (default: the shipped
//!   `data/rank_request.json`, or `--rank-request FILE`) to `/rank` and
//!   checks for a `ranked_ids` answer.
//!
//! Latencies are measured here to the microsecond (goose's own tables
//! round to milliseconds). At the end a summary is printed and checked
//! against `--max-error-rate` and `--max-p99-ms`; the exit status is 0 when
//! both hold, 1 when a threshold is broken, 2 on any other error.
//! The load only ever goes to `--host`; every run is bounded by `--run-time`.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use goose::config::GooseConfiguration;
use goose::prelude::*;
use serde_json::{json, Value};

/// The sample request shipped with the binary.
const SAMPLE_RANK_REQUEST: &str = include_str!("../data/rank_request.json");

/// Load-test the producer API or the rank server, with thresholds.
#[derive(Debug, Parser)]
#[command(name = "celeriac-loadtest", version, about)]
struct Args {
    /// Base URL of the server under test
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    host: String,

    /// What to replay
    #[arg(long, value_enum, default_value_t = Which::Producer)]
    scenario: Which,

    /// Concurrent users
    #[arg(short = 'u', long, default_value_t = 32)]
    users: usize,

    /// Users started per second
    #[arg(long, default_value_t = 32)]
    hatch_rate: usize,

    /// Seconds of load after all users started
    #[arg(short = 't', long, default_value_t = 30)]
    run_time: usize,

    /// Largest random number for /producer/api/sum
    #[arg(long, default_value_t = 10_000)]
    max_number: u64,

    /// Seconds a sum job may take to be ready before the round trip fails
    #[arg(long, default_value_t = 30.0)]
    job_timeout: f64,

    /// Milliseconds between polls of a job's status
    #[arg(long, default_value_t = 10)]
    poll_ms: u64,

    /// RankingRequest JSON to POST to /rank [default: the shipped sample]
    #[arg(long, value_name = "FILE")]
    rank_request: Option<std::path::PathBuf>,

    /// Bearer token for the API (when the server has CELERIAC_API_TOKEN)
    #[arg(long, env = "CELERIAC_API_TOKEN", hide_env_values = true)]
    token: Option<String>,

    /// Fail when more than this fraction of requests failed (0 = none may fail)
    #[arg(long, default_value_t = 0.0)]
    max_error_rate: f64,

    /// Fail when the 99th percentile of any request kind exceeds this (ms)
    #[arg(long, default_value_t = 250.0)]
    max_p99_ms: f64,
}

/// A load-test scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Which {
    /// POST /producer/api/sum, then poll until ready (the seed's Locust test).
    Producer,
    /// POST /rank with a RankingRequest.
    Rank,
}

/// What every user needs, set once before the attack.
struct Settings {
    max_number: u64,
    job_timeout: Duration,
    poll: Duration,
    rank_body: Value,
    token: Option<String>,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();
/// Microsecond latencies by request kind, and failures by kind.
static SAMPLES: OnceLock<Mutex<BTreeMap<&'static str, Kind>>> = OnceLock::new();

#[derive(Default)]
struct Kind {
    micros: Vec<u64>,
    failures: u64,
}

fn settings() -> &'static Settings {
    SETTINGS.get_or_init(|| Settings {
        max_number: 10_000,
        job_timeout: Duration::from_secs(30),
        poll: Duration::from_millis(10),
        rank_body: Value::Null,
        token: None,
    })
}

fn record(kind: &'static str, started: Instant, ok: bool) {
    let micros = started.elapsed().as_micros() as u64;
    let samples = SAMPLES.get_or_init(Default::default);
    let mut samples = samples.lock().unwrap_or_else(|e| e.into_inner());
    let entry = samples.entry(kind).or_default();
    entry.micros.push(micros);
    if !ok {
        entry.failures += 1;
    }
}

/// Give each user a client that sends the bearer token, if any.
async fn authenticate(user: &mut GooseUser) -> TransactionResult {
    if let Some(token) = &settings().token {
        let mut headers = reqwest::header::HeaderMap::new();
        let value =
            reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                Box::new(TransactionError::InvalidMethod {
                    method: reqwest::Method::GET,
                })
            })?;
        headers.insert(reqwest::header::AUTHORIZATION, value);
        user.set_client_builder(
            reqwest::Client::builder()
                .default_headers(headers)
                .timeout(Duration::from_secs(60)),
        )
        .await?;
    }
    Ok(())
}

/// The seed's Locust task: publish a sum, poll until it is ready, check it.
async fn sum_round_trip(user: &mut GooseUser) -> TransactionResult {
    let s = settings();
    let number = rand::random_range(1..=s.max_number);
    let round_trip = Instant::now();
    let started = Instant::now();
    let mut goose = user
        .post_json("/producer/api/sum", &json!({"number": number}))
        .await?;
    let published: Option<Value> = match goose.response {
        Ok(response) if response.status().is_success() => response.json().await.ok(),
        _ => None,
    };
    let job_id = published
        .as_ref()
        .and_then(|v| v["job_id"].as_str())
        .map(str::to_owned);
    record("POST /producer/api/sum", started, job_id.is_some());
    let Some(job_id) = job_id else {
        record("sum round trip", round_trip, false);
        return user.set_failure("no job id", &mut goose.request, None, None);
    };
    let path = format!("/producer/api/sum/{job_id}");
    let expected = number * (number + 1) / 2;
    loop {
        let started = Instant::now();
        let mut goose = user
            .get_named(&path, "GET /producer/api/sum/{job_id}")
            .await?;
        let status: Option<Value> = match goose.response {
            Ok(response) if response.status().is_success() => response.json().await.ok(),
            _ => None,
        };
        record("GET /producer/api/sum/{job_id}", started, status.is_some());
        let Some(status) = status else {
            record("sum round trip", round_trip, false);
            return user.set_failure("status request failed", &mut goose.request, None, None);
        };
        if status["ready"] == true {
            let right = status["result"].as_u64() == Some(expected);
            record("sum round trip", round_trip, right);
            if !right {
                return user.set_failure(
                    &format!("sum of 1..={number} came back as {}", status["result"]),
                    &mut goose.request,
                    None,
                    None,
                );
            }
            return Ok(());
        }
        if round_trip.elapsed() > s.job_timeout {
            record("sum round trip", round_trip, false);
            return user.set_failure("job not ready in time", &mut goose.request, None, None);
        }
        tokio::time::sleep(s.poll).await;
    }
}

/// POST the sample RankingRequest to /rank.
async fn rank(user: &mut GooseUser) -> TransactionResult {
    let started = Instant::now();
    let mut goose = user.post_json("/rank", &settings().rank_body).await?;
    let answer: Option<Value> = match goose.response {
        Ok(response) if response.status().is_success() => response.json().await.ok(),
        _ => None,
    };
    let ok = answer.as_ref().is_some_and(|a| a["ranked_ids"].is_array());
    record("POST /rank", started, ok);
    if !ok {
        return user.set_failure("no ranked_ids", &mut goose.request, None, None);
    }
    Ok(())
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

async fn run(args: Args) -> anyhow::Result<bool> {
    if !(0.0..=1.0).contains(&args.max_error_rate) {
        bail!("--max-error-rate must be between 0 and 1");
    }
    if args.users == 0 || args.hatch_rate == 0 || args.run_time == 0 || args.max_number == 0 {
        bail!("--users, --hatch-rate, --run-time and --max-number must be at least 1");
    }
    let rank_body: Value = match &args.rank_request {
        Some(path) => serde_json::from_str(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{} is not JSON", path.display()))?,
        None => serde_json::from_str(SAMPLE_RANK_REQUEST).context("the shipped sample")?,
    };
    let _ = SETTINGS.set(Settings {
        max_number: args.max_number,
        job_timeout: Duration::try_from_secs_f64(args.job_timeout)
            .context("--job-timeout must be a positive number of seconds")?,
        poll: Duration::from_millis(args.poll_ms),
        rank_body,
        token: args.token.clone().filter(|t| !t.is_empty()),
    });
    let scenario = match args.scenario {
        Which::Producer => scenario!("producer")
            .register_transaction(transaction!(authenticate).set_on_start())
            .register_transaction(transaction!(sum_round_trip).set_name("sum round trip")),
        Which::Rank => scenario!("rank")
            .register_transaction(transaction!(authenticate).set_on_start())
            .register_transaction(transaction!(rank).set_name("rank")),
    };
    let started = Instant::now();
    let metrics = GooseAttack::initialize_with_config(GooseConfiguration::default())?
        .register_scenario(scenario)
        .set_default(GooseDefault::Host, args.host.as_str())?
        .set_default(GooseDefault::Users, args.users)?
        .set_default(
            GooseDefault::HatchRate,
            args.hatch_rate.to_string().as_str(),
        )?
        .set_default(GooseDefault::RunTime, args.run_time)?
        .set_default(GooseDefault::NoResetMetrics, true)?
        .set_default(GooseDefault::NoTelnet, true)?
        .set_default(GooseDefault::NoWebSocket, true)?
        .set_default(GooseDefault::NoAutoStart, false)?
        .set_default(GooseDefault::Quiet, 1)?
        .execute()
        .await?;
    let elapsed = started.elapsed().as_secs_f64().max(metrics.duration as f64);

    let samples = SAMPLES.get_or_init(Default::default);
    let samples = samples.lock().unwrap_or_else(|e| e.into_inner());
    let mut pass = true;
    let mut requests = 0u64;
    let mut failures = 0u64;
    println!();
    println!(
        "scenario {:?} against {}: {} users, {:.0} s",
        args.scenario, args.host, args.users, elapsed
    );
    println!(
        "{:<34} {:>9} {:>9} {:>8} {:>9} {:>9} {:>9}",
        "kind", "count", "per s", "errors", "p50 ms", "p99 ms", "max ms"
    );
    for (kind, k) in samples.iter() {
        let mut sorted = k.micros.clone();
        sorted.sort_unstable();
        let p99 = percentile(&sorted, 99.0);
        println!(
            "{:<34} {:>9} {:>9.1} {:>8} {:>9.2} {:>9.2} {:>9.2}",
            kind,
            sorted.len(),
            sorted.len() as f64 / elapsed,
            k.failures,
            percentile(&sorted, 50.0),
            p99,
            sorted.last().copied().unwrap_or(0) as f64 / 1000.0
        );
        // A failed round trip (a wrong sum, a job never ready) is an error
        // too; but the round trip includes the job's own run time and
        // polling, so the latency bound applies to HTTP requests only.
        let is_request = kind.starts_with("GET ") || kind.starts_with("POST ");
        if !is_request {
            failures += k.failures;
        } else {
            requests += sorted.len() as u64;
            failures += k.failures;
            if p99 > args.max_p99_ms {
                println!(
                    "FAIL: p99 of {kind} is {p99:.2} ms, above {} ms",
                    args.max_p99_ms
                );
                pass = false;
            }
        }
    }
    let error_rate = if requests == 0 {
        1.0
    } else {
        failures as f64 / requests as f64
    };
    println!(
        "requests: {requests} in {elapsed:.1} s = {:.1}/s; errors: {failures} ({:.4} %)",
        requests as f64 / elapsed,
        error_rate * 100.0
    );
    if requests == 0 {
        println!("FAIL: no request completed");
        pass = false;
    } else if error_rate > args.max_error_rate {
        println!(
            "FAIL: error rate {error_rate:.6} is above {}",
            args.max_error_rate
        );
        pass = false;
    }
    println!("{}", if pass { "PASS" } else { "FAIL" });
    Ok(pass)
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the runtime: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}
