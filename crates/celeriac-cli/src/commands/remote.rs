//! What `celeriac inspect`, `control` and `status` share: the remote
//! control flags Celery's commands take (`-t`, `-d`, `-j`), one call to the
//! workers over [`celeriac::App::remote_control`] (Celery's pidbox on
//! Redis and RabbitMQ, the event bus on SQLite), and Celery's way of
//! printing the replies.
//!
//! 1. [`RemoteArgs::ask`]: validate the flags, connect, send the command,
//!    collect `{node: reply}` for `--timeout` seconds (or until every
//!    `--destination` answered). No reply at all is an error naming the
//!    broker asked.
//! 2. [`print_replies`]: `->  node: OK` (or `ERROR`) and, when wanted, the
//!    reply indented below it, as `celery inspect`/`control` print them;
//!    every name and text from a worker goes through
//!    [`celeriac::printable`].

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context as _};
use celeriac::printable;
use serde_json::Value;

use crate::config::{Config, ConnectionArgs};

/// Replies by node name.
pub(crate) type Replies = BTreeMap<String, Value>;

/// The remote control flags of `celery inspect|control|status`.
#[derive(Debug, clap::Args)]
pub(crate) struct RemoteArgs {
    /// Seconds to wait for replies (on SQLite, commands and replies travel
    /// through the file, polled every 200 ms)
    #[arg(short = 't', long, value_name = "SECONDS", default_value_t = 1.0)]
    pub(crate) timeout: f64,

    /// Ask only these nodes, comma separated (e.g. celeriac@host); the
    /// command returns as soon as all of them answered
    #[arg(short = 'd', long, value_name = "NODES", value_delimiter = ',')]
    pub(crate) destination: Vec<String>,

    /// Print the replies as one JSON object {node: reply}
    #[arg(short = 'j', long)]
    pub(crate) json: bool,

    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,
}

impl RemoteArgs {
    /// Send `method` with `arguments` and collect the replies.
    ///
    /// # Errors
    /// A bad `--timeout`, a broker that cannot be reached, or no reply
    /// within the timeout (`no_reply_hint` is added to that message).
    pub(crate) async fn ask(
        &self,
        method: &str,
        arguments: Value,
        no_reply_hint: &str,
    ) -> anyhow::Result<Replies> {
        if !self.timeout.is_finite() || self.timeout <= 0.0 || self.timeout > 3600.0 {
            bail!(
                "--timeout must be a number of seconds above 0 and at most 3600, got {}",
                self.timeout
            );
        }
        let timeout = Duration::from_secs_f64(self.timeout);
        let mut destination: Vec<String> = self
            .destination
            .iter()
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty())
            .collect();
        destination.sort_unstable();
        destination.dedup();
        let config = Config::from_args(&self.connection)?;
        let app = config.connect(|b| b).await?;
        let limit = (!destination.is_empty()).then_some(destination.len());
        let target = (!destination.is_empty()).then_some(destination);
        let replies: Replies = app
            .remote_control()
            .call(method, arguments, target, timeout, limit)
            .await
            .with_context(|| {
                format!(
                    "sending {method} to the workers on {}",
                    config.broker_display()
                )
            })?
            .into_iter()
            .collect();
        if replies.is_empty() {
            let asked = if self.destination.is_empty() {
                String::new()
            } else {
                format!(" of {}", printable(&self.destination.join(", ")))
            };
            bail!(
                "no nodes{asked} replied to {method} within {} s (is a worker running on {}?{no_reply_hint})",
                self.timeout,
                config.broker_display()
            );
        }
        Ok(replies)
    }
}

/// Is this reply Celery's `{"error": …}`?
pub(crate) fn is_error(reply: &Value) -> bool {
    reply.get("error").is_some()
}

/// `celery inspect`/`control`'s layout: `->  node: OK` per node, with the
/// reply indented below when `show_reply`.
pub(crate) fn print_replies(replies: &Replies, show_reply: bool) {
    for (node, reply) in replies {
        println!(
            "->  {}: {}",
            printable(node),
            if is_error(reply) { "ERROR" } else { "OK" }
        );
        if !show_reply {
            continue;
        }
        for line in pretty(reply).lines() {
            println!("        {}", printable(line));
        }
    }
}

/// `N node(s) online.` after a blank line, as Celery ends `inspect` and
/// `status`.
pub(crate) fn print_count(replies: &Replies) {
    let n = replies.len();
    println!();
    println!("{n} node{} online.", if n == 1 { "" } else { "s" });
}

/// A reply as Celery's `pretty`: the text of `ok`/`error`, `* item` per
/// list item (`- empty -` for none), else indented JSON.
fn pretty(reply: &Value) -> String {
    match reply {
        Value::Object(map)
            if map.len() == 1 && (map.contains_key("ok") || map.contains_key("error")) =>
        {
            map.values().next().map(pretty).unwrap_or_default()
        }
        Value::Array(items) if items.is_empty() => "- empty -".to_owned(),
        Value::Array(items) => items
            .iter()
            .map(|item| format!("* {}", one_line(item)))
            .collect::<Vec<_>>()
            .join("\n"),
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// A list item on one line: strings (task names) as they are, the rest as
/// JSON.
fn one_line(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replies_read_as_celery_prints_them() {
        assert_eq!(pretty(&json!({"ok": "pong"})), "pong");
        assert_eq!(
            pretty(&json!({"error": "unknown task x"})),
            "unknown task x"
        );
        assert_eq!(pretty(&json!([])), "- empty -");
        assert_eq!(
            pretty(&json!(["tasks.add", "tasks.mul"])),
            "* tasks.add\n* tasks.mul"
        );
        assert_eq!(pretty(&json!([{"id": "a"}])), "* {\"id\":\"a\"}");
        assert!(pretty(&json!({"total": {}, "pid": 1})).contains("\"pid\": 1"));
        assert!(is_error(&json!({"error": "no"})));
        assert!(!is_error(&json!({"ok": "yes"})));
        assert!(!is_error(&json!([])));
    }
}
