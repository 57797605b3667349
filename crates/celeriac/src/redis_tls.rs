//! TLS to Redis as Celery spells it: `rediss://host:port/db?ssl_cert_reqs=
//! required&ssl_ca_certs=/etc/ssl/ca.pem&ssl_certfile=…&ssl_keyfile=…`.
//!
//! - `ssl_ca_certs`: the CA that signed the server's certificate (a private
//!   CA); without it the system's roots are used.
//! - `ssl_certfile` + `ssl_keyfile`: a client certificate (mutual TLS).
//! - `ssl_cert_reqs`: `required` (the default, `CERT_REQUIRED`) verifies the
//!   server; `none` (`CERT_NONE`) does not, and is logged as a warning, as
//!   Celery warns; `optional` (`CERT_OPTIONAL`) is treated as `required`
//!   when a CA is given and as `none` otherwise.
//!
//! The options are removed from the URL before it reaches the client, so
//! the server never sees them and they are never logged with it.

use redis::{ClientTlsConfig, TlsCertificates};

use crate::connect::{percent_decode, redact};
use crate::{Error, Result};

/// The TLS options of one Redis URL, and the URL without them.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct RedisTls {
    /// The URL left for the client (other query parameters kept).
    pub(crate) url: String,
    ca_certs: Option<String>,
    certfile: Option<String>,
    keyfile: Option<String>,
    verify: Option<bool>,
}

impl RedisTls {
    /// Read the `ssl_*` options of `url`.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for an unknown `ssl_cert_reqs`, or a client
    /// certificate without its key (or the other way round).
    pub(crate) fn parse(url: &str) -> Result<RedisTls> {
        let invalid = |reason: String| Error::InvalidUrl {
            url: redact(url),
            reason,
        };
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, query),
            None => {
                return Ok(RedisTls {
                    url: url.to_owned(),
                    ..RedisTls::default()
                })
            }
        };
        let mut tls = RedisTls::default();
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value);
            match key {
                "ssl_ca_certs" => tls.ca_certs = Some(value),
                "ssl_certfile" => tls.certfile = Some(value),
                "ssl_keyfile" => tls.keyfile = Some(value),
                "ssl_cert_reqs" => {
                    tls.verify = Some(match value.to_ascii_lowercase().as_str() {
                        "required" | "cert_required" => true,
                        "none" | "cert_none" => false,
                        "optional" | "cert_optional" => {
                            tls.ca_certs.is_some() || query.contains("ssl_ca_certs=")
                        }
                        other => {
                            return Err(invalid(format!(
                                "ssl_cert_reqs must be required, optional or none, got {other:?}"
                            )))
                        }
                    })
                }
                _ => kept.push(pair),
            }
        }
        if tls.certfile.is_some() != tls.keyfile.is_some() {
            return Err(invalid(
                "ssl_certfile and ssl_keyfile go together (a client certificate and its key)"
                    .into(),
            ));
        }
        tls.url = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok(tls)
    }

    /// Whether anything beyond the URL itself is needed.
    fn customised(&self) -> bool {
        self.ca_certs.is_some() || self.certfile.is_some() || self.verify.is_some()
    }

    /// The client for this URL.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] when the URL is not a Redis URL or a
    /// certificate file cannot be read.
    pub(crate) fn client(&self, original: &str) -> Result<redis::Client> {
        let invalid = |reason: String| Error::InvalidUrl {
            url: redact(original),
            reason,
        };
        if self.url.starts_with("rediss://") {
            choose_crypto_provider();
        }
        if !self.customised() {
            return redis::Client::open(self.url.as_str()).map_err(|e| invalid(e.to_string()));
        }
        if !self.url.starts_with("rediss://") {
            return Err(invalid("ssl_* options need a rediss:// URL".into()));
        }
        if self.verify == Some(false) {
            tracing::warn!(url = %redact(original), "ssl_cert_reqs=none: the Redis server's certificate is not verified");
            let insecure = format!("{}#insecure", self.url);
            return redis::Client::open(insecure.as_str()).map_err(|e| invalid(e.to_string()));
        }
        let read = |what: &str, path: &str| {
            std::fs::read(path).map_err(|e| invalid(format!("{what} {path}: {e}")))
        };
        let root_cert = self
            .ca_certs
            .as_deref()
            .map(|p| read("ssl_ca_certs", p))
            .transpose()?;
        let client_tls = match (&self.certfile, &self.keyfile) {
            (Some(cert), Some(key)) => Some(ClientTlsConfig {
                client_cert: read("ssl_certfile", cert)?,
                client_key: read("ssl_keyfile", key)?,
            }),
            _ => None,
        };
        redis::Client::build_with_tls(
            self.url.as_str(),
            TlsCertificates {
                client_tls,
                root_cert,
            },
        )
        .map_err(|e| invalid(e.to_string()))
    }
}

/// rustls needs its process-wide crypto provider named when more than one
/// (or none) is compiled in; ours is ring. Installing twice is harmless.
fn choose_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn celerys_options_are_read_and_removed() -> Result<()> {
        let tls = RedisTls::parse(
            "rediss://:pw@host:6380/0?ssl_cert_reqs=CERT_REQUIRED&ssl_ca_certs=%2Fetc%2Fca.pem&protocol=resp3",
        )?;
        assert_eq!(tls.url, "rediss://:pw@host:6380/0?protocol=resp3");
        assert_eq!(tls.ca_certs.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(tls.verify, Some(true));
        let plain = RedisTls::parse("redis://host/0")?;
        assert!(!plain.customised());
        let bad = RedisTls::parse("rediss://h/0?ssl_cert_reqs=maybe")
            .err()
            .map(|e| e.to_string());
        assert!(bad.unwrap_or_default().contains("ssl_cert_reqs"));
        let half = RedisTls::parse("rediss://h/0?ssl_certfile=/c.pem")
            .err()
            .map(|e| e.to_string());
        assert!(half.unwrap_or_default().contains("ssl_keyfile"));
        Ok(())
    }
}
