//! The [`App`]: configuration, the task registry, and sending.
//!
//! An `App` is cheap to clone (an `Arc` inside) and is what producers and
//! workers share: the broker and result backend chosen by URL, the tasks this
//! process knows, and defaults such as the queue name and result expiry.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::backend::ResultBackend;
use crate::broker::{Broker, OutgoingMessage};
use crate::events::{EventBus, MemoryEvents};
use crate::options::SendOptions;
use crate::protocol::{time, TaskHeaders, TaskMessage};
use crate::result::AsyncResult;
use crate::task::Task;
use crate::transport::Transport;
use crate::{Error, Result};

/// The default broker and backend: the embedded SQLite file.
pub const DEFAULT_URL: &str = "sqlite://celeriac.db";

/// Header carrying a per-call acks_late override (Python workers ignore it).
pub(crate) const ACKS_LATE_HEADER: &str = "celeriac_acks_late";
/// Header carrying a per-call max_retries override.
pub(crate) const MAX_RETRIES_HEADER: &str = "celeriac_max_retries";

/// Settings shared by producers and workers.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Broker URL (`redis://`, `rediss://`, `sentinel://`, `sqlite://`, `amqp://`, `memory://`).
    pub broker_url: String,
    /// Result backend URL.
    pub backend_url: String,
    /// Queue for tasks that name none (Celery's `task_default_queue`).
    pub default_queue: String,
    /// How long results are kept (Celery's `result_expires`, 1 day).
    pub result_expires: Duration,
    /// How long a reservation lasts before redelivery (kombu's default 1 h).
    pub visibility_timeout: Duration,
    /// Prefix for every Redis key (kombu's `global_keyprefix`).
    pub key_prefix: String,
    /// The Redis master a `sentinel://` broker or backend follows (Celery's
    /// transport option `master_name`); a URL's own `?master_name=` wins.
    pub master_name: Option<String>,
    /// Compress task messages this app sends (Celery's `task_compression`;
    /// `None`, the default, sends them uncompressed). Celery and Celeriac
    /// workers both read zlib (`gzip`) and bzip2 bodies.
    pub task_compression: Option<crate::protocol::Compression>,
    /// Run tasks registered in this app at once, in the sending process,
    /// instead of sending them (Celery's `task_always_eager`; for tests).
    /// See [`crate::eager`].
    pub task_always_eager: bool,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            broker_url: DEFAULT_URL.to_owned(),
            backend_url: DEFAULT_URL.to_owned(),
            default_queue: "celery".to_owned(),
            result_expires: Duration::from_secs(24 * 3600),
            visibility_timeout: Duration::from_secs(3600),
            key_prefix: String::new(),
            master_name: None,
            task_compression: None,
            task_always_eager: false,
        }
    }
}

/// A Celeriac application: broker, backend, and registered tasks.
#[derive(Clone)]
pub struct App {
    inner: Arc<AppInner>,
}

struct AppInner {
    config: AppConfig,
    broker: Arc<dyn Broker>,
    backend: Arc<dyn ResultBackend>,
    events: Arc<dyn EventBus>,
    #[cfg(feature = "redis")]
    control: Option<crate::control::Control>,
    tasks: HashMap<&'static str, Arc<dyn Task>>,
    state: crate::state::AppState,
    origin: String,
    /// The broker was built from `config.broker_url` (not given as an object).
    broker_from_url: bool,
}

/// Builds an [`App`].
#[derive(Default)]
pub struct AppBuilder {
    config: AppConfig,
    broker: Option<Arc<dyn Broker>>,
    backend: Option<Arc<dyn ResultBackend>>,
    events: Option<Arc<dyn EventBus>>,
    tasks: HashMap<&'static str, Arc<dyn Task>>,
    state: crate::state::AppState,
}

impl AppBuilder {
    /// Use the broker at `url`.
    pub fn broker_url(mut self, url: impl Into<String>) -> Self {
        self.config.broker_url = url.into();
        self
    }

    /// Use the result backend at `url`.
    pub fn backend_url(mut self, url: impl Into<String>) -> Self {
        self.config.backend_url = url.into();
        self
    }

    /// Use an already-built broker instead of a URL.
    pub fn broker(mut self, broker: Arc<dyn Broker>) -> Self {
        self.broker = Some(broker);
        self
    }

    /// Use an already-built backend instead of a URL.
    pub fn backend(mut self, backend: Arc<dyn ResultBackend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Use an already-built event transport instead of the broker URL's.
    pub fn events(mut self, events: Arc<dyn EventBus>) -> Self {
        self.events = Some(events);
        self
    }

    /// Replace the whole configuration.
    pub fn config(mut self, config: AppConfig) -> Self {
        self.config = config;
        self
    }

    /// Run registered tasks at once in this process instead of sending them
    /// (Celery's `task_always_eager`, for tests; see [`crate::eager`]).
    pub fn always_eager(mut self, eager: bool) -> Self {
        self.config.task_always_eager = eager;
        self
    }

    /// Share `value` with every task of the app: a task reads it with
    /// [`crate::Context::state`], other code with [`App::state`]. One value
    /// per type (a later one of the same type replaces it); wrap values in
    /// a type of your own to keep two of a kind apart.
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// Reservation lease before redelivery.
    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        self.config.visibility_timeout = timeout;
        self
    }

