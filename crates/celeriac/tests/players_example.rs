//! The `players` example (seed 003) run for real, in a temp dir: a chord of
//! one task per CSV row on the embedded SQLite broker with an in-process
//! worker. Three runs: the first imports the good rows, records the bad ones
//! with their reasons and retries the transient ones; the second sends only
//! the rows that failed; the third, after the CSV is edited, sends the failed
//! rows and the changed one. Executions are counted in `row_attempts`.

#[path = "../examples/players/import.rs"]
mod import;

use std::collections::BTreeMap;
use std::path::Path;

use import::{Options, Report};
use rusqlite::{params, Connection};

type TestResult = Result<(), import::BoxError>;

const SHIPPED_CSV: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/players/data/players.csv"
);

/// The bad rows of the shipped CSV: line → what the reason must say.
const BAD_ROWS: &[(u64, &str)] = &[
    (13, "missing name"),
    (29, "expected 7 fields"),
    (65, "goals is not a whole number: \"seven\""),
    (90, "games is negative: -3"),
    (101, "missing player_id"),
    (122, "unknown position \"Striker\""),
    (152, "missing assists"),
    (178, "goals is not a whole number: \"4.5\""),
];
/// P0042: down for 2 attempts, imported on its third (first run).
const RECOVERS: u64 = 43;
/// P0137: down for 6 attempts, gives up after 4 on the first run, imported
/// on the third attempt of the second.
const OUTLASTS: u64 = 138;

/// Executions per line in `run`.
fn attempts(conn: &Connection, run: i64) -> rusqlite::Result<BTreeMap<u64, u32>> {
    let mut stmt =
        conn.prepare("SELECT line, count(*) FROM row_attempts WHERE run = ?1 GROUP BY line")?;
    let rows = stmt.query_map(params![run], |r| {
        Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
    })?;
    rows.collect()
}

fn count(conn: &Connection, sql: &str, run: i64) -> rusqlite::Result<i64> {
    conn.query_row(sql, params![run], |r| r.get(0))
}

fn failed_lines(report: &Report) -> Vec<u64> {
    report.failures().iter().map(|f| f.line).collect()
}

fn reason(report: &Report, line: u64) -> String {
    report
        .failures()
        .iter()
        .find(|f| f.line == line)
        .and_then(|f| f.reason.clone())
        .unwrap_or_else(|| panic!("line {line} is not among the failures: {report:?}"))
}

