//! What a task is to the worker.
//!
//! 1. [`Task`]: the object-safe trait the `#[task]` macro implements: a name,
//!    default [`TaskOptions`], and `call` which turns JSON arguments into a
//!    [`TaskCall`] (blocking closure or future).
//! 2. [`TaskError`]: how a task fails, with the remote error type and message
//!    Celery stores; optionally asking for a retry.
//! 3. [`Context`]: what a bound task sees of its own execution.
//! 4. Argument decoding helpers used by the macro-generated code.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::backend::ResultBackend;
use crate::protocol::{ResultMeta, TaskState};

/// A registered task, as the worker sees it.
///
/// Implemented by the `#[task]` macro; implement it by hand for tasks whose
/// arguments are only known at run time.
pub trait Task: Send + Sync + 'static {
    /// The registered name, e.g. `tasks.add`.
    fn name(&self) -> &'static str;

    /// Defaults for queue, priority, acks_late, retries, limits.
    fn options(&self) -> TaskOptions {
        TaskOptions::default()
    }

    /// Decode `args`/`kwargs` and prepare the call.
    ///
    /// # Errors
    /// A [`TaskError`] of type `TypeError` naming the argument that is
    /// missing, unexpected or of the wrong type.
    fn call(
        &self,
        ctx: Context,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Result<TaskCall, TaskError>;
}

/// A prepared task call.
pub enum TaskCall {
    /// Synchronous code: runs on the blocking pool so it never stalls fetching.
    Blocking(Box<dyn FnOnce() -> Result<Value, TaskError> + Send + 'static>),
    /// Asynchronous code: runs on the tokio runtime.
    Async(BoxFuture<'static, Result<Value, TaskError>>),
}

impl TaskCall {
    /// Run the call to its end outside a worker (eager mode, `celery.map`):
    /// an async body in this task, a blocking one on the blocking pool; a
    /// panic becomes a `Panic` failure, as the worker reports one. (The
    /// worker itself adds time limits and termination, in `execute.rs`.)
    pub(crate) async fn run_to_end(self) -> Result<Value, TaskError> {
        let panicked = |_| Err(TaskError::new("Panic", "the task panicked"));
        match self {
            TaskCall::Async(future) => {
                use futures::FutureExt;
                std::panic::AssertUnwindSafe(future)
                    .catch_unwind()
                    .await
                    .unwrap_or_else(panicked)
            }
            TaskCall::Blocking(body) => tokio::task::spawn_blocking(body)
                .await
                .unwrap_or_else(|_| Err(TaskError::new("Panic", "the task panicked"))),
        }
    }
}

/// Per-task defaults, set on the `#[task]` attribute and overridable per call
/// through [`crate::SendOptions`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskOptions {
    /// Queue to send to; the app's default queue otherwise.
    pub queue: Option<String>,
    /// Priority 0–9 (0 highest, as on Redis).
    pub priority: Option<u8>,
    /// Acknowledge after the task finished rather than on receipt.
    pub acks_late: Option<bool>,
    /// How many retries a task may ask for.
    pub max_retries: Option<u32>,
    /// Hard time limit in seconds.
    pub time_limit: Option<f64>,
    /// Soft time limit in seconds.
    pub soft_time_limit: Option<f64>,
    /// Do not store the result.
    pub ignore_result: Option<bool>,
    /// Per-worker rate limit, e.g. `100/s`, `10/m`.
    pub rate_limit: Option<String>,
    /// Seconds before a retry when neither the error nor a backoff says
    /// (Celery's `default_retry_delay`, 180).
    pub default_retry_delay: Option<f64>,
    /// Exponential backoff factor in seconds: the n-th retry waits
    /// `factor × 2^n` (Celery's `retry_backoff`).
    pub retry_backoff: Option<f64>,
    /// Cap on the backoff delay in seconds (default 600).
    pub retry_backoff_max: Option<f64>,
    /// Draw the backoff delay uniformly from `[0, delay]` (default on).
    pub retry_jitter: Option<bool>,
    /// Error types (`exc_type`) that are retried automatically.
    pub autoretry_for: Vec<String>,
}

/// The Python module of the built-in exceptions (`ValueError`,
/// `TypeError`…), the default [`TaskError::exc_module`].
pub const BUILTINS: &str = "builtins";

/// How a task failed.
///
/// Any `std::error::Error` converts into it with `?`; the error's type name
/// becomes `exc_type`, so a Python caller's `get()` raises an exception of that
/// name. Construct one directly for a Python-style type such as `ValueError`,
/// and name its Python module with [`TaskError::in_module`] when it is not a
/// builtin (`sqlite3.OperationalError`), so a Python caller's `except`
/// clause catches the class it expects.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskError {
    /// Exception type name stored as `exc_type`.
    pub exc_type: String,
    /// Python module of the exception class, stored as `exc_module`
    /// ([`BUILTINS`] unless set with [`TaskError::in_module`]). Celery
    /// imports this module to rebuild the exception, so `sqlite3` makes a
    /// caller's `get()` raise the real `sqlite3.OperationalError`.
    pub exc_module: String,
    /// Message stored as `exc_message`.
    pub exc_message: String,
    /// Traceback text (a Rust error's source chain or a panic location).
    pub traceback: Option<String>,
    /// Set when the task asks to be retried.
    pub retry: Option<RetryRequest>,
}

