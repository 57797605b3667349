//! Seed 003: import a CSV of players one task per row, through a chord, on
//! the embedded SQLite broker with a worker inside this process.
//!
//! ```text
//! cargo run --example players -p celeriac                 # import (again)
//! cargo run --example players -p celeriac -- --fresh      # start over
//! cargo run --example players -p celeriac -- --csv my.csv --dir /tmp/players
//! ```
//!
//! The first run imports the good rows and records the bad ones with their
//! reasons; a rerun sends only the rows that failed (or changed). How
//! failures, retries and reruns work: `import.rs`.

mod import;

use std::path::PathBuf;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};

const USAGE: &str = "usage: players [--csv FILE] [--dir DIR] [--fresh]

  --csv FILE  the players CSV (default: the one shipped with the example)
  --dir DIR   where players.db and celeriac.db live
              (default: <temp dir>/celeriac-players-example)
  --fresh     delete both databases first";

struct Args {
    csv: PathBuf,
    dir: PathBuf,
    fresh: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        csv: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/players/data/players.csv"
        )),
        dir: std::env::temp_dir().join("celeriac-players-example"),
        fresh: false,
    };
    let mut it = std::env::args_os().skip(1);
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("--csv") => args.csv = it.next().ok_or("--csv needs a file")?.into(),
            Some("--dir") => args.dir = it.next().ok_or("--dir needs a directory")?.into(),
            Some("--fresh") => args.fresh = true,
            Some("-h" | "--help") => return Err(String::new()),
            _ => return Err(format!("unknown argument {}", arg.to_string_lossy())),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("error: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), import::BoxError> {
    if args.fresh {
        for file in ["players.db", "celeriac.db"] {
            for suffix in ["", "-wal", "-shm"] {
                let path = args.dir.join(format!("{file}{suffix}"));
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(format!("cannot remove {}: {e}", path.display()).into())
                    }
                    _ => {}
                }
            }
        }
    }
    let opts = import::Options::new(&args.csv, &args.dir);
    println!("importing {}", args.csv.display());
    println!("into      {}", opts.players_db().display());

    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} rows  {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let report = import::run_import(&opts, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .await;
    bar.finish_and_clear();
    let report = report?;

    println!(
        "{} rows in the file: {} already imported, {} sent as one chord of {} tasks",
        report.rows_in_file, report.skipped, report.sent, report.sent
    );
    let Some(summary) = &report.summary else {
        println!("nothing to do: every row is imported");
        return Ok(());
    };
    println!(
        "run {}: {} succeeded, {} failed ({:.1} s)",
        summary.run,
        summary.succeeded,
        summary.failures.len(),
        started.elapsed().as_secs_f64()
    );
    for failure in &summary.failures {
        println!(
            "  line {:>3}  {:<6} {}",
            failure.line,
            failure.player_id.as_deref().unwrap_or("-"),
            failure.reason.as_deref().unwrap_or("")
        );
    }
    for row in &summary.retried {
        println!(
            "retried: line {} {} ran {} times, {}",
            row.line,
            row.player_id.as_deref().unwrap_or("-"),
            row.attempts,
            if row.ok {
                "then imported"
            } else {
                "then gave up"
            }
        );
    }
    if !summary.failures.is_empty() {
        println!("rerun to process the failed rows again (fix them in the CSV first)");
    }
    Ok(())
}
