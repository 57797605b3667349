//! Both HTTP servers against their own OpenAPI documents, with
//! schemathesis (PyPI, pinned in `scripts/requirements-interop.txt`; the
//! venv's `schemathesis` next to `CELERIAC_TEST_PYTHON`, else
//! `.venv/bin/schemathesis`).
//!
//! Each test starts the real binary (`celeriac serve` without a token,
//! with a token, `post-history rank-server`) on a free port, runs
//! `schemathesis run <url>/openapi.json` with a bounded number of cases per
//! operation, and asserts exit status 0, "No issues found", and that every
//! documented operation but the excluded one was tested with cases that all
//! passed. The checks:
//!
//! - `not_a_server_error`: no 5xx;
//! - `status_code_conformance`: every status answered is documented;
//! - `content_type_conformance`, `response_schema_conformance`: bodies are
//!   of the documented type and shape;
//! - with a token, `ignored_auth` too: every route documented as needing
//!   the token answers 401 without it (the test sends the token otherwise).
//!
//! Two settings, each for a reason outside the documents:
//!
//! - `GET /api/events/stream` is excluded: a server-sent event stream never
//!   ends while the server runs, so every case would time out.
//! - Header values are generated without control characters
//!   (`exclude-header-characters`), and no `Authorization` is invented
//!   (`with-security-parameters = false`): hyper refuses a request head
//!   with a control character in a header value (RFC 9110 §5.5) with a
//!   bare 400 before any route runs. That is the HTTP parser's answer to a
//!   malformed message, not the API's.
//!
//! `CELERIAC_SCHEMATHESIS_EXAMPLES` (default 50) bounds the cases per
//! operation and phase; `CELERIAC_SCHEMATHESIS_SEED` picks the seed
//! (default fixed, so a failure can be replayed; the run prints it).

#[path = "../../celeriac-cli/tests/serve_support/mod.rs"]
mod serve_support;
#[path = "../../celeriac-cli/tests/support/mod.rs"]
mod support;

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serve_support::ServeProcess;
use support::Env;

/// A token long enough for `serve` to accept (at least 16 characters).
const TOKEN: &str = "schemathesis-token-5d1f0c2e";
/// The stream never ends; see the module documentation.
const STREAM: &str = "/api/events/stream";
/// The checks every run makes.
const CHECKS: &str = "not_a_server_error,status_code_conformance,\
                      content_type_conformance,response_schema_conformance";

fn schemathesis() -> PathBuf {
    let python = std::env::var_os("CELERIAC_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"));
    let bin = python
        .parent()
        .map(|dir| dir.join("schemathesis"))
        .unwrap_or_default();
    assert!(
        bin.is_file(),
        "{} not found: run scripts/test.sh (it installs the pinned schemathesis into .venv)",
        bin.display()
    );
    bin
}