/// The body ran exactly once for `run` and recorded these counts.
fn assert_one_summary(conn: &Connection, run: i64, succeeded: i64, failed: i64) -> TestResult {
    let mut stmt = conn.prepare("SELECT succeeded, failed FROM import_summaries WHERE run = ?1")?;
    let rows = stmt
        .query_map(params![run], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    assert_eq!(
        rows,
        vec![(succeeded, failed)],
        "run {run}: one body execution"
    );
    Ok(())
}

fn edit_line(csv: &Path, line: u64, from: &str, to: &str) -> TestResult {
    let text = std::fs::read_to_string(csv)?;
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let index = usize::try_from(line - 1)?;
    assert!(lines[index].contains(from), "line {line}: {}", lines[index]);
    lines[index] = lines[index].replace(from, to);
    std::fs::write(csv, lines.join("\n") + "\n")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_once_records_failures_and_reruns_only_what_failed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let csv = dir.path().join("players.csv");
    std::fs::copy(SHIPPED_CSV, &csv)?;
    let opts = Options::new(&csv, dir.path().join("data"));
    let mut progress_calls = 0;

    // Run 1: everything is sent.
    let report = import::run_import(&opts, |done, total| {
        assert!(done <= total);
        progress_calls += 1;
    })
    .await?;
    assert!(progress_calls >= 2, "progress reported");
    let conn = import::open(&opts.players_db())?;
    let run1 = report.summary.as_ref().map(|s| s.run);
    assert_eq!(run1, Some(1));
    assert_eq!(
        (report.rows_in_file, report.skipped, report.sent),
        (200, 0, 200)
    );
    assert_eq!(report.succeeded(), 191);
    let mut expected_failed: Vec<u64> = BAD_ROWS.iter().map(|(line, _)| *line).collect();
    expected_failed.push(OUTLASTS);
    expected_failed.sort_unstable();
    // The body got the header's results in CSV order.
    assert_eq!(failed_lines(&report), expected_failed);
    for (line, says) in BAD_ROWS {
        let reason = reason(&report, *line);
        assert!(reason.contains(says), "line {line}: {reason}");
    }
    let gave_up = reason(&report, OUTLASTS);
    assert!(
        gave_up.contains("ratings service unavailable for P0137")
            && gave_up.contains("gave up after 4 attempts"),
        "{gave_up}"
    );
    // Bad rows ran once (no retries), transient ones were retried.
    let run1_attempts = attempts(&conn, 1)?;
    assert_eq!(run1_attempts.len(), 200, "every row ran");
    for (line, n) in &run1_attempts {
        let expected = match *line {
            RECOVERS => 3,
            OUTLASTS => 4,
            _ => 1,
        };
        assert_eq!(*n, expected, "executions of line {line} in run 1");
    }
    let retried: Vec<(u64, bool, u32)> = report
        .summary
        .iter()
        .flat_map(|s| &s.retried)
        .map(|r| (r.line, r.ok, r.attempts))
        .collect();
    assert_eq!(retried, vec![(RECOVERS, true, 3), (OUTLASTS, false, 4)]);
    // The database agrees with the summary.
    assert_eq!(
        count(&conn, "SELECT count(*) FROM players WHERE run = ?1", 1)?,
        191
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM player_rows WHERE status = 'failed' AND reason IS NOT NULL AND run = ?1",
            1
        )?,
        9
    );
    assert_one_summary(&conn, 1, 191, 9)?;

    // Run 2: only the 9 failed rows are sent; P0137's outage ends.
    let report = import::run_import(&opts, |_, _| {}).await?;
    assert_eq!(
        (report.rows_in_file, report.skipped, report.sent),
        (200, 191, 9)
    );
    assert_eq!(report.succeeded(), 1);
    let bad: Vec<u64> = BAD_ROWS.iter().map(|(line, _)| *line).collect();
    assert_eq!(failed_lines(&report), bad);
    let run2_attempts = attempts(&conn, 2)?;
    assert_eq!(
        run2_attempts.keys().copied().collect::<Vec<_>>(),
        expected_failed,
        "only the failed rows ran again"
    );
    assert_eq!(run2_attempts.get(&OUTLASTS), Some(&3));
    assert!(bad.iter().all(|line| run2_attempts.get(line) == Some(&1)));
    assert_eq!(
        count(&conn, "SELECT count(*) FROM players WHERE run >= ?1", 0)?,
        192
    );
    let p0137: String = conn.query_row(
        "SELECT status FROM player_rows WHERE player_id = 'P0137'",
        [],
        |r| r.get(0),
    )?;
    assert_eq!(p0137, "ok");
    assert_one_summary(&conn, 2, 1, 8)?;

    // Run 3: fix one bad row, change one imported row; those and the other
    // bad rows are sent, nothing else.
    edit_line(&csv, 65, ",seven,", ",7,")?;
    edit_line(
        &csv,
        2,
        "P0001,Hana Stone,Northgate Athletic,DF,23,7,",
        "P0001,Hana Stone,Northgate Athletic,DF,23,8,",
    )?;
    let report = import::run_import(&opts, |_, _| {}).await?;
    assert_eq!((report.skipped, report.sent), (191, 9));
    assert_eq!(report.succeeded(), 2);
    assert_eq!(report.failures().len(), 7);
    let run3_lines: Vec<u64> = attempts(&conn, 3)?.into_keys().collect();
    let mut expected3: Vec<u64> = bad.clone();
    expected3.push(2);
    expected3.sort_unstable();
    assert_eq!(run3_lines, expected3);
    let goals: i64 = conn.query_row(
        "SELECT goals FROM players WHERE player_id = ?1",
        params!["P0001"],
        |r| r.get(0),
    )?;
    assert_eq!(goals, 8);
    assert_one_summary(&conn, 3, 2, 7)?;

    // No row that was imported ran again unless it changed: over all runs,
    // every line ran in run 1, and later only if it had failed or changed.
    let total: i64 = conn.query_row("SELECT count(*) FROM row_attempts", [], |r| r.get(0))?;
    // run 1: 198×1 + 3 + 4; run 2: 8 + 3; run 3: 7 + 1 + 1.
    assert_eq!(total, 205 + 11 + 9);

    // Fix the remaining bad rows: run 4 sends just them and imports them
    // all; run 5 has nothing to send and starts no chord.
    for (line, from, to) in [
        (13, "P0012,,", "P0012,Kai Moss,"),
        (
            29,
            "P0028,Sol West,Old Mill Town,DF,19",
            "P0028,Sol West,Old Mill Town,DF,19,0,0",
        ),
        (90, ",-3,", ",3,"),
        (101, ",Xan Vale,", "P0100,Xan Vale,"),
        (122, ",Striker,", ",FW,"),
        (152, ",1,0,", ",1,0,0"),
        (178, ",4.5,", ",4,"),
    ] {
        edit_line(&csv, line, from, to)?;
    }
    let report = import::run_import(&opts, |_, _| {}).await?;
    assert_eq!((report.sent, report.succeeded()), (7, 7));
    assert!(report.failures().is_empty(), "{report:?}");
    let report = import::run_import(&opts, |_, _| {}).await?;
    assert_eq!((report.skipped, report.sent), (200, 0));
    assert!(report.summary.is_none());
    assert_eq!(
        count(&conn, "SELECT count(*) FROM players WHERE run >= ?1", 0)?,
        200
    );
    Ok(())
}

#[tokio::test]
async fn a_csv_with_another_header_is_refused_before_anything_runs() -> TestResult {
    let dir = tempfile::tempdir()?;
    let csv = dir.path().join("other.csv");
    std::fs::write(&csv, "id,name\n1,Ada\n")?;
    let opts = Options::new(&csv, dir.path().join("data"));
    let err = match import::run_import(&opts, |_, _| {}).await {
        Ok(report) => panic!("imported {report:?}"),
        Err(err) => err.to_string(),
    };
    assert!(err.contains("expected the header"), "{err}");
    let conn = import::open(&opts.players_db())?;
    let runs: i64 = conn.query_row("SELECT count(*) FROM import_runs", [], |r| r.get(0))?;
    assert_eq!(runs, 0);
    Ok(())
}
