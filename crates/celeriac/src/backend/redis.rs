//! `redis://` and `rediss://`: the result backend, as Celery's.
//!
//! 1. `store`: one script does Celery's "never overwrite SUCCESS" check,
//!    `SETEX celery-task-meta-<id>`, and `PUBLISH` of the same document on
//!    a channel named like the key, atomically for each result. Results
//!    stored at the same moment by concurrent tasks share one script call
//!    (a script call costs Redis more than the three commands in it).
//! 2. `wait`: subscribe to the key's channel first, then read the key once
//!    (so a result stored in between is not missed), then wait for
//!    messages: no polling loop. If the subscription fails (Redis
//!    restarting) it falls back to reading every 100 ms until the deadline.
//! 3. Explicit keys are plain `SET`/`GET`/`DEL`, readable by any Redis
//!    client on the serving path.
//! 4. Chords are counted with Celery's keys and rules ([`chord`]).

mod chord;

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use redis::{AsyncCommands, Script};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{ChordPart, ChordProgress, ResultBackend};
use crate::protocol::ResultMeta;
use crate::redis_support::{connect, Endpoint, Keys, RedisConn};
use crate::{Error, Result};

/// KEYS: result keys; ARGV[2i-1], ARGV[2i]: the i-th document and its
/// expiry in seconds. Returns how many were stored (a SUCCESS already
/// there is kept, as Celery does).
const STORE: &str = r#"
local stored = 0
for i, key in ipairs(KEYS) do
  local current = redis.call('GET', key)
  local final = false
  if current then
    if string.find(current, '^%s*{%s*"status"%s*:%s*"SUCCESS"') then
      final = true
    else
      local ok, doc = pcall(cjson.decode, current)
      final = ok and type(doc) == 'table' and doc.status == 'SUCCESS'
    end
  end
  if not final then
    redis.call('SETEX', key, ARGV[2 * i], ARGV[2 * i - 1])
    redis.call('PUBLISH', key, ARGV[2 * i - 1])
    stored = stored + 1
  end
end
return stored
"#;

/// Most results folded into one script call.
const STORE_BATCH: usize = 256;
/// Results past this many bytes of documents go in the next call.
const STORE_BATCH_BYTES: usize = 4 << 20;

/// A result to store: key, document, expiry in seconds, and who to tell.
struct StoreRequest {
    key: String,
    document: String,
    seconds: u64,
    done: oneshot::Sender<Result<()>>,
}

/// The Redis result backend.
pub struct RedisBackend {
    endpoint: Endpoint,
    conn: RedisConn,
    keys: Keys,
    stores: mpsc::UnboundedSender<StoreRequest>,
    /// How long a chord's counters live (Celery: `result_expires`).
    chord_expires: Duration,
}

fn backend_err(context: &'static str) -> impl Fn(redis::RedisError) -> Error {
    move |e| Error::backend(context, e)
}

impl RedisBackend {
    /// Connect to the Redis server at `url`; `key_prefix` prefixes every key.
    ///
    /// # Errors
    /// When the URL is invalid or the server cannot be reached.
    pub async fn open(url: &str, key_prefix: &str) -> Result<Self> {
        let (endpoint, conn) = connect(url).await?;
        let (stores, requests) = mpsc::unbounded_channel();
        // Ends when the backend (the only sender) is dropped.
        tokio::spawn(store_loop(conn.clone(), requests));
        Ok(RedisBackend {
            endpoint,
            conn,
            keys: Keys::new(key_prefix),
            stores,
            chord_expires: Duration::from_secs(24 * 3600),
        })
    }

    fn parse(text: &[u8]) -> Result<ResultMeta> {
        serde_json::from_slice(text).map_err(|e| Error::json("stored result", e))
    }

