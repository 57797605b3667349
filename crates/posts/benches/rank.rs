//! The ranking rule and `/rank` request handling without the network:
//! parsing the request (into the models, into the fast path's borrowed
//! view, with the fast path's scanner, into a `Value`), `rank()` alone, the fast path (view, rank, answer
//! written) and the whole axum router (parse, rank, serialize, CORS) called
//! in process, for feeds of 10 and 100 items against 10 and
//! 300 entities. The over-the-network figures (and the FastAPI reference)
//! are in BENCHMARKS.md, "Ranking server (/rank)", from `bench/rank/run.sh`.
//!
//! Run: `cargo bench -p posts --bench rank`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

// The allocator of the `celeriac` binary, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use posts::models::{from_json, RankingRequest};
use posts::ranking::{fast, rank, server, EntityCache, EntityMatcher, MatchOptions};
use serde_json::{json, Value};
use tower::ServiceExt as _;

const WORDS: [&str; 16] = [
    "the", "council", "said", "on", "Tuesday", "that", "new", "rules", "would", "apply", "to",
    "every", "district", "after", "a", "long",
];

/// The first `n` of 300 entity-like names; the ten most common first.
fn entities(n: usize) -> Vec<String> {
    let top = [
        "Donald Trump",
        "Joe Biden",
        "European Union",
        "New York",
        "Elon Musk",
        "Federal Reserve",
        "Ukraine",
        "Angela Merkel",
        "Google",
        "Texas",
    ];
    let mut out: Vec<String> = top.iter().map(|s| (*s).to_owned()).collect();
    let mut i = 0;
    while out.len() < 300 {
        out.push(format!("Person{i} Surname{}", i * 7 % 13));
        i += 1;
    }
    out.truncate(n);
    out
}

/// A reddit feed of `n` items of about 200 characters; every third item
/// mentions an entity near its end.
fn request_json(n: usize) -> Vec<u8> {
    let items: Vec<Value> = (0..n)
        .map(|i| {
            let mut text = String::new();
            while text.len() < 200 {
                text.push_str(WORDS[(i * 5 + text.len()) % WORDS.len()]);
                text.push(' ');
            }
            if i % 3 == 1 {
                text.push_str("said Joe Biden.");
            }
            json!({
                "id": format!("item-{i}"),
                "post_id": null,
                "parent_id": null,
                "title": "A title",
                "text": text,
                "author_name_hash": "60b46b7370f80735a06b7aa8c4eb6bd588440816b086d5ef7355cf202a118305",
                "type": "post",
                "embedded_urls": [],
                "created_at": "2023-12-06 17:02:11",
                "engagements": {"upvote": 34, "downvote": 27, "comment": 20, "award": 0}
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "session": {
            "user_id": "193a9e01-8849-4e1f-a42a-a859fa7f2ad3",
            "user_name_hash": "6511c5688bbb87798128695a283411a26da532df06e6e931a53416e379ddda0e",
            "platform": "reddit",
            "cohort": "AB",
            "current_time": "2024-01-20 18:41:20"
        },
        "items": items
    }))
    .unwrap_or_default()
}

fn record(names: &[String]) -> String {
    json!({"top_named_entities": names.iter().map(|n| json!([n, 1])).collect::<Vec<_>>(), "timestamp": "x"})
        .to_string()
}

fn bench(c: &mut Criterion) {
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    let mut group = c.benchmark_group("rank");
    for &items in &[10usize, 100] {
        for &n_entities in &[10usize, 300] {
            let body = request_json(items);
            let request: RankingRequest = match from_json(&body) {
                Ok(r) => r,
                Err(e) => panic!("bench request: {e}"),
            };
            let names = entities(n_entities);
            let matcher = match EntityMatcher::new(names.clone(), MatchOptions::default()) {
                Ok(m) => m,
                Err(e) => panic!("{e}"),
            };
            group.throughput(Throughput::Elements(items as u64));
            let id = format!("{items}_items/{n_entities}_entities");
            if n_entities == 10 {
                group.bench_function(BenchmarkId::new("parse", items), |b| {
                    b.iter(|| serde_json::from_slice::<RankingRequest>(black_box(&body)).is_ok())
                });
                group.bench_function(BenchmarkId::new("parse_view", items), |b| {
                    b.iter(|| fast::parse_view(black_box(&body)).map(|v| v.items.len()))
                });
                group.bench_function(BenchmarkId::new("scan", items), |b| {
                    b.iter(|| fast::scan(black_box(&body)).map(|v| v.len()))
                });
                group.bench_function(BenchmarkId::new("parse_value", items), |b| {
                    b.iter(|| serde_json::from_slice::<Value>(black_box(&body)).is_ok())
                });
            }
            group.bench_function(BenchmarkId::new("rule", &id), |b| {
                b.iter(|| rank(black_box(&request.items), &matcher))
            });
            // The handler's work without axum: parse the view, rank, write.
            let mut out = BytesMut::with_capacity(64 * 1024);
            group.bench_function(BenchmarkId::new("fast_path", &id), |b| {
                b.iter(|| {
                    if let Some(mut items) = fast::parse(black_box(&body)) {
                        fast::write_ranked(&mut items, &matcher, &mut out);
                    }
                    let n = out.len();
                    out.clear();
                    n
                })
            });

            let cache = Arc::new(EntityCache::new("k", MatchOptions::default()));
            cache.apply(Some(&record(&names)));
            let router = server::router(cache, &server::ServerOptions::default());
            group.bench_function(BenchmarkId::new("handler", &id), |b| {
                b.iter(|| {
                    let req = Request::post("/rank")
                        .header("content-type", "application/json")
                        .body(Body::from(body.clone()));
                    let req = match req {
                        Ok(r) => r,
                        Err(e) => panic!("{e}"),
                    };
                    let router = router.clone();
                    runtime.block_on(async move {
                        let response = router.oneshot(req).await;
                        let response = match response {
                            Ok(r) => r,
                            Err(e) => match e {},
                        };
                        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await;
                        black_box(bytes.map(|b| b.len()).unwrap_or(0))
                    })
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