/// A task's request to run again later.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryRequest {
    /// Wait this long; the task's backoff policy decides when `None`.
    pub countdown: Option<Duration>,
}

impl TaskError {
    /// An error of the given type and message.
    pub fn new(exc_type: impl Into<String>, exc_message: impl Into<String>) -> Self {
        TaskError {
            exc_type: exc_type.into(),
            exc_module: BUILTINS.to_owned(),
            exc_message: exc_message.into(),
            traceback: None,
            retry: None,
        }
    }

    /// The same error, of a class defined in the Python module `module`
    /// (e.g. `sqlite3`) rather than in `builtins`.
    pub fn in_module(mut self, module: impl Into<String>) -> Self {
        self.exc_module = module.into();
        self
    }

    /// Ask to be retried after `countdown` (or the task's backoff when `None`),
    /// failing with this error once retries are exhausted.
    pub fn retry(mut self, countdown: Option<Duration>) -> Self {
        self.retry = Some(RetryRequest { countdown });
        self
    }

    /// A `TypeError` about the arguments, as Python raises for a bad call.
    pub fn type_error(message: impl Into<String>) -> Self {
        Self::new("TypeError", message)
    }
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.exc_type, self.exc_message)
    }
}

impl<E: std::error::Error> From<E> for TaskError {
    fn from(err: E) -> Self {
        let mut chain = String::new();
        let mut source = err.source();
        while let Some(cause) = source {
            chain.push_str("caused by: ");
            chain.push_str(&cause.to_string());
            chain.push('\n');
            source = cause.source();
        }
        TaskError {
            exc_type: short_type_name::<E>(),
            exc_module: BUILTINS.to_owned(),
            exc_message: err.to_string(),
            traceback: (!chain.is_empty()).then_some(chain),
            retry: None,
        }
    }
}

/// `my_crate::errors::ParseError<T>` → `ParseError`.
fn short_type_name<T>() -> String {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base).to_owned()
}

/// What a bound task (`#[task(bind)]`) sees of its own execution.
#[derive(Clone)]
pub struct Context {
    inner: Arc<ContextInner>,
}

struct ContextInner {
    task_id: String,
    task_name: String,
    retries: u32,
    hostname: String,
    backend: Option<Arc<dyn ResultBackend>>,
    result_expires: Duration,
    soft_limit: tokio_util_lite::Cancelled,
    state: crate::state::AppState,
}

