//! The server's background loops, each stopped by the shutdown signal.
//!
//! 1. [`events`]: one subscription to the app's event transport feeds the
//!    monitor (resubscribing after a transport outage), however many
//!    dashboards listen.
//! 2. [`sampler`]: every `sample_interval`, the depth of each watched queue,
//!    the dead-letter count and the metadata of the newest few (never a
//!    payload); every fifth time, the queues the broker holds
//!    (`QueueAdmin::names`), so a queue nobody declared to `serve` shows.
//! 3. [`poller`]: every `poll_interval`, the result documents of a few
//!    unfinished tasks (progress meta, and outcomes when workers send no
//!    task events), least recently read first.
//! 4. [`remote`]: like Flower, broadcast `enable_events` every 10 s and as
//!    soon as a worker comes online, so workers started without `-E` send
//!    task events too, and learn the queues workers consume
//!    (`active_queues`) every 30 s. On Redis through Celery's pidbox; on
//!    SQLite and memory brokers through the event bus
//!    (`App::remote_control`).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::task::JoinHandle;

use crate::server::Shared;

/// Start every loop.
pub(crate) fn spawn(shared: &Arc<Shared>) -> Vec<JoinHandle<()>> {
    let mut handles = vec![
        tokio::spawn(events(Arc::clone(shared))),
        tokio::spawn(sampler(Arc::clone(shared))),
        tokio::spawn(poller(Arc::clone(shared))),
    ];
    if shared.config.enable_events {
        handles.push(tokio::spawn(remote(Arc::clone(shared))));
    }
    handles
}

/// Feed events to the monitor until shutdown.
async fn events(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    let mut pause = Duration::from_millis(200);
    while !shutdown.is_requested() {
        match shared.app.events().subscribe().await {
            Ok(mut stream) => {
                pause = Duration::from_millis(200);
                loop {
                    tokio::select! {
                        _ = shutdown.requested() => return,
                        next = stream.next() => match next {
                            Some(event) => shared.monitor.apply_event(&event),
                            None => break,
                        },
                    }
                }
                tracing::debug!("event stream ended; subscribing again");
            }
            Err(err) => {
                tracing::warn!(error = %err, retry_in = ?pause, "cannot subscribe to events");
            }
        }
        tokio::select! {
            _ = shutdown.requested() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// Dead letters whose queues the sampler watches, newest first.
const DEAD_LETTER_PAGE: usize = 20;

/// Sample queue depths and dead letters until shutdown.
async fn sampler(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    let mut tick = tokio::time::interval(shared.config.sample_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut round: u64 = 0;
    loop {
        tokio::select! {
            _ = shutdown.requested() => return,
            _ = tick.tick() => {}
        }
        let broker = shared.app.broker();
        let mut samples = Vec::new();
        for name in shared.monitor.queue_names() {
            let depth = tokio::time::timeout(Duration::from_secs(2), broker.queues().depth(&name))
                .await
                .map_err(|_| "the broker did not answer within 2 s".to_owned())
                .and_then(|r| r.map_err(|e| e.to_string()));
            samples.push((name, depth));
        }
        // The count (O(1)) and one page of metadata: payloads are never
        // read here, however many and large the dead letters are.
        let letters = tokio::time::timeout(Duration::from_secs(2), async {
            let count = broker.dead_letters().count().await?;
            let page = broker.dead_letters().newest(DEAD_LETTER_PAGE).await?;
            Ok::<_, celeriac::Error>((count, page))
        })
        .await;
        let dead = match letters {
            Ok(Ok((count, page))) => {
                for letter in &page {
                    shared.monitor.watch_queue(&letter.queue);
                }
                let count = usize::try_from(count).unwrap_or(usize::MAX);
                Some((count, page.first().map(|d| d.id.clone())))
            }
            _ => None,
        };
        shared.monitor.record_samples(samples, dead);
        if round.is_multiple_of(5) {
            let names = tokio::time::timeout(Duration::from_secs(2), broker.queues().names()).await;
            match names {
                Ok(Ok(names)) => {
                    for name in names {
                        shared.monitor.watch_queue(&name);
                    }
                }
                Ok(Err(err)) => tracing::debug!(error = %err, "cannot list the broker's queues"),
                Err(_) => tracing::debug!("the broker did not list its queues within 2 s"),
            }
        }
        round += 1;
    }
}

/// Read the documents of unfinished tasks until shutdown.
async fn poller(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    let mut tick = tokio::time::interval(shared.config.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let min_age = shared.config.poll_interval;
    loop {
        tokio::select! {
            _ = shutdown.requested() => return,
            _ = tick.tick() => {}
        }
        let ids = shared.monitor.due_for_poll(32, min_age);
        let backend = shared.app.backend();
        let reads = ids
            .iter()
            .map(|id| async move { (id, backend.fetch(id).await) });
        for (id, meta) in futures::future::join_all(reads).await {
            match meta {
                Ok(meta) => shared.monitor.apply_meta(id, meta.as_ref()),
                Err(err) => {
                    tracing::debug!(error = %err, "cannot read a task's result");
                    break;
                }
            }
        }
    }
}

/// Keep task events on and learn workers' queues (remote control).
async fn remote(shared: Arc<Shared>) {
    let control = shared.app.remote_control();
    let mut shutdown = shared.shutdown.clone();
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    let mut round: u64 = 0;
    loop {
        tokio::select! {
            _ = shutdown.requested() => return,
            _ = tick.tick() => {}
            // A worker came online: ask it now rather than at the next tick
            // (it listens before it announces itself).
            () = shared.monitor.worker_online.notified() => {}
        }
        if let Err(err) = control
            .broadcast("enable_events", serde_json::json!({}), None)
            .await
        {
            tracing::debug!(error = %err, "cannot broadcast enable_events");
            continue;
        }
        if round.is_multiple_of(3) {
            let replies = control
                .call(
                    "active_queues",
                    serde_json::json!({}),
                    None,
                    Duration::from_secs(1),
                    None,
                )
                .await
                .unwrap_or_default();
            for (_, queues) in replies {
                for queue in queues.as_array().into_iter().flatten() {
                    if let Some(name) = queue.get("name").and_then(|n| n.as_str()) {
                        shared.monitor.watch_queue(name);
                    }
                }
            }
        }
        round += 1;
    }
}
