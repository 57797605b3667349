//! Seeding rate: rows per second into a fresh SQLite posts database.
//!
//! Run with `cargo bench -p posts --bench seed`. The input (100,000 sample
//! items, normalized) is generated once; each iteration seeds a new file,
//! so the figure covers reading the JSONL, planning the user pool,
//! serializing every blob and inserting with the three indexes.

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use posts::raw::{self, PreprocessOptions};
use posts::sample::{self, SampleOptions};
use posts::seed::{self, SeedOptions};
use std::time::Duration;

const ITEMS: usize = 100_000;

fn bench(c: &mut Criterion) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let raw_dir = dir.path().join("raw");
    let norm = dir.path().join("norm");
    let prepared = sample::generate(
        &raw_dir,
        &SampleOptions {
            seed: 1,
            total_items: ITEMS,
        },
    )
    .map_err(|e| e.to_string())
    .and_then(|_| {
        raw::preprocess(&raw_dir, &norm, &PreprocessOptions::default()).map_err(|e| e.to_string())
    });
    if let Err(e) = prepared {
        eprintln!("cannot prepare the bench input: {e}");
        return;
    }
    let now = Utc
        .with_ymd_and_hms(2024, 3, 1, 12, 0, 0)
        .single()
        .unwrap_or_default();
    let mut group = c.benchmark_group("seed");
    group.throughput(Throughput::Elements(ITEMS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for (name, user_pool) in [
        ("user_pool_100k_rows", true),
        ("no_user_pool_100k_rows", false),
    ] {
        let db = dir.path().join(format!("{name}.db"));
        let opts = SeedOptions {
            data_dir: norm.clone(),
            db_path: db.clone(),
            user_pool,
            ..Default::default()
        };
        let mut write_rates = Vec::new();
        group.bench_function(name, |b| {
            b.iter(|| {
                let _ = std::fs::remove_file(&db);
                match seed::seed(&opts, now) {
                    Ok(r) => write_rates.push(r.rows_per_sec()),
                    Err(e) => eprintln!("seed failed: {e}"),
                }
            })
        });
        write_rates.sort_by(f64::total_cmp);
        if let Some(median) = write_rates.get(write_rates.len() / 2) {
            eprintln!("{name}: write phase alone (blob serialization + inserts + indexes), median {median:.0} rows/s");
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