impl Context {
    pub(crate) fn new(
        task_id: &str,
        task_name: &str,
        retries: u32,
        hostname: &str,
        backend: Option<Arc<dyn ResultBackend>>,
        result_expires: Duration,
        state: crate::state::AppState,
    ) -> Self {
        Context {
            inner: Arc::new(ContextInner {
                task_id: task_id.to_owned(),
                task_name: task_name.to_owned(),
                retries,
                hostname: hostname.to_owned(),
                backend,
                result_expires,
                soft_limit: tokio_util_lite::Cancelled::default(),
                state,
            }),
        }
    }

    /// A context for calling a task directly in a unit test.
    pub fn detached(task_id: &str, task_name: &str) -> Self {
        Self::detached_with_state(task_id, task_name, crate::state::AppState::default())
    }

    /// [`Context::detached`] with application state, for unit tests of
    /// tasks that read [`Context::state`].
    pub fn detached_with_state(
        task_id: &str,
        task_name: &str,
        state: crate::state::AppState,
    ) -> Self {
        Self::new(
            task_id,
            task_name,
            0,
            "test",
            None,
            Duration::from_secs(60),
            state,
        )
    }

    /// This execution's task id.
    pub fn task_id(&self) -> &str {
        &self.inner.task_id
    }

    /// The task's registered name.
    pub fn task_name(&self) -> &str {
        &self.inner.task_name
    }

    /// How many times this task has been retried before this run.
    pub fn retries(&self) -> u32 {
        self.inner.retries
    }

    /// The worker's node name, `celeriac@host`.
    pub fn hostname(&self) -> &str {
        &self.inner.hostname
    }

    /// The app's result backend, for tasks that keep results under keys of
    /// their own ([`ResultBackend::set_value`], Celery's "store it in Redis
    /// yourself"); `None` for a [`Context::detached`] one.
    pub fn backend(&self) -> Option<&Arc<dyn ResultBackend>> {
        self.inner.backend.as_ref()
    }

    /// Record a custom state with its meta, e.g.
    /// `update_state("PROGRESS", json!({"current": 3, "total": 10}))`, so that
    /// `AsyncResult::state()` and monitors show progress.
    ///
    /// # Errors
    /// When the backend cannot be written; the task may carry on.
    pub async fn update_state(&self, state: &str, meta: Value) -> crate::Result<()> {
        let Some(backend) = &self.inner.backend else {
            return Ok(());
        };
        let mut doc = ResultMeta::new(&self.inner.task_id, TaskState::from_name(state), meta);
        doc.name = Some(self.inner.task_name.clone());
        backend.store(&doc, self.inner.result_expires).await
    }

    /// [`Context::update_state`] for synchronous tasks (they run on the
    /// blocking pool, where waiting on the runtime is allowed).
    pub fn update_state_blocking(&self, state: &str, meta: Value) -> crate::Result<()> {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle.block_on(self.update_state(state, meta)),
            Err(_) => Ok(()),
        }
    }

    /// The application state of type `T` registered with
    /// [`crate::AppBuilder::state`] (a pool, a configuration): see
    /// [`crate::state`].
    ///
    /// # Errors
    /// A `RuntimeError` naming the type when none was registered, so `?`
    /// fails the task clearly.
    pub fn state<T: Send + Sync + 'static>(&self) -> Result<Arc<T>, TaskError> {
        self.inner.state.require::<T>()
    }

    /// True once the soft time limit has passed: a long task should stop at
    /// the next convenient point and return an error or a partial result.
    pub fn is_cancelled(&self) -> bool {
        self.inner.soft_limit.is_set()
    }

    /// Resolves when the soft time limit passes (for `select!` in async tasks).
    pub async fn cancelled(&self) {
        self.inner.soft_limit.wait().await
    }

    pub(crate) fn cancel(&self) {
        self.inner.soft_limit.set()
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("task_id", &self.inner.task_id)
            .field("task_name", &self.inner.task_name)
            .field("retries", &self.inner.retries)
            .finish()
    }
}

/// A one-way flag that async code can wait on.
mod tokio_util_lite {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::sync::Notify;

