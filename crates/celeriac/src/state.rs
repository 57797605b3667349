//! Application state that tasks reach through their [`crate::Context`]: a
//! database pool, a configuration, a client — registered once with
//! [`crate::AppBuilder::state`], one value per type, shared by every task
//! of the app without globals.
//!
//! ```
//! # async fn demo() -> celeriac::Result<()> {
//! use celeriac::{task, App, Context, TaskError};
//!
//! struct Greeting(String);
//!
//! #[task(name = "tasks.greet", bind)]
//! fn greet(ctx: &Context, name: String) -> Result<String, TaskError> {
//!     let greeting = ctx.state::<Greeting>()?;
//!     Ok(format!("{} {name}", greeting.0))
//! }
//!
//! let app = App::builder()
//!     .broker_url("memory://state-doc")
//!     .backend_url("memory://state-doc")
//!     .state(Greeting("hello".into()))
//!     .task(greet)
//!     .always_eager(true)
//!     .build()
//!     .await?;
//! let sent = greet::delay(&app, "ada".into()).await?;
//! assert_eq!(sent.get(std::time::Duration::from_secs(5)).await?, "hello ada");
//! # Ok(()) }
//! ```

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use crate::task::TaskError;

/// The values registered with [`crate::AppBuilder::state`], by type.
/// Cheap to clone.
#[derive(Clone, Default)]
pub struct AppState {
    values: Arc<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("values", &self.values.len())
            .finish()
    }
}

impl AppState {
    /// Register `value`, replacing any earlier value of the same type.
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        Arc::make_mut(&mut self.values).insert(TypeId::of::<T>(), Arc::new(value));
    }

    /// This state with `value` added: for unit tests of tasks, with
    /// [`crate::Context::detached_with_state`].
    pub fn with<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.insert(value);
        self
    }

    /// The value of type `T`, if one was registered.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|value| Arc::clone(value).downcast::<T>().ok())
    }

    /// As [`AppState::get`], for a task: a missing value is a
    /// `RuntimeError` naming the type, so the task fails clearly rather
    /// than panicking.
    ///
    /// # Errors
    /// When no value of type `T` was registered with the app.
    pub fn require<T: Send + Sync + 'static>(&self) -> Result<Arc<T>, TaskError> {
        self.get::<T>().ok_or_else(|| {
            TaskError::new(
                "RuntimeError",
                format!(
                    "no application state of type {} (register it with AppBuilder::state)",
                    std::any::type_name::<T>()
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Pool(u32);

    #[test]
    fn values_are_found_by_type() {
        let mut state = AppState::default();
        assert!(state.get::<Pool>().is_none());
        state.insert(Pool(1));
        state.insert(String::from("config"));
        state.insert(Pool(2));
        assert_eq!(
            state.get::<Pool>().as_deref(),
            Some(&Pool(2)),
            "the last wins"
        );
        assert_eq!(
            state.get::<String>().as_deref().map(String::as_str),
            Some("config")
        );
        let missing = state.require::<u64>().expect_err("no u64 registered");
        assert_eq!(missing.exc_type, "RuntimeError");
        assert!(
            missing.exc_message.contains("u64"),
            "{}",
            missing.exc_message
        );
    }
}
