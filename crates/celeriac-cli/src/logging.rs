//! Logging to stderr with `tracing-subscriber`.
//!
//! The filter comes from `--loglevel` if given, else `RUST_LOG`, else the
//! command's default (`info` for the worker, `warn` for one-shot commands,
//! whose stdout is meant for scripts). Stdout is never written by logging.
//!
//! Every field value and message is written through
//! [`celeriac::printable::EscapeWriter`]: task names, queues and reasons come
//! from callers, and a newline or terminal escape sequence in one must not
//! forge a log line or drive the terminal ([`EscapedFields`]).

use std::fmt;
use std::fmt::Write as _;
use std::io::IsTerminal as _;

use celeriac::printable::EscapeWriter;
use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;
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
        .fmt_fields(EscapedFields)
        .try_init();
}

/// Formats an event's fields as the default formatter does (the message,
/// then `name=value` pairs), with control characters in every value escaped.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Writes each field it visits, escaped.
struct EscapingVisitor<'writer> {
    writer: Writer<'writer>,
    empty: bool,
    result: fmt::Result,
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        // Quoted, as the default formatter shows strings.
        self.record_debug(field, &value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        let separator = if self.empty { "" } else { " " };
        self.empty = false;
        let name = field.name();
        self.result = if name == "message" {
            write!(self.writer, "{separator}")
                .and_then(|()| write!(EscapeWriter(&mut self.writer), "{value:?}"))
        } else {
            let name = name.strip_prefix("r#").unwrap_or(name);
            write!(self.writer, "{separator}{name}=")
                .and_then(|()| write!(EscapeWriter(&mut self.writer), "{value:?}"))
        };
    }
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
        tracing::error!(%location, "panic: {message}");
        if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
            // The program's own text, kept on several lines (log fields are
            // escaped onto one).
            eprintln!("{backtrace}");
        }
    }));
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::EscapedFields;

    /// A writer collecting what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn control_characters_in_fields_and_messages_are_escaped() {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .with_target(false)
            .fmt_fields(EscapedFields)
            .finish();
        let name = "tasks.evil\n2024-01-01 ERROR forged line\u{1b}]0;owned\u{7}";
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(task = %name, queue = name, id = 7, "unknown task {name}");
        });
        let bytes = captured.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let text = String::from_utf8(bytes).expect("UTF-8 log");
        assert_eq!(text.matches('\n').count(), 1, "one line: {text:?}");
        assert!(text.ends_with('\n'));
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{text:?}"
        );
        assert!(
            text.contains(
                "unknown task tasks.evil\\n2024-01-01 ERROR forged line\\u{1b}]0;owned\\u{7}"
            ),
            "{text:?}"
        );
        assert!(text.contains(" task=tasks.evil\\n"), "{text:?}");
        assert!(text.contains(" queue=\"tasks.evil\\n"), "{text:?}");
        assert!(text.contains(" id=7"), "{text:?}");
    }
}
