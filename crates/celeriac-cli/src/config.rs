//! Configuration in two stages, as ripgrep's `lowargs`/`hiargs`.
//!
//! 1. Raw inputs: [`ConnectionArgs`] and [`WorkerArgs`] are what clap parsed
//!    from flags and environment variables (clap reads `CELERIAC_*` itself,
//!    so a flag beats its variable); [`FileConfig`] is the optional TOML file
//!    (`--config FILE` or `CELERIAC_CONFIG`). Nothing is checked yet.
//! 2. Validated: [`Config`] and [`WorkerConfig`] merge those sources
//!    (flags > environment > file > defaults), check every value, and build
//!    what the library needs: an [`AppBuilder`] and [`WorkerOptions`].
//!
//! Commands only ever see the validated types; the library never sees a CLI
//! type. URLs are logged and shown only through [`celeriac::redact`].
//!
//! The file's keys (all optional; unknown keys are an error, so typos show):
//!
//! ```toml
//! broker_url = "sqlite://celeriac.db"
//! result_backend = "sqlite://celeriac.db"
//! default_queue = "celery"
//! visibility_timeout = 3600   # seconds
//! result_expires = 86400      # seconds
//!
//! [broker_transport_options]  # as Celery names them
//! global_keyprefix = "proj:"  # prefix of every Redis key
//! master_name = "mymaster"    # the master a sentinel:// URL follows
//!
//! [worker]
//! queues = ["celery"]
//! concurrency = 4
//! pool = "threads"            # or "blocking"
//! prefetch = 16
//! acks_late = false
//! shutdown_timeout = 30       # seconds
//! hostname = "celeriac@host"
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use celeriac::{redact, App, AppBuilder, AppConfig, WorkerOptions};
use celeriac_serve::ConnectionTimeouts;
use serde::Deserialize;

/// Flags shared by every command that talks to a broker or backend.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConnectionArgs {
    /// Broker URL: sqlite://PATH, redis://[:password@]host:port/db, rediss://…,
    /// sentinel://host:26379;sentinel://host2:26379 (with --master-name), amqp://…, memory://
    /// [default: sqlite://celeriac.db]
    #[arg(
        long,
        value_name = "URL",
        env = "CELERIAC_BROKER_URL",
        hide_env_values = true
    )]
    pub(crate) broker: Option<String>,

    /// Result backend URL (same schemes as --broker) [default: sqlite://celeriac.db]
    #[arg(
        long,
        value_name = "URL",
        env = "CELERIAC_RESULT_BACKEND",
        hide_env_values = true
    )]
    pub(crate) backend: Option<String>,

    /// TOML configuration file; flags and environment variables override it
    #[arg(
        long,
        value_name = "FILE",
        env = "CELERIAC_CONFIG",
        hide_env_values = true
    )]
    pub(crate) config: Option<PathBuf>,

    /// Seconds a reserved message may stay unacknowledged before it is
    /// delivered again (kombu's visibility_timeout) [default: 3600]
    #[arg(
        long,
        value_name = "SECONDS",
        env = "CELERIAC_VISIBILITY_TIMEOUT",
        hide_env_values = true
    )]
    pub(crate) visibility_timeout: Option<f64>,

    /// Prefix of every Redis key and channel (kombu's
    /// broker_transport_options global_keyprefix): set it to the producers'
    /// value, or the worker never sees their queues [default: none]
    #[arg(long, value_name = "PREFIX", env = "CELERIAC_GLOBAL_KEYPREFIX")]
    pub(crate) global_keyprefix: Option<String>,

    /// The Redis master a sentinel:// broker or backend follows (Celery's
    /// broker_transport_options master_name); a URL's ?master_name= wins
    #[arg(long, value_name = "NAME", env = "CELERIAC_MASTER_NAME")]
    pub(crate) master_name: Option<String>,
}

