//! One place decides what a URL means: [`Transport::parse`] reads it once
//! into a typed transport, which builds everything that goes with it — the
//! broker, the result backend, the event bus, the remote-control channel,
//! the beat's store — and says what it can carry ([`Capabilities`]). No
//! other module looks at a URL's scheme.
//!
//! | URL | transport |
//! |---|---|
//! | `memory://` or `memory://name` | in-process, shared by name |
//! | `sqlite://relative.db`, `sqlite:///abs/path.db` | the embedded SQLite file |
//! | `redis://[:pw@]host:port/db`, `rediss://…` | Redis, Celery-compatible keys |
//! | `sentinel://[:pw@]host:26379/db;sentinel://host2:26380` | the Redis master Redis Sentinel names, followed across failovers; the master's name from [`AppConfig::master_name`] or `?master_name=` ([`SentinelUrl`]) |
//! | `amqp://user:pw@host:port/vhost`, `amqps://…` | RabbitMQ (broker, events, remote control; no results) |

use std::path::PathBuf;
use std::sync::Arc;

use crate::app::AppConfig;
use crate::backend::ResultBackend;
use crate::broker::Broker;
use crate::connect::redact;
use crate::events::EventBus;
pub use crate::sentinel_url::{SentinelUrl, DEFAULT_SENTINEL_PORT};
use crate::{Error, Result};

/// A parsed broker or backend URL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// In-process queues and results, shared by everything in this process
    /// that names the same `name` (for tests and single-process use).
    Memory {
        /// The part after `memory://`.
        name: String,
    },
    /// The embedded SQLite file, shared by every process that opens it.
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// A Redis server, with kombu's and Celery's keys.
    Redis {
        /// The URL as given (`redis://` or `rediss://`), passed to the client.
        url: String,
        /// Whether the connection uses TLS (`rediss://`).
        tls: bool,
    },
    /// The master of a Redis Sentinel group (kombu's and Celery's
    /// `sentinel://`): the same keys as [`Transport::Redis`], on whichever
    /// server the sentinels name master, followed across failovers.
    Sentinel(SentinelUrl),
    /// An AMQP 0-9-1 broker (RabbitMQ) with Celery's exchanges and queues.
    /// It holds no results: pair it with a result backend (Redis).
    Amqp {
        /// The URL as given (`amqp://` or `amqps://`), in kombu's spelling.
        url: String,
        /// Whether the connection uses TLS (`amqps://`).
        tls: bool,
    },
}

/// What a transport can carry besides queues and results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Celery's remote control (`inspect`, `control`, pidbox).
    pub remote_control: bool,
    /// Events reach other processes (Flower, `serve`, `celery events`).
    pub shared_events: bool,
    /// Other processes on other machines can use it.
    pub networked: bool,
    /// Messages waiting for their ETA can be listed without taking them
    /// ([`QueueAdmin::delayed`](crate::broker::QueueAdmin::delayed)): not
    /// on AMQP, where workers hold them unacknowledged or they hop through
    /// TTL queues.
    pub lists_delayed: bool,
}

