//! A broker and backend from a URL, as Celery does (what a URL means is
//! decided in one place, [`Transport`]), and URL redaction for logs.

use std::sync::Arc;

use crate::app::AppConfig;
use crate::backend::ResultBackend;
use crate::broker::Broker;
use crate::transport::Transport;
use crate::Result;

/// A URL with any password replaced by `***`, safe to log. Each
/// `;`-separated part is redacted on its own (`sentinel://…;sentinel://…`).
pub fn redact(url: &str) -> String {
    if url.contains(';') {
        return url.split(';').map(redact_one).collect::<Vec<_>>().join(";");
    }
    redact_one(url)
}

fn redact_one(url: &str) -> String {
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

/// `%2F` → `/` (passwords and paths in URLs).
pub(crate) fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Build the broker named by `config.broker_url` ([`Transport::parse`]).
///
/// # Errors
/// [`Error::InvalidUrl`] for an unknown scheme or a bad path; a broker error
/// when the server or file cannot be opened.
pub async fn broker_from_url(config: &AppConfig) -> Result<Arc<dyn Broker>> {
    Transport::parse(&config.broker_url)?.broker(config).await
}

/// Build the result backend named by `config.backend_url`.
///
/// # Errors
/// As [`broker_from_url`].
pub async fn backend_from_url(config: &AppConfig) -> Result<Arc<dyn ResultBackend>> {
    Transport::parse(&config.backend_url)?.backend(config).await
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
        assert_eq!(
            redact("sentinel://:a@h1:26379/0;sentinel://:b@h2"),
            "sentinel://:***@h1:26379/0;sentinel://:***@h2"
        );
    }
}
