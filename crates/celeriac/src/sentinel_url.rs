//! Reading a `sentinel://` URL as kombu and Celery read it (no I/O here;
//! following the master is `redis_sentinel.rs`).
//!
//! `sentinel://[user:password@]host[:port][/db];sentinel://host2[:port2];…`
//!
//! - Each `;`-separated part names one sentinel; the port defaults to
//!   26379 (kombu's `SentinelTransport.default_port`).
//! - The user, password and database of the **first** part are the
//!   master's (kombu's `Connection` reads them from the first URL; Celery's
//!   `SentinelBackend` from `hosts[0]`); those of later parts are ignored,
//!   as there. They are not used to log in to the sentinels themselves
//!   (redis-py's `sentinel_kwargs`, which has no equivalent here yet).
//! - The master's name is Celery's transport option `master_name`
//!   (`broker_transport_options`, [`crate::AppConfig::master_name`]), or
//!   `?master_name=NAME` on any part, which wins (ours, for library users
//!   and for a backend on another Sentinel group than the broker).

use std::fmt;

use crate::connect::{percent_decode, redact};

/// The port a sentinel listens on when the URL names none.
pub const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// A `sentinel://` URL, read: the sentinels to ask, which master, and how
/// to log in to it and which database to use.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    url: String,
    sentinels: Vec<(String, u16)>,
    master_name: Option<String>,
    db: i64,
    username: Option<String>,
    password: Option<String>,
}

impl SentinelUrl {
    /// Read `url` (`sentinel://…;sentinel://…`). The `Err` is the reason,
    /// for [`crate::Error::InvalidUrl`].
    pub(crate) fn parse(url: &str) -> Result<SentinelUrl, String> {
        let mut read = SentinelUrl {
            url: url.to_owned(),
            sentinels: Vec::new(),
            master_name: None,
            db: 0,
            username: None,
            password: None,
        };
        for (index, part) in url.split(';').enumerate() {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let rest = part.strip_prefix("sentinel://").ok_or_else(|| {
                format!("each ;-separated part must start with sentinel://, got {part:?}")
            })?;
            let (rest, query) = match rest.split_once('?') {
                Some((rest, query)) => (rest, Some(query)),
                None => (rest, None),
            };
            let (authority, path) = match rest.split_once('/') {
                Some((authority, path)) => (authority, path),
                None => (rest, ""),
            };
            let (credentials, hostport) = match authority.rsplit_once('@') {
                Some((credentials, hostport)) => (Some(credentials), hostport),
                None => (None, authority),
            };
            read.sentinels.push(host_and_port(hostport)?);
            if index == 0 {
                read.db = database(path)?;
                if let Some(credentials) = credentials {
                    let (user, password) = match credentials.split_once(':') {
                        Some((user, password)) => (user, Some(password)),
                        None => (credentials, None),
                    };
                    read.username = Some(percent_decode(user)).filter(|u| !u.is_empty());
                    read.password = password.map(percent_decode).filter(|p| !p.is_empty());
                }
            }
            for pair in query.into_iter().flat_map(|q| q.split('&')) {
                match pair.split_once('=') {
                    _ if pair.is_empty() => {}
                    Some(("master_name", name)) if !name.is_empty() => {
                        read.master_name = Some(percent_decode(name));
                    }
                    _ => {
                        return Err(format!(
                        "unknown option {pair:?} (a sentinel:// URL takes only ?master_name=NAME)"
                    ))
                    }
                }
            }
        }
        if read.sentinels.is_empty() {
            return Err("no sentinel named, e.g. sentinel://localhost:26379".into());
        }
        Ok(read)
    }

    /// The sentinels, in the order they are asked.
    pub fn sentinels(&self) -> &[(String, u16)] {
        &self.sentinels
    }

    /// The master's name, when the URL gives it (`?master_name=`).
    pub fn master_name(&self) -> Option<&str> {
        self.master_name.as_deref()
    }

    /// The database on the master (the first part's path; 0 by default).
    pub fn db(&self) -> i64 {
        self.db
    }

    /// The user to log in to the master as, if any.
    pub(crate) fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The master's password, if any.
    pub(crate) fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The URL as given (passwords included: never log it).
    pub(crate) fn as_str(&self) -> &str {
        &self.url
    }

    /// This URL with the master's name filled in from `default` (Celery's
    /// transport option `master_name`) when the URL names none.
    ///
    /// # Errors
    /// The reason, when neither names the master.
    pub(crate) fn with_master_name(&self, default: Option<&str>) -> Result<SentinelUrl, String> {
        let name = self
            .master_name
            .as_deref()
            .or(default.filter(|n| !n.is_empty()))
            .ok_or_else(|| {
                "sentinel:// needs the name of the master to follow (Celery's transport \
                 option master_name): set it in the app's configuration (AppConfig::master_name; \
                 celeriac's --master-name, CELERIAC_MASTER_NAME, or master_name under \
                 [broker_transport_options] in the config file), or add ?master_name=NAME \
                 to the URL"
                    .to_owned()
            })?;
        Ok(SentinelUrl {
            master_name: Some(name.to_owned()),
            ..self.clone()
        })
    }

