//! The AMQP 0-9-1 broker (RabbitMQ), with Celery's layout.
//!
//! | Celery/kombu on RabbitMQ | here |
//! |---|---|
//! | `Queue('celery', Exchange('celery', 'direct'), 'celery')`, durable | [`Broker::declare`]; any queue `q` gets a direct exchange `q` and the binding `q → q` |
//! | `task_queue_max_priority` (`x-max-priority`) | `?queue_max_priority=N` on the URL, used only when *creating* a queue: an existing queue is used as declared |
//! | `basic_publish`: body as is, task headers as AMQP headers, `content_type`, `content_encoding`, `priority`, `correlation_id`, `reply_to`, `delivery_mode=2` | [`Broker::publish`] ([`wire`]), with publisher confirms |
//! | `basic_consume` + `basic_qos(prefetch, global=True)` | [`Broker::reserve`]: the prefetch follows the worker's window plus the ETA messages held |
//! | `basic_ack`, `basic_reject(requeue=True)` | [`Broker::ack`] (grouped into `multiple` frames where safe: [`acks`]), [`Broker::requeue`] |
//! | unacknowledged messages return when the channel closes | the same: a killed worker's messages go to another consumer at once; this broker reconnects with backoff |
//! | ETA: held unacknowledged in the worker until due | [`Broker::defer`]: held the same way when due within a minute (at most 4096 held); later ones hop through TTL queues ([`delay`]) |
//!
//! Priorities are RabbitMQ's: a higher number is served first, as for
//! Celery on RabbitMQ (on Redis, 0 is the highest).
//!
//! What AMQP has no place for lives in queues of our own:
//! - dead letters in the durable queue `celeriac.dead_letter` (the message
//!   as body, its [`DeadLetterInfo`](super::DeadLetterInfo) in the `x-celeriac-dead-letter`
//!   header; [`dead_letters`]);
//! - revocations in the stream `celeriac.revoked` (a RabbitMQ stream queue,
//!   read from the start by every worker; [`revoked`]), besides Celery's
//!   pidbox broadcast that Python workers listen to.
//!
//! A delivery stays reserved while its channel lives, so
//! [`Broker::extend`] has nothing to do. RabbitMQ's `consumer_timeout`
//! (30 min by default) still closes a channel holding one message
//! unacknowledged that long; Celeriac acknowledges before running unless a
//! task is `acks_late`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::{Broker, DeadLetters, Delivery, OutgoingMessage, QueueAdmin, Revocations};
use crate::connect::redact;
use crate::{Error, Result};

mod acks;
mod consume;
mod dead_letters;
mod delay;
mod queues;
mod revoked;
mod session;
pub(crate) mod wire;

use session::{Backoff, Session};

/// A message RabbitMQ delivered to one of our consumers.
pub(super) struct Received {
    /// The session whose channel delivered it.
    generation: u64,
    /// The queue consumed from.
    queue: String,
    delivery: lapin::message::Delivery,
}

impl Received {
    fn tag(&self) -> String {
        format!("{}.{}", self.generation, self.delivery.delivery_tag)
    }
}

/// The AMQP broker. Cheap to share: everything is behind one `Arc`.
pub struct AmqpBroker {
    inner: Arc<Inner>,
}

struct Inner {
    /// The URL in lapin's spelling.
    uri: String,
    /// Its TLS certificates (`amqps://`).
    tls: Tls,
    /// `x-max-priority` for queues this broker creates.
    max_priority: Option<u8>,
    visibility_timeout: Duration,
    session: Mutex<Option<Arc<Session>>>,
    connecting: tokio::sync::Mutex<Backoff>,
    generation: AtomicU64,
    ready_tx: mpsc::UnboundedSender<Received>,
    ready_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Received>>,
    /// Reserved by the worker and not settled yet, by tag.
    pending: Mutex<HashMap<String, Received>>,
    /// Which deliveries are seen and unsettled, per session.
    ledger: Arc<acks::Ledger>,
    /// Acknowledgements being grouped.
    acks: acks::AckQueue,
    holds: delay::Holds,
    revocations: revoked::Log,
}

/// The broker-specific settings read from the URL's query.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    uri: String,
    max_priority: Option<u8>,
    /// The certificates of `amqps://` (`ssl_ca_certs`, `ssl_certfile`…).
    tls: Tls,
}

/// What lapin needs for TLS: a CA to trust and a client identity, as PEM.
#[derive(Clone, Default, PartialEq, Eq)]
struct Tls {
    ca_pem: Option<String>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for Tls {
    // Certificates and keys stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("ca", &self.ca_pem.is_some())
            .field("client_certificate", &self.identity.is_some())
            .finish()
    }
}

