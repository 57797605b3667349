//! `seed`: one test per flag and per promise of SPEC §5 (user pool shape,
//! timestamps, determinism, upsert, refusing an existing table).

use chrono::{DateTime, TimeZone, Utc};
use posts::models::datetime::parse_datetime;
use posts::models::Platform;
use posts::raw::{self, PreprocessOptions};
use posts::sample::{self, SampleOptions};
use posts::seed::{self, IfExists, SeedError, SeedOptions, SeedReport};
use rusqlite::Connection;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

type R = Result<(), Box<dyn std::error::Error>>;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Sample data of `n` items, normalized, in a fresh temp dir.
fn fixture(n: usize) -> Result<(tempfile::TempDir, PathBuf), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let raw_dir = dir.path().join("raw");
    let norm = dir.path().join("norm");
    sample::generate(
        &raw_dir,
        &SampleOptions {
            seed: 9,
            total_items: n,
        },
    )?;
    raw::preprocess(&raw_dir, &norm, &PreprocessOptions::default())?;
    Ok((dir, norm))
}

fn opts(norm: &Path, db: &Path) -> SeedOptions {
    SeedOptions {
        data_dir: norm.to_path_buf(),
        db_path: db.to_path_buf(),
        ..Default::default()
    }
}

fn count(db: &Path, sql: &str) -> Result<i64, rusqlite::Error> {
    Connection::open(db)?.query_row(sql, [], |r| r.get(0))
}

struct Row {
    post_id: String,
    session_ts: DateTime<Utc>,
    user: String,
    platform: String,
    created_at: DateTime<Utc>,
    blob: String,
}

fn rows(db: &Path) -> Result<Vec<Row>, Box<dyn std::error::Error>> {
    let conn = posts::db::open_read_only(db)?;
    let out = posts::db::read_posts(&conn)?
        .into_iter()
        .map(|r| Row {
            post_id: r.post_id,
            session_ts: r.session_timestamp,
            user: r.session_user_id,
            platform: r.platform,
            created_at: r.created_at,
            blob: r.post_blob,
        })
        .collect();
    Ok(out)
}

fn total_items(norm: &Path) -> Result<usize, raw::RawError> {
    let mut n = 0;
    for p in Platform::ALL {
        n += raw::read_jsonl(&norm.join(raw::normalized_file(p)))?.len();
    }
    Ok(n)
}

#[test]
fn user_pool_defaults_every_post_once_in_order_ending_near_now() -> R {
    let (dir, norm) = fixture(6000)?;
    let db = dir.path().join("p.db");
    let report = seed::seed(
        &SeedOptions {
            n_users: 100,
            ..opts(&norm, &db)
        },
        now(),
    )?;
    let rows = rows(&db)?;
    let n = total_items(&norm)?;
    assert_eq!(rows.len(), n);
    assert_eq!(report.rows_inserted as usize, n);
    // Every post exactly once across all feeds.
    let ids: HashSet<&str> = rows.iter().map(|r| r.post_id.as_str()).collect();
    assert_eq!(ids.len(), n);
    // A single activity level and enough sessions: exactly n_users users.
    let users: HashSet<&str> = rows.iter().map(|r| r.user.as_str()).collect();
    assert_eq!(users.len(), 100);
    assert_eq!(report.users_with_sessions, 100);
    for p in Platform::ALL {
        let feed: Vec<&Row> = rows.iter().filter(|r| r.platform == p.as_str()).collect();
        assert!(!feed.is_empty());
        // Chronological: items and sessions never go back in time, items precede their session.
        for w in feed.windows(2) {
            assert!(
                w[0].created_at <= w[1].created_at,
                "{p}: items out of order"
            );
            assert!(
                w[0].session_ts <= w[1].session_ts,
                "{p}: sessions out of order"
            );
        }
        for r in &feed {
            assert!(r.created_at <= r.session_ts);
            // The blob carries the same (synthetic) time as the column.
            let item = posts::models::from_json::<posts::models::ContentItem>(r.blob.as_bytes())?;
            assert_eq!(item.created_at, r.created_at);
            assert_eq!(item.id, r.post_id);
        }
        // The newest session is near now (within a few expected gaps), never after it.
        let newest = feed.iter().map(|r| r.session_ts).max().unwrap_or_default();
        assert!(newest <= now(), "{p}: {newest}");
        assert!(
            now() - newest < chrono::TimeDelta::hours(6),
            "{p}: newest session {newest}"
        );
        // Items per session: 10, except one final partial session per platform.
        let mut sizes: HashMap<(&str, DateTime<Utc>), usize> = HashMap::new();
        for r in &feed {
            *sizes.entry((r.user.as_str(), r.session_ts)).or_default() += 1;
        }
        let not_ten = sizes.values().filter(|&&s| s != 10).count();
        assert!(not_ten <= 1, "{p}: {not_ten} sessions are not of 10 items");
        // Items of a session are evenly spaced (to the second).
        let first_full = sizes.iter().find(|(_, &s)| s == 10).map(|(k, _)| *k);
        if let Some((user, ts)) = first_full {
            let times: Vec<i64> = feed
                .iter()
                .filter(|r| r.user == user && r.session_ts == ts)
                .map(|r| r.created_at.timestamp())
                .collect();
            let gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
            let (lo, hi) = (
                gaps.iter().min().copied().unwrap_or(0),
                gaps.iter().max().copied().unwrap_or(0),
            );
            assert!(hi - lo <= 1, "{p}: uneven spacing {gaps:?}");
        }
    }
    Ok(())
}

