//! The schedule file: what it accepts, and errors that name the entry and
//! field at fault.

use std::time::Duration;

use celeriac::beat::config::parse;
use celeriac::beat::{CatchUp, Schedule};
use chrono::{DateTime, Utc};
use serde_json::json;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap_or_else(|e| panic!("bad time {s}: {e}"))
}

/// The error message for `text`, which must be refused.
fn error(text: &str) -> String {
    match parse(text, "schedule.toml") {
        Ok(entries) => panic!("accepted {entries:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn reads_the_documented_example() -> Result<(), Box<dyn std::error::Error>> {
    let entries = parse(
        r#"
        [[schedule]]
        name = "top-entities"
        task = "tasks.count_top_named_entities"
        every = "300s"
        args = [10, "{now-24h}", "{now}", "my_worker:scheduled:top_named_entities"]
        kwargs = {}
        queue = "celery"
        priority = 3
        expires = "240s"

        [[schedule]]
        name = "nightly"
        task = "tasks.report"
        cron = "30 2 * * *"
        timezone = "Europe/Berlin"
        kwargs = { since = "{now-1d}", dry_run = false, ratio = 0.5 }
        catch_up = "skip"

        [[schedule]]
        name = "launch"
        task = "tasks.launch"
        at = "2030-06-01 09:00:00"
        "#,
        "schedule.toml",
    )?;
    assert_eq!(entries.len(), 3);
    let top = &entries[0];
    assert_eq!(top.name(), "top-entities");
    assert_eq!(top.task(), "tasks.count_top_named_entities");
    assert_eq!(top.schedule(), &Schedule::every(Duration::from_secs(300))?);
    let (args, kwargs) = top.render(t("2024-03-01T12:00:00Z"))?;
    assert_eq!(
        args,
        vec![
            json!(10),
            json!("2024-02-29 12:00:00"),
            json!("2024-03-01 12:00:00"),
            json!("my_worker:scheduled:top_named_entities"),
        ]
    );
    assert!(kwargs.is_empty());

    let nightly = &entries[1];
    assert_eq!(
        nightly.schedule(),
        &Schedule::cron("30 2 * * *", "Europe/Berlin")?
    );
    assert_eq!(nightly.catch_up_policy(), CatchUp::Skip);
    let (_, kwargs) = nightly.render(t("2024-03-01T12:00:00Z"))?;
    assert_eq!(
        serde_json::Value::Object(kwargs),
        json!({"since": "2024-02-29 12:00:00", "dry_run": false, "ratio": 0.5})
    );

    // A naive `at` is read in the zone (UTC by default).
    assert_eq!(
        entries[2].schedule(),
        &Schedule::at(t("2030-06-01T09:00:00Z"))
    );
    Ok(())
}

#[test]
fn the_file_timezone_is_the_default_for_cron_and_at() -> Result<(), Box<dyn std::error::Error>> {
    let entries = parse(
        r#"
        timezone = "America/New_York"
        [[schedule]]
        name = "a"
        task = "t"
        cron = "0 9 * * *"
        [[schedule]]
        name = "b"
        task = "t"
        at = 2030-06-01T09:00:00
        [[schedule]]
        name = "c"
        task = "t"
        at = 2030-06-01T09:00:00Z
        "#,
        "schedule.toml",
    )?;
    assert_eq!(
        entries[0].schedule(),
        &Schedule::cron("0 9 * * *", "America/New_York")?
    );
    assert_eq!(
        entries[1].schedule(),
        &Schedule::at(t("2030-06-01T13:00:00Z"))
    );
    assert_eq!(
        entries[2].schedule(),
        &Schedule::at(t("2030-06-01T09:00:00Z"))
    );
    Ok(())
}

#[test]
fn errors_name_the_entry_and_the_field() {
    let entry = |body: &str| format!("[[schedule]]\nname = \"report\"\n{body}");

    let e = error(&entry("every = \"10s\""));
    assert!(
        e.contains("schedule.toml: entry \"report\": field `task`"),
        "{e}"
    );

    let e = error(&entry("task = \"t\"\ncron = \"61 * * * *\""));
    assert!(
        e.contains("entry \"report\": field `cron`") && e.contains("minute: 61"),
        "{e}"
    );

    let e = error(&entry(
        "task = \"t\"\ncron = \"* * * * *\"\ntimezone = \"Europe/Berlim\"",
    ));
    assert!(
        e.contains("field `timezone`") && e.contains("Europe/Berlim"),
        "{e}"
    );

    let e = error(&entry("task = \"t\"\nevery = \"10 parsecs\""));
    assert!(e.contains("field `every`") && e.contains("unit"), "{e}");

    let e = error(&entry(
        "task = \"t\"\nevery = \"10s\"\ncron = \"* * * * *\"",
    ));
    assert!(e.contains("only one of"), "{e}");

    let e = error(&entry("task = \"t\""));
    assert!(e.contains("one of `every`, `cron` or `at`"), "{e}");

    let e = error(&entry(
        "task = \"t\"\nevery = \"10s\"\nargs = [\"{now-3 fortnights}\"]",
    ));
    assert!(
        e.contains("field `args`") && e.contains("{now-3 fortnights}"),
        "{e}"
    );

    let e = error(&entry("task = \"t\"\nevery = \"10s\"\npriority = 12"));
    assert!(e.contains("field `priority`") && e.contains("12"), "{e}");

    let e = error(&entry(
        "task = \"t\"\nevery = \"10s\"\ncatch_up = \"always\"",
    ));
    assert!(
        e.contains("field `catch_up`") && e.contains("\"once\" or \"skip\""),
        "{e}"
    );

    let e = error(&entry("task = \"t\"\nevery = \"10s\"\nqeue = \"x\""));
    assert!(
        e.contains("field `qeue`") && e.contains("unknown field"),
        "{e}"
    );

    let e = error(&entry("task = \"t\"\nevery = \"10s\"\ntimezone = \"UTC\""));
    assert!(
        e.contains("field `timezone`") && e.contains("`every` ticks in UTC"),
        "{e}"
    );

    let e = error(&entry("task = \"t\"\nat = \"next tuesday\""));
    assert!(e.contains("field `at`"), "{e}");

    // An entry without a name is named by its position.
    let e = error("[[schedule]]\ntask = \"t\"\nevery = \"1s\"");
    assert!(e.contains("entry #1: field `name`"), "{e}");

    let twice = format!(
        "{}\n{}",
        entry("task = \"t\"\nevery = \"1s\""),
        entry("task = \"u\"\nevery = \"2s\"")
    );
    let e = error(&twice);
    assert!(
        e.contains("entry \"report\": field `name`: another entry"),
        "{e}"
    );
}

#[test]
fn file_level_errors_say_where() {
    let e = error("[[schedule]]\nname = \"x\"\ntask = ");
    assert!(
        e.starts_with("schedule.toml: ") && e.contains("line 3"),
        "{e}"
    );
    let e = error("schedules = []");
    assert!(e.contains("unknown key `schedules`"), "{e}");
    let e = error("timezone = \"Nowhere/City\"");
    assert!(
        e.contains("field `timezone`") && e.contains("Nowhere/City"),
        "{e}"
    );
    let missing = celeriac::beat::load_file(std::path::Path::new("/nonexistent/beat.toml"));
    let e = missing.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("/nonexistent/beat.toml: cannot read it"), "{e}");
}
