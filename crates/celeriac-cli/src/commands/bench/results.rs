//! Reading a bench run's outcome from the result backend: which tasks are
//! still pending, and when each finished (the `date_done` it stored).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use celeriac::backend::ResultBackend;
use celeriac::protocol::{time, TaskState};
use chrono::{DateTime, Utc};
use futures::StreamExt as _;

/// How many of the last-published ids a drain watches once the queue is
/// empty: more than all the workers can hold.
pub(super) fn tail_window(workers: usize, prefetch: Option<usize>) -> usize {
    workers * (2 * prefetch.unwrap_or(0)).max(4096)
}

/// The ids among `ids` without a ready result yet.
pub(super) async fn still_pending(
    backend: &Arc<dyn ResultBackend>,
    ids: Vec<String>,
) -> anyhow::Result<Vec<String>> {
    let mut stream = futures::stream::iter(ids)
        .map(|id| {
            let backend = Arc::clone(backend);
            async move {
                let meta = backend.fetch(&id).await;
                (id, meta)
            }
        })
        .buffer_unordered(64);
    let mut pending = Vec::new();
    while let Some((id, meta)) = stream.next().await {
        let meta = meta.with_context(|| format!("reading the result of {id}"))?;
        if !meta.is_some_and(|m| m.status.is_ready()) {
            pending.push(id);
        }
    }
    Ok(pending)
}

/// Every task's completion time, from its stored result; fails if any
/// task did not succeed, or (with `expected`) returned something else.
pub(super) async fn completions(
    backend: &Arc<dyn ResultBackend>,
    ids: &[String],
    expected: Option<i64>,
    wait: Duration,
) -> anyhow::Result<HashMap<String, DateTime<Utc>>> {
    let mut stream = futures::stream::iter(ids.iter().cloned())
        .map(|id| {
            let backend = Arc::clone(backend);
            async move {
                let meta = backend.wait(&id, wait).await;
                (id, meta)
            }
        })
        .buffer_unordered(64);
    let mut done = HashMap::with_capacity(ids.len());
    while let Some((id, meta)) = stream.next().await {
        let meta = meta.with_context(|| format!("reading the result of {id}"))?;
        let Some(meta) = meta.filter(|m| m.status.is_ready()) else {
            bail!("task {id} has no result after {wait:?}");
        };
        if meta.status != TaskState::Success {
            bail!(
                "task {id} ended {}: {}; is its task registered on the workers?",
                meta.status,
                meta.result,
            );
        }
        if let Some(expected) = expected {
            if meta.result != expected {
                bail!("task {id} returned {}, not {expected}", meta.result);
            }
        }
        let at = meta
            .date_done
            .as_deref()
            .and_then(time::parse)
            .with_context(|| format!("the result of {id} has no readable date_done"))?;
        done.insert(id, at);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watched_tail_covers_every_worker_window() {
        assert_eq!(tail_window(1, None), 4096);
        assert_eq!(tail_window(2, Some(512)), 8192);
        assert_eq!(tail_window(1, Some(10_000)), 20_000);
    }
}