impl Tls {
    /// Read Celery's `ssl_*` options: the files they name are read now, so
    /// a wrong path is an error at start, not at the first reconnection.
    fn read(options: &crate::tls::TlsOptions, url: &str) -> Result<Tls> {
        let invalid = |reason: String| Error::InvalidUrl {
            url: redact(url),
            reason,
        };
        if !options.customised() {
            return Ok(Tls::default());
        }
        if !options.url.starts_with("amqps://") {
            return Err(invalid("ssl_* options need an amqps:// URL".into()));
        }
        if options.verify == Some(false) {
            return Err(invalid(
                "ssl_cert_reqs=none is not supported on amqps://: the server's certificate is always verified; name its CA with ssl_ca_certs".into(),
            ));
        }
        let read = |what: &str, path: &str| {
            std::fs::read(path).map_err(|e| invalid(format!("{what} {path}: {e}")))
        };
        let ca_pem = match &options.ca_certs {
            Some(path) => Some(
                String::from_utf8(read("ssl_ca_certs", path)?)
                    .map_err(|_| invalid(format!("ssl_ca_certs {path}: not a PEM file")))?,
            ),
            None => None,
        };
        let identity = match (&options.certfile, &options.keyfile) {
            (Some(cert), Some(key)) => {
                Some((read("ssl_certfile", cert)?, read("ssl_keyfile", key)?))
            }
            _ => None,
        };
        Ok(Tls { ca_pem, identity })
    }

    fn lapin_config(&self) -> lapin::tcp::OwnedTLSConfig {
        lapin::tcp::OwnedTLSConfig {
            identity: self
                .identity
                .as_ref()
                .map(|(pem, key)| lapin::tcp::OwnedIdentity::PKCS8 {
                    pem: pem.clone(),
                    key: key.clone(),
                }),
            cert_chain: self.ca_pem.clone(),
        }
    }
}

/// Read our query parameters off `url` and spell the virtual host as lapin
/// does: kombu reads `amqp://host//` and `amqp://host` as the vhost `/`,
/// lapin needs `%2f` for it.
fn settings(original: &str) -> Result<Settings> {
    let invalid = |reason: String| Error::InvalidUrl {
        url: redact(original),
        reason,
    };
    let tls_options = crate::tls::TlsOptions::parse(original)?;
    let tls = Tls::read(&tls_options, original)?;
    let url = tls_options.url.as_str();
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut max_priority = None;
    let mut kept = Vec::new();
    for pair in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("queue_max_priority", value)) => {
                let n: u8 = value.parse().map_err(|_| {
                    invalid(format!(
                        "queue_max_priority must be 1 to 255, got {value:?}"
                    ))
                })?;
                max_priority = (n > 0).then_some(n);
            }
            _ => kept.push(pair),
        }
    }
    let (scheme, rest) = base
        .split_once("://")
        .ok_or_else(|| invalid("expected amqp://user:password@host:port/vhost".into()))?;
    let (authority, path) = match rest.split_once('/') {
        Some((authority, path)) => (authority, path),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(invalid("no host".into()));
    }
    let vhost = if path.is_empty() || path == "/" {
        "%2f"
    } else {
        path
    };
    let mut uri = format!("{scheme}://{authority}/{vhost}");
    if !kept.is_empty() {
        uri.push('?');
        uri.push_str(&kept.join("&"));
    }
    Ok(Settings {
        uri,
        max_priority,
        tls,
    })
}

/// A plain connection to the broker at `url` (kombu's spelling), for the
/// event bus and remote control, which keep their own.
///
/// # Errors
/// When the URL is invalid or the broker cannot be reached.
pub(crate) async fn connect(url: &str) -> Result<lapin::Connection> {
    let settings = settings(url)?;
    session::connect(
        &settings.uri,
        &settings.tls,
        lapin::ConnectionProperties::default(),
    )
    .await
}

impl AmqpBroker {
    /// Connect to the broker at `url` (`amqp://` or `amqps://`, kombu's
    /// spelling; `?queue_max_priority=N` declares new queues with
    /// `x-max-priority` N, as Celery's `task_queue_max_priority`;
    /// `amqps://…?ssl_ca_certs=CA.pem&ssl_certfile=…&ssl_keyfile=…` as
    /// Celery's `broker_use_ssl`, see `crate::tls`).
    ///
    /// # Errors
    /// When the URL is invalid or the broker cannot be reached.
    pub async fn open(url: &str, visibility_timeout: Duration) -> Result<Self> {
        let settings = settings(url)?;
        let (ready_tx, ready_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            uri: settings.uri,
            tls: settings.tls,
            max_priority: settings.max_priority,
            visibility_timeout,
            session: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(Backoff::new()),
            generation: AtomicU64::new(0),
            ready_tx,
            ready_rx: tokio::sync::Mutex::new(ready_rx),
            pending: Mutex::new(HashMap::new()),
            ledger: Arc::default(),
            acks: acks::AckQueue::default(),
            holds: delay::Holds::default(),
            revocations: revoked::Log::default(),
        });
        inner.session().await?;
        delay::spawn_timer(&inner);
        Ok(AmqpBroker { inner })
    }
}

