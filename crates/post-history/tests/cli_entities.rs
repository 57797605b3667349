//! `post-history entities eval` and `post-history entities extract`, run as the built
//! binary.

use std::io::Write;
use std::process::{Command, Output, Stdio};

type R = Result<(), Box<dyn std::error::Error>>;

fn celeriac(args: &[&str], stdin: Option<&str>) -> std::io::Result<Output> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_post-history"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.unwrap_or("").as_bytes())?;
    }
    child.wait_with_output()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The F1 column of the untyped scores on the row of `split`.
fn untyped_f1(table: &str, split: &str) -> Option<f64> {
    let line = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(split))?;
    let cols: Vec<&str> = line.split('|').collect();
    cols.get(1)?.split_whitespace().nth(2)?.parse().ok()
}

#[test]
fn eval_prints_precision_recall_f1_per_split_and_type() -> R {
    let out = ok(&celeriac(&["entities", "eval"], None)?);
    for needle in [
        "untyped P",
        "typed P",
        "dev",
        "heldout",
        "fresh",
        "PERSON",
        "ORGANIZATION",
        "LOCATION",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    let f1 = untyped_f1(&out, "all").ok_or("no 'all' row")?;
    assert!(f1 >= 0.75, "untyped F1 {f1} < 0.75:\n{out}");
    Ok(())
}

#[test]
fn eval_json_and_min_f1() -> R {
    let out = ok(&celeriac(
        &["entities", "eval", "--json", "--min-f1", "0.75"],
        None,
    )?);
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let f1 = v["all"]["untyped"]["f1"]
        .as_f64()
        .ok_or("no all.untyped.f1")?;
    assert!(f1 >= 0.75);
    assert!(v["heldout"]["typed"]["precision"].is_number());
    // An impossible threshold fails with a message.
    let out = celeriac(&["entities", "eval", "--min-f1", "1.01"], None)?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("below"));
    Ok(())
}

#[test]
fn eval_on_a_given_file_lists_errors() -> R {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("set.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"text": "Angela Merkel visited Paris.", "entities": [{"text": "Angela Merkel", "type": "PERSON"}, {"text": "Paris", "type": "LOCATION"}]}"#,
            "\n",
            r#"{"text": "nothing to see", "entities": [{"text": "Ghost", "type": "PERSON"}]}"#,
            "\n"
        ),
    )?;
    let path = file.to_str().ok_or("path")?;
    let out = ok(&celeriac(
        &["entities", "eval", "--file", path, "--errors"],
        None,
    )?);
    assert!(out.contains("missed    \"Ghost\" PERSON"), "{out}");
    assert_eq!(untyped_f1(&out, "all"), Some(0.8), "{out}");
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{not json}\n")?;
    let out = celeriac(
        &["entities", "eval", "--file", bad.to_str().ok_or("path")?],
        None,
    )?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1"));
    Ok(())
}

#[test]
fn extract_from_args_and_stdin() -> R {
    let out = ok(&celeriac(
        &[
            "entities",
            "extract",
            "Senator",
            "Elizabeth",
            "Warren",
            "visited",
            "Boston.",
        ],
        None,
    )?);
    let v: serde_json::Value = serde_json::from_str(out.trim())?;
    let ents = v["entities"].as_array().ok_or("entities")?;
    assert_eq!(ents.len(), 2, "{out}");
    assert_eq!(ents[0]["text"], "Elizabeth Warren");
    assert_eq!(ents[0]["type"], "PERSON");
    assert_eq!(ents[1]["text"], "Boston");

    let out = ok(&celeriac(
        &["entities", "extract", "--distinct"],
        Some("Biden met Biden in Ohio\n\nthe FBI raided Mar-a-Lago\n"),
    )?);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["entities"], serde_json::json!(["Biden", "Ohio"]));
    assert_eq!(
        lines[1]["entities"],
        serde_json::json!(["FBI", "Mar-a-Lago"])
    );
    Ok(())
}
