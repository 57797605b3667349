//! Celery's pidbox on Redis: commands `PUBLISH`ed on
//! `/<db>.celery.pidbox`, replies `LPUSH`ed on `<oid>.reply.celery.pidbox`
//! (see the module above for the whole wire).

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Map, Value};

use super::Command;
use crate::protocol::{DeliveryInfo, Envelope, Properties};
use crate::redis_support::{connect, Endpoint, RedisConn, SEP};
use crate::{Error, Result};

/// Celery's pidbox on one Redis database.
#[derive(Clone)]
pub(super) struct Pidbox {
    endpoint: Endpoint,
    conn: RedisConn,
    channel: String,
    prefix: String,
}

fn err(context: &'static str) -> impl Fn(redis::RedisError) -> Error {
    move |e| Error::broker(context, e)
}

fn envelope(
    body: &Value,
    headers: Map<String, Value>,
    exchange: &str,
    routing_key: &str,
    mode: u8,
) -> Envelope {
    let properties = Properties {
        correlation_id: None,
        reply_to: None,
        delivery_mode: mode,
        delivery_info: DeliveryInfo {
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
            extra: Map::new(),
        },
        priority: Some(0),
        body_encoding: "base64".into(),
        delivery_tag: uuid::Uuid::new_v4().to_string(),
        extra: Map::new(),
    };
    Envelope::new(
        &serde_json::to_vec(body).unwrap_or_default(),
        headers,
        properties,
    )
}

fn now() -> f64 {
    chrono::Utc::now().timestamp_micros() as f64 / 1e6
}

impl Pidbox {
    /// Connect to the Redis broker at `url`.
    ///
    /// # Errors
    /// When the URL is invalid or the server cannot be reached.
    pub(super) async fn open(url: &str, key_prefix: &str) -> Result<Self> {
        let (endpoint, conn) = connect(url).await?;
        let db = endpoint.db();
        Ok(Pidbox {
            endpoint,
            conn,
            channel: format!("{key_prefix}/{db}.celery.pidbox"),
            prefix: key_prefix.to_owned(),
        })
    }

    fn reply_list(&self, oid: &str) -> String {
        format!("{}{oid}.reply.celery.pidbox", self.prefix)
    }

    async fn publish(&self, body: &Value, timeout: Duration) -> Result<()> {
        let mut headers = Map::new();
        headers.insert("clock".into(), 1.into());
        headers.insert("expires".into(), (now() + timeout.as_secs_f64()).into());
        let message = envelope(body, headers, "celery.pidbox", "", 2);
        let _: i64 = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(message.to_vec())
            .query_async(&mut self.conn.clone())
            .await
            .map_err(err("publishing a control command"))?;
        Ok(())
    }

    /// Send a command without waiting for replies (Celery's `control`).
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub(super) async fn broadcast(
        &self,
        method: &str,
        arguments: Value,
        destination: Option<Vec<String>>,
    ) -> Result<()> {
        let body = json!({
            "method": method, "arguments": arguments, "destination": destination,
            "pattern": null, "matcher": null,
        });
        self.publish(&body, Duration::from_secs(1)).await
    }

