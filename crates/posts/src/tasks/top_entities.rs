//! `tasks.count_top_named_entities(k, from_, to, result_key)`: the `k`
//! entities mentioned by the most posts in a time window, stored under an
//! explicit key.
//!
//! 1. One parameterized statement reads the text of every post created
//!    between `from` and `to` (inclusive), in batches.
//! 2. Worker threads (one per core) extract each text's distinct entities
//!    ([`crate::entities::Extractor::distinct`]: a post counts once per
//!    entity, as the original's `Counter.update(set(...))`) into their own
//!    counters, merged at the end.
//! 3. Ranking is deterministic: count descending, then entity ascending (by
//!    code point; the original's ties followed dictionary insertion order).
//! 4. [`record_json`] writes `{"top_named_entities": [[entity, count], …],
//!    "timestamp": "<naive UTC ISO-8601>"}`; the task stores it with the app's
//!    result backend's `set_value` (a plain Redis key on Redis, the
//!    `celeriac_kv` table on SQLite) and returns `true`.

use std::collections::HashMap;
use std::sync::{mpsc, Mutex};

use celeriac::Context;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{PostsConfig, TasksError};
use crate::db;
use crate::entities::Extractor;

/// The text of every post in the window.
const SQL: &str = "SELECT post_blob ->> '$.text' FROM posts WHERE created_at BETWEEN ?1 AND ?2";

/// Texts handed to a counting thread at a time.
const BATCH: usize = 512;

/// The top `k` (all when `None`) entities by the number of posts created
/// between `from` and `to` (inclusive) that mention them, count descending
/// then entity ascending.
///
/// # Errors
/// [`TasksError::Db`] when the database cannot be opened, [`TasksError::Sql`]
/// when it cannot be read.
pub fn count_top_named_entities(
    config: &PostsConfig,
    k: Option<usize>,
    from: &str,
    to: &str,
) -> Result<Vec<(String, u64)>, TasksError> {
    let conn = db::open_read_only(&config.db_path)?;
    let mut stmt = conn.prepare(SQL).map_err(TasksError::sql)?;
    let mut rows = stmt.query([from, to]).map_err(TasksError::sql)?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let (send, receive) = mpsc::sync_channel::<Vec<String>>(threads * 2);
    let receive = Mutex::new(receive);
    let counts = std::thread::scope(|scope| -> Result<_, TasksError> {
        let counters: Vec<_> = (0..threads)
            .map(|_| scope.spawn(|| count_batches(&receive)))
            .collect();
        let mut batch = Vec::with_capacity(BATCH);
        let read = loop {
            match rows.next() {
                Ok(Some(row)) => {
                    let text = row.get_ref(0).ok().and_then(|v| v.as_str().ok());
                    batch.push(text.unwrap_or("").to_owned());
                    if batch.len() == BATCH {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        if send.send(full).is_err() {
                            break Ok(());
                        }
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(TasksError::sql(e)),
            }
        };
        if !batch.is_empty() {
            let _ = send.send(batch);
        }
        drop(send);
        let mut total: HashMap<String, u64> = HashMap::new();
        for counter in counters {
            // A panicking extractor thread loses its counts; the others
            // still merge (the task reports what it could count).
            let Ok(counts) = counter.join() else { continue };
            if total.is_empty() {
                total = counts;
                continue;
            }
            for (entity, n) in counts {
                *total.entry(entity).or_insert(0) += n;
            }
        }
        read.map(|()| total)
    })?;
    Ok(top_k(counts, k))
}

/// Count the distinct entities of each text received until the channel
/// closes.
fn count_batches(receive: &Mutex<mpsc::Receiver<Vec<String>>>) -> HashMap<String, u64> {
    let extractor = Extractor::new();
    let mut counts: HashMap<String, u64> = HashMap::new();
    loop {
        let next = receive.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(batch) = next else { break };
        // A panic in the extractor must not end this thread: the reader
        // would then wait forever for it to take the next batch.
        let counted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for text in &batch {
                for entity in extractor.distinct(text) {
                    match counts.get_mut(&entity) {
                        Some(n) => *n += 1,
                        None => {
                            counts.insert(entity, 1);
                        }
                    }
                }
            }
        }));
        if counted.is_err() {
            tracing::error!("entity extraction panicked; a batch of posts was not counted");
        }
    }
    counts
}

