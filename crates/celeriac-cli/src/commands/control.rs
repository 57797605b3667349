//! `celeriac control METHOD [ARGS]…`: change running workers, as `celery
//! control` does, on every broker.
//!
//! 1. Parse METHOD and its arguments here, with Celery's names and
//!    argument order (`rate_limit TASK RATE`, `time_limit TASK SOFT
//!    [HARD]`, `add_consumer QUEUE`…), so a mistake is reported before
//!    anything is sent.
//! 2. Send it through remote control ([`super::remote`]) and print each
//!    worker's reply as Celery does (`->  node: OK` and the reply below).
//! 3. Exit 0 when every node that answered accepted; 2 when one refused
//!    (an unknown task, a pool that cannot shrink further) or none
//!    answered.

use anyhow::bail;
use serde_json::{json, Map, Value};

use super::remote::{is_error, print_replies, RemoteArgs};

/// What to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Method {
    /// TASK RATE: limit how often TASK starts, per worker (10/s, 100/m,
    /// 1000/h; 0 lifts the limit)
    #[value(name = "rate_limit", alias = "rate-limit")]
    RateLimit,
    /// TASK SOFT [HARD]: time limits in seconds for TASK (a message's own
    /// limits still win; HARD left out means none)
    #[value(name = "time_limit", alias = "time-limit")]
    TimeLimit,
    /// Stop the workers gracefully (running tasks finish first)
    Shutdown,
    /// QUEUE: start consuming from QUEUE (declared if new)
    #[value(name = "add_consumer", alias = "add-consumer")]
    AddConsumer,
    /// QUEUE: stop consuming from QUEUE
    #[value(name = "cancel_consumer", alias = "cancel-consumer")]
    CancelConsumer,
    /// Start sending task events (what `celeriac events` and monitors show)
    #[value(name = "enable_events", alias = "enable-events")]
    EnableEvents,
    /// Stop sending task events
    #[value(name = "disable_events", alias = "disable-events")]
    DisableEvents,
    /// [N=1]: run N more tasks at once (more threads for sync tasks)
    #[value(name = "pool_grow", alias = "pool-grow")]
    PoolGrow,
    /// [N=1]: run N fewer tasks at once, as running ones finish (at least
    /// one is kept)
    #[value(name = "pool_shrink", alias = "pool-shrink")]
    PoolShrink,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::RateLimit => "rate_limit",
            Method::TimeLimit => "time_limit",
            Method::Shutdown => "shutdown",
            Method::AddConsumer => "add_consumer",
            Method::CancelConsumer => "cancel_consumer",
            Method::EnableEvents => "enable_events",
            Method::DisableEvents => "disable_events",
            Method::PoolGrow => "pool_grow",
            Method::PoolShrink => "pool_shrink",
        }
    }

    /// The arguments it takes, as Celery's `--list` shows them.
    fn signature(self) -> &'static str {
        match self {
            Method::RateLimit => "TASK RATE (e.g. rate_limit tasks.add 10/m)",
            Method::TimeLimit => "TASK SOFT [HARD] (seconds, e.g. time_limit tasks.add 30 60)",
            Method::AddConsumer => "QUEUE [EXCHANGE [TYPE [ROUTING_KEY]]]",
            Method::CancelConsumer => "QUEUE",
            Method::PoolGrow | Method::PoolShrink => "[N] (default 1)",
            Method::Shutdown | Method::EnableEvents | Method::DisableEvents => "no arguments",
        }
    }

    /// The `arguments` of the command, from the words after METHOD.
    fn arguments(self, words: &[String]) -> anyhow::Result<Value> {
        let (min, max) = match self {
            Method::RateLimit => (2, 2),
            Method::TimeLimit => (2, 3),
            Method::AddConsumer => (1, 4),
            Method::CancelConsumer => (1, 1),
            Method::PoolGrow | Method::PoolShrink => (0, 1),
            Method::Shutdown | Method::EnableEvents | Method::DisableEvents => (0, 0),
        };
        if words.len() < min || words.len() > max {
            bail!(
                "control {} takes {}, got {} argument{}",
                self.name(),
                self.signature(),
                words.len(),
                if words.len() == 1 { "" } else { "s" }
            );
        }
        let mut args = Map::new();
        match self {
            Method::RateLimit => {
                let (task, rate) = (&words[0], &words[1]);
                celeriac::worker::parse_rate_limit(rate)
                    .map_err(|e| anyhow::anyhow!("control rate_limit: {e} (0 lifts the limit)"))?;
                args.insert("task_name".into(), json!(task));
                args.insert("rate_limit".into(), json!(rate));
            }
            Method::TimeLimit => {
                args.insert("task_name".into(), json!(words[0]));
                args.insert("soft".into(), json!(seconds("SOFT", &words[1])?));
                if let Some(hard) = words.get(2) {
                    args.insert("hard".into(), json!(seconds("HARD", hard)?));
                }
            }
            Method::AddConsumer => {
                for (key, word) in ["queue", "exchange", "exchange_type", "routing_key"]
                    .iter()
                    .zip(words)
                {
                    args.insert((*key).into(), json!(word));
                }
            }
            Method::CancelConsumer => {
                args.insert("queue".into(), json!(words[0]));
            }
            Method::PoolGrow | Method::PoolShrink => {
                let n = match words.first() {
                    None => 1,
                    Some(word) => {
                        word.parse::<u64>()
                            .ok()
                            .filter(|n| *n >= 1)
                            .ok_or_else(|| {
                                anyhow::anyhow!(
                                    "control {}: N must be a whole number from 1, got {word:?}",
                                    self.name()
                                )
                            })?
                    }
                };
                args.insert("n".into(), json!(n));
            }
            Method::Shutdown | Method::EnableEvents | Method::DisableEvents => {}
        }
        if matches!(self, Method::RateLimit | Method::TimeLimit) && words[0].trim().is_empty() {
            bail!("control {}: TASK must not be empty", self.name());
        }
        if matches!(self, Method::AddConsumer | Method::CancelConsumer)
            && words[0].trim().is_empty()
        {
            bail!("control {}: QUEUE must not be empty", self.name());
        }
        Ok(Value::Object(args))
    }
}