    /// The URL to connect with: as given, plus `?master_name=` when the
    /// name came from elsewhere, so that it reads back the same.
    pub(crate) fn to_connect_url(&self) -> String {
        match (&self.master_name, self.url.contains("master_name=")) {
            (Some(name), false) => {
                let separator = if self.url.contains('?') { '&' } else { '?' };
                format!(
                    "{}{separator}master_name={}",
                    self.url,
                    percent_encode(name)
                )
            }
            _ => self.url.clone(),
        }
    }
}

/// Passwords hidden, as everywhere a URL is shown.
impl fmt::Debug for SentinelUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentinelUrl")
            .field("url", &redact(&self.url))
            .field("sentinels", &self.sentinels)
            .field("master_name", &self.master_name)
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

/// `host`, `host:port`, `[::1]:port`.
fn host_and_port(hostport: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("unclosed [ in {hostport:?}"))?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(format!("a sentinel needs a host, got {hostport:?}"));
    }
    let port = match port {
        None | Some("") => DEFAULT_SENTINEL_PORT,
        Some(port) => port
            .parse()
            .map_err(|_| format!("bad port {port:?} for sentinel {host}"))?,
    };
    Ok((host.to_owned(), port))
}

/// The database number of a path (`""`, `"3"`).
fn database(path: &str) -> Result<i64, String> {
    let path = path.trim_matches('/');
    if path.is_empty() {
        return Ok(0);
    }
    path.parse()
        .ok()
        .filter(|db| *db >= 0)
        .ok_or_else(|| format!("the database must be a number, got {path:?}"))
}

/// Enough escaping for a name in a query string.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn celerys_spelling_is_read() -> Result<(), String> {
        let url = SentinelUrl::parse(
            "sentinel://:s3cr%40t@10.0.0.1:26380/3;sentinel://10.0.0.2;sentinel://[::1]:26381",
        )?;
        assert_eq!(
            url.sentinels(),
            [
                ("10.0.0.1".to_owned(), 26380),
                ("10.0.0.2".to_owned(), DEFAULT_SENTINEL_PORT),
                ("::1".to_owned(), 26381),
            ]
        );
        assert_eq!(
            (url.db(), url.password(), url.username()),
            (3, Some("s3cr@t"), None)
        );
        assert_eq!(url.master_name(), None);
        // Only the first part's credentials and database are the master's.
        let url = SentinelUrl::parse("sentinel://u:p@h1/1;sentinel://x:y@h2/2")?;
        assert_eq!(
            (url.username(), url.password(), url.db()),
            (Some("u"), Some("p"), 1)
        );
        Ok(())
    }

    #[test]
    fn the_master_name_comes_from_the_url_else_the_option() -> Result<(), String> {
        let named = SentinelUrl::parse("sentinel://h1;sentinel://h2?master_name=my%20master")?;
        assert_eq!(named.master_name(), Some("my master"));
        assert_eq!(
            named.with_master_name(Some("other"))?.master_name(),
            Some("my master")
        );
        let bare = SentinelUrl::parse("sentinel://h1:26379/0")?;
        let filled = bare.with_master_name(Some("mymaster"))?;
        assert_eq!(
            filled.to_connect_url(),
            "sentinel://h1:26379/0?master_name=mymaster"
        );
        let again = SentinelUrl::parse(&filled.to_connect_url())?;
        assert_eq!(again.master_name(), Some("mymaster"));
        assert_eq!(again.to_connect_url(), filled.to_connect_url());
        let missing = bare.with_master_name(None).err().unwrap_or_default();
        assert!(missing.contains("master_name"), "{missing}");
        assert!(bare.with_master_name(Some("")).is_err());
        Ok(())
    }

    #[test]
    fn mistakes_are_named() {
        for (bad, says) in [
            ("sentinel://h1;redis://h2", "must start with sentinel://"),
            ("sentinel://h1:port", "bad port"),
            ("sentinel://:26379", "needs a host"),
            ("sentinel://h1/zero", "must be a number"),
            ("sentinel://h1?ssl_cert_reqs=none", "unknown option"),
            ("sentinel://", "needs a host"),
        ] {
            let reason = SentinelUrl::parse(bad).err().unwrap_or_default();
            assert!(reason.contains(says), "{bad}: {reason}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let url = SentinelUrl::parse("sentinel://:hunter2@h1;sentinel://h2");
        let shown = format!("{url:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
