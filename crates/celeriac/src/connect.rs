//! Choosing a broker and backend from a URL, as Celery does.
//!
//! | URL                         | broker / backend            |
//! |-----------------------------|-----------------------------|
//! | `memory://` or `memory://name` | in-process, shared by name |
//! | `sqlite://relative.db`, `sqlite:///abs/path.db` | embedded SQLite |
//! | `redis://[:pw@]host:port/db`, `rediss://…` | Redis, Celery-compatible |

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::app::AppConfig;
use crate::backend::memory::MemoryBackend;
use crate::backend::ResultBackend;
use crate::broker::memory::MemoryBroker;
use crate::broker::Broker;
use crate::{Error, Result};

/// A URL with any password replaced by `***`, safe to log.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => format!("{}***{}", &url[..scheme + 3], &url[at..]),
            }
        }
        _ => url.to_owned(),
    }
}

fn invalid(url: &str, reason: impl Into<String>) -> Error {
    Error::InvalidUrl {
        url: redact(url),
        reason: reason.into(),
    }
}

#[cfg(feature = "sqlite")]
fn sqlite_path(url: &str, rest: &str) -> Result<PathBuf> {
    if rest.is_empty() {
        return Err(invalid(
            url,
            "sqlite:// needs a file path, e.g. sqlite://celeriac.db",
        ));
    }
    Ok(PathBuf::from(rest))
}

fn memory_registry<T: Default>(map: &'static Mutex<HashMap<String, Arc<T>>>, name: &str) -> Arc<T> {
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    Arc::clone(map.entry(name.to_owned()).or_default())
}

/// Build the broker named by `config.broker_url`.
///
/// # Errors
/// [`Error::InvalidUrl`] for an unknown scheme or a bad path; a broker error
/// when the server or file cannot be opened.
pub async fn broker_from_url(config: &AppConfig) -> Result<Arc<dyn Broker>> {
    static MEMORY: std::sync::LazyLock<Mutex<HashMap<String, Arc<MemoryBroker>>>> =
        std::sync::LazyLock::new(Default::default);
    let url = config.broker_url.as_str();
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| invalid(url, "expected scheme://…, e.g. redis://localhost:6379/0"))?;
    match scheme {
        "memory" => Ok(memory_registry(&MEMORY, rest) as Arc<dyn Broker>),
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(Arc::new(crate::broker::sqlite::SqliteBroker::open(
            &sqlite_path(url, rest)?,
            config.visibility_timeout,
        )?)),
        #[cfg(feature = "redis")]
        "redis" | "rediss" => Ok(Arc::new(
            crate::broker::redis::RedisBroker::open(
                url,
                &config.key_prefix,
                config.visibility_timeout,
            )
            .await?,
        )),
        other => Err(invalid(
            url,
            format!("unknown broker scheme {other:?} (use memory, sqlite, redis or rediss)"),
        )),
    }
}

/// Build the result backend named by `config.backend_url`.
///
/// # Errors
/// As [`broker_from_url`].
pub async fn backend_from_url(config: &AppConfig) -> Result<Arc<dyn ResultBackend>> {
    static MEMORY: std::sync::LazyLock<Mutex<HashMap<String, Arc<MemoryBackend>>>> =
        std::sync::LazyLock::new(Default::default);
    let url = config.backend_url.as_str();
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| invalid(url, "expected scheme://…, e.g. redis://localhost:6379/0"))?;
    match scheme {
        "memory" => Ok(memory_registry(&MEMORY, rest) as Arc<dyn ResultBackend>),
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(Arc::new(crate::backend::sqlite::SqliteBackend::open(
            &sqlite_path(url, rest)?,
        )?)),
        #[cfg(feature = "redis")]
        "redis" | "rediss" => Ok(Arc::new(
            crate::backend::redis::RedisBackend::open(url, &config.key_prefix).await?,
        )),
        other => Err(invalid(
            url,
            format!("unknown backend scheme {other:?} (use memory, sqlite, redis or rediss)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact("redis://:secret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(
            redact("redis://user:secret@host/0"),
            "redis://user:***@host/0"
        );
        assert_eq!(redact("redis://host:6379/0"), "redis://host:6379/0");
    }
}