/// A number of seconds, 0 or more.
fn seconds(what: &str, word: &str) -> anyhow::Result<f64> {
    match word.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(s),
        _ => {
            bail!("control time_limit: {what} must be a number of seconds, 0 or more, got {word:?}")
        }
    }
}

/// Arguments of `celeriac control`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    celeriac control rate_limit tasks.add 10/m\n  \
    celeriac control time_limit tasks.sleep 30 60 -d celeriac@host\n  \
    celeriac control add_consumer reports\n  \
    celeriac control pool_grow 2\n  \
    celeriac control shutdown -d celeriac@host\n\n\
    Works on Redis (Python Celery workers answer too) and on SQLite (through the file's \
    event table). Exit status 2 when no worker replied or one refused.")]
pub(crate) struct ControlArgs {
    /// What to change
    #[arg(value_enum)]
    method: Method,

    /// The method's arguments (see the list of methods above)
    #[arg(value_name = "ARGS", allow_negative_numbers = true)]
    words: Vec<String>,

    #[command(flatten)]
    remote: RemoteArgs,
}

/// `celeriac control METHOD [ARGS]…`.
pub(crate) async fn run(args: ControlArgs) -> anyhow::Result<()> {
    let method = args.method;
    let arguments = method.arguments(&args.words)?;
    let hint = if method == Method::Shutdown {
        "; Python Celery workers stop without answering shutdown"
    } else {
        ""
    };
    let replies = args.remote.ask(method.name(), arguments, hint).await?;
    if args.remote.json {
        println!("{}", serde_json::to_string(&replies)?);
    } else {
        print_replies(&replies, true);
    }
    let refused: Vec<&str> = replies
        .iter()
        .filter(|(_, reply)| is_error(reply))
        .map(|(node, _)| node.as_str())
        .collect();
    if !refused.is_empty() {
        bail!(
            "{} of {} node{} refused {}: {}",
            refused.len(),
            replies.len(),
            if replies.len() == 1 { "" } else { "s" },
            method.name(),
            celeriac::printable(&refused.join(", "))
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn arguments_are_celerys() {
        assert_eq!(
            Method::RateLimit
                .arguments(&words(&["tasks.add", "10/m"]))
                .expect("ok"),
            json!({"task_name": "tasks.add", "rate_limit": "10/m"})
        );
        assert_eq!(
            Method::TimeLimit
                .arguments(&words(&["tasks.add", "1.5"]))
                .expect("ok"),
            json!({"task_name": "tasks.add", "soft": 1.5})
        );
        assert_eq!(
            Method::TimeLimit
                .arguments(&words(&["tasks.add", "1", "2"]))
                .expect("ok"),
            json!({"task_name": "tasks.add", "soft": 1.0, "hard": 2.0})
        );
        assert_eq!(
            Method::AddConsumer
                .arguments(&words(&["q", "ex"]))
                .expect("ok"),
            json!({"queue": "q", "exchange": "ex"})
        );
        assert_eq!(
            Method::PoolGrow.arguments(&[]).expect("ok"),
            json!({"n": 1})
        );
        assert_eq!(
            Method::PoolShrink.arguments(&words(&["3"])).expect("ok"),
            json!({"n": 3})
        );
        assert_eq!(Method::Shutdown.arguments(&[]).expect("ok"), json!({}));
    }

    #[test]
    fn mistakes_are_named_before_anything_is_sent() {
        let err = |m: Method, w: &[&str]| m.arguments(&words(w)).expect_err("refused").to_string();
        assert!(err(Method::RateLimit, &["tasks.add"]).contains("takes TASK RATE"));
        assert!(err(Method::RateLimit, &["tasks.add", "fast"]).contains("invalid rate limit"));
        assert!(err(Method::TimeLimit, &["t", "soon"]).contains("SOFT must be a number"));
        assert!(err(Method::TimeLimit, &["t", "1", "-2"]).contains("HARD must be"));
        assert!(err(Method::PoolGrow, &["0"]).contains("whole number from 1"));
        assert!(err(Method::Shutdown, &["now"]).contains("takes no arguments"));
        assert!(err(Method::CancelConsumer, &[""]).contains("QUEUE must not be empty"));
    }
}
