//! Remote control: Celery's "pidbox" on Redis, and the same commands
//! carried by the event bus on every other transport.
//!
//! On Redis the wire is Celery's, as `celery inspect`/`celery control` and
//! Flower use it (`pidbox.rs`):
//!
//! 1. A command is a kombu envelope `PUBLISH`ed on `/<db>.celery.pidbox`
//!    with body `{method, arguments, destination, pattern, matcher}` and,
//!    when replies are wanted, `ticket` and `reply_to: {exchange:
//!    "reply.celery.pidbox", routing_key: <oid>}`.
//! 2. Each worker whose name matches `destination` (or all, when null)
//!    answers `{<nodename>: <reply>}` by `LPUSH`ing an envelope with headers
//!    `{ticket, clock}` onto `<oid>.reply.celery.pidbox`.
//! 3. The caller pops replies from that list until its timeout.
//!
//! On SQLite and memory brokers there is no pidbox to speak to, so
//! [`Control::over_events`] carries the same `{method, arguments,
//! destination, ticket}` as an event of type `celeriac-control` on the
//! app's [`EventBus`] (the SQLite file's events table, polled every 200 ms,
//! or the process's channel); a worker answers with a
//! `celeriac-control-reply` event naming the ticket (`bus.rs`). Only
//! Celeriac processes speak it; monitors skip both types
//! ([`is_control_event`]). [`crate::App::remote_control`] picks the channel
//! that goes with the app's broker.
//!
//! [`Control`] is the caller's side (`celeriac inspect`, the dashboard,
//! [`crate::App::revoke`]); [`Control::listen`] gives a worker the commands
//! addressed to it and [`Control::reply`] sends its answer.

#[cfg(feature = "amqp")]
mod amqp;
mod bus;
#[cfg(feature = "redis")]
mod pidbox;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use serde_json::{Map, Value};

use crate::events::EventBus;
use crate::Result;

/// The caller's side of remote control, and the worker's.
#[derive(Clone)]
pub struct Control {
    channel: Channel,
}

#[derive(Clone)]
enum Channel {
    #[cfg(feature = "redis")]
    Pidbox(Box<pidbox::Pidbox>),
    #[cfg(feature = "amqp")]
    Amqp(Arc<amqp::AmqpPidbox>),
    Bus(bus::BusControl),
}

/// A command received by a worker.
#[derive(Debug, Clone)]
pub struct Command {
    /// Method name, e.g. `ping`.
    pub method: String,
    /// Method arguments.
    pub arguments: Map<String, Value>,
    ticket: Option<String>,
    reply_to: Option<String>,
}

impl Command {
    /// What a worker's answer is, as kombu's Mailbox sends it: to the
    /// caller's reply queue, the body `{hostname: reply}` with the `ticket`
    /// and `clock` headers; `None` when the caller wants no answer.
    #[cfg(any(feature = "redis", feature = "amqp"))]
    fn reply_message(
        &self,
        hostname: &str,
        reply: Value,
    ) -> Option<(&str, Value, Map<String, Value>)> {
        let (Some(ticket), Some(reply_to)) = (&self.ticket, &self.reply_to) else {
            return None;
        };
        let mut headers = Map::new();
        headers.insert("ticket".into(), ticket.clone().into());
        headers.insert("clock".into(), 1.into());
        let mut body = Map::new();
        body.insert(hostname.to_owned(), reply);
        Some((reply_to, Value::Object(body), headers))
    }
}

/// The commands addressed to one worker, as they arrive.
pub type CommandStream = Pin<Box<dyn Stream<Item = Command> + Send>>;

/// True for the events that carry remote control on the event bus (not
/// worker or task events: monitors skip them).
pub fn is_control_event(kind: &str) -> bool {
    kind.starts_with("celeriac-control")
}

impl Control {
    /// Celery's pidbox on the Redis broker at `url`.
    ///
    /// # Errors
    /// When the URL is invalid or the server cannot be reached.
    #[cfg(feature = "redis")]
    pub async fn open(url: &str, key_prefix: &str) -> Result<Self> {
        Ok(Control {
            channel: Channel::Pidbox(Box::new(pidbox::Pidbox::open(url, key_prefix).await?)),
        })
    }

