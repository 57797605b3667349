//! TLS to Redis: Celery's `ssl_*` URL options ([`crate::tls`]) applied to a
//! `rediss://` client. `ssl_cert_reqs=none` is honoured and logged as a
//! warning, as Celery warns.

use redis::{ClientTlsConfig, TlsCertificates};

use crate::connect::redact;
use crate::tls::TlsOptions;
use crate::{Error, Result};

/// The TLS options of a Redis URL ([`TlsOptions`]), applied to its client.
impl TlsOptions {
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
