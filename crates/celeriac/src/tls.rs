//! TLS options as Celery spells them on a broker or backend URL, shared by
//! `rediss://` and `amqps://`: `?ssl_cert_reqs=required&ssl_ca_certs=
//! /etc/ssl/ca.pem&ssl_certfile=…&ssl_keyfile=…`.
//!
//! - `ssl_ca_certs`: the CA that signed the server's certificate (a private
//!   CA); without it the system's roots are used.
//! - `ssl_certfile` + `ssl_keyfile`: a client certificate (mutual TLS).
//! - `ssl_cert_reqs`: `required` (the default, `CERT_REQUIRED`) verifies the
//!   server; `none` (`CERT_NONE`) does not; `optional` (`CERT_OPTIONAL`) is
//!   treated as `required` when a CA is given and as `none` otherwise.
//!
//! The options are removed from the URL before it reaches the client, so
//! the server never sees them and they are never logged with it. How each
//! transport applies them: `redis_tls.rs`, `broker/amqp`.

use crate::connect::{percent_decode, redact};
use crate::{Error, Result};

/// The TLS options of one URL, and the URL without them.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct TlsOptions {
    /// The URL left for the client (other query parameters kept).
    pub(crate) url: String,
    /// `ssl_ca_certs`: a PEM file of the CA to trust.
    pub(crate) ca_certs: Option<String>,
    /// `ssl_certfile`: the client certificate (PEM).
    pub(crate) certfile: Option<String>,
    /// `ssl_keyfile`: the client certificate's key (PEM).
    pub(crate) keyfile: Option<String>,
    /// `ssl_cert_reqs`: verify the server (`None`: not said).
    pub(crate) verify: Option<bool>,
}

impl TlsOptions {
    /// Read the `ssl_*` options of `url`.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for an unknown `ssl_cert_reqs`, or a client
    /// certificate without its key (or the other way round).
    pub(crate) fn parse(url: &str) -> Result<TlsOptions> {
        let invalid = |reason: String| Error::InvalidUrl {
            url: redact(url),
            reason,
        };
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, query),
            None => {
                return Ok(TlsOptions {
                    url: url.to_owned(),
                    ..TlsOptions::default()
                })
            }
        };
        let mut tls = TlsOptions::default();
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
    pub(crate) fn customised(&self) -> bool {
        self.ca_certs.is_some() || self.certfile.is_some() || self.verify.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn celerys_options_are_read_and_removed() -> Result<()> {
        let tls = TlsOptions::parse(
            "rediss://:pw@host:6380/0?ssl_cert_reqs=CERT_REQUIRED&ssl_ca_certs=%2Fetc%2Fca.pem&protocol=resp3",
        )?;
        assert_eq!(tls.url, "rediss://:pw@host:6380/0?protocol=resp3");
        assert_eq!(tls.ca_certs.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(tls.verify, Some(true));
        let plain = TlsOptions::parse("redis://host/0")?;
        assert!(!plain.customised());
        let bad = TlsOptions::parse("rediss://h/0?ssl_cert_reqs=maybe")
            .err()
            .map(|e| e.to_string());
        assert!(bad.unwrap_or_default().contains("ssl_cert_reqs"));
        let half = TlsOptions::parse("rediss://h/0?ssl_certfile=/c.pem")
            .err()
            .map(|e| e.to_string());
        assert!(half.unwrap_or_default().contains("ssl_keyfile"));
        Ok(())
    }
}