    /// Celery's pidbox on the AMQP broker (RabbitMQ) at `url`: the
    /// `celery.pidbox` fanout exchange and `reply.celery.pidbox` (`amqp.rs`).
    ///
    /// # Errors
    /// When the URL is invalid or the broker cannot be reached.
    #[cfg(feature = "amqp")]
    pub async fn open_amqp(url: &str) -> Result<Self> {
        Ok(Control {
            channel: Channel::Amqp(Arc::new(amqp::AmqpPidbox::open(url).await?)),
        })
    }

    /// Remote control carried by an event bus: for brokers without a
    /// pidbox (SQLite, memory). Every process that shares the bus (the
    /// same SQLite file, the same process) reaches every other.
    pub fn over_events(events: Arc<dyn EventBus>) -> Self {
        Control {
            channel: Channel::Bus(bus::BusControl::new(events)),
        }
    }

    /// `"pidbox"` (Celery's, on Redis) or `"events"` (the event bus).
    pub fn kind(&self) -> &'static str {
        match &self.channel {
            #[cfg(feature = "redis")]
            Channel::Pidbox(_) => "pidbox",
            #[cfg(feature = "amqp")]
            Channel::Amqp(_) => "pidbox",
            Channel::Bus(_) => "events",
        }
    }

    /// Send a command without waiting for replies (Celery's `control`).
    ///
    /// # Errors
    /// When the transport cannot be reached.
    pub async fn broadcast(
        &self,
        method: &str,
        arguments: Value,
        destination: Option<Vec<String>>,
    ) -> Result<()> {
        match &self.channel {
            #[cfg(feature = "redis")]
            Channel::Pidbox(p) => p.broadcast(method, arguments, destination).await,
            #[cfg(feature = "amqp")]
            Channel::Amqp(p) => p.broadcast(method, arguments, destination).await,
            Channel::Bus(b) => b.broadcast(method, arguments, destination).await,
        }
    }

    /// Send a command and collect `{node: reply}` answers for `timeout`
    /// (or until `limit` nodes answered), as `celery inspect` does.
    ///
    /// # Errors
    /// When the transport cannot be reached.
    pub async fn call(
        &self,
        method: &str,
        arguments: Value,
        destination: Option<Vec<String>>,
        timeout: Duration,
        limit: Option<usize>,
    ) -> Result<Vec<(String, Value)>> {
        match &self.channel {
            #[cfg(feature = "redis")]
            Channel::Pidbox(p) => p.call(method, arguments, destination, timeout, limit).await,
            #[cfg(feature = "amqp")]
            Channel::Amqp(p) => p.call(method, arguments, destination, timeout, limit).await,
            Channel::Bus(b) => b.call(method, arguments, destination, timeout, limit).await,
        }
    }

    /// The commands addressed to `hostname`, as they arrive. Commands sent
    /// after this returns are delivered.
    ///
    /// # Errors
    /// When the transport cannot be reached.
    pub async fn listen(&self, hostname: &str) -> Result<CommandStream> {
        match &self.channel {
            #[cfg(feature = "redis")]
            Channel::Pidbox(p) => Ok(p.listen(hostname).await?.boxed()),
            #[cfg(feature = "amqp")]
            Channel::Amqp(p) => Ok(p.listen(hostname).await?.boxed()),
            Channel::Bus(b) => b.listen(hostname).await,
        }
    }

    /// Send a worker's answer to a command (no-op when none is wanted).
    ///
    /// # Errors
    /// When the transport cannot be reached.
    pub async fn reply(&self, command: &Command, hostname: &str, reply: Value) -> Result<()> {
        match &self.channel {
            #[cfg(feature = "redis")]
            Channel::Pidbox(p) => p.reply(command, hostname, reply).await,
            #[cfg(feature = "amqp")]
            Channel::Amqp(p) => p.reply(command, hostname, reply).await,
            Channel::Bus(b) => b.reply(command, hostname, reply).await,
        }
    }
}

impl crate::App {
    /// Remote control on this app's transport: Celery's pidbox when the
    /// broker is Redis, else carried by the app's event bus (SQLite file,
    /// in-process channel), which every Celeriac worker on the same broker
    /// listens to.
    pub fn remote_control(&self) -> Control {
        #[cfg(feature = "redis")]
        if let Some(control) = self.control() {
            return control.clone();
        }
        Control::over_events(Arc::clone(self.events()))
    }
}