    /// Send a command and collect `{node: reply}` answers for `timeout`
    /// (or until `limit` nodes answered), as `celery inspect` does.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub(super) async fn call(
        &self,
        method: &str,
        arguments: Value,
        destination: Option<Vec<String>>,
        timeout: Duration,
        limit: Option<usize>,
    ) -> Result<Vec<(String, Value)>> {
        let oid = uuid::Uuid::new_v4().to_string();
        let list = self.reply_list(&oid);
        let binding = format!("{}_kombu.binding.reply.celery.pidbox", self.prefix);
        let member = format!("{oid}{SEP}{SEP}{oid}.reply.celery.pidbox");
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("SADD")
            .arg(&binding)
            .arg(&member)
            .query_async(&mut conn)
            .await
            .map_err(err("declaring a reply queue"))?;
        let ticket = uuid::Uuid::new_v4().to_string();
        let body = json!({
            "method": method, "arguments": arguments, "destination": destination,
            "pattern": null, "matcher": null, "ticket": ticket,
            "reply_to": {"exchange": "reply.celery.pidbox", "routing_key": oid},
        });
        self.publish(&body, timeout).await?;
        let deadline = crate::deadline(timeout);
        let mut replies = Vec::new();
        // A dedicated connection: BRPOP blocks it.
        let mut blocking = self
            .endpoint
            .multiplexed()
            .await
            .map_err(err("waiting for control replies"))?;
        while limit.is_none_or(|l| replies.len() < l) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let popped: Option<(String, Vec<u8>)> = redis::cmd("BRPOP")
                .arg(&list)
                .arg(left.as_secs_f64().max(0.01))
                .query_async(&mut blocking)
                .await
                .map_err(err("waiting for control replies"))?;
            let Some((_, raw)) = popped else { break };
            let Ok(reply) = Envelope::from_slice(&raw) else {
                continue;
            };
            if reply.headers.get("ticket").and_then(Value::as_str) != Some(ticket.as_str()) {
                continue;
            }
            let Ok(body) = reply.decoded_body() else {
                continue;
            };
            if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&body) {
                replies.extend(map);
            }
        }
        let _: () = redis::pipe()
            .srem(&binding, &member)
            .ignore()
            .del(&list)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(err("removing a reply queue"))?;
        Ok(replies)
    }

    /// The commands addressed to `hostname`, as they arrive.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub(super) async fn listen(
        &self,
        hostname: &str,
    ) -> Result<impl futures::Stream<Item = Command> + Send + use<>> {
        // Subscribed again, on the current master, when the connection drops.
        let messages = self
            .endpoint
            .subscribe(self.channel.clone(), false)
            .await
            .map_err(err("listening for control commands"))?;
        // Celery workers bind their own pidbox queue; monitors look for it.
        let _: i64 = redis::cmd("SADD")
            .arg(format!("{}_kombu.binding.celery.pidbox", self.prefix))
            .arg(format!("{SEP}{SEP}{hostname}.celery.pidbox"))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(err("binding the worker's pidbox"))?;
        let hostname = hostname.to_owned();
        Ok(messages.filter_map(move |message| {
            let command = parse_command(message.get_payload_bytes(), &hostname);
            async move { command }
        }))
    }

    /// Send a worker's answer to a command (no-op when none is wanted).
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub(super) async fn reply(
        &self,
        command: &Command,
        hostname: &str,
        reply: Value,
    ) -> Result<()> {
        let Some((oid, body, headers)) = command.reply_message(hostname, reply) else {
            return Ok(());
        };
        let message = envelope(&body, headers, "reply.celery.pidbox", oid, 1);
        let _: i64 = redis::cmd("LPUSH")
            .arg(self.reply_list(oid))
            .arg(message.to_vec())
            .query_async(&mut self.conn.clone())
            .await
            .map_err(err("replying to a control command"))?;
        Ok(())
    }
}

/// A command from pidbox bytes, if it is addressed to `hostname`.
fn parse_command(bytes: &[u8], hostname: &str) -> Option<Command> {
    let envelope = Envelope::from_slice(bytes).ok()?;
    let body: Value = serde_json::from_slice(&envelope.decoded_body().ok()?).ok()?;
    if let Some(destination) = body.get("destination").and_then(Value::as_array) {
        if !destination.iter().any(|d| d.as_str() == Some(hostname)) {
            return None;
        }
    }
    Some(Command {
        method: body.get("method")?.as_str()?.to_owned(),
        arguments: body
            .get("arguments")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        ticket: body
            .get("ticket")
            .and_then(Value::as_str)
            .map(str::to_owned),
        reply_to: body
            .get("reply_to")
            .and_then(|r| r.get("routing_key"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/celery")
            .join(name);
        std::fs::read(path).unwrap_or_default()
    }

    #[test]
    fn reads_celerys_inspect_ping() {
        let command =
            parse_command(&fixture("pidbox_broadcast_ping.json"), "me@host").expect("command");
        assert_eq!(command.method, "ping");
        assert!(command.ticket.is_some() && command.reply_to.is_some());
    }

    #[test]
    fn ignores_commands_for_other_nodes() {
        let bytes = fixture("pidbox_broadcast_ping_destination.json");
        let envelope = Envelope::from_slice(&bytes).expect("envelope");
        let body: Value =
            serde_json::from_slice(&envelope.decoded_body().expect("body")).expect("json");
        let target = body["destination"][0]
            .as_str()
            .expect("destination")
            .to_owned();
        assert!(parse_command(&bytes, &target).is_some());
        assert!(parse_command(&bytes, "someone-else@host").is_none());
    }
}
