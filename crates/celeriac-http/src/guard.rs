//! Refusing cross-site requests that change state.
//!
//! Without a token, or with a dashboard session cookie, a page on any other
//! site could make a visitor's browser send `POST /api/tasks/{name}` (a
//! form or `fetch` with `Content-Type: text/plain` needs no preflight). So a
//! request with a method other than `GET`, `HEAD` or `OPTIONS` is refused
//! with 403 when the browser says it is cross-site:
//!
//! 1. `Sec-Fetch-Site: cross-site`; or
//! 2. an `Origin` header whose host and port are not the request's `Host`
//!    (`Origin: null`, sent by sandboxed and opaque origins, included).
//!
//! Requests without those headers (curl, scripts, Celery clients, the load
//! test) are not browsers' and pass, as do the dashboard's own requests
//! (same origin). `serve --cors` (any origin allowed) turns the check off:
//! the operator asked for other sites' pages to call the API.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::server::Shared;

/// The middleware: pass, or answer 403.
pub(crate) async fn same_origin(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if safe || shared.config.cors_any_origin {
        return next.run(request).await;
    }
    match cross_site(request.headers()) {
        Some(why) => ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "cross-site request refused: {why}; state-changing requests are accepted \
                 from this server's own pages and from clients that are not browsers \
                 (start `celeriac serve --cors` to allow any site)"
            ),
        )
        .into_response(),
        None => next.run(request).await,
    }
}

/// Why the request is cross-site, or `None` when it is not known to be.
pub(crate) fn cross_site(headers: &HeaderMap) -> Option<String> {
    let fetch_site = headers
        .get("sec-fetch-site")
        .map(|v| v.as_bytes().trim_ascii());
    if fetch_site.is_some_and(|site| site.eq_ignore_ascii_case(b"cross-site")) {
        return Some(
            "the browser says it comes from another site (Sec-Fetch-Site: cross-site)".into(),
        );
    }
    let origin = headers.get(header::ORIGIN)?;
    let Some((scheme, origin_host)) = origin
        .to_str()
        .ok()
        .and_then(|o| o.trim().split_once("://"))
    else {
        return Some("its Origin is opaque (null) or malformed".into());
    };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return Some("it has an Origin but no Host to compare it with".into());
    };
    if same_authority(scheme, origin_host, host) {
        None
    } else {
        Some(format!(
            "its Origin ({}) is not this server ({})",
            celeriac::printable(&format!("{scheme}://{origin_host}")),
            celeriac::printable(host)
        ))
    }
}

/// Whether an origin's `host[:port]` names the same server as a `Host`
/// header, the scheme's default port being implied when absent.
fn same_authority(scheme: &str, origin: &str, host: &str) -> bool {
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    let split = |authority: &str| -> (String, String) {
        let authority = authority.trim().trim_end_matches('/').to_ascii_lowercase();
        // `[::1]:8080`, `host:8080`, `host`, `[::1]`.
        match authority.rsplit_once(':') {
            Some((name, port))
                if !port.is_empty()
                    && port.bytes().all(|b| b.is_ascii_digit())
                    && (!name.contains(':') || name.ends_with(']')) =>
            {
                (name.to_owned(), port.to_owned())
            }
            _ => (authority, String::new()),
        }
    };
    let (origin_name, origin_port) = split(origin);
    let (host_name, host_port) = split(host);
    let or_default = |port: String| {
        if port.is_empty() {
            default_port.to_owned()
        } else {
            port
        }
    };
    // Behind a TLS proxy the Host may carry no port while the origin is
    // https: the default port of the origin's scheme is implied for both.
    origin_name == host_name && or_default(origin_port) == or_default(host_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("header value"));
        }
        map
    }

    #[test]
    fn same_origin_and_non_browser_requests_pass() {
        let pass: &[&[(&str, &str)]] = &[
            &[],
            &[("host", "127.0.0.1:8080")],
            &[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080"),
            ],
            &[("host", "Example.COM"), ("origin", "http://example.com")],
            &[("host", "example.com"), ("origin", "https://example.com")],
            &[
                ("host", "example.com:443"),
                ("origin", "https://example.com"),
            ],
            &[("host", "[::1]:8080"), ("origin", "http://[::1]:8080")],
            &[
                ("host", "h:1"),
                ("origin", "http://h:1"),
                ("sec-fetch-site", "same-origin"),
            ],
            &[("host", "h:1"), ("sec-fetch-site", "none")],
        ];
        for case in pass {
            assert_eq!(cross_site(&headers(case)), None, "{case:?}");
        }
    }

    #[test]
    fn cross_site_requests_are_named() {
        let refuse: &[&[(&str, &str)]] = &[
            &[("sec-fetch-site", "cross-site")],
            &[
                ("host", "h:1"),
                ("origin", "http://h:1"),
                ("sec-fetch-site", "Cross-Site"),
            ],
            &[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://evil.example"),
            ],
            &[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:9090"),
            ],
            &[("host", "127.0.0.1:8080"), ("origin", "null")],
            &[("host", "127.0.0.1:8080"), ("origin", "file://")],
            &[("origin", "http://127.0.0.1:8080")],
            &[
                ("host", "example.com"),
                ("origin", "http://example.com.evil.net"),
            ],
        ];
        for case in refuse {
            assert!(cross_site(&headers(case)).is_some(), "{case:?}");
        }
    }
}
