//! Scheduled tasks: what waits in the broker for its ETA or countdown
//! (Celery's `inspect scheduled`, Flower's scheduled view), read from the
//! broker's delayed store ([`celeriac::broker::QueueAdmin::delayed`]) without
//! taking anything.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use celeriac::broker::DelayedInfo;
use celeriac::protocol::{time, TaskMessage};

use crate::error::ApiError;
use crate::server::Shared;
use crate::views::{ScheduledList, ScheduledTask};

/// How many tasks `GET /api/scheduled` lists when not told.
pub(crate) const DEFAULT_LIMIT: usize = 100;

/// The most it lists at once.
pub(crate) const MAX_LIMIT: usize = 1000;

/// Longer argument reprs are cut here (Celery's own `argsrepr` is cut
/// near 1,024 characters by `saferepr`).
const MAX_REPR_CHARS: usize = 1000;

/// How long the broker has to answer.
const BROKER_WAIT: Duration = Duration::from_secs(2);

/// The tasks waiting for their ETA, soonest first, at most `limit`
/// (default [`DEFAULT_LIMIT`]).
///
/// # Errors
/// 400 for a `limit` outside 1 to [`MAX_LIMIT`]; 503 when the broker does
/// not answer.
pub(crate) async fn scheduled(
    shared: &Shared,
    limit: Option<usize>,
) -> Result<ScheduledList, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {MAX_LIMIT}, got {limit}"
        )));
    }
    if let Some(why) = not_listable(&shared.app.config().broker_url) {
        return Ok(ScheduledList {
            supported: false,
            note: Some(why),
            truncated: false,
            tasks: Vec::new(),
        });
    }
    // One more than asked says whether the list was cut.
    let mut waiting =
        tokio::time::timeout(BROKER_WAIT, shared.app.broker().queues().delayed(limit + 1))
            .await
            .map_err(|_| {
                ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "the broker did not answer within {} s",
                        BROKER_WAIT.as_secs()
                    ),
                )
            })??;
    waiting.sort_by_key(|d| d.eta);
    let truncated = waiting.len() > limit;
    waiting.truncate(limit);
    let now = Utc::now();
    Ok(ScheduledList {
        supported: true,
        note: None,
        truncated,
        tasks: waiting.iter().map(|d| scheduled_task(d, now)).collect(),
    })
}

/// Why the broker at `broker_url` cannot list its waiting tasks, when it
/// cannot (its transport's [`celeriac::transport::Capabilities::lists_delayed`]).
fn not_listable(broker_url: &str) -> Option<String> {
    let transport = celeriac::Transport::parse(broker_url).ok()?;
    (!transport.capabilities().lists_delayed).then(|| {
        format!(
            "the {} broker cannot list tasks waiting for their ETA without taking them: \
             workers hold them unacknowledged until due, or they wait in RabbitMQ's TTL queues",
            transport.scheme()
        )
    })
}

/// One waiting message as the API shows it: ids from the broker's index,
/// arguments from the message (left out when it cannot be read).
fn scheduled_task(d: &DelayedInfo, now: DateTime<Utc>) -> ScheduledTask {
    let decoded = TaskMessage::decode(&d.payload).ok();
    let headers = decoded.as_ref().map(|(m, _)| &m.headers);
    let (argsrepr, kwargsrepr) = match &decoded {
        Some((m, _)) => (
            Some(cut(m
                .headers
                .argsrepr
                .clone()
                .unwrap_or_else(|| crate::pyrepr::repr_args(&m.args)))),
            Some(cut(m.headers.kwargsrepr.clone().unwrap_or_else(|| {
                crate::pyrepr::repr(&Value::Object(m.kwargs.clone()))
            }))),
        ),
        None => (None, None),
    };
    let left = (d.eta - now).num_milliseconds().max(0);
    ScheduledTask {
        id: d.task_id.clone().or_else(|| headers.map(|h| h.id.clone())),
        name: d.task.clone().or_else(|| headers.map(|h| h.task.clone())),
        queue: d.queue.clone(),
        eta: time::format(d.eta),
        eta_unix: d.eta.timestamp_micros() as f64 / 1e6,
        countdown: left as f64 / 1e3,
        argsrepr,
        kwargsrepr,
        priority: decoded.as_ref().and_then(|(_, p)| *p),
        retries: headers.map_or(0, |h| u64::from(h.retries)),
    }
}

/// `text`, cut after [`MAX_REPR_CHARS`] characters with an ellipsis.
fn cut(text: String) -> String {
    match text.char_indices().nth(MAX_REPR_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::{cut, not_listable, MAX_REPR_CHARS};

    #[test]
    fn amqp_says_it_cannot_list_waiting_tasks() {
        let why = not_listable("amqp://guest:guest@localhost:5672//").unwrap_or_default();
        assert!(why.contains("amqp broker cannot list"), "{why}");
        for listable in ["redis://localhost:6379/0", "sqlite://c.db", "memory://x"] {
            assert_eq!(not_listable(listable), None, "{listable}");
        }
    }

    #[test]
    fn long_reprs_are_cut_on_a_character() {
        assert_eq!(cut("(1, 2)".to_owned()), "(1, 2)");
        let long = "é".repeat(MAX_REPR_CHARS + 5);
        let short = cut(long);
        assert_eq!(short.chars().count(), MAX_REPR_CHARS + 1);
        assert!(short.ends_with('…'));
    }
}