    #[derive(Default)]
    pub(super) struct Cancelled {
        flag: AtomicBool,
        notify: Notify,
    }

    impl Cancelled {
        pub(super) fn set(&self) {
            self.flag.store(true, Ordering::SeqCst);
            self.notify.notify_waiters();
        }
        pub(super) fn is_set(&self) -> bool {
            self.flag.load(Ordering::SeqCst)
        }
        pub(super) async fn wait(&self) {
            loop {
                let notified = self.notify.notified();
                if self.is_set() {
                    return;
                }
                notified.await;
            }
        }
    }
}

/// Decoding of call arguments, used by `#[task]`-generated code.
///
/// Positional arguments are taken first, then keyword arguments by parameter
/// name, as Python binds a call; anything missing, duplicated or unexpected is
/// a `TypeError` that names it.
#[doc(hidden)]
pub struct ArgReader {
    task: &'static str,
    args: std::vec::IntoIter<Value>,
    positional: usize,
    kwargs: Map<String, Value>,
}

#[doc(hidden)]
impl ArgReader {
    pub fn new(task: &'static str, args: Vec<Value>, kwargs: Map<String, Value>) -> Self {
        ArgReader {
            task,
            positional: args.len(),
            args: args.into_iter(),
            kwargs,
        }
    }

    pub fn next<T: DeserializeOwned>(&mut self, name: &str) -> Result<T, TaskError> {
        let value = match self.args.next() {
            Some(value) => {
                if self.kwargs.contains_key(name) {
                    return Err(TaskError::type_error(format!(
                        "{}() got multiple values for argument '{name}'",
                        self.task
                    )));
                }
                value
            }
            None => self.kwargs.remove(name).ok_or_else(|| {
                TaskError::type_error(format!(
                    "{}() missing required argument: '{name}'",
                    self.task
                ))
            })?,
        };
        serde_json::from_value(value).map_err(|e| {
            TaskError::type_error(format!(
                "{}() argument '{name}' has the wrong type: {e}",
                self.task
            ))
        })
    }

    pub fn finish(mut self, expected: usize) -> Result<(), TaskError> {
        if self.args.next().is_some() {
            return Err(TaskError::type_error(format!(
                "{}() takes {expected} positional arguments but {} were given",
                self.task, self.positional
            )));
        }
        if let Some(name) = self.kwargs.keys().next() {
            return Err(TaskError::type_error(format!(
                "{}() got an unexpected keyword argument '{name}'",
                self.task
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn binds_positional_then_keyword_arguments() -> Result<(), TaskError> {
        let mut kwargs = Map::new();
        kwargs.insert("y".into(), json!(3));
        let mut reader = ArgReader::new("tasks.add", vec![json!(2)], kwargs);
        let x: i64 = reader.next("x")?;
        let y: i64 = reader.next("y")?;
        reader.finish(2)?;
        assert_eq!((x, y), (2, 3));
        Ok(())
    }

    #[test]
    fn names_the_problem_in_bad_calls() {
        let mut reader = ArgReader::new("tasks.add", vec![json!("two")], Map::new());
        let err = reader.next::<i64>("x").expect_err("wrong type");
        assert_eq!(err.exc_type, "TypeError");
        assert!(err.exc_message.contains("argument 'x'"), "{err}");

        let mut reader = ArgReader::new("tasks.add", vec![json!(1)], Map::new());
        let _: i64 = reader.next("x").expect("x");
        let err = reader.next::<i64>("y").expect_err("missing");
        assert!(err.exc_message.contains("missing required argument: 'y'"));

        let reader = ArgReader::new("tasks.add", vec![json!(1), json!(2)], Map::new());
        let err = reader.finish(1).expect_err("too many");
        assert!(err
            .exc_message
            .contains("takes 1 positional arguments but 2"));
    }

    #[test]
    fn std_errors_keep_their_type_name() {
        let err: TaskError = "x".parse::<i32>().expect_err("not a number").into();
        assert_eq!(err.exc_type, "ParseIntError");
    }
}