/// Sessions per day of each user, over its platform's span.
fn sessions_per_day(report: &SeedReport) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for u in &report.users {
        let Some(p) = report.platforms.iter().find(|p| p.platform == u.platform) else {
            continue;
        };
        let (Some(a), Some(b)) = (p.first_session, p.last_session) else {
            continue;
        };
        let days = (b - a).num_seconds() as f64 / 86_400.0;
        out.push((u.activity, u.sessions as f64 / days));
    }
    out
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = v.collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

#[test]
fn sessions_per_day_track_activity_and_baseline() -> R {
    let (dir, norm) = fixture(20_000)?;
    for (baseline, file) in [(1.0, "a.db"), (3.0, "b.db")] {
        let o = SeedOptions {
            n_users: 60,
            items_per_session: 4,
            baseline_sessions_per_day: baseline,
            activity: "1:50,4:50".parse()?,
            platforms: "reddit:1".parse()?,
            ..opts(&norm, &dir.path().join(file))
        };
        let report = seed::seed(&o, now())?;
        let spd = sessions_per_day(&report);
        let low = mean(spd.iter().filter(|x| x.0 == 1.0).map(|x| x.1));
        let high = mean(spd.iter().filter(|x| x.0 == 4.0).map(|x| x.1));
        // A user of activity a averages a × baseline sessions per day.
        assert!(
            (low / baseline - 1.0).abs() < 0.25,
            "baseline {baseline}: level 1 has {low:.2}/day"
        );
        assert!(
            (high / (4.0 * baseline) - 1.0).abs() < 0.25,
            "baseline {baseline}: level 4 has {high:.2}/day"
        );
        assert!(report
            .platforms
            .iter()
            .all(|p| p.platform == Platform::Reddit));
    }
    Ok(())
}

#[test]
fn mixed_activity_user_count_within_tolerance() -> R {
    let (dir, norm) = fixture(20_000)?;
    let o = SeedOptions {
        n_users: 200,
        activity: "0.2:20,1:65,5:15".parse()?,
        ..opts(&norm, &dir.path().join("m.db"))
    };
    let report = seed::seed(&o, now())?;
    let users = count(
        &dir.path().join("m.db"),
        "SELECT count(DISTINCT session_user_id) FROM posts",
    )? as usize;
    assert_eq!(users, report.users_with_sessions);
    // Documented tolerance: never more than n_users; rejection may drop a few low-activity users.
    assert!((180..=200).contains(&users), "{users} users");
    assert!(report
        .users
        .iter()
        .filter(|u| u.sessions == 0)
        .all(|u| u.activity < 5.0));
    Ok(())
}

