//! Revocations on AMQP: the RabbitMQ stream `celeriac.revoked`.
//!
//! AMQP queues forget what one consumer took, but a stream queue keeps
//! every message for every reader, up to its retention (`x-max-age` of one
//! day, the longest revocation Celeriac records). Each revocation is one
//! message, `{"task_id", "terminate", "at", "expires"}` (Unix seconds);
//! each broker reads the stream from its first message with a consumer of
//! its own and keeps the revocations not yet expired in memory, so a worker
//! started later still skips a task revoked before it started. Python
//! workers do not read the stream: `App::revoke` also broadcasts Celery's
//! `revoke` on the pidbox, which they do hear.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::BasicProperties;
use serde::{Deserialize, Serialize};

use super::session::Session;
use super::{AmqpBroker, Inner};
use crate::broker::{Revocation, Revocations};
use crate::{Error, Result};

/// The stream revocations are written to.
pub(super) const STREAM: &str = "celeriac.revoked";

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    task_id: String,
    terminate: bool,
    at: f64,
    expires: f64,
}

#[async_trait]
impl Revocations for AmqpBroker {
    async fn revoke(&self, task_ids: &[String], terminate: bool, ttl: Duration) -> Result<()> {
        record(&self.inner, task_ids, terminate, ttl).await
    }

    async fn revoked_since(&self, after: f64) -> Result<Vec<Revocation>> {
        since(&self.inner, after).await
    }
}

/// The revocations read so far, and which session the reader runs on.
#[derive(Default)]
pub(super) struct Log {
    entries: Arc<Mutex<HashMap<String, Record>>>,
    /// The session generation the reader consumes on; 0 when none.
    reader: Arc<AtomicU64>,
}

fn now() -> f64 {
    chrono::Utc::now().timestamp_micros() as f64 / 1e6
}

fn stream_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    let text = |s: &str| AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()));
    arguments.insert("x-queue-type".into(), text("stream"));
    arguments.insert("x-max-age".into(), text("1D"));
    arguments
}

/// Write revocations to the stream (and to this process's log at once).
async fn record(inner: &Inner, task_ids: &[String], terminate: bool, ttl: Duration) -> Result<()> {
    let session = inner.session().await?;
    session.declare_own(STREAM, stream_arguments()).await?;
    let at = now();
    for task_id in task_ids {
        let record = Record {
            task_id: task_id.clone(),
            terminate,
            at,
            expires: at + ttl.as_secs_f64(),
        };
        let body =
            serde_json::to_vec(&record).map_err(|e| Error::broker("encoding a revocation", e))?;
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2);
        inner
            .publish_confirmed(&session, "", STREAM, &body, properties)
            .await?;
        remember(&inner.revocations.entries, record);
    }
    Ok(())
}

fn remember(entries: &Mutex<HashMap<String, Record>>, record: Record) {
    let mut entries = entries.lock().unwrap_or_else(|e| e.into_inner());
    let newer = entries
        .get(&record.task_id)
        .is_none_or(|old| old.at < record.at);
    if newer {
        entries.insert(record.task_id.clone(), record);
    }
}

/// The revocations recorded after `since` that have not expired.
async fn since(inner: &Inner, since: f64) -> Result<Vec<Revocation>> {
    let session = inner.session().await?;
    if inner.revocations.reader.load(Ordering::Relaxed) != session.generation {
        start_reader(inner, &session).await?;
    }
    let now = now();
    let mut entries = inner
        .revocations
        .entries
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    entries.retain(|_, r| r.expires > now);
    Ok(entries
        .values()
        .filter(|r| r.at > since)
        .map(|r| Revocation {
            task_id: r.task_id.clone(),
            at: r.at,
            terminate: r.terminate,
        })
        .collect())
}

/// Consume the stream from its start on a channel of its own.
async fn start_reader(inner: &Inner, session: &Arc<Session>) -> Result<()> {
    let channel = session.side_channel().await?;
    channel
        .queue_declare(
            STREAM.into(),
            QueueDeclareOptions::durable(),
            stream_arguments(),
        )
        .await
        .map_err(|e| Error::broker("declaring the revocation stream", e))?;
    channel
        .basic_qos(1000, BasicQosOptions::default())
        .await
        .map_err(|e| Error::broker("reading revocations", e))?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-stream-offset".into(),
        AMQPValue::LongString(LongString::from(b"first".to_vec())),
    );
    let mut consumer = channel
        .basic_consume(
            STREAM.into(),
            "".into(),
            BasicConsumeOptions::default(),
            arguments,
        )
        .await
        .map_err(|e| Error::broker("reading revocations", e))?;
    let generation = session.generation;
    inner
        .revocations
        .reader
        .store(generation, Ordering::Relaxed);
    let entries = Arc::clone(&inner.revocations.entries);
    let reader = Arc::clone(&inner.revocations.reader);
    tokio::spawn(async move {
        let _channel = channel;
        while let Some(Ok(delivery)) = consumer.next().await {
            if let Ok(record) = serde_json::from_slice::<Record>(&delivery.data) {
                remember(&entries, record);
            }
            let _ = delivery.acker.ack(BasicAckOptions::default()).await;
        }
        // Read again on the next call, from a new session if need be.
        let _ = reader.compare_exchange(generation, 0, Ordering::Relaxed, Ordering::Relaxed);
    });
    Ok(())
}
