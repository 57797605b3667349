//! Celery's pidbox on AMQP (kombu's `Mailbox` on RabbitMQ), so `celery
//! inspect`/`control` and Flower reach Celeriac workers, and `celeriac
//! inspect` reaches Python ones.
//!
//! - Commands: the fanout exchange `celery.pidbox` (not durable); each
//!   worker binds the queue `<hostname>.celery.pidbox` (auto-delete,
//!   `x-expires` 10 s, `x-message-ttl` 300 s: Celery's
//!   `control_queue_expires`/`control_queue_ttl`). The body is the JSON
//!   `{method, arguments, destination, pattern, matcher[, ticket,
//!   reply_to: {exchange, routing_key}]}`, headers `{clock, expires}`.
//! - Replies: the direct exchange `reply.celery.pidbox` (not durable), to
//!   the caller's queue `<oid>.reply.celery.pidbox` bound with the routing
//!   key `<oid>`; the body `{<nodename>: reply}`, headers `{ticket, clock}`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};
use serde_json::{Map, Value};

use super::Command;
use crate::broker::amqp::{connect, wire};
use crate::{Error, Result};

const EXCHANGE: &str = "celery.pidbox";
const REPLY_EXCHANGE: &str = "reply.celery.pidbox";

/// Celery's mailbox on one RabbitMQ.
pub(super) struct AmqpPidbox {
    url: String,
    connection: Arc<Connection>,
    channel: Channel,
    /// This process's reply queue id (kombu's `oid`).
    oid: String,
}

fn err(context: &'static str) -> impl Fn(lapin::Error) -> Error {
    move |e| Error::broker(context, e)
}

fn queue_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert("x-expires".into(), AMQPValue::LongInt(10_000));
    arguments.insert("x-message-ttl".into(), AMQPValue::LongInt(300_000));
    arguments
}

fn not_durable() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions::default()
}

fn now() -> f64 {
    chrono::Utc::now().timestamp_micros() as f64 / 1e6
}

async fn declare_exchanges(channel: &Channel) -> Result<()> {
    channel
        .exchange_declare(
            EXCHANGE.into(),
            ExchangeKind::Fanout,
            not_durable(),
            FieldTable::default(),
        )
        .await
        .map_err(err("declaring celery.pidbox"))?;
    channel
        .exchange_declare(
            REPLY_EXCHANGE.into(),
            ExchangeKind::Direct,
            not_durable(),
            FieldTable::default(),
        )
        .await
        .map_err(err("declaring reply.celery.pidbox"))
}

