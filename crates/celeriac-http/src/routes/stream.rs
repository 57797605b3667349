//! `GET /api/events/stream`: live updates as server-sent events.
//!
//! | event | data |
//! |---|---|
//! | `task` | a task's [`TaskView`](crate::views::TaskView) after a change |
//! | `worker` | a worker's [`WorkerView`](crate::views::WorkerView) at each heartbeat |
//! | `queues` | `{queues: [QueueView], dead_letters, newest_dead_letter}` every sample |
//! | `celery` | the raw Celery event (only with `?celery=true`) |
//! | `resync` | updates were skipped (a slow client): fetch the lists again |
//!
//! All streams share the monitor's one event subscription. A stream ends
//! when the server shuts down.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::monitor::Update;
use crate::server::Shared;

/// Query of the stream.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct StreamQuery {
    /// Also send every raw Celery event.
    #[serde(default)]
    celery: bool,
}

fn to_sse(update: Update, celery: bool) -> Option<Event> {
    let (name, data) = match update {
        Update::Task(view) => ("task", serde_json::to_string(&view)),
        Update::Worker(view) => ("worker", serde_json::to_string(&view)),
        Update::Queues {
            queues,
            dead_letters,
            newest_dead_letter,
        } => (
            "queues",
            serde_json::to_string(&json!({
                "queues": queues, "dead_letters": dead_letters,
                "newest_dead_letter": newest_dead_letter,
            })),
        ),
        Update::Celery(fields) if celery => ("celery", serde_json::to_string(&fields)),
        Update::Celery(_) => return None,
    };
    Some(Event::default().event(name).data(data.ok()?))
}

/// Live task, worker and queue updates (server-sent events).
#[utoipa::path(get, path = "/api/events/stream", tag = "cluster", params(StreamQuery),
    responses((status = 200, description = "text/event-stream of task, worker and queues events", content_type = "text/event-stream")))]
pub(crate) async fn events(
    State(shared): State<Arc<Shared>>,
    ApiQuery(query): ApiQuery<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let mut updates = shared.monitor.subscribe();
    let mut shutdown = shared.shutdown.clone();
    let celery = query.celery;
    let stream = async_stream::stream! {
        yield Ok(Event::default().event("hello").data("{}"));
        loop {
            let update = tokio::select! {
                _ = shutdown.requested() => break,
                update = updates.recv() => update,
            };
            match update {
                Ok(update) => {
                    if let Some(event) = to_sse(update, celery) {
                        yield Ok(event);
                    }
                }
                Err(RecvError::Lagged(_)) => yield Ok(Event::default().event("resync").data("{}")),
                Err(RecvError::Closed) => break,
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
