//! One conformance suite run against every broker (memory, SQLite, Redis):
//! priorities, FIFO, leases and redelivery, acks, requeue, delayed delivery.

mod support;

use std::sync::Arc;
use std::time::Duration;

use celeriac::broker::{Broker, OutgoingMessage};
use chrono::Utc;

fn message(queue: &str, priority: u8, body: &str) -> OutgoingMessage {
    OutgoingMessage {
        queue: queue.into(),
        priority,
        not_before: None,
        payload: envelope(body),
    }
}

/// A real envelope so that the Redis scripts can read its delivery tag.
fn envelope(body: &str) -> Vec<u8> {
    let message = celeriac::protocol::TaskMessage {
        headers: celeriac::protocol::TaskHeaders::new("tasks.noop", body),
        args: vec![],
        kwargs: Default::default(),
        embed: Default::default(),
    };
    message.to_envelope("q", None).to_vec()
}

fn body_of(payload: &[u8]) -> String {
    let (message, _) = celeriac::protocol::TaskMessage::from_slice(payload).expect("envelope");
    message.headers.id
}

fn queues(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

struct Fixture {
    broker: Arc<dyn Broker>,
    _guard: Box<dyn std::any::Any + Send>,
}

async fn memory(vt: Duration) -> Fixture {
    Fixture {
        broker: Arc::new(celeriac::broker::memory::MemoryBroker::new(vt)),
        _guard: Box::new(()),
    }
}

async fn sqlite(vt: Duration) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker =
        celeriac::broker::sqlite::SqliteBroker::open(&dir.path().join("b.db"), vt).expect("open");
    Fixture {
        broker: Arc::new(broker),
        _guard: Box::new(dir),
    }
}

async fn redis(vt: Duration) -> Fixture {
    let server = support::RedisServer::start();
    let broker = celeriac::broker::redis::RedisBroker::open(&server.url(0), "", vt)
        .await
        .expect("connect");
    Fixture {
        broker: Arc::new(broker),
        _guard: Box::new(server),
    }
}

async fn priority_then_fifo(f: Fixture) {
    let b = &f.broker;
    b.declare(&queues(&["q"])).await.expect("declare");
    for (p, body) in [(9, "low"), (0, "a"), (5, "mid"), (0, "b"), (1, "c")] {
        b.publish(message("q", p, body)).await.expect("publish");
    }
    assert_eq!(b.queues().depth("q").await.expect("depth"), 5);
    let got = b
        .reserve(&queues(&["q"]), 10, Duration::ZERO)
        .await
        .expect("reserve");
    let order: Vec<String> = got.iter().map(|d| body_of(&d.payload)).collect();
    assert_eq!(order, ["a", "b", "c", "mid", "low"]);
    assert!(got.iter().all(|d| d.queue == "q" && !d.redelivered));
}

async fn several_queues(f: Fixture) {
    let b = &f.broker;
    b.publish_batch(vec![message("x", 3, "x3"), message("y", 0, "y0")])
        .await
        .expect("publish");
    let got = b
        .reserve(&queues(&["x", "y"]), 10, Duration::ZERO)
        .await
        .expect("reserve");
    let order: Vec<(String, String)> = got
        .iter()
        .map(|d| (d.queue.clone(), body_of(&d.payload)))
        .collect();
    assert_eq!(
        order,
        [("y".into(), "y0".into()), ("x".into(), "x3".into())]
    );
    let none = b
        .reserve(&queues(&["z"]), 10, Duration::ZERO)
        .await
        .expect("reserve");
    assert!(none.is_empty());
}

/// Two queues with a backlog each, consumed one message at a time: both
/// drain, interleaved (kombu rotates its queue cycle), neither starves.
async fn backlogs_on_two_queues_interleave(f: Fixture) {
    let b = &f.broker;
    let mut backlog: Vec<_> = (0..6).map(|i| message("a", 0, &format!("a{i}"))).collect();
    backlog.extend((0..6).map(|i| message("b", 0, &format!("b{i}"))));
    b.publish_batch(backlog).await.expect("publish");
    let mut seen = Vec::new();
    for _ in 0..6 {
        let got = b
            .reserve(&queues(&["a", "b"]), 1, Duration::ZERO)
            .await
            .expect("reserve");
        for d in got {
            seen.push(d.queue.clone());
            b.ack(&d.tag).await.expect("ack");
        }
    }
    let from_b = seen.iter().filter(|q| q.as_str() == "b").count();
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert_eq!(
        from_b, 3,
        "six reservations take from both queues in turn: {seen:?}"
    );
}