impl Inner {
    fn current(&self) -> Option<Arc<Session>> {
        self.session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The live session, opening a new one after a failure (at most one
    /// attempt per backoff step).
    async fn session(&self) -> Result<Arc<Session>> {
        if let Some(s) = self.current().filter(|s| s.usable()) {
            return Ok(s);
        }
        let mut backoff = self.connecting.lock().await;
        if let Some(s) = self.current().filter(|s| s.usable()) {
            return Ok(s);
        }
        if !backoff.ready() {
            return Err(Error::broker(
                "connecting to the AMQP broker",
                "still waiting before the next attempt",
            ));
        }
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        match session::open(&self.uri, &self.tls, generation).await {
            Ok(session) => {
                backoff.succeeded();
                if generation > 1 {
                    tracing::info!("connected to the AMQP broker again");
                }
                let session = Arc::new(session);
                *self.session.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(Arc::clone(&session));
                // What the old channel held is back in its queue.
                self.holds.forget_older_than(generation);
                self.ledger.forget_older_than(generation);
                self.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .retain(|_, r| r.generation == generation);
                Ok(session)
            }
            Err(err) => {
                backoff.failed();
                Err(err)
            }
        }
    }

    /// Acknowledge one delivery with a frame of its own (outside the
    /// grouped acknowledgements), then tell the ledger.
    async fn ack_alone(&self, received: &Received, context: &'static str) -> Result<()> {
        received
            .delivery
            .acker
            .ack(lapin::options::BasicAckOptions::default())
            .await
            .map_err(|e| Error::broker(context, e))?;
        self.ledger
            .settled(received.generation, received.delivery.delivery_tag);
        Ok(())
    }

    fn take_pending(&self, tag: &str) -> Option<Received> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(tag)
    }

    /// Publish one AMQP message and wait for RabbitMQ's confirm.
    async fn publish_confirmed(
        &self,
        session: &Session,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: lapin::BasicProperties,
    ) -> Result<()> {
        let confirm = session
            .send(exchange, routing_key, body, properties)
            .await?;
        session.confirmed(confirm).await
    }
}

#[async_trait]
impl Broker for AmqpBroker {
    async fn publish(&self, message: OutgoingMessage) -> Result<()> {
        self.publish_batch(vec![message]).await
    }

    async fn publish_batch(&self, messages: Vec<OutgoingMessage>) -> Result<()> {
        consume::publish_batch(&self.inner, messages).await
    }

    async fn reserve(
        &self,
        queues: &[String],
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>> {
        consume::reserve(&self.inner, queues, max, wait).await
    }

    async fn ack(&self, tag: &str) -> Result<()> {
        consume::ack(&self.inner, tag).await
    }

    async fn requeue(&self, tag: &str) -> Result<()> {
        consume::requeue(&self.inner, tag).await
    }

    async fn defer(&self, tag: &str, until: DateTime<Utc>) -> Result<()> {
        delay::defer(&self.inner, tag, until).await
    }

    async fn extend(&self, _tag: &str) -> Result<()> {
        Ok(())
    }

    async fn extend_many(&self, _tags: &[String]) -> Result<()> {
        Ok(())
    }

    async fn declare(&self, queues: &[String]) -> Result<()> {
        let session = self.inner.session().await?;
        for queue in queues {
            session
                .declare_queue(queue, self.inner.max_priority)
                .await?;
        }
        Ok(())
    }

    fn visibility_timeout(&self) -> Duration {
        self.inner.visibility_timeout
    }

    fn dead_letters(&self) -> &dyn DeadLetters {
        self
    }

    fn revocations(&self) -> &dyn Revocations {
        self
    }

    fn queues(&self) -> &dyn QueueAdmin {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::settings;

    #[test]
    fn kombu_urls_become_lapin_urls() {
        let s = |url: &str| settings(url).map(|s| (s.uri, s.max_priority)).ok();
        assert_eq!(
            s("amqp://guest:guest@127.0.0.1:5672//"),
            Some(("amqp://guest:guest@127.0.0.1:5672/%2f".into(), None))
        );
        assert_eq!(s("amqp://h:5672"), Some(("amqp://h:5672/%2f".into(), None)));
        assert_eq!(
            s("amqps://u:p@h/prod?queue_max_priority=10&heartbeat=30"),
            Some(("amqps://u:p@h/prod?heartbeat=30".into(), Some(10)))
        );
        assert!(settings("amqp://h//?queue_max_priority=x").is_err());
        assert!(settings("amqp:///").is_err());
    }
}
