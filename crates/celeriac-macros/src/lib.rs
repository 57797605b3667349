//! The `#[task]` attribute macro for celeriac.
//!
//! See [`macro@task`]. One file per macro (`task.rs`); errors are reported as
//! `compile_error!` at the offending tokens. Set `CELERIAC_MACROS_DEBUG=1` to
//! print each expansion while compiling.

use proc_macro::TokenStream;

mod task;

/// Turn a function into a celeriac task.
///
/// ```ignore
/// #[task(name = "tasks.add")]
/// fn add(x: i64, y: i64) -> Result<i64, TaskError> { Ok(x + y) }
///
/// // Producer side:
/// let result = add::delay(&app, 2, 3).await?;       // AsyncResult<i64>
/// let value = result.get(Duration::from_secs(10)).await?;
/// // Worker side:
/// let app = App::builder().task(add).build().await?;
/// ```
///
/// The function becomes a unit struct of the same name with:
/// `NAME`, `run(..)` (the original body, callable directly), `delay(&app, ..)`,
/// `apply_async(&app, (..), SendOptions)`, and an implementation of
/// `celeriac::Task` that decodes Celery `args`/`kwargs` by parameter name.
///
/// Options: `name = "…"` (default: the function name), `bind` (the first
/// parameter is `&Context`), `queue = "…"`, `priority = N`, `acks_late`,
/// `max_retries = N`, `time_limit = S`, `soft_time_limit = S`,
/// `ignore_result`, `rate_limit = "10/s"`, and retry policy:
/// `default_retry_delay = S`, `retry_backoff = S` (factor), `retry_backoff_max = S`,
/// `retry_jitter = bool`, `autoretry_for = ["IOError", …]` (error type names).
///
/// Arguments must be owned types implementing `Serialize` and
/// `DeserializeOwned`; the return type must be `Result<T, E>` where `T:
/// Serialize` and `E: Into<celeriac::TaskError>` (any `std::error::Error`
/// qualifies). `async fn` runs on the runtime; a plain `fn` on the blocking
/// pool.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    task::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