/// Declare `queue` as kombu's Mailbox does and bind it.
async fn declare_bound(channel: &Channel, queue: &str, exchange: &str, key: &str) -> Result<()> {
    let name = wire::short("pidbox queue name", queue)?;
    channel
        .queue_declare(
            name.clone(),
            QueueDeclareOptions {
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            queue_arguments(),
        )
        .await
        .map_err(err("declaring a pidbox queue"))?;
    channel
        .queue_bind(
            name,
            exchange.into(),
            wire::short("pidbox routing key", key)?,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(err("binding a pidbox queue"))
}

fn properties(headers: &Map<String, Value>) -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(1)
        .with_headers(wire::table(headers))
}

impl AmqpPidbox {
    /// Connect to the broker at `url`.
    pub(super) async fn open(url: &str) -> Result<Self> {
        let connection = Arc::new(connect(url).await?);
        let channel = connection
            .create_channel()
            .await
            .map_err(err("opening a pidbox channel"))?;
        declare_exchanges(&channel).await?;
        Ok(AmqpPidbox {
            url: url.to_owned(),
            connection,
            channel,
            oid: uuid::Uuid::new_v4().to_string(),
        })
    }

    async fn publish(
        &self,
        exchange: &str,
        key: &str,
        body: &Value,
        headers: Map<String, Value>,
    ) -> Result<()> {
        let bytes =
            serde_json::to_vec(body).map_err(|e| Error::broker("encoding a control message", e))?;
        self.channel
            .basic_publish(
                wire::short("exchange", exchange)?,
                wire::short("routing key", key)?,
                BasicPublishOptions::default(),
                &bytes,
                properties(&headers),
            )
            .await
            .map_err(err("publishing a control message"))?;
        Ok(())
    }

    fn command(
        method: &str,
        arguments: Value,
        destination: Option<Vec<String>>,
    ) -> Map<String, Value> {
        let mut body = Map::new();
        body.insert("method".into(), method.into());
        body.insert("arguments".into(), arguments);
        body.insert(
            "destination".into(),
            destination.map_or(Value::Null, Value::from),
        );
        body.insert("pattern".into(), Value::Null);
        body.insert("matcher".into(), Value::Null);
        body
    }

    fn command_headers(timeout: Duration) -> Map<String, Value> {
        let mut headers = Map::new();
        headers.insert("clock".into(), 1.into());
        headers.insert("expires".into(), (now() + timeout.as_secs_f64()).into());
        headers
    }

    /// Send a command, no replies wanted.
    pub(super) async fn broadcast(
        &self,
        method: &str,
        arguments: Value,
        destination: Option<Vec<String>>,
    ) -> Result<()> {
        let body = Value::Object(Self::command(method, arguments, destination));
        self.publish(
            EXCHANGE,
            "",
            &body,
            Self::command_headers(Duration::from_secs(1)),
        )
        .await
    }

    /// Send a command and collect replies for `timeout` or until `limit`.
    pub(super) async fn call(
        &self,
        method: &str,
        arguments: Value,
        destination: Option<Vec<String>>,
        timeout: Duration,
        limit: Option<usize>,
    ) -> Result<Vec<(String, Value)>> {
        let channel = self
            .connection
            .create_channel()
            .await
            .map_err(err("opening a pidbox channel"))?;
        let reply_queue = format!("{}.{REPLY_EXCHANGE}", self.oid);
        declare_bound(&channel, &reply_queue, REPLY_EXCHANGE, &self.oid).await?;
        let mut replies = channel
            .basic_consume(
                wire::short("reply queue", &reply_queue)?,
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(err("consuming control replies"))?;
        let ticket = uuid::Uuid::new_v4().to_string();
        let mut body = Self::command(method, arguments, destination);
        body.insert("ticket".into(), ticket.clone().into());
        body.insert(
            "reply_to".into(),
            serde_json::json!({"exchange": REPLY_EXCHANGE, "routing_key": self.oid}),
        );
        self.publish(
            EXCHANGE,
            "",
            &Value::Object(body),
            Self::command_headers(timeout),
        )
        .await?;
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while limit.is_none_or(|l| out.len() < l) {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(Some(Ok(delivery))) = tokio::time::timeout(left, replies.next()).await else {
                break;
            };
            let same_ticket = delivery
                .properties
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get("ticket"))
                .is_some_and(
                    |t| matches!(t, AMQPValue::LongString(s) if s.as_bytes() == ticket.as_bytes()),
                );
            if !same_ticket {
                continue;
            }
            if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&delivery.data) {
                out.extend(map);
            }
        }
        let _ = channel.close(200, "done".into()).await;
        Ok(out)
    }

    /// The commands addressed to `hostname`.
    pub(super) async fn listen(
        &self,
        hostname: &str,
    ) -> Result<impl Stream<Item = Command> + Send + 'static> {
        // A connection of its own, owned by the stream.
        let connection = Arc::new(connect(&self.url).await?);
        let channel = connection
            .create_channel()
            .await
            .map_err(err("opening a pidbox channel"))?;
        declare_exchanges(&channel).await?;
        let queue = format!("{hostname}.{EXCHANGE}");
        declare_bound(&channel, &queue, EXCHANGE, "").await?;
        let consumer = channel
            .basic_consume(
                wire::short("pidbox queue", &queue)?,
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(err("consuming control commands"))?;
        let hostname = hostname.to_owned();
        Ok(consumer.filter_map(move |delivery| {
            let _keep = (&connection, &channel);
            let command = delivery.ok().and_then(|d| {
                let expired = d
                    .properties
                    .headers()
                    .as_ref()
                    .map(wire::json_map)
                    .and_then(|h| h.get("expires").and_then(Value::as_f64))
                    .is_some_and(|at| at > 0.0 && now() > at);
                if expired {
                    return None;
                }
                parse_command(&d.data, &hostname)
            });
            futures::future::ready(command)
        }))
    }

    /// A worker's answer.
    pub(super) async fn reply(
        &self,
        command: &Command,
        hostname: &str,
        reply: Value,
    ) -> Result<()> {
        let Some((oid, body, headers)) = command.reply_message(hostname, reply) else {
            return Ok(());
        };
        self.publish(REPLY_EXCHANGE, oid, &body, headers).await
    }
}

/// A command addressed to `hostname` (no destination = everyone).
fn parse_command(bytes: &[u8], hostname: &str) -> Option<Command> {
    let body: Value = serde_json::from_slice(bytes).ok()?;
    if let Some(destination) = body.get("destination").and_then(Value::as_array) {
        if !destination.iter().any(|d| d.as_str() == Some(hostname)) {
            return None;
        }
    }
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    Some(Command {
        method: body.get("method")?.as_str()?.to_owned(),
        arguments: body
            .get("arguments")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        ticket: text(body.get("ticket")),
        reply_to: text(body.get("reply_to").and_then(|r| r.get("routing_key"))),
    })
}

#[cfg(test)]
mod tests {
    use super::parse_command;

    #[test]
    fn reads_commands_for_this_node_only() {
        let ping = br#"{"method": "ping", "arguments": {}, "destination": ["a@h"], "ticket": "t", "reply_to": {"exchange": "reply.celery.pidbox", "routing_key": "oid"}}"#;
        let command = parse_command(ping, "a@h").expect("for a@h");
        assert_eq!(command.method, "ping");
        assert_eq!(command.reply_to.as_deref(), Some("oid"));
        assert!(parse_command(ping, "b@h").is_none());
        assert!(parse_command(b"not json", "a@h").is_none());
    }
}
