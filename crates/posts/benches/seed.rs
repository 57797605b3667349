//! Seeding rate: rows per second into a fresh SQLite posts database.
//!
//! Run with `cargo bench -p posts --bench seed`. The input (100,000 sample
//! items, normalized) is generated once; each iteration seeds a new file,
//! so the figure covers reading the JSONL, planning the user pool,
//! making every row (its `post_blob` included) and inserting, then building
//! the three indexes.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

// The allocator of the `celeriac` binary, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use posts::raw::{self, PreprocessOptions};
use posts::sample::{self, SampleOptions};
use posts::seed::{self, SeedOptions};
use std::time::Duration;

const ITEMS: usize = 100_000;

/// CPU seconds (user + system) this process has used, from /proc/self/stat
/// (Linux; 0 elsewhere). The machine is shared, so besides criterion's wall
/// clock the bench reports rows per CPU-second, which other load does not skew.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesized command name; utime and stime are 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

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
        let (mut cpu, mut runs) = (0.0, 0u32);
        group.bench_function(name, |b| {
            b.iter(|| {
                let _ = std::fs::remove_file(&db);
                let before = cpu_seconds();
                match seed::seed(&opts, now) {
                    Ok(r) => write_rates.push(r.rows_per_sec()),
                    Err(e) => eprintln!("seed failed: {e}"),
                }
                cpu += cpu_seconds() - before;
                runs += 1;
            })
        });
        write_rates.sort_by(f64::total_cmp);
        if let Some(median) = write_rates.get(write_rates.len() / 2) {
            eprintln!("{name}: write phase alone (rows ∥ inserts, indexes, commit), median {median:.0} rows/s (wall)");
        }
        if cpu > 0.0 {
            let per_cpu = f64::from(runs) * ITEMS as f64 / cpu;
            eprintln!("{name}: end to end, {per_cpu:.0} rows per CPU-second over {runs} runs");
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
