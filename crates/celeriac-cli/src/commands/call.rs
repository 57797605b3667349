//! `celeriac call` and `celeriac result`: send a task by name, read a result.
//!
//! 1. `call` validates the JSON arguments (`--args` an array, `--kwargs` an
//!    object) and the options, sends with [`celeriac::App::send_task`] (the
//!    task need not be a Rust one), and prints the task id. With `--wait` it
//!    prints the result as JSON instead and the id goes to stderr.
//! 2. `result` prints the stored document (Celery's `celery-task-meta-<id>`:
//!    status, result or progress meta, traceback, date_done…) as JSON.
//!
//! Failures and timeouts become [`celeriac::Error`]s that `main` maps to exit
//! codes ([`crate::exit`]).

use std::time::Duration;

use anyhow::{bail, Context as _};
use celeriac::protocol::{time, ResultMeta, TaskState};
use celeriac::{App, SendOptions};
use serde_json::{Map, Value};

use crate::config::{Config, ConnectionArgs};
use crate::exit;

/// Arguments of `celeriac call`.
#[derive(Debug, clap::Args)]
#[command(after_help = exit::HELP)]
pub(crate) struct CallArgs {
    /// Task name, e.g. tasks.add (any name: Python workers may run it)
    pub(crate) name: String,

    /// Positional arguments as a JSON array, e.g. '[2, 3]'
    #[arg(short = 'a', long, value_name = "JSON", default_value = "[]")]
    pub(crate) args: String,

    /// Keyword arguments as a JSON object, e.g. '{"x": 2}'
    #[arg(short = 'k', long, value_name = "JSON", default_value = "{}")]
    pub(crate) kwargs: String,

    /// Run no earlier than this many seconds from now
    #[arg(long, value_name = "SECONDS", conflicts_with = "eta")]
    pub(crate) countdown: Option<f64>,

    /// Run no earlier than this time (ISO 8601; no offset means UTC)
    #[arg(long, value_name = "TIME")]
    pub(crate) eta: Option<String>,

    /// Do not run after this many seconds from now, or after this ISO 8601 time
    #[arg(long, value_name = "SECONDS|TIME")]
    pub(crate) expires: Option<String>,

    /// Priority, 0 (highest) to 9 (lowest)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=9))]
    pub(crate) priority: Option<u8>,

    /// Queue to send to [default: celery]
    #[arg(short = 'q', long, value_name = "QUEUE")]
    pub(crate) queue: Option<String>,

    /// Use this task id instead of a fresh uuid
    #[arg(long, value_name = "ID")]
    pub(crate) task_id: Option<String>,

    /// Wait for the result and print it as JSON (exit 1 if the task failed)
    #[arg(short = 'w', long)]
    pub(crate) wait: bool,

    /// With --wait: give up after this many seconds (exit 3) [default: wait forever]
    #[arg(short = 't', long, value_name = "SECONDS", requires = "wait")]
    pub(crate) timeout: Option<f64>,

    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,
}

/// Arguments of `celeriac result`.
#[derive(Debug, clap::Args)]
#[command(after_help = exit::HELP)]
pub(crate) struct ResultArgs {
    /// Task id
    pub(crate) id: String,

    /// Wait until the task is finished (exit 1 if it failed)
    #[arg(short = 'w', long)]
    pub(crate) wait: bool,

    /// With --wait: give up after this many seconds (exit 3) [default: wait forever]
    #[arg(short = 't', long, value_name = "SECONDS", requires = "wait")]
    pub(crate) timeout: Option<f64>,

    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,
}

/// A call, validated: what to send and how.
#[derive(Debug)]
struct Call {
    args: Vec<Value>,
    kwargs: Map<String, Value>,
    options: SendOptions,
    timeout: Option<Duration>,
}

/// Parse `--args`: a JSON array.
fn parse_args(text: &str) -> anyhow::Result<Vec<Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(other) => bail!(
            "--args must be a JSON array of positional arguments, e.g. '[2, 3]'; got {}",
            kind(&other)
        ),
        Err(e) => bail!("--args is not valid JSON ({e}); expected an array, e.g. '[2, 3]'"),
    }
}

/// Parse `--kwargs`: a JSON object.
fn parse_kwargs(text: &str) -> anyhow::Result<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => bail!(
            "--kwargs must be a JSON object of keyword arguments, e.g. '{{\"x\": 2}}'; got {}",
            kind(&other)
        ),
        Err(e) => {
            bail!("--kwargs is not valid JSON ({e}); expected an object, e.g. '{{\"x\": 2}}'")
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A non-negative number of seconds named by `flag`.
fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    if !value.is_finite() || value < 0.0 {
        bail!("{flag} must be a non-negative number of seconds, got {value}");
    }
    Duration::try_from_secs_f64(value).with_context(|| format!("{flag} is too large: {value}"))
}

