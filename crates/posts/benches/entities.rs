//! Throughput of named-entity extraction, in bytes of post text per second
//! on one core: the texts of the shipped evaluation set (593 tweets, Reddit
//! comments and Facebook posts), repeated to about 1 MB, extracted one post
//! at a time as `count_top_named_entities` does.
//!
//! Criterion reports wall-clock throughput, which drops when other processes
//! share the cores. The bench then also reports throughput per CPU-second of
//! the measuring thread (from `/proc/thread-self/schedstat`, Linux), which
//! is what "per core" means and does not depend on the machine's load.
//!
//! Run: `cargo bench -p posts --bench entities`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use posts::entities::{distinct_entities, eval::builtin_eval_set, EntitySpan, Extractor};

fn corpus() -> Vec<String> {
    let set = builtin_eval_set().unwrap_or_default();
    assert!(!set.is_empty(), "the shipped evaluation set did not load");
    let texts: Vec<String> = set.into_iter().map(|e| e.text).collect();
    let mut out = Vec::new();
    let mut bytes = 0;
    while bytes < 1_000_000 {
        for t in &texts {
            bytes += t.len();
            out.push(t.clone());
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let posts = corpus();
    let bytes: usize = posts.iter().map(String::len).sum();
    let extractor = Extractor::new();
    // Build the tables outside the measurement.
    let _ = extractor.spans("warm up");

    let mut group = c.benchmark_group("entities");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.sample_size(20);
    group.bench_function("spans_into", |b| {
        let mut out: Vec<EntitySpan> = Vec::new();
        b.iter(|| {
            let mut n = 0;
            for p in &posts {
                out.clear();
                extractor.spans_into(black_box(p), &mut out);
                n += out.len();
            }
            n
        })
    });
    group.bench_function("distinct_entities", |b| {
        b.iter(|| {
            posts
                .iter()
                .map(|p| distinct_entities(black_box(p)).len())
                .sum::<usize>()
        })
    });
    group.finish();
}

/// CPU time consumed by the current thread so far, if the kernel reports it.
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    (ns > 0).then(|| Duration::from_nanos(ns))
}

/// Extracts from the corpus for about `secs` seconds of wall time and prints
/// MB/s per CPU-second of this thread.
fn cpu_time_throughput(secs: f64) {
    let posts = corpus();
    let bytes: usize = posts.iter().map(String::len).sum();
    let extractor = Extractor::new();
    let mut out: Vec<EntitySpan> = Vec::new();
    let (Some(cpu0), wall0) = (thread_cpu_time(), Instant::now()) else {
        println!("entities/cpu_time: no per-thread CPU time on this system");
        return;
    };
    let mut rounds = 0u64;
    let mut found = 0usize;
    while wall0.elapsed().as_secs_f64() < secs {
        for p in &posts {
            out.clear();
            extractor.spans_into(black_box(p), &mut out);
            found += out.len();
        }
        rounds += 1;
    }
    let wall = wall0.elapsed().as_secs_f64();
    let cpu = thread_cpu_time().map_or(0.0, |c| (c - cpu0).as_secs_f64());
    let total = (bytes as u64 * rounds) as f64;
    println!(
        "entities/cpu_time: {:.1} MB/s per CPU-second ({:.1} MiB/s); {:.1} MB/s wall; \
         {rounds} rounds of {bytes} bytes, {found} entities, {cpu:.2} s CPU in {wall:.2} s wall",
        total / cpu / 1e6,
        total / cpu / (1024.0 * 1024.0),
        total / wall / 1e6,
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // Only under `cargo bench` (which passes --bench), not in test mode.
    if std::env::args().any(|a| a == "--bench") {
        cpu_time_throughput(5.0);
    }
}
