//! Groups and task relations end to end on the memory broker, with a real
//! in-process worker: `POST /api/groups` sends and saves a group, `GET
//! /api/groups/{id}` reports its members and progress (from the saved group,
//! Python's format included, or from the members the server saw), the live
//! stream carries member changes with their group, and a task's view names
//! its parent, root, children, group and chord body.

mod support;

use std::time::{Duration, Instant};

use celeriac::canvas::{chord, group};
use celeriac::{chain, SendOptions};
use futures::StreamExt;
use serde_json::{json, Value};
use support::{add, fail, Cluster};

const WAIT: Duration = Duration::from_secs(15);

/// GET `path` until `done` holds for the answer; returns every answer seen.
async fn poll(cluster: &Cluster, path: &str, mut done: impl FnMut(&Value) -> bool) -> Vec<Value> {
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        let value = cluster.get_json(path).await;
        let finished = done(&value);
        seen.push(value);
        if finished {
            return seen;
        }
        assert!(
            start.elapsed() < WAIT,
            "{path} not done within {WAIT:?}: {:?}",
            seen.last()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn last(cluster: &Cluster, path: &str, done: impl FnMut(&Value) -> bool) -> Value {
    poll(cluster, path, done).await.pop().unwrap_or_default()
}

/// Wait until the server hears the worker: events sent before it
/// subscribed are not seen, and relations come partly from events.
async fn heard_worker(cluster: &Cluster) {
    poll(cluster, "/api/workers", |w| {
        w.as_array().is_some_and(|w| !w.is_empty())
    })
    .await;
}

fn ids(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_group_sent_through_the_api_reports_live_progress() {
    let cluster = Cluster::start().await;
    heard_worker(&cluster).await;
    // Subscribe first: member changes must reach live pages with their group.
    let response = cluster
        .client
        .get(format!("{}/api/events/stream", cluster.url))
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();

    // Eight members of ~300 ms each on four slots: two waves.
    let args_list: Vec<Value> = (1..=8).map(|n| json!([n * 10])).collect();
    let sent = cluster
        .post_json(
            "/api/groups",
            json!({"task": "tasks.sum_to_n_job", "args_list": args_list}),
        )
        .await;
    let group_id = sent["group_id"].as_str().expect("group id").to_owned();
    let members = ids(&sent["members"]);
    assert_eq!(members.len(), 8);
    assert_eq!(sent["saved"], true);
    assert_eq!(sent["queue"], "celery");
    assert_eq!(sent["task"], "tasks.sum_to_n_job");

    let path = format!("/api/groups/{group_id}");
    let seen = poll(&cluster, &path, |g| g["ready"] == true).await;
    let done = seen.last().cloned().unwrap_or_default();
    assert_eq!(done["id"], group_id.as_str());
    assert_eq!(done["source"], "saved");
    assert_eq!(
        (
            done["total"].as_u64(),
            done["completed"].as_u64(),
            done["failed"].as_u64()
        ),
        (Some(8), Some(8), Some(0))
    );
    let listed: Vec<String> = done["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(listed, members, "members in group order");
    let results: Vec<Value> = done["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["result"].clone())
        .collect();
    let expected: Vec<Value> = (1..=8u64)
        .map(|k| json!(k * 10 * (k * 10 + 1) / 2))
        .collect();
    assert_eq!(results, expected);
    assert!(done["members"]
        .as_array()
        .expect("members")
        .iter()
        .all(|m| m["state"] == "SUCCESS"));

    // The progress moved through intermediate values, never backwards.
    let progress: Vec<u64> = seen
        .iter()
        .filter_map(|g| g["completed"].as_u64())
        .collect();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    assert!(
        progress.iter().any(|c| *c > 0 && *c < 8),
        "an intermediate count was seen: {progress:?}"
    );

    // Each member's view names its group and position.
    for (index, id) in members.iter().enumerate() {
        let view = cluster.get_json(&format!("/api/tasks/{id}")).await;
        assert_eq!(view["group_id"], group_id.as_str(), "{view}");
        assert_eq!(view["group_index"], index, "{view}");
    }

    // The live stream carried members' final states with their group id.
    let mut text = String::new();
    let found = tokio::time::timeout(WAIT, async {
        while let Some(Ok(chunk)) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            let finished = text
                .split("\n\n")
                .filter(|e| e.starts_with("event: task") && e.contains("\"SUCCESS\""))
                .filter(|e| e.contains(&format!("\"group_id\":\"{group_id}\"")))
                .count();
            if finished >= 1 {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "stream so far:\n{text}");
}

#[tokio::test]
async fn saved_groups_are_read_as_rust_and_python_save_them() {
    let cluster = Cluster::start().await;
    let app = &cluster.app;
    let members = vec![
        add::s(1, 2).expect("sig"),
        fail::s("boom".to_owned()).expect("sig"),
    ];
    let sent = app.apply_signature(&group(members)).await.expect("sent");
    let saved = app.group_result(&sent);
    saved.save(Duration::from_secs(600)).await.expect("saved");
    let path = format!("/api/groups/{}", sent.id());
    let done = last(&cluster, &path, |g| g["ready"] == true).await;
    assert_eq!(done["source"], "saved");
    assert_eq!(
        (
            done["total"].as_u64(),
            done["completed"].as_u64(),
            done["failed"].as_u64()
        ),
        (Some(2), Some(1), Some(1))
    );
    assert_eq!(done["members"][0]["result"], 3);
    assert_eq!(done["members"][1]["state"], "FAILURE");
    assert_eq!(done["members"][1]["result"]["exc_type"], "ValueError");

    // What Python's `GroupResult.save()` writes (`{"result": as_tuple()}`),
    // for tasks this server never saw: one done, one never sent.
    let done_id = app
        .send_task(
            "tasks.add",
            vec![json!(20), json!(22)],
            Default::default(),
            SendOptions::new(),
        )
        .await
        .expect("sent")
        .id()
        .to_owned();
    let python = json!({"result": [["py-group", null], [[[done_id, null], null], [["never-sent", null], null]]]});
    app.backend()
        .set_value("celery-taskset-meta-py-group", &python.to_string(), None)
        .await
        .expect("stored");
    let view = last(&cluster, "/api/groups/py-group", |g| g["completed"] == 1).await;
    assert_eq!(view["total"], 2);
    assert_eq!(view["ready"], false);
    assert_eq!(view["members"][0]["result"], 42);
    assert_eq!(view["members"][1]["state"], "PENDING");
    assert!(view["members"][1].get("result").is_none(), "{view}");

    // A saved group that is not a group document is not an error page.
    app.backend()
        .set_value("celery-taskset-meta-garbage", "not json", None)
        .await
        .expect("stored");
    let response = cluster
        .client
        .get(format!("{}/api/groups/garbage", cluster.url))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("unreadable")),
        "{body}"
    );
}

#[tokio::test]
async fn an_unsaved_group_is_gathered_from_the_members_seen() {
    let cluster = Cluster::start().await;
    heard_worker(&cluster).await;
    let members = (0..3).map(|i| add::s(i, i).expect("sig")).collect();
    let sent = cluster
        .app
        .apply_signature(&group(members))
        .await
        .expect("sent");
    let path = format!("/api/groups/{}", sent.id());
    // The members' task-received events name their group.
    let start = Instant::now();
    let done = loop {
        let response = cluster
            .client
            .get(format!("{}{path}", cluster.url))
            .send()
            .await
            .expect("request");
        if response.status() == 200 {
            let view: Value = response.json().await.expect("json");
            if view["ready"] == true && view["total"] == 3 {
                break view;
            }
        } else {
            assert_eq!(response.status(), 404, "unknown until a member is seen");
        }
        assert!(
            start.elapsed() < WAIT,
            "the group never showed its three members: {:?}",
            cluster.get_json("/api/tasks").await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(done["source"], "seen");
    assert_eq!(done["completed"], 3);
    let results: Vec<Value> = (0..3)
        .map(|i| done["members"][i]["result"].clone())
        .collect();
    assert_eq!(results, [json!(0), json!(2), json!(4)], "in group order");
}

#[tokio::test]
async fn a_task_names_its_parent_children_group_and_chord() {
    let cluster = Cluster::start().await;
    heard_worker(&cluster).await;
    let app = &cluster.app;

    // A chain: the first step's children are the second, whose parent and
    // root are the first.
    let first = uuid::Uuid::new_v4().to_string();
    let workflow = chain![
        add::s(1, 1).expect("sig").set("task_id", first.as_str()),
        add::sig().arg(10)
    ];
    let second = app
        .apply_signature(&workflow)
        .await
        .expect("sent")
        .id()
        .to_owned();
    let view = last(&cluster, &format!("/api/tasks/{first}"), |v| {
        v["ready"] == true && !ids(&v["children"]).is_empty()
    })
    .await;
    assert_eq!(ids(&view["children"]), std::slice::from_ref(&second));
    let view = last(&cluster, &format!("/api/tasks/{second}"), |v| {
        v["ready"] == true && v["root_id"].is_string()
    })
    .await;
    assert_eq!(view["result"], 12);
    assert_eq!(view["parent_id"], first.as_str());
    assert_eq!(view["root_id"], first.as_str());

    // A chord: each header part names its group and the body; the group
    // page lists the parts, not the body, and names the body too.
    let group_id = uuid::Uuid::new_v4().to_string();
    let parts: Vec<String> = (0..2).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let header = parts
        .iter()
        .enumerate()
        .map(|(i, id)| {
            add::s(i as i64, 1)
                .expect("sig")
                .set("task_id", id.as_str())
        })
        .collect();
    let body = add::si(100, 1).expect("sig");
    let workflow = chord(header, body).set("task_id", group_id.as_str());
    let body_id = app
        .apply_signature(&workflow)
        .await
        .expect("sent")
        .id()
        .to_owned();
    assert_eq!(
        app.async_result(&body_id)
            .get(WAIT)
            .await
            .expect("body ran"),
        json!(101)
    );
    for (index, part) in parts.iter().enumerate() {
        let view = last(&cluster, &format!("/api/tasks/{part}"), |v| {
            v["ready"] == true && v["chord_id"].is_string()
        })
        .await;
        assert_eq!(view["chord_id"], body_id.as_str());
        assert_eq!(view["group_id"], group_id.as_str());
        assert_eq!(view["group_index"], index);
    }
    let view = last(&cluster, &format!("/api/groups/{group_id}"), |g| {
        g["ready"] == true
    })
    .await;
    assert_eq!(view["source"], "seen");
    assert_eq!(view["chord_id"], body_id.as_str());
    let members: Vec<&str> = view["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(
        members,
        parts.iter().map(String::as_str).collect::<Vec<_>>()
    );
}

/// Method, path, content type, body, expected status, text the error names.
type Case = (
    &'static str,
    &'static str,
    Option<&'static str>,
    String,
    u16,
    &'static str,
);

#[tokio::test]
async fn bad_group_requests_are_4xx_with_a_message() {
    let cluster = Cluster::start().await;
    let many: Vec<Value> = (0..10_001).map(|_| json!([])).collect();
    let cases: Vec<Case> = vec![
        (
            "GET",
            "/api/groups/no-such-group",
            None,
            String::new(),
            404,
            "no group has id",
        ),
        (
            "GET",
            "/api/groups/a%20b",
            None,
            String::new(),
            400,
            "group id",
        ),
        (
            "POST",
            "/api/groups",
            Some("application/json"),
            "{}".into(),
            422,
            "task",
        ),
        (
            "POST",
            "/api/groups",
            Some("application/json"),
            json!({"task": "tasks.add", "args_list": []}).to_string(),
            422,
            "args_list",
        ),
        (
            "POST",
            "/api/groups",
            Some("application/json"),
            json!({"task": "tasks.add", "args_list": "x"}).to_string(),
            422,
            "args_list",
        ),
        (
            "POST",
            "/api/groups",
            Some("application/json"),
            json!({"task": "tasks.add", "args_list": many}).to_string(),
            422,
            "10000",
        ),
        (
            "POST",
            "/api/groups",
            Some("application/json"),
            json!({"task": "tasks.nope", "args_list": [[]]}).to_string(),
            404,
            "unknown task",
        ),
        (
            "POST",
            "/api/groups",
            Some("application/json"),
            json!({"task": "tasks.add", "args_list": [[1, 2]], "options": {"priority": 42}})
                .to_string(),
            422,
            "priority",
        ),
        (
            "POST",
            "/api/groups",
            Some("application/json"),
            json!({"task": "tasks.add", "args_list": [[1, 2]], "options": {"task_id": "a b"}})
                .to_string(),
            422,
            "task id",
        ),
        (
            "POST",
            "/api/groups",
            Some("application/json"),
            json!({"task": "tasks.add", "args_list": [[1, 2]], "extra": 1}).to_string(),
            422,
            "extra",
        ),
        (
            "POST",
            "/api/groups",
            Some("application/json"),
            "{\"task\": ".into(),
            400,
            "EOF",
        ),
        (
            "POST",
            "/api/groups",
            Some("text/plain"),
            json!({"task": "tasks.add", "args_list": [[1, 2]]}).to_string(),
            415,
            "application/json",
        ),
        (
            "POST",
            "/api/groups",
            Some("application/json"),
            format!(
                "{{\"task\": \"tasks.add\", \"args_list\": [[\"{}\"]]}}",
                "x".repeat(2 << 20)
            ),
            413,
            "",
        ),
    ];
    for (method, path, content_type, body, status, mentions) in cases {
        let url = format!("{}{path}", cluster.url);
        let mut request = match method {
            "GET" => cluster.client.get(&url),
            _ => cluster.client.post(&url).body(body),
        };
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.expect("request");
        let got = response.status().as_u16();
        let text = response.text().await.expect("body");
        assert_eq!(got, status, "{method} {path}: {text}");
        let message: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON error body: {text}"));
        let message = message["error"].as_str().unwrap_or_default();
        assert!(
            message.to_lowercase().contains(&mentions.to_lowercase()),
            "{method} {path}: {message:?} should mention {mentions:?}"
        );
    }
    // Nothing of the refused requests was sent: no task is known.
    let tasks = cluster.get_json("/api/tasks").await;
    assert_eq!(tasks["total"], 0, "{tasks}");
}
