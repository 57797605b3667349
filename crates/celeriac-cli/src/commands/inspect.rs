//! `celeriac inspect`: ask workers what they are doing (Celery's `celery
//! inspect`).
//!
//! 1. On Redis, through remote control (the pidbox): the command is
//!    broadcast and each worker's reply collected for `--timeout` seconds.
//!    Python Celery workers answer too.
//! 2. On SQLite and memory brokers there is no remote control; `ping` and
//!    `stats` are answered from worker heartbeats instead (every live worker
//!    sends one every 2 s), waiting at least 3 s. The other methods say
//!    they need a Redis broker.
//! 3. Output reads like `celery inspect` (`->  node: OK` and the reply, with
//!    control characters in names escaped by [`celeriac::printable`]), or
//!    `{node: reply}` JSON with `--json`. No reply at all is an error (exit 2).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context as _};
use celeriac::{printable, App};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::config::{Config, ConnectionArgs};

/// What to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Method {
    /// Are you there? (`{"ok": "pong"}`)
    Ping,
    /// Counters, pool, broker, uptime.
    Stats,
    /// Tasks executing now.
    Active,
    /// Tasks this worker can run.
    Registered,
    /// Tasks received and waiting to execute (Redis only).
    Reserved,
    /// Tasks waiting for their ETA (Redis only).
    Scheduled,
    /// Queues consumed (Redis only).
    ActiveQueues,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Ping => "ping",
            Method::Stats => "stats",
            Method::Active => "active",
            Method::Registered => "registered",
            Method::Reserved => "reserved",
            Method::Scheduled => "scheduled",
            Method::ActiveQueues => "active_queues",
        }
    }
}

/// Arguments of `celeriac inspect`.
#[derive(Debug, clap::Args)]
pub(crate) struct InspectArgs {
    /// What to ask the workers
    #[arg(value_enum)]
    pub(crate) method: Method,

    /// Seconds to wait for replies
    #[arg(short = 't', long, value_name = "SECONDS", default_value_t = 1.0)]
    pub(crate) timeout: f64,

    /// Ask only these nodes, comma-separated (e.g. celeriac@host)
    #[arg(short = 'd', long, value_name = "NODES", value_delimiter = ',')]
    pub(crate) destination: Vec<String>,

    /// Print the replies as one JSON object {node: reply}
    #[arg(short = 'j', long)]
    pub(crate) json: bool,

    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,
}

/// `celeriac inspect METHOD`.
pub(crate) async fn run(args: InspectArgs) -> anyhow::Result<()> {
    if !args.timeout.is_finite() || args.timeout <= 0.0 || args.timeout > 3600.0 {
        bail!(
            "--timeout must be a number of seconds above 0 and at most 3600, got {}",
            args.timeout
        );
    }
    let timeout = Duration::from_secs_f64(args.timeout);
    let destination: Vec<String> = args
        .destination
        .iter()
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty())
        .collect();
    let config = Config::from_args(&args.connection)?;
    let app = config.connect(|b| b).await?;
    let replies = match app.control() {
        Some(control) => {
            let limit = (!destination.is_empty()).then_some(destination.len());
            let target = (!destination.is_empty()).then(|| destination.clone());
            control
                .call(args.method.name(), json!({}), target, timeout, limit)
                .await
                .with_context(|| format!("asking workers for {}", args.method.name()))?
                .into_iter()
                .collect::<BTreeMap<_, _>>()
        }
        None => {
            from_heartbeats(
                &app,
                args.method,
                &destination,
                timeout,
                &config.broker_display(),
            )
            .await?
        }
    };
    if replies.is_empty() {
        bail!(
            "no nodes replied within {} s (is a worker running on {}?)",
            args.timeout,
            config.broker_display()
        );
    }
    if args.json {
        println!("{}", serde_json::to_string(&replies)?);
    } else {
        print_human(&replies);
    }
    Ok(())
}

/// Answer `ping` and `stats` from heartbeats, on brokers without remote control.
async fn from_heartbeats(
    app: &App,
    method: Method,
    destination: &[String],
    timeout: Duration,
    broker: &str,
) -> anyhow::Result<BTreeMap<String, Value>> {
    if !matches!(method, Method::Ping | Method::Stats) {
        bail!(
            "inspect {} needs remote control, which needs a Redis broker (this one is {broker}); \
             on this broker, ping and stats are answered from worker heartbeats",
            method.name()
        );
    }
    eprintln!(
        "note: {broker} has no remote control; answering from worker heartbeats (Redis brokers ask the workers)"
    );
    let mut events = app
        .events()
        .subscribe()
        .await
        .context("listening for worker heartbeats")?;
    // Heartbeats come every 2 s: wait long enough to see one from each.
    let wait = timeout.max(Duration::from_secs(3));
    let deadline = tokio::time::Instant::now() + wait;
    let mut seen: BTreeMap<String, Value> = BTreeMap::new();
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.next()).await {
        let host = event.hostname().to_owned();
        if !destination.is_empty() && !destination.contains(&host) {
            continue;
        }
        match event.kind() {
            "worker-online" | "worker-heartbeat" => {
                let f = &event.fields;
                let reply = match method {
                    Method::Ping => json!({"ok": "pong"}),
                    _ => json!({
                        "active": f.get("active"), "processed": f.get("processed"),
                        "loadavg": f.get("loadavg"), "freq": f.get("freq"), "pid": f.get("pid"),
                        "sw_ident": f.get("sw_ident"), "sw_ver": f.get("sw_ver"),
                        "sw_sys": f.get("sw_sys"), "source": "heartbeat",
                    }),
                };
                seen.insert(host, reply);
            }
            "worker-offline" => {
                seen.remove(&host);
            }
            _ => {}
        }
        if !destination.is_empty() && seen.len() == destination.len() {
            break;
        }
    }
    Ok(seen)
}

/// `celery inspect`'s layout: one block per node, then a count.
fn print_human(replies: &BTreeMap<String, Value>) {
    for (node, reply) in replies {
        let error = reply.get("error").and_then(Value::as_str);
        println!(
            "->  {}: {}",
            printable(node),
            if error.is_some() { "ERROR" } else { "OK" }
        );
        let body = match reply {
            Value::Object(map) if map.len() == 1 && map.contains_key("ok") => {
                map.get("ok").map(value_text).unwrap_or_default()
            }
            Value::Array(items) if items.is_empty() => "- empty -".to_owned(),
            Value::Array(items) => items
                .iter()
                .map(|item| format!("* {}", value_text(item)))
                .collect::<Vec<_>>()
                .join("\n"),
            other => serde_json::to_string_pretty(other).unwrap_or_default(),
        };
        for line in body.lines() {
            println!("        {}", printable(line));
        }
    }
    let n = replies.len();
    println!();
    println!("{n} node{} online.", if n == 1 { "" } else { "s" });
}

/// A reply's value as one line: strings (task names, from the workers)
/// with their control characters escaped.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => printable(s).to_string(),
        other => other.to_string(),
    }
}