    async fn wait_by_polling(
        &self,
        task_id: &str,
        deadline: Instant,
    ) -> Result<Option<ResultMeta>> {
        let mut last = None;
        loop {
            match self.fetch(task_id).await {
                Ok(Some(meta)) if meta.status.is_ready() => return Ok(Some(meta)),
                Ok(seen) => last = seen,
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => {}
            }
            if Instant::now() >= deadline {
                return Ok(last);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Store what concurrent callers hand in, up to [`STORE_BATCH`] results
/// (and about [`STORE_BATCH_BYTES`]) per script call; each caller learns
/// the outcome of its own call.
async fn store_loop(conn: RedisConn, mut requests: mpsc::UnboundedReceiver<StoreRequest>) {
    let script = Script::new(STORE);
    let mut waiting = Vec::with_capacity(STORE_BATCH);
    let mut call = Vec::with_capacity(STORE_BATCH);
    while requests.recv_many(&mut waiting, STORE_BATCH).await > 0 {
        let mut bytes = 0;
        for request in waiting.drain(..) {
            if bytes > 0 && bytes + request.document.len() > STORE_BATCH_BYTES {
                store_together(&script, &conn, &mut call).await;
                bytes = 0;
            }
            bytes += request.document.len();
            call.push(request);
        }
        store_together(&script, &conn, &mut call).await;
    }
}

/// One script call for all of `requests`, which it empties.
async fn store_together(script: &Script, conn: &RedisConn, requests: &mut Vec<StoreRequest>) {
    let mut invocation = script.prepare_invoke();
    for request in requests.iter() {
        invocation
            .key(&request.key)
            .arg(&request.document)
            .arg(request.seconds);
    }
    let outcome: redis::RedisResult<i64> = invocation.invoke_async(&mut conn.clone()).await;
    for request in requests.drain(..) {
        let _ = request.done.send(
            outcome
                .as_ref()
                .map(|_| ())
                .map_err(|e| Error::backend("storing a result in Redis", e.to_string())),
        );
    }
}

#[async_trait]
impl ResultBackend for RedisBackend {
    async fn store(&self, meta: &ResultMeta, expires: Duration) -> Result<()> {
        let (done, outcome) = oneshot::channel();
        let request = StoreRequest {
            key: self.keys.result(&meta.task_id),
            document: serde_json::to_string(meta).map_err(|e| Error::json("result", e))?,
            seconds: expires.as_secs().max(1),
            done,
        };
        let stopped = || Error::backend("storing a result in Redis", "the store task has stopped");
        self.stores.send(request).map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }

    async fn fetch(&self, task_id: &str) -> Result<Option<ResultMeta>> {
        let raw: Option<Vec<u8>> = self
            .conn
            .clone()
            .get(self.keys.result(task_id))
            .await
            .map_err(backend_err("reading a result from Redis"))?;
        raw.map(|r| Self::parse(&r)).transpose()
    }

    async fn wait(&self, task_id: &str, timeout: Duration) -> Result<Option<ResultMeta>> {
        let deadline = crate::deadline(timeout);
        let key = self.keys.result(task_id);
        let mut pubsub = match self.endpoint.pubsub().await {
            Ok(p) => p,
            Err(_) => return self.wait_by_polling(task_id, deadline).await,
        };
        if pubsub.subscribe(&key).await.is_err() {
            return self.wait_by_polling(task_id, deadline).await;
        }
        let mut last = self.fetch(task_id).await?;
        if last.as_ref().is_some_and(|m| m.status.is_ready()) {
            return Ok(last);
        }
        let mut messages = pubsub.on_message();
        loop {
            match tokio::time::timeout_at(deadline, messages.next()).await {
                Err(_) => return Ok(last),
                Ok(None) => {
                    drop(messages);
                    return self.wait_by_polling(task_id, deadline).await;
                }
                Ok(Some(message)) => {
                    if let Ok(meta) = Self::parse(message.get_payload_bytes()) {
                        let ready = meta.status.is_ready();
                        last = Some(meta);
                        if ready {
                            return Ok(last);
                        }
                    }
                }
            }
        }
    }

    async fn forget(&self, task_id: &str) -> Result<()> {
        let _: i64 = self
            .conn
            .clone()
            .del(self.keys.result(task_id))
            .await
            .map_err(backend_err("forgetting a result in Redis"))?;
        Ok(())
    }

    async fn set_value(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<()> {
        let mut conn = self.conn.clone();
        let key = self.keys.value(key);
        let outcome: redis::RedisResult<()> = match ttl {
            Some(ttl) => conn.set_ex(key, value, ttl.as_secs().max(1)).await,
            None => conn.set(key, value).await,
        };
        outcome.map_err(backend_err("setting a key in Redis"))
    }

    async fn get_value(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .clone()
            .get(self.keys.value(key))
            .await
            .map_err(backend_err("reading a key from Redis"))
    }

    async fn delete_value(&self, key: &str) -> Result<bool> {
        let n: i64 = self
            .conn
            .clone()
            .del(self.keys.value(key))
            .await
            .map_err(backend_err("deleting a key in Redis"))?;
        Ok(n > 0)
    }

    async fn set_chord_size(&self, group_id: &str, size: u64) -> Result<()> {
        let expires = self.chord_expires.as_secs();
        chord::set_size(
            &mut self.conn.clone(),
            &self.keys.group(group_id),
            size,
            expires,
        )
        .await
    }

    async fn chord_part_return(
        &self,
        part: &ChordPart<'_>,
        expires: Duration,
    ) -> Result<ChordProgress> {
        let group_key = self.keys.group(part.group_id);
        chord::part_return(&mut self.conn.clone(), &group_key, part, expires.as_secs()).await
    }

    async fn chord_done(&self, group_id: &str, claim: &str) -> Result<()> {
        chord::done(&mut self.conn.clone(), &self.keys.group(group_id), claim).await
    }
}