    /// How long results are kept.
    pub fn result_expires(mut self, expires: Duration) -> Self {
        self.config.result_expires = expires;
        self
    }

    /// Register a task so workers of this app can run it.
    pub fn task(mut self, task: impl Task) -> Self {
        self.tasks.insert(task.name(), Arc::new(task));
        self
    }

    /// Register a task given as a trait object.
    pub fn task_arc(mut self, task: Arc<dyn Task>) -> Self {
        self.tasks.insert(task.name(), task);
        self
    }

    /// Connect the broker and backend and build the app.
    ///
    /// # Errors
    /// When a URL is invalid or its server cannot be reached.
    pub async fn build(self) -> Result<App> {
        let from_url = self.broker.is_none();
        // What the URLs mean is decided once, here, by the transport.
        let (broker, transport) = match self.broker {
            Some(b) => (b, None),
            None => {
                let transport = Transport::parse(&self.config.broker_url)?;
                (transport.broker(&self.config).await?, Some(transport))
            }
        };
        let backend = match self.backend {
            Some(b) => b,
            None => {
                Transport::parse(&self.config.backend_url)?
                    .backend(&self.config)
                    .await?
            }
        };
        let events = match (self.events, &transport) {
            (Some(e), _) => e,
            (None, Some(transport)) => transport.events(&self.config).await?,
            (None, None) => Arc::new(MemoryEvents::new()),
        };
        #[cfg(feature = "redis")]
        let control = match &transport {
            Some(transport) => transport.control(&self.config).await?,
            None => None,
        };
        let host = hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".to_owned());
        Ok(App {
            inner: Arc::new(AppInner {
                origin: format!("{}@{host}", std::process::id()),
                config: self.config,
                broker,
                backend,
                events,
                #[cfg(feature = "redis")]
                control,
                tasks: self.tasks,
                state: self.state,
                broker_from_url: from_url,
            }),
        })
    }
}

impl App {
    /// Start building an app; defaults to the embedded SQLite file.
    pub fn builder() -> AppBuilder {
        AppBuilder::default()
    }

    /// The configuration.
    pub fn config(&self) -> &AppConfig {
        &self.inner.config
    }

