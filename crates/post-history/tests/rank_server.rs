//! `post-history rank-server` as a process: it announces its address, ranks
//! with the entities found under the key in the configured backend (here
//! the embedded SQLite file), picks up a new record without a restart,
//! answers 400 for a bad body, and exits 0 on SIGTERM.

#[path = "../../celeriac-cli/tests/support/mod.rs"]
mod support;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use posts::tasks::SCHEDULED_TOP_ENTITIES_KEY;
use serde_json::{json, Value};
use support::Env;

fn item(id: &str, text: &str) -> Value {
    json!({
        "id": id,
        "text": text,
        "author_name_hash": "h",
        "type": "comment",
        "embedded_urls": null,
        "created_at": "2023-12-08T11:32:12Z",
        "engagements": {"upvote": 1, "downvote": 0, "comment": 0, "award": 0}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rank_server_ranks_with_the_stored_entities() {
    let env = Env::new();
    let app = env.app().await;
    let record = |entities: &[&str]| {
        json!({
            "top_named_entities": entities.iter().map(|e| json!([e, 3])).collect::<Vec<_>>(),
            "timestamp": "2024-01-20T18:41:20+00:00"
        })
        .to_string()
    };
    app.backend()
        .set_value(
            SCHEDULED_TOP_ENTITIES_KEY,
            &record(&["Angela Merkel"]),
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(support::BIN)
        .args([
            "rank-server",
            "--port",
            &port.to_string(),
            "--refresh",
            "0.1",
        ])
        .env("CELERIAC_RESULT_BACKEND", &env.url)
        .env("CELERIAC_BROKER_URL", &env.url)
        .env_remove("CELERIAC_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn rank-server: {e}"));
    let mut first_line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut first_line);
    }
    assert!(
        first_line.contains(&format!("ranking server on http://127.0.0.1:{port}")),
        "{first_line:?}"
    );

    let request = json!({
        "session": {
            "user_id": "u", "user_name_hash": "h", "cohort": "AB",
            "platform": "reddit", "current_time": "2024-01-20 18:41:20"
        },
        "items": [
            item("a", "Nothing to see."),
            item("b", "Angela Merkel spoke in Berlin."),
            item("c", "Elon Musk bought another thing."),
        ]
    });
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/rank");
    let rank = || async {
        let response = client
            .post(&url)
            .json(&request)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /rank: {e}"));
        assert_eq!(response.status().as_u16(), 200);
        let body: Value = response.json().await.unwrap_or(Value::Null);
        body["ranked_ids"].clone()
    };
    assert_eq!(rank().await, json!(["a", "c", "b"]));

    // A new record is picked up by the background refresh.
    app.backend()
        .set_value(SCHEDULED_TOP_ENTITIES_KEY, &record(&["Elon Musk"]), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while rank().await != json!(["a", "b", "c"]) {
        assert!(
            Instant::now() < deadline,
            "the new record was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let bad = client
        .post(&url)
        .body(r#"{"session": {}, "items": []}"#)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bad.status().as_u16(), 400);
    let body: Value = bad.json().await.unwrap_or(Value::Null);
    assert_eq!(body["field"], "session", "{body}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("kill: {e}"));
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap_or_else(|e| panic!("{e}")) {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rank-server did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit}");
}

/// A client that sends nothing, or stops half-way through its request
/// head, is cut off at `--header-timeout`; a zero timeout is refused.
#[test]
fn rank_server_closes_silent_and_half_sent_connections() {
    let env = Env::new();
    let timeout = Duration::from_millis(400);
    let mut rank = Command::new(support::BIN)
        .args(["rank-server", "--port", "0", "--header-timeout", "0.4"])
        .env("CELERIAC_RESULT_BACKEND", &env.url)
        .env("CELERIAC_BROKER_URL", &env.url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rank-server");
    let mut line = String::new();
    BufReader::new(rank.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("banner");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    let outcome =
        std::panic::catch_unwind(|| support::assert_slow_clients_are_closed(&addr, timeout));
    let _ = rank.kill();
    let _ = rank.wait();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }

    let out = env.run(["rank-server", "--header-timeout", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        support::stderr(&out).contains("--header-timeout"),
        "{}",
        support::stderr(&out)
    );
}