/// Flags of `celeriac worker` beyond the connection.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct WorkerArgs {
    /// Queues to consume, comma-separated [default: celery]
    #[arg(short = 'Q', long, value_name = "QUEUES", value_delimiter = ',')]
    pub(crate) queues: Vec<String>,

    /// Tasks executing at once [default: number of cores]
    #[arg(
        short = 'c',
        long,
        value_name = "N",
        env = "CELERIAC_CONCURRENCY",
        hide_env_values = true
    )]
    pub(crate) concurrency: Option<usize>,

    /// Where sync tasks run: `threads`, -c threads of the worker's own fed
    /// by a channel, or `blocking`, tokio's blocking pool (a thread per
    /// running task, started on demand) [default: threads]. Async tasks
    /// always run on the runtime
    #[arg(short = 'P', long, value_name = "POOL")]
    pub(crate) pool: Option<String>,

    /// Messages held at once, executing or waiting. Unset, the worker
    /// holds what it finishes in about 50 ms at its recent rate, at least
    /// 4 × concurrency (Celery's prefetch) and at most 512: short tasks
    /// travel in batches, long ones are left for other workers. Set, it
    /// holds up to N; 1 keeps strict queue and priority order
    #[arg(long, value_name = "N")]
    pub(crate) prefetch: Option<usize>,

    /// Acknowledge messages after the task finished, not on receipt, so a
    /// crash redelivers them (Celery's task_acks_late)
    #[arg(long)]
    pub(crate) acks_late: bool,

    /// On SIGINT/SIGTERM, seconds running tasks may take to finish before
    /// they are aborted and their messages given back [default: 30]
    #[arg(long, value_name = "SECONDS")]
    pub(crate) shutdown_timeout: Option<f64>,

    /// Node name [default: celeriac@<host>]
    #[arg(short = 'n', long, value_name = "NAME")]
    pub(crate) hostname: Option<String>,

    /// Send task events from the start (Celery's -E), for monitors that
    /// cannot switch them on remotely (on Redis, Flower and `celeriac serve`
    /// switch them on themselves)
    #[arg(short = 'E', long)]
    pub(crate) events: bool,
}

/// Connection timeouts of the HTTP servers (`serve`, `rank-server`).
#[derive(Debug, Clone, clap::Args)]
pub struct TimeoutArgs {
    /// Seconds a client may take to send a complete request head (from
    /// connecting, or from the first byte of a later request); slower or
    /// silent connections are closed
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub(crate) header_timeout: f64,

    /// Seconds a keep-alive connection may stay idle between requests
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    pub(crate) idle_timeout: f64,
}

impl TimeoutArgs {
    /// The validated timeouts: each at least 0.01 s.
    ///
    /// # Errors
    /// When a value is not a positive number of seconds.
    pub fn timeouts(&self) -> anyhow::Result<ConnectionTimeouts> {
        let check = |flag: &str, value: f64| -> anyhow::Result<Duration> {
            if !(value.is_finite() && value >= 0.01) {
                bail!("{flag} must be at least 0.01 seconds, got {value}");
            }
            seconds(flag, value)
        };
        Ok(ConnectionTimeouts {
            header_read: check("--header-timeout", self.header_timeout)?,
            idle: check("--idle-timeout", self.idle_timeout)?,
        })
    }
}

/// The TOML file, as written (stage 1).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    broker_url: Option<String>,
    result_backend: Option<String>,
    default_queue: Option<String>,
    visibility_timeout: Option<f64>,
    result_expires: Option<f64>,
    #[serde(default)]
    broker_transport_options: FileTransportOptions,
    #[serde(default)]
    worker: FileWorker,
}

/// The `[broker_transport_options]` table, named as Celery names it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTransportOptions {
    global_keyprefix: Option<String>,
    master_name: Option<String>,
}

/// The `[worker]` table of the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWorker {
    queues: Option<Vec<String>>,
    concurrency: Option<usize>,
    pool: Option<String>,
    prefetch: Option<usize>,
    acks_late: Option<bool>,
    shutdown_timeout: Option<f64>,
    hostname: Option<String>,
}

impl FileConfig {
    /// Read and parse the file at `path`.
    fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }
}

/// Validated connection settings (stage 2): what every command builds its
/// [`App`] from.
#[derive(Debug, Clone)]
pub struct Config {
    /// The library's settings, URLs included.
    pub(crate) app: AppConfig,
    /// The parsed file, kept for the sections other commands read.
    file_worker: FileWorkerValues,
}

