//! `post-history sample-data`, `preprocess` and `seed`, run as the built binary.

use std::path::Path;
use std::process::{Command, Output};

type R = Result<(), Box<dyn std::error::Error>>;

fn celeriac(args: &[&str], cwd: &Path) -> std::io::Result<Output> {
    Command::new(env!("CARGO_BIN_EXE_post-history"))
        .args(args)
        .current_dir(cwd)
        .env_remove("POSTS_DB_PATH")
        .env_remove("CELERIAC_SALT")
        .output()
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

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected failure, got: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Rows of the posts table, counted by an independent reader (Python's
/// sqlite3), which also adds no dependency to the CLI crate.
fn rows(db: &Path) -> Result<i64, Box<dyn std::error::Error>> {
    let out = Command::new("python3")
        .arg("-c")
        .arg("import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from posts').fetchone()[0])")
        .arg(db)
        .output()?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

#[test]
fn generate_preprocess_seed_and_reseed() -> R {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let out = ok(&celeriac(
        &[
            "sample-data",
            "--out",
            "raw",
            "--seed",
            "3",
            "--posts",
            "2000",
        ],
        d,
    )?);
    assert!(out.contains("wrote 2000 items"), "{out}");
    for f in [
        "facebook_posts.csv",
        "facebook_comments.csv",
        "reddit.csv",
        "twitter.jsonl",
    ] {
        assert!(d.join("raw").join(f).is_file(), "{f}");
    }
    let out = ok(&celeriac(
        &["preprocess", "--in", "raw", "--out", "norm", "--salt", "s"],
        d,
    )?);
    assert!(
        out.contains("facebook:") && out.contains("reddit:") && out.contains("twitter:"),
        "{out}"
    );
    let out = ok(&celeriac(
        &[
            "seed",
            "--data",
            "norm",
            "--dbname",
            "p.db",
            "--n-users",
            "50",
            "--seed",
            "1",
        ],
        d,
    )?);
    assert!(out.contains("2000 rows inserted"), "{out}");
    assert_eq!(rows(&d.join("p.db"))?, 2000);

    // The table exists now: no flag is an error and nothing changes.
    let before = std::fs::read(d.join("p.db"))?;
    let err = failed(&celeriac(
        &["seed", "--data", "norm", "--dbname", "p.db"],
        d,
    )?);
    assert!(
        err.contains("already exists") && err.contains("--drop-table"),
        "{err}"
    );
    assert_eq!(std::fs::read(d.join("p.db"))?, before);

    // --upsert with the same seed keeps the row count; --drop-table starts over.
    let out = ok(&celeriac(
        &[
            "seed",
            "--data",
            "norm",
            "--dbname",
            "p.db",
            "--n-users",
            "50",
            "--seed",
            "1",
            "--upsert",
        ],
        d,
    )?);
    assert!(out.contains("0 rows inserted, 2000 updated"), "{out}");
    assert_eq!(rows(&d.join("p.db"))?, 2000);
    let out = ok(&celeriac(
        &[
            "seed",
            "--data",
            "norm",
            "--dbname",
            "p.db",
            "--drop-table",
            "--no-user-pool",
        ],
        d,
    )?);
    assert!(
        out.contains("2000 rows inserted") && out.contains("1 users"),
        "{out}"
    );
    assert_eq!(rows(&d.join("p.db"))?, 2000);
    Ok(())
}

#[test]
fn sample_data_is_deterministic_per_seed() -> R {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    ok(&celeriac(
        &["sample-data", "--out", "a", "--seed", "5", "--posts", "500"],
        d,
    )?);
    ok(&celeriac(
        &["sample-data", "--out", "b", "--seed", "5", "--posts", "500"],
        d,
    )?);
    for f in ["facebook_posts.csv", "reddit.csv", "twitter.jsonl"] {
        assert_eq!(
            std::fs::read(d.join("a").join(f))?,
            std::fs::read(d.join("b").join(f))?,
            "{f}"
        );
    }
    Ok(())
}

#[test]
fn errors_are_clear() -> R {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let err = failed(&celeriac(
        &["seed", "--data", "nowhere", "--dbname", "p.db"],
        d,
    )?);
    assert!(
        err.contains("missing input files") && err.contains("facebook.jsonl"),
        "{err}"
    );
    let err = failed(&celeriac(&["seed", "--activity-distribution", "a:b"], d)?);
    assert!(
        err.contains("--activity-distribution `a:b`") && err.contains("`a` is not a number"),
        "{err}"
    );
    let err = failed(&celeriac(&["seed", "--activity-distribution", "1:-2"], d)?);
    assert!(err.contains("non-negative"), "{err}");
    let err = failed(&celeriac(
        &["seed", "--platform-distribution", "facebook:0,reddit:0"],
        d,
    )?);
    assert!(err.contains("all weights are zero"), "{err}");
    let err = failed(&celeriac(&["seed", "--drop-table", "--upsert"], d)?);
    assert!(err.contains("cannot be used with"), "{err}");
    let err = failed(&celeriac(
        &["preprocess", "--in", "nowhere", "--out", "norm"],
        d,
    )?);
    assert!(err.contains("no raw input found"), "{err}");
    assert!(!d.join("p.db").exists());
    Ok(())
}
