//! [`HttpConfig`]: how the server behaves (auth, limits, what it watches).
//!
//! Plain values with defaults; the binary fills them from flags and the
//! environment, and declares its producer routes ([`ProducerRoute`]).
//! The API token is only ever compared, never logged, and
//! `Debug` prints it as `***`.

use std::time::Duration;

use celeriac_serve::ConnectionTimeouts;

use crate::producer_route::ProducerRoute;

/// The shortest API token [`crate::serve`] accepts, in characters.
pub const MIN_TOKEN_CHARS: usize = 16;

/// Settings of the HTTP server.
#[derive(Clone)]
pub struct HttpConfig {
    /// When set, every route except `/health` needs `Authorization: Bearer
    /// <token>` (or the dashboard's login cookie); requests without it get 401.
    /// It must have at least [`MIN_TOKEN_CHARS`] characters once trimmed
    /// ([`HttpConfig::check`]).
    pub api_token: Option<String>,
    /// Largest accepted request body, in bytes (larger ones get 413).
    pub body_limit: usize,
    /// Queues to list and sample besides the default queue and those seen
    /// in events and sends.
    pub queues: Vec<String>,
    /// How many recent tasks the monitor remembers.
    pub history: usize,
    /// Broadcast `enable_events` to workers periodically (remote control,
    /// Redis only), as Flower does, so task events flow without `-E`.
    pub enable_events: bool,
    /// Accept `POST /api/tasks/{name}` for names this process has not
    /// registered (tasks that only Python or other workers know).
    pub allow_unregistered_tasks: bool,
    /// Answer cross-origin requests to the API from any origin (no cookies).
    /// This also lets state-changing requests from other sites through
    /// (otherwise refused with 403).
    pub cors_any_origin: bool,
    /// How long a connection may wait for its client's request head, and
    /// stay idle between requests, before it is closed.
    pub timeouts: ConnectionTimeouts,
    /// How often queue depths are sampled for the dashboard and metrics.
    pub sample_interval: Duration,
    /// How often the backend is polled for tasks that are not finished
    /// (progress, and outcomes when workers send no task events).
    pub poll_interval: Duration,
    /// The application's producer routes, served under `/producer/api/`
    /// and listed in the OpenAPI document (none by default). Names must be
    /// unique ([`HttpConfig::check`]).
    pub producer_routes: Vec<ProducerRoute>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            api_token: None,
            body_limit: 1024 * 1024,
            queues: Vec::new(),
            history: 5000,
            enable_events: true,
            allow_unregistered_tasks: false,
            cors_any_origin: false,
            timeouts: ConnectionTimeouts::default(),
            sample_interval: Duration::from_secs(2),
            poll_interval: Duration::from_millis(500),
            producer_routes: Vec::new(),
        }
    }
}

impl HttpConfig {
    /// Refuse settings that would leave the server open while looking
    /// protected: a token that is blank or shorter than
    /// [`MIN_TOKEN_CHARS`] (once trimmed; the token compared is the trimmed
    /// one). No token at all means no authentication, as documented.
    /// Refuse producer routes that cannot be served: an invalid name or
    /// field ([`ProducerRoute::check`]), or two routes with one name.
    ///
    /// # Errors
    /// [`crate::Error::WeakToken`], [`crate::Error::InvalidProducerRoute`],
    /// [`crate::Error::DuplicateProducerRoute`].
    pub fn check(&self) -> Result<(), crate::Error> {
        crate::producer_route::check_all(&self.producer_routes)?;
        if let Some(token) = &self.api_token {
            let chars = token.trim().chars().count();
            if chars < MIN_TOKEN_CHARS {
                return Err(crate::Error::WeakToken {
                    chars,
                    min: MIN_TOKEN_CHARS,
                });
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("api_token", &self.api_token.as_ref().map(|_| "***"))
            .field("body_limit", &self.body_limit)
            .field("queues", &self.queues)
            .field("history", &self.history)
            .field("enable_events", &self.enable_events)
            .field("allow_unregistered_tasks", &self.allow_unregistered_tasks)
            .field("cors_any_origin", &self.cors_any_origin)
            .field("timeouts", &self.timeouts)
            .field("sample_interval", &self.sample_interval)
            .field("poll_interval", &self.poll_interval)
            .field("producer_routes", &self.producer_routes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_and_short_tokens_are_refused() {
        let with = |token: Option<&str>| HttpConfig {
            api_token: token.map(str::to_owned),
            ..HttpConfig::default()
        };
        assert!(with(None).check().is_ok());
        assert!(with(Some("0123456789abcdef")).check().is_ok());
        assert!(with(Some("  0123456789abcdef\n")).check().is_ok());
        for weak in ["", "   ", "\t\n", "short", " 0123456789abcde "] {
            let err = with(Some(weak)).check().expect_err(weak);
            assert!(
                matches!(err, crate::Error::WeakToken { min: 16, .. }),
                "{weak:?}: {err}"
            );
            assert!(err.to_string().contains("at least 16 characters"), "{err}");
        }
    }

    #[test]
    fn debug_hides_the_token() {
        let config = HttpConfig {
            api_token: Some("s3cret".into()),
            ..HttpConfig::default()
        };
        let text = format!("{config:?}");
        assert!(!text.contains("s3cret") && text.contains("***"), "{text}");
    }
}