/// The `[worker]` values of the file, carried to [`WorkerConfig`].
#[derive(Debug, Clone, Default)]
struct FileWorkerValues {
    queues: Option<Vec<String>>,
    concurrency: Option<usize>,
    pool: Option<String>,
    prefetch: Option<usize>,
    acks_late: Option<bool>,
    shutdown_timeout: Option<f64>,
    hostname: Option<String>,
}

/// An empty string counts as unset (e.g. `CELERIAC_BROKER_URL=`).
fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// A positive, finite number of seconds named `what`.
fn seconds(what: &str, value: f64) -> anyhow::Result<Duration> {
    if !value.is_finite() || value < 0.0 {
        bail!("{what} must be a non-negative number of seconds, got {value}");
    }
    Duration::try_from_secs_f64(value).with_context(|| format!("{what} is too large: {value}"))
}

/// Check that a URL names a transport the library knows, before
/// connecting, so the error names the flag rather than a connection failure.
fn check_url(what: &str, url: &str) -> anyhow::Result<()> {
    celeriac::Transport::parse(url)
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

impl Config {
    /// Merge flags and environment (`args`) over the file over the defaults.
    ///
    /// # Errors
    /// When the file cannot be read or parsed, or a value is invalid.
    pub fn from_args(args: &ConnectionArgs) -> anyhow::Result<Config> {
        Config::resolve(args, celeriac::DEFAULT_URL, celeriac::DEFAULT_URL)
    }

    fn resolve(
        args: &ConnectionArgs,
        default_broker: &str,
        default_backend: &str,
    ) -> anyhow::Result<Config> {
        let file = match &args.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let broker = non_empty(args.broker.clone()).or(non_empty(file.broker_url));
        let broker_url = broker.clone().unwrap_or_else(|| default_broker.to_owned());
        check_url("broker", &broker_url)?;
        // No backend named: results go where the messages go (the same
        // Redis, the same file), never to a surprise local file.
        let backend_url = match non_empty(args.backend.clone()).or(non_empty(file.result_backend)) {
            Some(backend) => backend,
            None => broker
                .and_then(|b| celeriac::Transport::parse(&b).ok()?.implied_backend_url())
                .unwrap_or_else(|| default_backend.to_owned()),
        };
        let mut app = AppConfig {
            broker_url,
            backend_url,
            ..AppConfig::default()
        };
        check_url("result backend", &app.backend_url)?;
        if let Some(prefix) = args
            .global_keyprefix
            .clone()
            .or(file.broker_transport_options.global_keyprefix)
        {
            app.key_prefix = prefix;
        }
        app.master_name = non_empty(args.master_name.clone())
            .or(non_empty(file.broker_transport_options.master_name));
        if let Some(queue) = non_empty(file.default_queue) {
            app.default_queue = queue;
        }
        if let Some(s) = args.visibility_timeout.or(file.visibility_timeout) {
            app.visibility_timeout = seconds("visibility timeout", s)?;
            if app.visibility_timeout < Duration::from_millis(100) {
                bail!("visibility timeout must be at least 0.1 seconds, got {s}");
            }
        }
        if let Some(s) = file.result_expires {
            app.result_expires = seconds("result_expires", s)?;
        }
        let w = file.worker;
        Ok(Config {
            app,
            file_worker: FileWorkerValues {
                queues: w.queues,
                concurrency: w.concurrency,
                pool: w.pool,
                prefetch: w.prefetch,
                acks_late: w.acks_late,
                shutdown_timeout: w.shutdown_timeout,
                hostname: w.hostname,
            },
        })
    }

    /// As [`Config::from_args`], but with other defaults for the broker and
    /// backend (the demo and bench use a scratch file, not `celeriac.db`).
    ///
    /// # Errors
    /// As [`Config::from_args`].
    pub fn with_default_urls(
        args: &ConnectionArgs,
        broker: &str,
        backend: &str,
    ) -> anyhow::Result<Config> {
        Config::resolve(args, broker, backend)
    }

    /// The library's settings (URLs, queue, timeouts).
    pub fn app_config(&self) -> &AppConfig {
        &self.app
    }

    /// An [`AppBuilder`] with these settings and no tasks.
    pub(crate) fn app_builder(&self) -> AppBuilder {
        App::builder().config(self.app.clone())
    }

    /// Connect the broker and backend, registering the tasks `register` adds.
    ///
    /// # Errors
    /// When the broker or backend cannot be opened or reached.
    pub async fn connect(
        &self,
        register: impl FnOnce(AppBuilder) -> AppBuilder,
    ) -> anyhow::Result<App> {
        register(self.app_builder()).build().await.with_context(|| {
            format!(
                "connecting to broker {} and result backend {}",
                redact(&self.app.broker_url),
                redact(&self.app.backend_url)
            )
        })
    }

    /// The broker URL, safe to print.
    pub fn broker_display(&self) -> String {
        redact(&self.app.broker_url)
    }

    /// The backend URL, safe to print.
    pub fn backend_display(&self) -> String {
        redact(&self.app.backend_url)
    }
}

/// Validated `celeriac worker` settings (stage 2).
#[derive(Debug, Clone)]
pub(crate) struct WorkerConfig {
    /// Connection settings.
    pub(crate) config: Config,
    /// What the library's worker needs.
    pub(crate) options: WorkerOptions,
}

impl WorkerConfig {
    /// Merge the worker flags over the file's `[worker]` table.
    ///
    /// # Errors
    /// When the connection settings or a worker value are invalid.
    pub(crate) fn from_args(conn: &ConnectionArgs, args: &WorkerArgs) -> anyhow::Result<Self> {
        let config = Config::from_args(conn)?;
        let file = &config.file_worker;
        let mut options = WorkerOptions::default();

        let queues: Vec<String> = if args.queues.is_empty() {
            file.queues.clone().unwrap_or_default()
        } else {
            args.queues.clone()
        };
        let queues: Vec<String> = queues
            .into_iter()
            .map(|q| q.trim().to_owned())
            .filter(|q| !q.is_empty())
            .collect();
        options.queues = if queues.is_empty() {
            vec![config.app.default_queue.clone()]
        } else {
            queues
        };
        if let Some(c) = args.concurrency.or(file.concurrency) {
            if c == 0 {
                bail!("concurrency must be at least 1");
            }
            options.concurrency = c;
        }
        if let Some(pool) = args.pool.as_deref().or(file.pool.as_deref()) {
            options.sync_pool =
                celeriac::SyncPool::parse(pool.trim()).map_err(anyhow::Error::msg)?;
        }
        let prefetch = args.prefetch.or(file.prefetch);
        // A prefetch the user chose is held as given; the default adapts.
        options.adaptive_prefetch = prefetch.is_none();
        options.prefetch = match prefetch {
            Some(0) => bail!("prefetch must be at least 1"),
            Some(p) => p,
            None => celeriac::worker::DEFAULT_PREFETCH,
        };
        if options.prefetch < options.concurrency {
            tracing::warn!(
                prefetch = options.prefetch,
                concurrency = options.concurrency,
                "prefetch is below concurrency: at most {} tasks will run at once",
                options.prefetch
            );
        }
        options.acks_late = args.acks_late || file.acks_late.unwrap_or(false);
        options.send_events = args.events;
        if let Some(s) = args.shutdown_timeout.or(file.shutdown_timeout) {
            options.shutdown_timeout = seconds("shutdown timeout", s)?;
        }
        if let Some(name) = non_empty(args.hostname.clone()).or(non_empty(file.hostname.clone())) {
            options.hostname = name;
        }
        Ok(WorkerConfig { config, options })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("celeriac.toml");
        std::fs::write(&path, text).expect("write config");
        path
    }

    #[test]
    fn flags_beat_the_file_which_beats_defaults() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = write(
            dir.path(),
            "broker_url = \"sqlite://file.db\"\nresult_backend = \"memory://\"\n\
             visibility_timeout = 5\n[broker_transport_options]\nglobal_keyprefix = \"proj:\"\n\
             master_name = \"mymaster\"\n\
             [worker]\nconcurrency = 3\npool = \"blocking\"\nqueues = [\"a\", \"b\"]\n",
        );
        let conn = ConnectionArgs {
            broker: Some("sqlite://flag.db".into()),
            config: Some(path),
            ..Default::default()
        };
        let worker = WorkerArgs {
            prefetch: Some(7),
            ..Default::default()
        };
        let cfg = WorkerConfig::from_args(&conn, &worker)?;
        assert_eq!(cfg.config.app.broker_url, "sqlite://flag.db");
        assert_eq!(cfg.config.app.backend_url, "memory://");
        assert_eq!(cfg.config.app.visibility_timeout, Duration::from_secs(5));
        assert_eq!(cfg.config.app.key_prefix, "proj:");
        assert_eq!(cfg.config.app.master_name.as_deref(), Some("mymaster"));
        assert_eq!(cfg.options.concurrency, 3);
        assert_eq!(cfg.options.sync_pool, celeriac::SyncPool::Blocking);
        assert_eq!(cfg.options.prefetch, 7);
        assert!(
            !cfg.options.adaptive_prefetch,
            "a chosen prefetch is held as given"
        );
        assert_eq!(cfg.options.queues, vec!["a".to_owned(), "b".to_owned()]);
        Ok(())
    }

    #[test]
    fn defaults_are_the_embedded_file() -> anyhow::Result<()> {
        let cfg = WorkerConfig::from_args(&ConnectionArgs::default(), &WorkerArgs::default())?;
        assert_eq!(cfg.config.app.broker_url, celeriac::DEFAULT_URL);
        assert_eq!(cfg.config.app.backend_url, celeriac::DEFAULT_URL);
        // A broker without a backend keeps results beside the messages.
        let redis_only = ConnectionArgs {
            broker: Some("redis://127.0.0.1:6399/2".into()),
            ..ConnectionArgs::default()
        };
        let implied = Config::from_args(&redis_only)?;
        assert_eq!(implied.app.backend_url, "redis://127.0.0.1:6399/2");
        assert_eq!(cfg.options.queues, vec!["celery".to_owned()]);
        assert_eq!(cfg.options.prefetch, celeriac::worker::DEFAULT_PREFETCH);
        assert!(cfg.options.adaptive_prefetch);
        assert_eq!(cfg.options.sync_pool, celeriac::SyncPool::Threads);
        Ok(())
    }

    #[test]
    fn a_sentinel_broker_takes_its_master_name_from_the_flag() -> anyhow::Result<()> {
        let conn = ConnectionArgs {
            broker: Some("sentinel://:pw@127.0.0.1:26379/1;sentinel://127.0.0.1:26380".into()),
            master_name: Some("mymaster".into()),
            ..Default::default()
        };
        let cfg = Config::from_args(&conn)?;
        // No backend named: results go to the same master.
        assert_eq!(cfg.app.backend_url, cfg.app.broker_url);
        assert_eq!(cfg.app.master_name.as_deref(), Some("mymaster"));
        assert!(!cfg.broker_display().contains("pw"));
        Ok(())
    }

    #[test]
    fn bad_values_are_named() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let conn = ConnectionArgs {
            broker: Some("kafka://:hunter2@host//".into()),
            ..Default::default()
        };
        let err = Config::from_args(&conn)
            .expect_err("unknown scheme")
            .to_string();
        assert!(err.contains("kafka") && !err.contains("hunter2"), "{err}");

        let path = write(dir.path(), "brokr_url = \"x\"\n");
        let conn = ConnectionArgs {
            config: Some(path),
            ..Default::default()
        };
        let err = format!("{:#}", Config::from_args(&conn).expect_err("typo"));
        assert!(err.contains("brokr_url"), "{err}");

        let worker = WorkerArgs {
            concurrency: Some(0),
            ..Default::default()
        };
        assert!(WorkerConfig::from_args(&ConnectionArgs::default(), &worker).is_err());

        let worker = WorkerArgs {
            pool: Some("prefork".into()),
            ..Default::default()
        };
        let err = WorkerConfig::from_args(&ConnectionArgs::default(), &worker)
            .expect_err("a Python pool")
            .to_string();
        assert!(err.contains("prefork") && err.contains("threads"), "{err}");
        Ok(())
    }
}