    /// The broker.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.inner.broker
    }

    /// True when the broker was built from `config().broker_url`, so code
    /// that opens the same URL (the beat's store) reaches the same queues.
    pub(crate) fn broker_from_url(&self) -> bool {
        self.inner.broker_from_url
    }

    /// The value of type `T` registered with [`AppBuilder::state`].
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.inner.state.get::<T>()
    }

    /// Everything registered with [`AppBuilder::state`] (tasks get it
    /// through their [`crate::Context`]).
    pub(crate) fn app_state(&self) -> &crate::state::AppState {
        &self.inner.state
    }

    /// The result backend.
    pub fn backend(&self) -> &Arc<dyn ResultBackend> {
        &self.inner.backend
    }

    /// The event transport (worker and task events, for monitors).
    pub fn events(&self) -> &Arc<dyn EventBus> {
        &self.inner.events
    }

    /// Remote control of workers (Celery's pidbox), when the broker is Redis.
    #[cfg(feature = "redis")]
    pub fn control(&self) -> Option<&crate::control::Control> {
        self.inner.control.as_ref()
    }

    /// A registered task by name.
    pub fn task(&self, name: &str) -> Option<&Arc<dyn Task>> {
        self.inner.tasks.get(name)
    }

    /// Names of all registered tasks, sorted.
    pub fn task_names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.inner.tasks.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// A handle on the result of task `id` (any task, sent by anyone).
    pub fn async_result(&self, id: impl Into<String>) -> AsyncResult<Value> {
        AsyncResult::new(id.into(), Arc::clone(&self.inner.backend))
    }

    /// Send a task by name with JSON arguments, as Celery's `send_task`.
    /// The task need not be registered here (it may be a Python task).
    ///
    /// # Errors
    /// When the broker cannot be written.
    pub async fn send_task(
        &self,
        name: &str,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
        options: SendOptions,
    ) -> Result<AsyncResult<Value>> {
        let (message, outgoing) = self.prepare(name, args, kwargs, options)?;
        if self.inner.config.task_always_eager && crate::eager::run(self, &message).await? {
            return Ok(self.async_result(message.headers.id));
        }
        self.inner.broker.publish(outgoing).await?;
        Ok(self.async_result(message.headers.id))
    }

    /// Revoke tasks: workers skip them if they have not started, and with
    /// `terminate` stop them if they are running (async tasks; see the
    /// worker docs for sync ones). Recorded in the broker for a day, so
    /// workers started later honour it too.
    ///
    /// # Errors
    /// When the broker cannot be written.
    pub async fn revoke(&self, task_ids: &[String], terminate: bool) -> Result<()> {
        self.inner
            .broker
            .revocations()
            .revoke(task_ids, terminate, Duration::from_secs(24 * 3600))
            .await?;
        #[cfg(feature = "redis")]
        if let Some(control) = self.control() {
            // Python workers learn it through Celery's pidbox broadcast.
            let arguments = serde_json::json!({"task_id": task_ids, "terminate": terminate, "signal": "SIGTERM"});
            let _ = control.broadcast("revoke", arguments, None).await;
        }
        Ok(())
    }

    /// Send many calls in one round trip (pipelined on Redis, one
    /// transaction on SQLite). Returns the task ids in order.
    ///
    /// # Errors
    /// When the broker cannot be written.
    pub async fn send_batch(
        &self,
        calls: impl IntoIterator<Item = (String, Vec<Value>, Map<String, Value>, SendOptions)>,
    ) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let mut batch = Vec::new();
        for (name, args, kwargs, options) in calls {
            let (message, outgoing) = self.prepare(&name, args, kwargs, options)?;
            ids.push(message.headers.id);
            batch.push(outgoing);
        }
        self.inner.broker.publish_batch(batch).await?;
        Ok(ids)
    }

    /// Build the protocol message and the broker message for one call.
    pub(crate) fn prepare(
        &self,
        name: &str,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
        options: SendOptions,
    ) -> Result<(TaskMessage, OutgoingMessage)> {
        let options = match self.task(name) {
            Some(task) => options.with_defaults(&task.options()),
            None => options,
        };
        let id = options
            .task_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let eta = match (options.eta, options.countdown) {
            (Some(at), _) => Some(at),
            (None, Some(delay)) => {
                Some(crate::protocol::time::from_now(delay).ok_or_else(|| {
                    Error::InvalidArgument("countdown is too large (past the year 9999)".into())
                })?)
            }
            (None, None) => None,
        };
        let t = &options.task;
        if let Some(p) = t.priority {
            if p > 9 {
                return Err(Error::InvalidArgument(format!(
                    "priority must be 0 (highest) to 9 (lowest), got {p}"
                )));
            }
        }
        let mut headers = TaskHeaders::new(name, &id);
        headers.eta = eta.map(time::format);
        headers.expires = options.expires.map(time::format);
        headers.timelimit = (t.time_limit, t.soft_time_limit);
        headers.retries = options.retries;
        headers.ignore_result = t.ignore_result.unwrap_or(false);
        headers.origin = Some(self.inner.origin.clone());
        headers.argsrepr = Some(python_repr_args(&args));
        headers.kwargsrepr = Some(python_repr(&Value::Object(kwargs.clone())));
        if let Some(parent) = &options.parent_id {
            headers.parent_id = Some(parent.clone());
        }
        if let Some(root) = &options.root_id {
            headers.root_id = Some(root.clone());
        }
        if let Some((group, index)) = &options.group {
            headers.group = Some(group.clone());
            headers.group_index = *index;
        }
        if let Some(late) = t.acks_late {
            headers.extra.insert(ACKS_LATE_HEADER.into(), late.into());
        }
        if let Some(max) = t.max_retries {
            headers.extra.insert(MAX_RETRIES_HEADER.into(), max.into());
        }
        headers.set_compression(self.inner.config.task_compression);
        let message = TaskMessage {
            headers,
            args,
            kwargs,
            embed: options.embed,
        };
        let queue = t
            .queue
            .clone()
            .unwrap_or_else(|| self.inner.config.default_queue.clone());
        let priority = t.priority.unwrap_or(0);
        let payload = message.to_envelope(&queue, Some(priority)).to_vec();
        let outgoing = OutgoingMessage {
            queue,
            priority,
            not_before: eta,
            payload,
        };
        Ok((message, outgoing))
    }
}

/// `(2, 3)` — how Python shows an args tuple, for monitors.
fn python_repr_args(args: &[Value]) -> String {
    let items: Vec<String> = args.iter().map(python_repr).collect();
    if items.len() == 1 {
        format!("({},)", items[0])
    } else {
        format!("({})", items.join(", "))
    }
}

/// A Python-looking repr of a JSON value (`None`, `True`, `'text'`,
/// `[1, 2]`, `{'k': 1}`), truncated like Celery's (1 KiB): what Celery
/// writes in `argsrepr`, and how `celeriac events --dump` shows values.
pub fn python_repr(value: &Value) -> String {
    let text = match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(python_repr).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("'{k}': {}", python_repr(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    };
    if text.len() > 1024 {
        let mut cut = 1024;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &text[..cut])
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reprs_read_like_python() {
        assert_eq!(python_repr_args(&[json!(2), json!(3)]), "(2, 3)");
        assert_eq!(python_repr_args(&[json!("a")]), "('a',)");
        assert_eq!(
            python_repr(&json!({"k": [true, null]})),
            "{'k': [True, None]}"
        );
    }
}
