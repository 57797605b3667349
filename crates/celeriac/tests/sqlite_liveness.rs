//! SQLite dead-consumer detection: the messages of a consumer that stops
//! refreshing its liveness row come back within seconds, far sooner than
//! the visibility timeout (an hour here), and exactly once.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use celeriac::broker::sqlite::SqliteBroker;
use celeriac::broker::{Broker, OutgoingMessage};

const HOUR: Duration = Duration::from_secs(3600);

fn message(body: &str) -> OutgoingMessage {
    OutgoingMessage {
        queue: "q".into(),
        priority: 0,
        not_before: None,
        payload: body.as_bytes().to_vec(),
    }
}

fn q() -> Vec<String> {
    vec!["q".to_owned()]
}

/// A first (empty) reservation, which writes the consumer's liveness row
/// and starts its refresh-and-sweep task.
async fn announce(broker: &SqliteBroker) {
    let none = broker
        .reserve(&["idle".to_owned()], 1, Duration::ZERO)
        .await
        .expect("reserve");
    assert!(none.is_empty());
}

/// Reserve `n` messages on a broker living in its own runtime, then end
/// that runtime without dropping the broker: its liveness task stops and
/// nothing is given back, as with `kill -9`.
fn reserve_then_die(path: &Path, n: usize) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (broker, held) = runtime.block_on(async {
        let broker = SqliteBroker::open(path, HOUR).expect("open");
        let held = broker
            .reserve(&q(), n, Duration::ZERO)
            .await
            .expect("reserve");
        (broker, held)
    });
    assert_eq!(held.len(), n);
    std::mem::forget(broker);
    drop(runtime);
    held.into_iter().map(|d| d.tag).collect()
}

/// Reserve (and ack) from `broker` into `got` until `n` messages arrived
/// there in all, or `within` passed.
async fn collect(broker: &SqliteBroker, got: &Mutex<Vec<Vec<u8>>>, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while lock(got).len() < n && Instant::now() < deadline {
        for d in broker
            .reserve(&q(), n, Duration::from_millis(200))
            .await
            .expect("reserve")
        {
            assert!(d.redelivered, "a restored message is marked redelivered");
            broker.ack(&d.tag).await.expect("ack");
            lock(got).push(d.payload);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_consumers_messages_return_within_seconds_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("b.db");
    let live = SqliteBroker::open(&path, HOUR).expect("open");
    let other = SqliteBroker::open(&path, HOUR).expect("open");
    for i in 0..3 {
        live.publish(message(&format!("m{i}")))
            .await
            .expect("publish");
    }
    // The surviving consumers announce themselves (and start sweeping).
    announce(&live).await;
    announce(&other).await;
    let started = Instant::now();
    let tags = std::thread::scope(|s| {
        s.spawn(|| reserve_then_die(&path, 3))
            .join()
            .expect("dying consumer")
    });
    assert_eq!(tags.len(), 3);

    // Two live consumers race for the restored messages: each comes back
    // once, to one of them, well within the 30 s budget.
    let got = Mutex::new(Vec::new());
    tokio::join!(
        collect(&live, &got, 3, Duration::from_secs(25)),
        collect(&other, &got, 3, Duration::from_secs(25))
    );
    let mut all = std::mem::take(&mut *lock(&got));
    all.sort();
    assert_eq!(all.len(), 3, "restored exactly once each");
    all.dedup();
    assert_eq!(all.len(), 3, "no message delivered twice");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(live.queues().depth("q").await.expect("depth"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_consumer_forgets_itself_and_its_leftovers_return() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("b.db");
    let live = SqliteBroker::open(&path, HOUR).expect("open");
    live.publish(message("left")).await.expect("publish");
    announce(&live).await;
    let leaving = SqliteBroker::open(&path, HOUR).expect("open");
    let held = leaving
        .reserve(&q(), 1, Duration::ZERO)
        .await
        .expect("reserve");
    assert_eq!(held.len(), 1);
    // A clean shutdown drops the broker: its liveness row goes at once, so
    // the next sweep (every 2 s) gives back what it still held, without
    // waiting for the row to age.
    let started = Instant::now();
    drop(leaving);
    let back = Mutex::new(Vec::new());
    collect(&live, &back, 1, Duration::from_secs(8)).await;
    assert_eq!(*lock(&back), vec![b"left".to_vec()]);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
}
