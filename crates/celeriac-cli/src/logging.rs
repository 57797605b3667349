//! Logging to stderr with `tracing-subscriber`.
//!
//! The filter comes from `--loglevel` if given, else `RUST_LOG`, else the
//! command's default (`info` for the worker, `warn` for one-shot commands,
//! whose stdout is meant for scripts). Stdout is never written by logging.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// Install the subscriber; a second call (or one from another component)
/// is ignored.
pub(crate) fn init(loglevel: Option<&str>, default: &str) {
    let filter = match loglevel {
        Some(level) => EnvFilter::try_new(level.to_ascii_lowercase()),
        None => EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(default)),
    };
    let filter = filter.unwrap_or_else(|err| {
        eprintln!("warning: ignoring invalid log filter ({err}); using {default:?}");
        EnvFilter::new(default)
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// Report panics through the log instead of the default hook's raw stderr
/// text: in a worker a panicking task is an ordinary (failed) task, which the
/// worker also records as a FAILURE with the panic message. Set
/// `RUST_BACKTRACE=1` to log the backtrace too.
pub(crate) fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_owned());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let backtrace = std::backtrace::Backtrace::capture();
        if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
            tracing::error!(%location, "panic: {message}\n{backtrace}");
        } else {
            tracing::error!(%location, "panic: {message}");
        }
    }));
}
