//! Remote control carried by an [`EventBus`]: the commands of Celery's
//! pidbox as `celeriac-control` events, answers as
//! `celeriac-control-reply` events naming the command's ticket.
//!
//! A caller subscribes before it publishes, so no answer is missed; a
//! worker subscribes before it announces itself (`worker-online`), so a
//! monitor that reacts to the announcement reaches it.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Map, Value};

use super::{Command, CommandStream};
use crate::events::EventBus;
use crate::protocol::Event;
use crate::Result;

const COMMAND: &str = "celeriac-control";
const REPLY: &str = "celeriac-control-reply";

#[derive(Clone)]
pub(super) struct BusControl {
    events: Arc<dyn EventBus>,
}

fn sender() -> String {
    format!("control@{}", std::process::id())
}

impl BusControl {
    pub(super) fn new(events: Arc<dyn EventBus>) -> Self {
        BusControl { events }
    }

    fn command(
        method: &str,
        arguments: Value,
        destination: Option<Vec<String>>,
        ticket: Option<&str>,
    ) -> Event {
        Event::new(COMMAND, &sender(), 0)
            .with("method", method)
            .with("arguments", arguments)
            .with("destination", json!(destination))
            .with("ticket", json!(ticket))
    }

    pub(super) async fn broadcast(
        &self,
        method: &str,
        arguments: Value,
        destination: Option<Vec<String>>,
    ) -> Result<()> {
        self.events
            .publish(&Self::command(method, arguments, destination, None))
            .await
    }

    pub(super) async fn call(
        &self,
        method: &str,
        arguments: Value,
        destination: Option<Vec<String>>,
        timeout: Duration,
        limit: Option<usize>,
    ) -> Result<Vec<(String, Value)>> {
        let ticket = uuid::Uuid::new_v4().to_string();
        let mut answers = self.events.subscribe().await?;
        self.events
            .publish(&Self::command(
                method,
                arguments,
                destination,
                Some(&ticket),
            ))
            .await?;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut replies: Vec<(String, Value)> = Vec::new();
        while limit.is_none_or(|l| replies.len() < l) {
            let next = tokio::time::timeout_at(deadline, answers.next()).await;
            let Ok(Some(event)) = next else { break };
            if event.kind() != REPLY
                || event.fields.get("ticket").and_then(Value::as_str) != Some(ticket.as_str())
            {
                continue;
            }
            let node = event.hostname().to_owned();
            if replies.iter().any(|(n, _)| *n == node) {
                continue;
            }
            let reply = event.fields.get("reply").cloned().unwrap_or(Value::Null);
            replies.push((node, reply));
        }
        Ok(replies)
    }

    pub(super) async fn listen(&self, hostname: &str) -> Result<CommandStream> {
        let stream = self.events.subscribe().await?;
        let hostname = hostname.to_owned();
        Ok(stream
            .filter_map(move |event| {
                let command = parse(&event, &hostname);
                async move { command }
            })
            .boxed())
    }

    pub(super) async fn reply(
        &self,
        command: &Command,
        hostname: &str,
        reply: Value,
    ) -> Result<()> {
        let Some(ticket) = &command.ticket else {
            return Ok(());
        };
        self.events
            .publish(
                &Event::new(REPLY, hostname, 0)
                    .with("ticket", ticket.as_str())
                    .with("reply", reply),
            )
            .await
    }
}

/// The command in `event`, if it is one addressed to `hostname`.
fn parse(event: &Event, hostname: &str) -> Option<Command> {
    if event.kind() != COMMAND {
        return None;
    }
    if let Some(destination) = event.fields.get("destination").and_then(Value::as_array) {
        if !destination.iter().any(|d| d.as_str() == Some(hostname)) {
            return None;
        }
    }
    Some(Command {
        method: event.fields.get("method")?.as_str()?.to_owned(),
        arguments: event
            .fields
            .get("arguments")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_else(Map::new),
        ticket: event
            .fields
            .get("ticket")
            .and_then(Value::as_str)
            .map(str::to_owned),
        reply_to: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::MemoryEvents;

    #[tokio::test]
    async fn commands_and_replies_travel_on_the_bus() {
        let bus: Arc<dyn EventBus> = Arc::new(MemoryEvents::new());
        let control = BusControl::new(Arc::clone(&bus));
        // Two workers answer `ping`; a third is not addressed.
        for name in ["a@h", "b@h", "c@h"] {
            let mut commands = control.listen(name).await.expect("listen");
            let worker = control.clone();
            tokio::spawn(async move {
                while let Some(command) = commands.next().await {
                    let answer = json!({"ok": command.method});
                    worker.reply(&command, name, answer).await.expect("reply");
                }
            });
        }
        let replies = control
            .call(
                "ping",
                json!({}),
                Some(vec!["a@h".into(), "b@h".into()]),
                Duration::from_secs(5),
                Some(2),
            )
            .await
            .expect("call");
        let mut nodes: Vec<_> = replies.iter().map(|(n, _)| n.as_str()).collect();
        nodes.sort_unstable();
        assert_eq!(nodes, ["a@h", "b@h"]);
        assert_eq!(replies[0].1, json!({"ok": "ping"}));
        // Nobody addressed: nothing within the timeout.
        let none = control
            .call(
                "ping",
                json!({}),
                Some(vec!["nobody@h".into()]),
                Duration::from_millis(200),
                None,
            )
            .await
            .expect("call");
        assert!(none.is_empty());
    }

    #[test]
    fn only_control_events_addressed_here_are_commands() {
        let cmd = BusControl::command(
            "rate_limit",
            json!({"task_name": "t"}),
            Some(vec!["w@h".into()]),
            None,
        );
        assert!(parse(&cmd, "w@h")
            .is_some_and(|c| c.method == "rate_limit" && c.arguments["task_name"] == "t"));
        assert!(parse(&cmd, "x@h").is_none());
        assert!(parse(&Event::new("worker-heartbeat", "w@h", 0), "w@h").is_none());
    }
}