impl Transport {
    /// Read `url`.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] naming what is wrong: no scheme, an unknown
    /// one, a SQLite URL without a path, or a `sentinel://` URL that names
    /// no sentinel or an option other than `master_name`. (A missing master
    /// name is reported when connecting, once the configuration is known.)
    pub fn parse(url: &str) -> Result<Transport> {
        let invalid = |reason: String| Error::InvalidUrl {
            url: redact(url),
            reason,
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            invalid(
                "expected scheme://…, e.g. sqlite://celeriac.db or redis://localhost:6379/0".into(),
            )
        })?;
        match scheme {
            "memory" => Ok(Transport::Memory {
                name: rest.to_owned(),
            }),
            "sqlite" if rest.is_empty() => Err(invalid(
                "sqlite:// needs a file path, e.g. sqlite://celeriac.db".into(),
            )),
            "sqlite" => Ok(Transport::Sqlite {
                path: PathBuf::from(rest),
            }),
            "redis" | "rediss" => Ok(Transport::Redis {
                url: url.to_owned(),
                tls: scheme == "rediss",
            }),
            "sentinel" => SentinelUrl::parse(url)
                .map(Transport::Sentinel)
                .map_err(invalid),
            "amqp" | "amqps" => Ok(Transport::Amqp {
                url: url.to_owned(),
                tls: scheme == "amqps",
            }),
            other => Err(invalid(format!(
                "unknown scheme {other:?} (use sqlite://, redis://, rediss://, sentinel://, amqp://, amqps:// or memory://)"
            ))),
        }
    }

    /// The scheme, for messages and metrics: `memory`, `sqlite`, `redis`,
    /// `rediss`, `sentinel`, `amqp`, `amqps`.
    pub fn scheme(&self) -> &'static str {
        match self {
            Transport::Memory { .. } => "memory",
            Transport::Sqlite { .. } => "sqlite",
            Transport::Redis { tls: false, .. } => "redis",
            Transport::Redis { tls: true, .. } => "rediss",
            Transport::Sentinel(_) => "sentinel",
            Transport::Amqp { tls: false, .. } => "amqp",
            Transport::Amqp { tls: true, .. } => "amqps",
        }
    }

    /// The Redis URL, when this is one Redis server (for tools that read
    /// the server's own statistics).
    pub fn redis_url(&self) -> Option<&str> {
        match self {
            Transport::Redis { url, .. } => Some(url),
            _ => None,
        }
    }

    /// The result backend this broker implies when none is named: results
    /// where the messages are (the same Redis, as the seed's
    /// `Celery(backend=REDIS_DB, broker=REDIS_DB)`; the same SQLite file;
    /// the same memory name).
    pub fn implied_backend_url(&self) -> Option<String> {
        match self {
            Transport::Memory { name } => Some(format!("memory://{name}")),
            Transport::Sqlite { path } => Some(format!("sqlite://{}", path.display())),
            Transport::Redis { url, .. } => Some(url.clone()),
            Transport::Sentinel(sentinel) => Some(sentinel.as_str().to_owned()),
            Transport::Amqp { .. } => None,
        }
    }

    /// What this transport carries.
    pub fn capabilities(&self) -> Capabilities {
        match self {
            Transport::Memory { .. } => Capabilities {
                remote_control: false,
                shared_events: false,
                networked: false,
                lists_delayed: true,
            },
            Transport::Sqlite { .. } => Capabilities {
                remote_control: false,
                shared_events: true,
                networked: false,
                lists_delayed: true,
            },
            Transport::Redis { .. } | Transport::Sentinel(_) | Transport::Amqp { .. } => {
                Capabilities {
                    remote_control: true,
                    shared_events: true,
                    networked: true,
                    lists_delayed: !matches!(self, Transport::Amqp { .. }),
                }
            }
        }
    }

    /// The broker on this transport.
    ///
    /// # Errors
    /// When the server or file cannot be opened, or the crate was built
    /// without this transport.
    pub async fn broker(&self, config: &AppConfig) -> Result<Arc<dyn Broker>> {
        match self {
            Transport::Memory { name } => Ok(memory::broker(name)),
            #[cfg(feature = "sqlite")]
            Transport::Sqlite { path } => Ok(Arc::new(crate::broker::sqlite::SqliteBroker::open(
                path,
                config.visibility_timeout,
            )?)),
            #[cfg(feature = "redis")]
            Transport::Redis { .. } | Transport::Sentinel(_) => Ok(Arc::new(
                crate::broker::redis::RedisBroker::open(
                    &self.redis_connect_url(config)?,
                    &config.key_prefix,
                    config.visibility_timeout,
                )
                .await?,
            )),
            #[cfg(feature = "amqp")]
            Transport::Amqp { url, .. } => Ok(Arc::new(
                crate::broker::amqp::AmqpBroker::open(url, config.visibility_timeout).await?,
            )),
            #[allow(unreachable_patterns)]
            other => Err(other.not_built()),
        }
    }

    /// The result backend on this transport.
    ///
    /// # Errors
    /// As [`Transport::broker`].
    pub async fn backend(&self, config: &AppConfig) -> Result<Arc<dyn ResultBackend>> {
        match self {
            Transport::Memory { name } => Ok(memory::backend(name)),
            #[cfg(feature = "sqlite")]
            Transport::Sqlite { path } => {
                Ok(Arc::new(crate::backend::sqlite::SqliteBackend::open(path)?))
            }
            #[cfg(feature = "redis")]
            Transport::Redis { .. } | Transport::Sentinel(_) => Ok(Arc::new(
                crate::backend::redis::RedisBackend::open(
                    &self.redis_connect_url(config)?,
                    &config.key_prefix,
                )
                .await?,
            )),
            Transport::Amqp { url, .. } => Err(Error::InvalidUrl {
                url: redact(url),
                reason: "AMQP carries messages, not results: name a result backend such as \
                         redis://host:6379/0"
                    .into(),
            }),
            #[allow(unreachable_patterns)]
            other => Err(other.not_built()),
        }
    }

    /// The event bus that goes with this broker: Celery's own on Redis, a
    /// table in the file on SQLite, a channel in the process otherwise.
    ///
    /// # Errors
    /// When the server or file cannot be opened.
    pub async fn events(&self, config: &AppConfig) -> Result<Arc<dyn EventBus>> {
        let _ = config;
        match self {
            #[cfg(feature = "redis")]
            Transport::Redis { .. } | Transport::Sentinel(_) => Ok(Arc::new(
                crate::events::RedisEvents::open(
                    &self.redis_connect_url(config)?,
                    &config.key_prefix,
                )
                .await?,
            )),
            #[cfg(feature = "amqp")]
            Transport::Amqp { url, .. } => {
                Ok(Arc::new(crate::events::AmqpEvents::open(url).await?))
            }
            #[cfg(feature = "sqlite")]
            Transport::Sqlite { path } => Ok(Arc::new(crate::events::SqliteEvents::open(path)?)),
            Transport::Memory { name } => Ok(crate::events::MemoryEvents::named(&format!(
                "memory://{name}"
            ))),
            #[allow(unreachable_patterns)]
            other => Err(other.not_built()),
        }
    }

    /// Celery's remote control on this transport, where it has one.
    ///
    /// # Errors
    /// When the server cannot be reached.
    #[cfg(feature = "redis")]
    pub async fn control(&self, config: &AppConfig) -> Result<Option<crate::control::Control>> {
        match self {
            Transport::Redis { .. } | Transport::Sentinel(_) => Ok(Some(
                crate::control::Control::open(&self.redis_connect_url(config)?, &config.key_prefix)
                    .await?,
            )),
            #[cfg(feature = "amqp")]
            Transport::Amqp { url, .. } => Ok(Some(crate::control::Control::open_amqp(url).await?)),
            _ => Ok(None),
        }
    }

    /// The URL the Redis clients connect with: a Redis URL as given; a
    /// Sentinel URL with the master's name filled in from `config` (Celery's
    /// transport option `master_name`) when the URL names none.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] when no master name is given, or this is not
    /// Redis.
    pub(crate) fn redis_connect_url(&self, config: &AppConfig) -> Result<String> {
        match self {
            Transport::Redis { url, .. } => Ok(url.clone()),
            Transport::Sentinel(sentinel) => sentinel
                .with_master_name(config.master_name.as_deref())
                .map(|named| named.to_connect_url())
                .map_err(|reason| Error::InvalidUrl {
                    url: redact(sentinel.as_str()),
                    reason,
                }),
            other => Err(Error::InvalidUrl {
                url: other.to_string(),
                reason: "not a Redis URL".into(),
            }),
        }
    }

    fn not_built(&self) -> Error {
        Error::InvalidUrl {
            url: self.scheme().to_owned(),
            reason: format!("this build of celeriac has no {} support", self.scheme()),
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Memory { name } => write!(f, "memory://{name}"),
            Transport::Sqlite { path } => write!(f, "sqlite://{}", path.display()),
            Transport::Redis { url, .. } | Transport::Amqp { url, .. } => f.write_str(&redact(url)),
            Transport::Sentinel(sentinel) => f.write_str(&redact(sentinel.as_str())),
        }
    }
}