#[test]
fn platform_split_follows_the_distribution() -> R {
    let (dir, norm) = fixture(6000)?;
    let db = dir.path().join("s.db");
    let o = SeedOptions {
        n_users: 100,
        items_per_session: 5,
        platforms: "facebook:1,reddit:1,twitter:2".parse()?,
        ..opts(&norm, &db)
    };
    seed::seed(&o, now())?;
    for (p, want) in [("facebook", 25), ("reddit", 25), ("twitter", 50)] {
        let got = count(
            &db,
            &format!("SELECT count(DISTINCT session_user_id) FROM posts WHERE platform = '{p}'"),
        )?;
        assert_eq!(got, want, "{p}");
    }
    // auto: users in proportion to each platform's items.
    let report = seed::seed(
        &SeedOptions {
            n_users: 100,
            if_exists: IfExists::Drop,
            ..opts(&norm, &db)
        },
        now(),
    )?;
    let items: Vec<f64> = report.platforms.iter().map(|p| p.items as f64).collect();
    let total: f64 = items.iter().sum();
    for (p, n) in report.platforms.iter().zip(items) {
        assert!((p.users as f64 - 100.0 * n / total).abs() <= 1.0, "{:?}", p);
    }
    Ok(())
}

#[test]
fn items_per_session_flag() -> R {
    let (dir, norm) = fixture(3000)?;
    let db = dir.path().join("i.db");
    seed::seed(
        &SeedOptions {
            n_users: 20,
            items_per_session: 7,
            ..opts(&norm, &db)
        },
        now(),
    )?;
    let sizes: Vec<i64> = Connection::open(&db)?
        .prepare(
            "SELECT count(*) FROM posts GROUP BY platform, session_user_id, session_timestamp",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    assert!(sizes.iter().filter(|&&s| s != 7).count() <= 3, "{sizes:?}");
    assert!(sizes.iter().all(|&s| s <= 7));
    Ok(())
}

#[test]
fn no_user_pool_keeps_timestamps_and_uses_test_user() -> R {
    let (dir, norm) = fixture(3000)?;
    let db = dir.path().join("n.db");
    let o = SeedOptions {
        user_pool: false,
        salt: "pepper".into(),
        ..opts(&norm, &db)
    };
    seed::seed(&o, now())?;
    let expected_user = hex::encode(Sha256::digest(b"test_userpepper"));
    assert_eq!(seed::test_user_id("pepper"), expected_user);
    let rows = rows(&db)?;
    assert!(rows.iter().all(|r| r.user == expected_user));
    for p in Platform::ALL {
        let items = raw::read_jsonl(&norm.join(raw::normalized_file(p)))?;
        let feed: Vec<&Row> = rows.iter().filter(|r| r.platform == p.as_str()).collect();
        assert_eq!(feed.len(), items.len());
        let newest = items.iter().map(|i| i.created_at).max();
        for (r, item) in feed.iter().zip(&items) {
            // File order, original timestamps, one super-feed session at the newest item.
            assert_eq!(r.post_id, item.id);
            assert_eq!(r.created_at, item.created_at);
            assert_eq!(Some(r.session_ts), newest);
        }
    }
    Ok(())
}

#[test]
fn same_seed_gives_a_byte_identical_database() -> R {
    let (dir, norm) = fixture(3000)?;
    let path = |n: &str| dir.path().join(n);
    let o = |db: &str, seed: u64| SeedOptions {
        n_users: 50,
        seed,
        activity: "1:1,3:1".parse().unwrap_or_default(),
        ..opts(&norm, &path(db))
    };
    seed::seed(&o("a.db", 5), now())?;
    seed::seed(&o("b.db", 5), now())?;
    seed::seed(&o("c.db", 6), now())?;
    let (a, b, c) = (
        std::fs::read(path("a.db"))?,
        std::fs::read(path("b.db"))?,
        std::fs::read(path("c.db"))?,
    );
    assert!(a == b, "same seed, same now: files differ");
    assert!(a != c, "another seed should give another database");
    Ok(())
}

#[test]
fn upsert_reseed_keeps_the_row_count() -> R {
    let (dir, norm) = fixture(3000)?;
    let db = dir.path().join("u.db");
    for user_pool in [true, false] {
        let first = seed::seed(
            &SeedOptions {
                user_pool,
                if_exists: IfExists::Drop,
                ..opts(&norm, &db)
            },
            now(),
        )?;
        let n = count(&db, "SELECT count(*) FROM posts")?;
        assert_eq!(n as u64, first.rows_inserted);
        let later = now() + chrono::TimeDelta::hours(3);
        let again = seed::seed(
            &SeedOptions {
                user_pool,
                if_exists: IfExists::Upsert,
                ..opts(&norm, &db)
            },
            later,
        )?;
        assert_eq!(
            count(&db, "SELECT count(*) FROM posts")?,
            n,
            "user_pool={user_pool}"
        );
        assert_eq!((again.rows_inserted, again.rows_updated), (0, n as u64));
        let distinct = count(
            &db,
            "SELECT count(*) FROM (SELECT DISTINCT post_id, session_user_id FROM posts)",
        )?;
        assert_eq!(distinct, n);
        if user_pool {
            // Rows were updated to the new run's timestamps.
            let newest: String = Connection::open(&db)?.query_row(
                "SELECT max(session_timestamp) FROM posts",
                [],
                |r| r.get(0),
            )?;
            assert!(parse_datetime(&newest)? > now());
        }
    }
    Ok(())
}

#[test]
fn existing_table_without_a_flag_is_an_error_and_untouched() -> R {
    let (dir, norm) = fixture(2000)?;
    let db = dir.path().join("e.db");
    seed::seed(&opts(&norm, &db), now())?;
    let before = std::fs::read(&db)?;
    let err = seed::seed(&opts(&norm, &db), now()).err();
    assert!(matches!(err, Some(SeedError::TableExists(_))), "{err:?}");
    let msg = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        msg.contains("--drop-table") && msg.contains("--upsert"),
        "{msg}"
    );
    assert_eq!(std::fs::read(&db)?, before, "the database file changed");
    // --drop-table replaces it.
    let r = seed::seed(
        &SeedOptions {
            if_exists: IfExists::Drop,
            user_pool: false,
            ..opts(&norm, &db)
        },
        now(),
    )?;
    assert_eq!(
        count(&db, "SELECT count(*) FROM posts")? as u64,
        r.rows_inserted
    );
    let indexes = count(
        &db,
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'posts'",
    )?;
    assert_eq!(indexes, 3);
    Ok(())
}