/// The configuration file: header values without control characters, no
/// generated `Authorization` (see the module documentation).
fn config(env: &Env) -> PathBuf {
    let controls: String = (1u32..32)
        .filter(|c| *c != 9)
        .chain([127])
        .map(|c| format!("\\u{c:04x}"))
        .collect();
    let path = env.path("schemathesis.toml");
    std::fs::write(
        &path,
        format!(
            "[generation]\nexclude-header-characters = \"{controls}\"\n\
             with-security-parameters = false\n"
        ),
    )
    .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// What a run printed, and whether it passed.
struct Report {
    success: bool,
    text: String,
}

impl Report {
    /// The number after `label` on the summary line that starts with it,
    /// e.g. `Tested: 17`.
    fn number_after(&self, label: &str) -> Option<u64> {
        self.text.lines().find_map(|line| {
            let rest = line.trim().strip_prefix(label)?;
            rest.trim()
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
    }

    /// `(generated, passed)` from `N generated, M passed`.
    fn cases(&self) -> (u64, u64) {
        let line = self
            .text
            .lines()
            .find(|l| l.contains(" generated, "))
            .unwrap_or("");
        let mut numbers = line
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse::<u64>().ok());
        (
            numbers.next().unwrap_or(0),
            numbers.next().unwrap_or(u64::MAX),
        )
    }
}

/// `schemathesis run <base>/openapi.json` with the checks, `extra` flags
/// and a deadline.
fn run_schemathesis(env: &Env, base: &str, checks: &str, extra: &[&str]) -> Report {
    let examples =
        std::env::var("CELERIAC_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "50".to_owned());
    let seed = std::env::var("CELERIAC_SCHEMATHESIS_SEED").unwrap_or_else(|_| "14".to_owned());
    let out_path = env.path("schemathesis.out");
    let out = std::fs::File::create(&out_path).unwrap_or_else(|e| panic!("{e}"));
    let err = out.try_clone().unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let mut child = Command::new(schemathesis())
        .arg("--config-file")
        .arg(config(env))
        .args(["run", &format!("{base}/openapi.json")])
        .args(["--checks", checks])
        .args(["--max-examples", &examples, "--seed", &seed])
        .args(["--workers", "1", "--request-timeout", "10"])
        .args(["--generation-database", "none", "--no-color"])
        .args(["--output-sanitize", "false"])
        .args(extra)
        .current_dir(env.path(""))
        .env("NO_COLOR", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn schemathesis: {e}"));
    // A deadline against a hang, not a speed target: under the test
    // suite's load a serve run takes 2–4 minutes.
    let limit = Duration::from_secs(600);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap_or_else(|e| panic!("{e}")) {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "schemathesis did not finish within {limit:?}:\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    eprintln!(
        "schemathesis against {base} took {:.1?}:\n{text}",
        started.elapsed()
    );
    Report {
        success: status.success(),
        text,
    }
}

/// The run passed: exit 0, no issue, `operations` operations tested, and
/// every generated case passed.
fn assert_clean(report: &Report, operations: u64) {
    assert!(
        report.success,
        "schemathesis found problems:\n{}",
        report.text
    );
    assert!(
        report.text.contains("No issues found"),
        "no clean summary:\n{}",
        report.text
    );
    // The summary's sections and marks for failed checks and errors (the
    // warnings' prose may say "errors"; these never appear in a clean run).
    for bad in ["Failures:", "Errors:", "Errored:", "❌", "🚫"] {
        assert!(
            !report.text.contains(bad),
            "{bad:?} in the report:\n{}",
            report.text
        );
    }
    assert_eq!(
        report.number_after("Tested:"),
        Some(operations),
        "operations tested:\n{}",
        report.text
    );
    let (generated, passed) = report.cases();
    assert!(
        generated >= 10 * operations && generated == passed,
        "{generated} cases generated, {passed} passed:\n{}",
        report.text
    );
}

/// Operations in `base`'s document (all methods of all paths), and how many
/// of them are at `path`.
async fn count_operations(base: &str, token: Option<&str>, path: &str) -> (u64, u64) {
    let mut request = reqwest::Client::new().get(format!("{base}/openapi.json"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let doc: serde_json::Value = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET /openapi.json: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("/openapi.json: {e}"));
    let methods = ["get", "put", "post", "delete", "patch", "head", "options"];
    let mut all = 0;
    let mut at = 0;
    for (p, item) in doc["paths"].as_object().into_iter().flatten() {
        let n = methods.iter().filter(|m| item.get(**m).is_some()).count() as u64;
        all += n;
        if p == path {
            at += n;
        }
    }
    (all, at)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_a_token_matches_its_openapi_document() {
    let env = Env::new();
    let serve = ServeProcess::start(env.command(["serve"]), &env.path("serve.log"));
    let (all, stream) = count_operations(&serve.url, None, STREAM).await;
    assert_eq!(stream, 1, "the stream is documented");
    let report = run_schemathesis(&env, &serve.url, CHECKS, &["--exclude-path", STREAM]);
    assert_clean(&report, all - stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_a_token_matches_its_openapi_document_and_needs_the_token() {
    let env = Env::new();
    let mut command = env.command(["serve"]);
    command.env("CELERIAC_API_TOKEN", TOKEN);
    let serve = ServeProcess::start(command, &env.path("serve.log"));
    let (all, stream) = count_operations(&serve.url, Some(TOKEN), STREAM).await;
    let header = format!("Authorization: Bearer {TOKEN}");
    let checks = format!("{CHECKS},ignored_auth");
    let report = run_schemathesis(
        &env,
        &serve.url,
        &checks,
        &["--exclude-path", STREAM, "--header", &header],
    );
    assert_clean(&report, all - stream);
}

/// A running `post-history rank-server --port 0`, killed on drop.
struct RankServer {
    child: Child,
    url: String,
}

impl RankServer {
    fn start(env: &Env) -> RankServer {
        let mut child = env
            .command(["rank-server", "--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn rank-server: {e}"));
        let mut reader = BufReader::new(child.stdout.take().unwrap_or_else(|| panic!("stdout")));
        let mut first = String::new();
        let _ = reader.read_line(&mut first);
        // Drain the rest so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let _ = reader.read_to_end(&mut Vec::new());
        });
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {first:?}"))
            .to_owned();
        RankServer { child, url }
    }
}

impl Drop for RankServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rank_server_matches_its_openapi_document() {
    let env = Env::new();
    let server = RankServer::start(&env);
    let (all, _) = count_operations(&server.url, None, "").await;
    assert_eq!(all, 2, "POST /rank and GET /health");
    let report = run_schemathesis(&env, &server.url, CHECKS, &[]);
    assert_clean(&report, all);
}