/// `purge` drops what waits in a queue (every priority, delayed ones too)
/// and leaves held messages and other queues alone.
async fn purge_drops_waiting_messages_only(f: Fixture) {
    let b = &f.broker;
    b.publish_batch(vec![
        message("p", 0, "held"),
        message("p", 0, "w0"),
        message("p", 9, "w9"),
        message("other", 0, "o"),
    ])
    .await
    .expect("publish");
    let mut later = message("p", 0, "eta");
    later.not_before = Some(Utc::now() + chrono::Duration::seconds(60));
    b.publish(later).await.expect("publish delayed");
    let held = b
        .reserve(&queues(&["p"]), 1, Duration::ZERO)
        .await
        .expect("reserve");
    assert_eq!(held.len(), 1);
    assert_eq!(b.queues().purge("p").await.expect("purge"), 3);
    assert_eq!(b.queues().depth("p").await.expect("depth"), 0);
    assert_eq!(b.queues().depth("other").await.expect("depth"), 1);
    b.ack(&held[0].tag)
        .await
        .expect("the held message is still ours");
    assert_eq!(b.queues().purge("p").await.expect("purge again"), 0);
}

async fn unacked_comes_back_acked_does_not(f: Fixture) {
    let b = &f.broker;
    b.publish_batch(vec![message("q", 0, "kept"), message("q", 0, "done")])
        .await
        .expect("publish");
    let got = b
        .reserve(&queues(&["q"]), 2, Duration::ZERO)
        .await
        .expect("reserve");
    assert_eq!(got.len(), 2);
    b.ack(&got[1].tag).await.expect("ack");
    // Only the unacknowledged one returns, after the visibility timeout.
    let back = b
        .reserve(&queues(&["q"]), 2, Duration::from_secs(10))
        .await
        .expect("reserve");
    assert_eq!(
        back.iter().map(|d| body_of(&d.payload)).collect::<Vec<_>>(),
        ["kept"]
    );
    b.ack(&back[0].tag).await.expect("ack");
    let none = b
        .reserve(&queues(&["q"]), 2, b.visibility_timeout() * 3)
        .await
        .expect("reserve");
    assert!(none.is_empty(), "an acked message came back");
}

async fn requeue_goes_to_the_front(f: Fixture) {
    let b = &f.broker;
    b.publish_batch(vec![message("q", 0, "first"), message("q", 0, "second")])
        .await
        .expect("publish");
    let first = b
        .reserve(&queues(&["q"]), 1, Duration::ZERO)
        .await
        .expect("reserve");
    b.requeue(&first[0].tag).await.expect("requeue");
    let again = b
        .reserve(&queues(&["q"]), 1, Duration::ZERO)
        .await
        .expect("reserve");
    assert_eq!(body_of(&again[0].payload), "first");
}

async fn delayed_and_deferred_wait_their_time(f: Fixture) {
    let b = &f.broker;
    let due = Utc::now() + chrono::Duration::milliseconds(600);
    let mut later = message("q", 0, "later");
    later.not_before = Some(due);
    b.publish(later).await.expect("publish");
    b.publish(message("q", 0, "now")).await.expect("publish");
    let got = b
        .reserve(&queues(&["q"]), 10, Duration::ZERO)
        .await
        .expect("reserve");
    assert_eq!(
        got.iter().map(|d| body_of(&d.payload)).collect::<Vec<_>>(),
        ["now"]
    );
    // Deferring settles the reservation: it is not redelivered by the
    // visibility timeout, only when due.
    b.defer(&got[0].tag, due).await.expect("defer");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let got = b
            .reserve(&queues(&["q"]), 10, Duration::from_secs(5))
            .await
            .expect("reserve");
        assert!(!got.is_empty(), "delayed messages never arrived");
        assert!(
            Utc::now() >= due - chrono::Duration::milliseconds(50),
            "delivered early"
        );
        for d in got {
            seen.push(body_of(&d.payload));
            b.ack(&d.tag).await.expect("ack");
        }
    }
    seen.sort();
    assert_eq!(seen, ["later", "now"]);
}

async fn extended_leases_are_not_redelivered(f: Fixture) {
    let b = &f.broker;
    b.publish(message("q", 0, "long")).await.expect("publish");
    let got = b
        .reserve(&queues(&["q"]), 1, Duration::ZERO)
        .await
        .expect("reserve");
    let vt = b.visibility_timeout();
    let until = tokio::time::Instant::now() + vt * 3;
    while tokio::time::Instant::now() < until {
        b.extend(&got[0].tag).await.expect("extend");
        let stolen = b
            .reserve(&queues(&["q"]), 1, vt / 4)
            .await
            .expect("reserve");
        assert!(stolen.is_empty(), "a renewed lease was redelivered");
    }
    b.ack(&got[0].tag).await.expect("ack");
}