/// The `k` largest counts (all when `None`), count descending then entity
/// ascending.
pub fn top_k(counts: HashMap<String, u64>, k: Option<usize>) -> Vec<(String, u64)> {
    let mut all: Vec<(String, u64)> = counts.into_iter().collect();
    let order = |a: &(String, u64), b: &(String, u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0));
    if let Some(k) = k {
        if k < all.len() {
            if k == 0 {
                return Vec::new();
            }
            all.select_nth_unstable_by(k - 1, order);
            all.truncate(k);
        }
    }
    all.sort_unstable_by(order);
    all
}

/// The stored record: `{"top_named_entities": [[entity, count], …],
/// "timestamp": "2024-01-20T18:41:20.123456"}`, the timestamp written as the
/// original's `datetime.utcnow().isoformat()` wrote it (naive UTC, the
/// microseconds left out when they are zero), so its consumers'
/// `datetime.utcnow() - datetime.fromisoformat(ts)` works unchanged.
pub fn record_json(top: &[(String, u64)], now: DateTime<Utc>) -> String {
    json!({
        "top_named_entities": top.iter().map(|(e, n)| json!([e, n])).collect::<Vec<_>>(),
        "timestamp": python_utc_isoformat(now),
    })
    .to_string()
}

/// `now` as Python's `datetime.utcnow().isoformat()` spells it.
fn python_utc_isoformat(now: DateTime<Utc>) -> String {
    let naive = now.naive_utc();
    if now.timestamp_subsec_micros() == 0 {
        naive.format("%Y-%m-%dT%H:%M:%S").to_string()
    } else {
        naive.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
    }
}

/// The task body: count, then store the record under `key` through the
/// result backend of the worker running the task.
pub(super) fn count_and_store(
    ctx: &Context,
    config: &PostsConfig,
    k: Option<usize>,
    from: &str,
    to: &str,
    key: &str,
) -> Result<(), TasksError> {
    let top = count_top_named_entities(config, k, from, to)?;
    let record = record_json(&top, Utc::now());
    let store_err = |reason: String| TasksError::Store {
        key: key.to_owned(),
        reason,
    };
    let backend = ctx
        .backend()
        .ok_or_else(|| store_err("the task runs without a result backend".to_owned()))?;
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| store_err("the task runs outside the worker's runtime".to_owned()))?;
    runtime
        .block_on(backend.set_value(key, &record, None))
        .map_err(|e| store_err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, u64)]) -> HashMap<String, u64> {
        pairs.iter().map(|(e, n)| ((*e).to_owned(), *n)).collect()
    }

    #[test]
    fn ties_break_by_entity() {
        let c = counts(&[("b", 2), ("a", 2), ("c", 5), ("d", 1)]);
        let top = top_k(c.clone(), Some(3));
        let names: Vec<&str> = top.iter().map(|(e, _)| e.as_str()).collect();
        assert_eq!(names, ["c", "a", "b"]);
        assert_eq!(top_k(c.clone(), None).len(), 4);
        assert!(top_k(c.clone(), Some(0)).is_empty());
        assert_eq!(top_k(c, Some(10)).len(), 4);
    }

    #[test]
    fn the_record_reads_like_the_original() -> Result<(), serde_json::Error> {
        let now = DateTime::from_timestamp(1_705_776_080, 123_456_000).unwrap_or_default();
        let text = record_json(&[("Donald Trump".to_owned(), 3)], now);
        let v: serde_json::Value = serde_json::from_str(&text)?;
        assert_eq!(v["top_named_entities"], json!([["Donald Trump", 3]]));
        assert_eq!(v["timestamp"], "2024-01-20T18:41:20.123456");
        let whole_second = DateTime::from_timestamp(1_705_776_080, 0).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&record_json(&[], whole_second))?;
        assert_eq!(v["timestamp"], "2024-01-20T18:41:20");
        Ok(())
    }
}
