//! What a worker pays to read one task message: `TaskMessage::decode` on a
//! message captured from Python Celery 5.x, and the full `from_slice`
//! (which also builds the `Envelope`) for comparison.
//!
//! `cargo bench -p celeriac --bench decode`

// criterion_group! generates undocumented items.
#![allow(missing_docs)]

use celeriac::protocol::TaskMessage;
use criterion::{black_box, criterion_group, criterion_main, Criterion};

const CELERY_MESSAGE: &[u8] = include_bytes!("../tests/fixtures/celery/task_add_args.json");

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("task message");
    group.bench_function("decode (worker path)", |b| {
        b.iter(|| TaskMessage::decode(black_box(CELERY_MESSAGE)).map(|(m, _)| m.args.len()))
    });
    group.bench_function("from_slice (message + envelope)", |b| {
        b.iter(|| TaskMessage::from_slice(black_box(CELERY_MESSAGE)).map(|(m, _)| m.args.len()))
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
