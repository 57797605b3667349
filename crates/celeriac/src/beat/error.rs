//! The beat's error type.
//!
//! 1. [`BeatError`]: every way defining or running a schedule can fail, each
//!    variant naming what to fix (the entry, the field, the expression).
//! 2. Conversions from the library's [`Error`](crate::Error) for store and
//!    broker failures.

use crate::error::BoxError;

/// Everything that can go wrong in [`beat`](crate::beat).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BeatError {
    /// A crontab expression could not be parsed, or never matches.
    #[error("invalid cron expression {expression:?}: {reason}")]
    Cron {
        /// The expression as given.
        expression: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A time zone name is not in the IANA database.
    #[error("unknown time zone {0:?} (use an IANA name such as \"UTC\" or \"Europe/Berlin\")")]
    UnknownTimeZone(String),
    /// A duration such as `"300s"` could not be parsed.
    #[error("invalid duration {text:?}: {reason}")]
    Duration {
        /// The text as given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `{now…}` time template in an argument could not be parsed.
    #[error("invalid time template {template:?}: {reason}")]
    Template {
        /// The template, braces included.
        template: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An entry is invalid (bad name, duplicate name, bad option).
    #[error("schedule entry {entry:?}: {reason}")]
    Entry {
        /// The entry's name.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A schedule file could not be read or is invalid. `entry` and `field`
    /// say where, when the problem is inside one entry.
    #[error("{}", file_message(.path, .entry, .field, .reason))]
    File {
        /// The file, as given.
        path: String,
        /// The entry's name (or `#N` when it has none), if the problem is in one.
        entry: Option<String>,
        /// The field, if the problem is in one.
        field: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// The state store (Redis, SQLite) or the broker failed.
    #[error("beat store: {context}: {source}")]
    Store {
        /// What the beat was doing.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// Building a task message or publishing it failed.
    #[error(transparent)]
    Celeriac(#[from] crate::Error),
}

fn file_message(
    path: &str,
    entry: &Option<String>,
    field: &Option<String>,
    reason: &str,
) -> String {
    match (entry, field) {
        (Some(e), Some(f)) => format!("{path}: entry {e}: field `{f}`: {reason}"),
        (Some(e), None) => format!("{path}: entry {e}: {reason}"),
        (None, Some(f)) => format!("{path}: field `{f}`: {reason}"),
        (None, None) => format!("{path}: {reason}"),
    }
}

impl BeatError {
    pub(crate) fn store(context: &'static str, source: impl Into<BoxError>) -> Self {
        BeatError::Store {
            context,
            source: source.into(),
        }
    }

    pub(crate) fn entry(entry: &str, reason: impl Into<String>) -> Self {
        BeatError::Entry {
            entry: entry.to_owned(),
            reason: reason.into(),
        }
    }

    /// True for store or broker failures the scheduler retries after a pause
    /// (a Redis restart, a busy SQLite file); false for invalid definitions.
    pub fn is_transient(&self) -> bool {
        match self {
            BeatError::Store { .. } => true,
            BeatError::Celeriac(e) => e.is_transient(),
            _ => false,
        }
    }
}