#[test]
fn input_and_option_errors_name_the_problem() -> R {
    let (dir, norm) = fixture(1500)?;
    let db = dir.path().join("x.db");
    std::fs::remove_file(norm.join("twitter.jsonl"))?;
    let err = seed::seed(&opts(&norm, &db), now())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("missing input file") && err.contains("twitter.jsonl"),
        "{err}"
    );
    assert!(!db.exists(), "nothing may be created on bad input");
    // Leaving twitter out of the distribution works.
    let o = SeedOptions {
        platforms: "facebook:1,reddit:1".parse()?,
        ..opts(&norm, &db)
    };
    seed::seed(&o, now())?;
    assert_eq!(
        count(&db, "SELECT count(*) FROM posts WHERE platform = 'twitter'")?,
        0
    );
    // A malformed line names file and line.
    std::fs::write(norm.join("reddit.jsonl"), "{\"id\": 1}\n")?;
    let err = seed::seed(
        &SeedOptions {
            if_exists: IfExists::Drop,
            ..o
        },
        now(),
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(err.contains("reddit.jsonl:1:"), "{err}");
    let zero = SeedOptions {
        items_per_session: 0,
        ..opts(&norm, &db)
    };
    assert!(matches!(
        seed::seed(&zero, now()),
        Err(SeedError::InvalidOption(_))
    ));
    Ok(())
}

#[test]
fn demo_database_is_made_once() -> R {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("demo").join("posts.db");
    let work = dir.path().join("work");
    let report = seed::ensure_demo_database(&db, &work)?;
    let report = report.ok_or("a missing database must be created")?;
    assert_eq!(report.rows_inserted, 20_000);
    assert_eq!(count(&db, "SELECT count(*) FROM posts")?, 20_000);
    // Feeds end near the real current time, so "the last 24 h" has posts.
    let recent = count(
        &db,
        "SELECT count(*) FROM posts WHERE created_at >= datetime('now', '-1 day')",
    )?;
    assert!(recent > 1000, "{recent} posts in the last day");
    let before = std::fs::read(&db)?;
    assert!(
        seed::ensure_demo_database(&db, &work)?.is_none(),
        "an existing database is kept"
    );
    assert_eq!(std::fs::read(&db)?, before);
    Ok(())
}