/// The in-process brokers and backends, shared by name.
mod memory {
    use std::collections::HashMap;
    use std::sync::{Arc, LazyLock, Mutex};

    use crate::backend::memory::MemoryBackend;
    use crate::backend::ResultBackend;
    use crate::broker::memory::MemoryBroker;
    use crate::broker::Broker;

    fn shared<T: Default>(map: &Mutex<HashMap<String, Arc<T>>>, name: &str) -> Arc<T> {
        let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(map.entry(name.to_owned()).or_default())
    }

    pub(super) fn broker(name: &str) -> Arc<dyn Broker> {
        static BROKERS: LazyLock<Mutex<HashMap<String, Arc<MemoryBroker>>>> =
            LazyLock::new(Default::default);
        shared::<MemoryBroker>(&BROKERS, name)
    }

    pub(super) fn backend(name: &str) -> Arc<dyn ResultBackend> {
        static BACKENDS: LazyLock<Mutex<HashMap<String, Arc<MemoryBackend>>>> =
            LazyLock::new(Default::default);
        shared::<MemoryBackend>(&BACKENDS, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_once_into_transports() {
        assert_eq!(
            Transport::parse("sqlite://celeriac.db").ok(),
            Some(Transport::Sqlite {
                path: "celeriac.db".into()
            })
        );
        let redis = Transport::parse("rediss://:pw@host:6380/1");
        assert!(matches!(&redis, Ok(Transport::Redis { tls: true, .. })));
        assert_eq!(
            redis.map(|t| t.to_string()).ok().as_deref(),
            Some("rediss://:***@host:6380/1")
        );
        assert!(Transport::parse("memory://x").is_ok_and(|t| !t.capabilities().networked));
        assert!(Transport::parse("amqp://h//").is_ok_and(|t| !t.capabilities().lists_delayed));
        assert!(Transport::parse("sqlite://x.db").is_ok_and(|t| t.capabilities().lists_delayed));
        let sentinel = Transport::parse("sentinel://:pw@h1:26379/2;sentinel://h2");
        assert!(
            matches!(&sentinel, Ok(Transport::Sentinel(s)) if s.sentinels().len() == 2 && s.db() == 2)
        );
        assert_eq!(
            sentinel.map(|t| t.to_string()).ok().as_deref(),
            Some("sentinel://:***@h1:26379/2;sentinel://h2")
        );
        for (bad, says) in [
            ("celeriac.db", "expected scheme"),
            ("sqlite://", "needs a file path"),
            ("kafka://host:9092", "unknown scheme \"kafka\""),
            ("sentinel://h1;redis://h2", "sentinel://"),
        ] {
            let err = Transport::parse(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
