//! One connection to RabbitMQ and its channels, replaced after a failure.
//!
//! A [`Session`] is a connection with a publishing channel in confirm mode
//! and a consuming channel with the worker's QoS. When either fails, the
//! session is marked broken and the next operation opens a new one (at most
//! one attempt per backoff step: 100 ms doubling to 5 s). Every message the
//! old consuming channel delivered and nobody acknowledged is back in its
//! queue by then: RabbitMQ requeues a closed channel's unacknowledged
//! messages, which is AMQP's at-least-once.
//!
//! Queues are declared as Celery declares them (kombu's `Queue(name,
//! Exchange(name, 'direct'), routing_key=name)`, durable): a direct exchange
//! named after the queue, the queue, and the binding. An existing queue is
//! used as it is, so arguments such as
//! `x-max-priority` that a Python worker chose win: when our declaration
//! fails with `PRECONDITION_FAILED`, the queue is used as declared.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::options::{
    BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

use super::wire::short;
use crate::{Error, Result};

/// An open connection with its two channels.
pub(super) struct Session {
    /// Counts sessions; part of every delivery tag, so a tag of a dead
    /// channel is never taken for one of the new.
    pub(super) generation: u64,
    /// Shared only with the task that closes it when the session is
    /// dropped ([`Drop`] below).
    pub(super) connection: Arc<Connection>,
    /// Confirm mode: every publish waits for RabbitMQ's ack.
    pub(super) publish: Channel,
    /// Where the consumers live, with a channel-wide (global) QoS.
    pub(super) consume: Channel,
    /// Set by whoever sees the connection or a channel fail.
    pub(super) broken: AtomicBool,
    /// Queues with a consumer on this session.
    pub(super) consuming: Mutex<HashSet<String>>,
    /// Queues and exchanges declared on this session.
    pub(super) declared: Mutex<HashSet<String>>,
    /// The prefetch count last set (0 = none yet).
    pub(super) qos: AtomicU16,
}

impl Session {
    /// Whether this session can still be used.
    pub(super) fn usable(&self) -> bool {
        !self.broken.load(Ordering::Relaxed)
            && self.connection.status().connected()
            && self.publish.status().connected()
            && self.consume.status().connected()
    }

    /// Mark broken; the next operation reconnects.
    pub(super) fn break_off(&self) {
        self.broken.store(true, Ordering::Relaxed);
    }

    /// Publish on the confirming channel; the confirm resolves once
    /// RabbitMQ has the message ([`Session::confirmed`]).
    pub(super) async fn send(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: lapin::BasicProperties,
    ) -> Result<lapin::PublisherConfirm> {
        self.publish
            .basic_publish(
                short("exchange name", exchange)?,
                short("routing key", routing_key)?,
                lapin::options::BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .map_err(|e| self.failed("publishing a message", e))
    }

    /// Wait for a publisher confirm; RabbitMQ's refusal is an error.
    pub(super) async fn confirmed(&self, confirm: lapin::PublisherConfirm) -> Result<()> {
        let confirmation = confirm
            .await
            .map_err(|e| self.failed("waiting for a publisher confirm", e))?;
        if confirmation.is_nack() {
            return Err(Error::broker(
                "publishing a message",
                "RabbitMQ refused the message (negative publisher confirm)",
            ));
        }
        Ok(())
    }

    /// The prefetch count last set (0 = none yet).
    pub(super) fn current_qos(&self) -> u16 {
        self.qos.load(Ordering::Relaxed)
    }

    /// Set the consuming channel's prefetch count (global: shared by every
    /// consumer on the channel, as Celery sets it on RabbitMQ).
    pub(super) async fn set_qos(&self, prefetch: u16) -> Result<()> {
        if self.qos.load(Ordering::Relaxed) == prefetch {
            return Ok(());
        }
        self.consume
            .basic_qos(prefetch, BasicQosOptions { global: true })
            .await
            .map_err(|e| self.failed("setting the prefetch count", e))?;
        self.qos.store(prefetch, Ordering::Relaxed);
        Ok(())
    }

    /// A lapin error, marking the session broken when the connection or
    /// channel is gone.
    pub(super) fn failed(&self, context: &'static str, err: lapin::Error) -> Error {
        if !self.connection.status().connected()
            || !self.publish.status().connected()
            || !self.consume.status().connected()
        {
            self.break_off();
        }
        Error::broker(context, err)
    }

    /// Declare `queue` as Celery does, unless already done on this session.
    /// An existing queue is left as it is.
    pub(super) async fn declare_queue(&self, queue: &str, max_priority: Option<u8>) -> Result<()> {
        if self.is_declared(queue) {
            return Ok(());
        }
        let name = short("queue name", queue)?;
        let mut arguments = FieldTable::default();
        if let Some(max) = max_priority {
            arguments.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(max));
        }
        let channel = self.side_channel().await?;
        let declared = channel
            .queue_declare(name.clone(), QueueDeclareOptions::durable(), arguments)
            .await;
        let _ = channel.close(200, "declared".into()).await;
        if let Err(err) = declared {
            // PRECONDITION_FAILED: declared before (by a Python worker,
            // say) with other arguments. Use it as it is.
            if !self.exists(&name).await? {
                return Err(Error::broker("declaring a queue", err));
            }
        }
        self.exchange_and_binding(&name).await?;
        self.mark_declared(queue);
        Ok(())
    }

