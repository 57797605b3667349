//! Canvas: Celery's workflow primitives — signatures, `link`/`link_error`
//! callbacks, chains, groups and chords — wire-compatible with Celery 5.
//!
//! 1. [`Signature`] is Celery's signature dict; [`Shape`] tells a task from
//!    a chain, group, chord, chunks or map.
//! 2. [`App::apply_signature`](crate::App::apply_signature) (`apply.rs`)
//!    sends any signature as Celery's `apply_async` would: a chain's first
//!    task carries the rest in its `chain` embed (last = next), a group's
//!    members share a `group` id with their `group_index`, a chord's header
//!    parts carry the body in their `chord` embed after the chord size is
//!    recorded in the result backend. Workers use the same code to send
//!    callbacks and the next link of a chain.
//! 3. `after.rs`: what a worker does once a task has an outcome: callbacks
//!    and the next chain step after SUCCESS (before the result is stored,
//!    so `children` can name them), errbacks after FAILURE, and the chord
//!    part return, which publishes the body exactly once when the last part
//!    is counted ([`crate::backend::ResultBackend::chord_part_return`]).
//! 4. `builtins.rs`: Celery's `celery.map`, `celery.starmap` and
//!    `celery.chunks` tasks, registered on every app.
//!
//! A combination this code cannot honour is an error ([`CanvasError`]),
//! stored as the task's FAILURE by the worker, never ignored.

mod after;
mod apply;
pub(crate) mod builtins;
mod chain;
mod options;
mod signature;

pub(crate) use after::{after_failure, after_success, children, chord_part_done};
pub use apply::Sent;
pub use signature::{Shape, Signature, CHUNKS_TASK, MAP_TASK, STARMAP_TASK};

/// `group(members…)`: the members run in parallel ([`Signature::group`]).
pub fn group(members: Vec<Signature>) -> Signature {
    Signature::group(members)
}

/// `chord(header, body)`: the header runs in parallel, then `body` gets the
/// list of its results in header order ([`Signature::chord`]).
pub fn chord(header: Vec<Signature>, body: Signature) -> Signature {
    Signature::chord(header, body)
}

/// `chain![a, b, c]`: each step gets the previous step's result
/// ([`Signature::chain`]).
///
/// ```
/// use celeriac::{chain, Signature};
/// let add = |args: Vec<serde_json::Value>| Signature::new("tasks.add", args, Default::default());
/// let workflow = chain![add(vec![2.into(), 2.into()]), add(vec![4.into()]), add(vec![8.into()])];
/// assert_eq!(workflow.task, "celery.chain");
/// ```
#[macro_export]
macro_rules! chain {
    ($($step:expr),+ $(,)?) => {
        $crate::Signature::chain(::std::vec![$($step),+])
    };
}

/// Why a signature could not be applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CanvasError {
    /// The signature's JSON is not what Celery sends.
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// A combination this worker does not run.
    #[error("unsupported canvas: {0}")]
    Unsupported(String),
    /// Sending a part failed.
    #[error(transparent)]
    Send(#[from] Box<crate::Error>),
}

impl From<crate::Error> for CanvasError {
    fn from(err: crate::Error) -> Self {
        CanvasError::Send(Box::new(err))
    }
}

impl From<CanvasError> for crate::Error {
    fn from(err: CanvasError) -> Self {
        match err {
            CanvasError::Send(inner) => *inner,
            other => crate::Error::Canvas(Box::new(other)),
        }
    }
}

impl CanvasError {
    /// The task failure a worker stores when a task's links cannot be
    /// honoured: `ValueError` for a malformed or unsupported signature,
    /// kombu's `OperationalError` when sending failed (as Celery's tracer
    /// stores it).
    pub fn to_task_error(&self) -> crate::TaskError {
        match self {
            CanvasError::Send(_) => crate::TaskError::new("OperationalError", self.to_string())
                .in_module("kombu.exceptions"),
            _ => crate::TaskError::new("ValueError", self.to_string()),
        }
    }
}