async fn dead_letters_keep_bytes_and_can_be_requeued(f: Fixture) {
    let b = &f.broker;
    b.publish(message("q", 0, "bad")).await.expect("publish");
    let got = b
        .reserve(&queues(&["q"]), 1, Duration::ZERO)
        .await
        .expect("reserve");
    b.dead_letters()
        .dead_letter(&got[0], "unknown task")
        .await
        .expect("dead letter");
    // Settled: not redelivered after the visibility timeout.
    let none = b
        .reserve(&queues(&["q"]), 1, b.visibility_timeout() * 2)
        .await
        .expect("reserve");
    assert!(none.is_empty(), "a dead-lettered message came back");
    assert_eq!(b.dead_letters().count().await.expect("count"), 1);
    let letters = b.dead_letters().newest(10).await.expect("list");
    assert_eq!(letters.len(), 1);
    let info = &letters[0];
    assert_eq!(info.reason, "unknown task");
    assert_eq!(info.queue, "q");
    assert_eq!(info.task.as_deref(), Some("tasks.noop"));
    assert_eq!(info.task_id.as_deref(), Some("bad"));
    assert_eq!(info.size, got[0].payload.len() as u64);
    assert!(!info.truncated());
    let (fetched, payload) = b
        .dead_letters()
        .fetch(&info.id)
        .await
        .expect("fetch")
        .expect("found");
    assert_eq!(&fetched, info);
    assert_eq!(payload, got[0].payload);
    assert!(b
        .dead_letters()
        .fetch("no-such-id")
        .await
        .expect("fetch")
        .is_none());
    assert!(b.dead_letters().requeue(&info.id).await.expect("requeue"));
    assert!(!b
        .dead_letters()
        .requeue(&info.id)
        .await
        .expect("requeue twice"));
    assert_eq!(b.dead_letters().count().await.expect("count"), 0);
    let back = b
        .reserve(&queues(&["q"]), 1, Duration::from_secs(2))
        .await
        .expect("reserve");
    assert_eq!(back[0].payload, got[0].payload);
    b.dead_letters()
        .dead_letter(&back[0], "again")
        .await
        .expect("dead letter");
    assert_eq!(b.dead_letters().purge().await.expect("purge"), 1);
    assert!(b.dead_letters().newest(10).await.expect("list").is_empty());
    assert_eq!(b.dead_letters().count().await.expect("count"), 0);
}

/// Pages are newest first and read metadata only; a payload over the cap
/// keeps its start and its task id, and is refused for requeue.
async fn dead_letters_page_and_cap_payloads(f: Fixture) {
    let b = &f.broker;
    let cap = celeriac::broker::dead_letters::MAX_STORED_PAYLOAD;
    let mut bodies: Vec<String> = (0..5).map(|i| format!("small-{i}")).collect();
    bodies.push("x".repeat(cap + 1000));
    for body in &bodies {
        b.publish(message("q", 0, body)).await.expect("publish");
        let got = b
            .reserve(&queues(&["q"]), 1, Duration::ZERO)
            .await
            .expect("reserve");
        // Each round trip takes far longer than the microsecond `at` keeps,
        // so the times order the letters.
        b.dead_letters()
            .dead_letter(&got[0], "why")
            .await
            .expect("dead letter");
    }
    assert_eq!(b.dead_letters().count().await.expect("count"), 6);
    let first = b.dead_letters().page(0, 4).await.expect("page");
    let rest = b.dead_letters().page(4, 4).await.expect("page");
    let ids: Vec<Option<String>> = first
        .iter()
        .chain(&rest)
        .map(|i| i.task_id.clone())
        .collect();
    let expected: Vec<Option<String>> = bodies.iter().rev().map(|b| Some(b.clone())).collect();
    assert_eq!(ids, expected, "newest first, pages in order");
    let big = &first[0];
    assert!(big.truncated(), "{big:?}");
    assert_eq!(big.stored, cap as u64);
    assert!(big.size > cap as u64 + 1000);
    let (_, payload) = b
        .dead_letters()
        .fetch(&big.id)
        .await
        .expect("fetch")
        .expect("found");
    assert_eq!(payload.len(), cap);
    let refused = b.dead_letters().requeue(&big.id).await;
    assert!(
        matches!(refused, Err(celeriac::Error::InvalidArgument(_))),
        "{refused:?}"
    );
    assert_eq!(b.dead_letters().count().await.expect("count"), 6, "kept");
    assert_eq!(b.queues().depth("q").await.expect("depth"), 0);
}