impl Call {
    fn from_args(a: &CallArgs) -> anyhow::Result<Call> {
        if a.name.trim().is_empty() {
            bail!("the task name is empty");
        }
        let mut options = SendOptions::new();
        if let Some(s) = a.countdown {
            options = options.countdown(seconds("--countdown", s)?);
        }
        if let Some(text) = &a.eta {
            let at = time::parse(text).with_context(|| {
                format!("--eta {text:?} is not an ISO 8601 time, e.g. 2030-01-20T18:00:00Z")
            })?;
            options = options.eta(at);
        }
        if let Some(text) = &a.expires {
            options = match text.trim().parse::<f64>() {
                Ok(s) => options.expires_in(seconds("--expires", s)?),
                Err(_) => options.expires_at(time::parse(text).with_context(|| {
                    format!("--expires {text:?} is neither seconds nor an ISO 8601 time")
                })?),
            };
        }
        if let Some(p) = a.priority {
            options = options.priority(p);
        }
        if let Some(q) = &a.queue {
            if q.trim().is_empty() {
                bail!("--queue is empty");
            }
            options = options.queue(q.trim());
        }
        if let Some(id) = &a.task_id {
            options = options.task_id(id);
        }
        Ok(Call {
            args: parse_args(&a.args)?,
            kwargs: parse_kwargs(&a.kwargs)?,
            options,
            timeout: a.timeout.map(|s| seconds("--timeout", s)).transpose()?,
        })
    }
}

/// `celeriac call`.
pub(crate) async fn call(a: CallArgs) -> anyhow::Result<()> {
    let call = Call::from_args(&a)?;
    let config = Config::from_args(&a.connection)?;
    // A producer registers no tasks: the name is sent as given.
    let app = config.connect(|b| b).await?;
    let sent = app
        .send_task(&a.name, call.args, call.kwargs, call.options)
        .await
        .with_context(|| format!("sending {} to {}", a.name, config.broker_display()))?;
    if !a.wait {
        println!("{}", sent.id());
        return Ok(());
    }
    // Say where the result is awaited: a backend other than the worker's
    // would wait forever.
    eprintln!(
        "task id: {} (waiting for its result on {})",
        sent.id(),
        config.backend_display()
    );
    let value: Value = match call.timeout {
        Some(timeout) => sent
            .get(timeout)
            .await
            .with_context(|| format!("waiting for the result on {}", config.backend_display()))?,
        None => loop {
            match sent.get(Duration::from_secs(3600)).await {
                Err(celeriac::Error::Timeout(_)) => continue,
                other => break other?,
            }
        },
    };
    println!("{}", serde_json::to_string(&value)?);
    Ok(())
}

/// `celeriac result`.
pub(crate) async fn result(a: ResultArgs) -> anyhow::Result<()> {
    let timeout = a.timeout.map(|s| seconds("--timeout", s)).transpose()?;
    let config = Config::from_args(&a.connection)?;
    let app = config.connect(|b| b).await?;
    let meta = if a.wait {
        eprintln!("waiting for {} on {}", a.id, config.backend_display());
        wait_for(&app, &a.id, timeout).await?
    } else {
        app.async_result(&a.id).info().await?
    };
    let meta = meta.unwrap_or_else(|| ResultMeta {
        date_done: None,
        ..ResultMeta::new(&a.id, TaskState::Pending, Value::Null)
    });
    println!("{}", serde_json::to_string(&meta)?);
    if !a.wait {
        return Ok(());
    }
    match meta.status {
        TaskState::Success => Ok(()),
        TaskState::Revoked => Err(celeriac::Error::TaskRevoked {
            task_id: meta.task_id,
        }
        .into()),
        TaskState::Failure => Err(celeriac::Error::task_failed(meta).into()),
        _ => Err(celeriac::Error::Timeout(timeout.unwrap_or_default()).into()),
    }
}

/// Wait until the task is ready or `timeout` passes (forever when `None`);
/// returns the last document seen.
async fn wait_for(
    app: &App,
    id: &str,
    timeout: Option<Duration>,
) -> anyhow::Result<Option<ResultMeta>> {
    let chunk = Duration::from_secs(3600);
    loop {
        let meta = app.backend().wait(id, timeout.unwrap_or(chunk)).await?;
        let ready = meta.as_ref().is_some_and(|m| m.status.is_ready());
        if ready || timeout.is_some() {
            return Ok(meta);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_must_have_the_right_shape() {
        assert_eq!(parse_args("[2, 3]").ok(), Some(vec![2.into(), 3.into()]));
        let err = parse_args("{\"x\": 1}").expect_err("object").to_string();
        assert!(
            err.contains("must be a JSON array") && err.contains("an object"),
            "{err}"
        );
        let err = parse_args("[2,").expect_err("invalid").to_string();
        assert!(err.contains("not valid JSON"), "{err}");
        assert!(parse_kwargs("{\"x\": 1}").is_ok());
        let err = parse_kwargs("[1]").expect_err("array").to_string();
        assert!(
            err.contains("must be a JSON object") && err.contains("an array"),
            "{err}"
        );
    }

    #[test]
    fn options_are_validated() {
        let base = CallArgs {
            name: "tasks.add".into(),
            args: "[]".into(),
            kwargs: "{}".into(),
            countdown: None,
            eta: None,
            expires: None,
            priority: None,
            queue: None,
            task_id: None,
            wait: false,
            timeout: None,
            connection: ConnectionArgs::default(),
        };
        let bad_eta = CallArgs {
            eta: Some("tomorrow".into()),
            ..base
        };
        assert!(Call::from_args(&bad_eta).is_err());
        let expires_iso = CallArgs {
            eta: None,
            expires: Some("2030-01-20T18:00:00Z".into()),
            countdown: Some(-1.0),
            ..bad_eta
        };
        let err = Call::from_args(&expires_iso)
            .expect_err("negative countdown")
            .to_string();
        assert!(err.contains("--countdown"), "{err}");
    }
}
