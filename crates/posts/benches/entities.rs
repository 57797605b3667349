//! Throughput of named-entity extraction, in bytes of post text per second
//! on one core: the texts of the shipped evaluation set (593 tweets, Reddit
//! comments and Facebook posts), repeated to about 1 MB, extracted one post
//! at a time as `count_top_named_entities` does.
//!
//! Run: `cargo bench -p posts --bench entities`.

// criterion_group!/criterion_main! generate undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
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

criterion_group!(benches, bench);
criterion_main!(benches);