/// Monitors discover every queue holding messages, whoever declared it;
/// internal lists (dead letters, unacked) are not queues.
async fn queue_names_list_every_queue_with_messages(f: Fixture) {
    let b = &f.broker;
    b.declare(&queues(&["declared"])).await.expect("declare");
    b.publish(message("undeclared", 0, "u"))
        .await
        .expect("publish");
    b.publish(message("urgent", 9, "p")).await.expect("publish");
    b.publish(message("urgent", 0, "p0"))
        .await
        .expect("publish");
    let held = b
        .reserve(&queues(&["urgent"]), 1, Duration::from_millis(500))
        .await
        .expect("reserve");
    b.dead_letters()
        .dead_letter(&held[0], "for the test")
        .await
        .expect("dead letter");
    let names = b.queues().names().await.expect("names");
    for queue in ["undeclared", "urgent"] {
        assert!(names.iter().any(|n| n == queue), "{queue} in {names:?}");
    }
    assert!(
        names
            .iter()
            .all(|n| !n.contains("dead") && !n.contains("unacked") && !n.contains('\u{6}')),
        "{names:?}"
    );
}

/// `delayed` lists what waits for its ETA, sent so or deferred by a
/// worker, soonest first with its payload; not what is ready or leased.
async fn delayed_lists_what_waits_for_its_eta(f: Fixture) {
    let b = &f.broker;
    let in_an_hour = Utc::now() + chrono::Duration::hours(1);
    let mut later = message("q", 0, "later");
    later.not_before = Some(in_an_hour + chrono::Duration::minutes(1));
    b.publish(later).await.expect("publish");
    b.publish(message("q", 0, "deferred"))
        .await
        .expect("publish");
    b.publish(message("other", 0, "ready"))
        .await
        .expect("publish");
    b.publish(message("other", 0, "leased"))
        .await
        .expect("publish");
    let got = b
        .reserve(&queues(&["q"]), 1, Duration::ZERO)
        .await
        .expect("reserve");
    b.defer(&got[0].tag, in_an_hour).await.expect("defer");
    let leased = b
        .reserve(&queues(&["other"]), 1, Duration::ZERO)
        .await
        .expect("reserve");
    assert_eq!(leased.len(), 1);
    let listed = b.queues().delayed(10).await.expect("delayed");
    let ids: Vec<Option<&str>> = listed.iter().map(|d| d.task_id.as_deref()).collect();
    assert_eq!(ids, [Some("deferred"), Some("later")]);
    assert_eq!(listed[0].queue, "q");
    assert_eq!(listed[0].task.as_deref(), Some("tasks.noop"));
    assert!(
        (listed[0].eta - in_an_hour).num_milliseconds().abs() < 5,
        "{:?}",
        listed[0].eta
    );
    assert_eq!(body_of(&listed[1].payload), "later");
    assert_eq!(b.queues().delayed(1).await.expect("delayed").len(), 1);
}

macro_rules! conformance {
    ($($broker:ident),*) => {
        $(mod $broker {
            use super::*;
            const VT: Duration = Duration::from_millis(800);
            #[tokio::test] async fn priority_then_fifo() { super::priority_then_fifo(super::$broker(VT).await).await }
            #[tokio::test] async fn several_queues() { super::several_queues(super::$broker(VT).await).await }
            #[tokio::test] async fn backlogs_on_two_queues_interleave() { super::backlogs_on_two_queues_interleave(super::$broker(VT).await).await }
            #[tokio::test] async fn purge_drops_waiting_messages_only() { super::purge_drops_waiting_messages_only(super::$broker(VT).await).await }
            #[tokio::test] async fn unacked_comes_back_acked_does_not() { super::unacked_comes_back_acked_does_not(super::$broker(VT).await).await }
            #[tokio::test] async fn requeue_goes_to_the_front() { super::requeue_goes_to_the_front(super::$broker(VT).await).await }
            #[tokio::test] async fn delayed_and_deferred_wait_their_time() { super::delayed_and_deferred_wait_their_time(super::$broker(VT).await).await }
            #[tokio::test] async fn delayed_lists_what_waits_for_its_eta() { super::delayed_lists_what_waits_for_its_eta(super::$broker(VT).await).await }
            #[tokio::test] async fn dead_letters_keep_bytes_and_can_be_requeued() { super::dead_letters_keep_bytes_and_can_be_requeued(super::$broker(VT).await).await }
            #[tokio::test] async fn dead_letters_page_and_cap_payloads() { super::dead_letters_page_and_cap_payloads(super::$broker(VT).await).await }
            #[tokio::test] async fn extended_leases_are_not_redelivered() { super::extended_leases_are_not_redelivered(super::$broker(VT).await).await }
            #[tokio::test] async fn queue_names_list_every_queue_with_messages() { super::queue_names_list_every_queue_with_messages(super::$broker(VT).await).await }
        })*
    };
}

conformance!(memory, sqlite, redis);