    /// A direct durable exchange named like the queue, and the binding
    /// `queue ← exchange` with the queue's name as routing key. An exchange
    /// that exists with another type is left alone (the default exchange
    /// still reaches the queue).
    async fn exchange_and_binding(&self, name: &ShortString) -> Result<()> {
        let channel = self.side_channel().await?;
        let exchange = channel
            .exchange_declare(
                name.clone(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        if exchange.is_ok() {
            channel
                .queue_bind(
                    name.clone(),
                    name.clone(),
                    name.clone(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| self.failed("binding a queue", e))?;
        }
        let _ = channel.close(200, "declared".into()).await;
        Ok(())
    }

    /// Declare a queue of ours (delay queues, dead letters) with exactly
    /// `arguments`, once per session.
    pub(super) async fn declare_own(&self, queue: &str, arguments: FieldTable) -> Result<()> {
        if self.is_declared(queue) {
            return Ok(());
        }
        let name = short("queue name", queue)?;
        self.publish
            .queue_declare(name, QueueDeclareOptions::durable(), arguments)
            .await
            .map_err(|e| self.failed("declaring a queue", e))?;
        self.mark_declared(queue);
        Ok(())
    }

    /// Whether `queue` exists (a passive declare on a throwaway channel:
    /// a missing queue closes the channel it was asked on).
    pub(super) async fn exists(&self, queue: &ShortString) -> Result<bool> {
        Ok(self.message_count(queue).await?.is_some())
    }

    /// Ready messages in `queue`; `None` when it does not exist.
    pub(super) async fn message_count(&self, queue: &ShortString) -> Result<Option<u32>> {
        let channel = self.side_channel().await?;
        let answer = channel
            .queue_declare(
                queue.clone(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        match answer {
            Ok(q) => {
                let _ = channel.close(200, "asked".into()).await;
                Ok(Some(q.message_count()))
            }
            Err(_) if self.connection.status().connected() => Ok(None),
            Err(err) => Err(self.failed("asking for a queue", err)),
        }
    }

    /// A short-lived channel for operations whose failure closes it.
    pub(super) async fn side_channel(&self) -> Result<Channel> {
        self.connection.create_channel().await.map_err(|e| {
            self.break_off();
            Error::broker("opening an AMQP channel", e)
        })
    }

    fn is_declared(&self, name: &str) -> bool {
        self.declared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(name)
    }

    fn mark_declared(&self, name: &str) {
        self.declared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned());
    }
}

/// A session no longer used (replaced after a failure, or its broker
/// dropped) closes its connection: lapin keeps a connection open as long as
/// it has channels, even with every handle dropped, and RabbitMQ gives
/// back the messages a connection holds unacknowledged only when it closes.
/// Left open, they would stay reserved by nobody until the process exits.
impl Drop for Session {
    fn drop(&mut self) {
        if !self.connection.status().connected() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let connection = Arc::clone(&self.connection);
        runtime.spawn(async move {
            let _ = connection.close(200, "session closed".into()).await;
        });
    }
}

/// Connect to `uri` (already in lapin's spelling) with its certificates.
pub(super) async fn connect(
    uri: &str,
    tls: &super::Tls,
    properties: ConnectionProperties,
) -> Result<Connection> {
    let failed = |e| Error::broker("connecting to the AMQP broker", e);
    lapin::ConnectionBuilder::new()
        .map_err(failed)?
        .with_uri_str(uri.to_owned())
        .with_properties(properties)
        .with_tls_config(tls.lapin_config())
        .connect()
        .await
        .map_err(failed)
}

/// Open a session on `uri` (already in lapin's spelling).
pub(super) async fn open(uri: &str, tls: &super::Tls, generation: u64) -> Result<Session> {
    let properties = ConnectionProperties::default()
        .with_connection_name(format!("celeriac pid {}", std::process::id()).into());
    let connection = connect(uri, tls, properties).await?;
    let publish = connection
        .create_channel()
        .await
        .map_err(|e| Error::broker("opening an AMQP channel", e))?;
    publish
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| Error::broker("enabling publisher confirms", e))?;
    let consume = connection
        .create_channel()
        .await
        .map_err(|e| Error::broker("opening an AMQP channel", e))?;
    Ok(Session {
        generation,
        connection: Arc::new(connection),
        publish,
        consume,
        broken: AtomicBool::new(false),
        consuming: Mutex::new(HashSet::new()),
        declared: Mutex::new(HashSet::new()),
        qos: AtomicU16::new(0),
    })
}

/// When the next connection attempt may be made.
pub(super) struct Backoff {
    next_try: Option<Instant>,
    pause: Duration,
}

impl Backoff {
    pub(super) fn new() -> Self {
        Backoff {
            next_try: None,
            pause: Duration::from_millis(100),
        }
    }

    /// Whether an attempt may be made now.
    pub(super) fn ready(&self) -> bool {
        self.next_try.is_none_or(|at| Instant::now() >= at)
    }

    /// An attempt failed: wait longer before the next.
    pub(super) fn failed(&mut self) {
        self.next_try = Some(Instant::now() + self.pause);
        self.pause = (self.pause * 2).min(Duration::from_secs(5));
    }

    /// Connected: the next failure starts from the shortest pause.
    pub(super) fn succeeded(&mut self) {
        self.next_try = None;
        self.pause = Duration::from_millis(100);
    }
}
