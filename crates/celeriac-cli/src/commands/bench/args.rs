//! The command line of `celeriac bench`: its flags and which rows to run.

use serde::Serialize;

use super::message;
use crate::config::ConnectionArgs;

/// Arguments of `celeriac bench`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = AFTER_HELP)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,

    /// Tasks per phase
    #[arg(
        short = 'n',
        long = "tasks",
        value_name = "N",
        default_value_t = 20_000
    )]
    pub(crate) tasks: usize,

    /// Concurrency: passed to the `celeriac worker` processes only when
    /// given (their default is the number of cores); the in-process row's
    /// [default: 128]
    #[arg(short = 'c', long, value_name = "N")]
    pub(crate) concurrency: Option<usize>,

    /// Number of `celeriac worker` processes
    #[arg(short = 'w', long, value_name = "W", default_value_t = 1)]
    pub(crate) workers: usize,

    /// Messages each worker holds at once: passed to the `celeriac worker`
    /// processes only when given (their default is the adaptive window, up
    /// to 512); the in-process row's [default: 4 × concurrency]
    #[arg(long, value_name = "N")]
    pub(crate) prefetch: Option<usize>,

    /// Worker row: pass `--pool` to the workers (`threads`, their default,
    /// or `blocking`), to compare where sync tasks run
    #[arg(short = 'P', long, value_name = "POOL")]
    pub(crate) pool: Option<String>,

    /// Run only one row: `worker` (`celeriac worker` processes, tasks.add,
    /// results stored) or `in-process` (the async no-op in this process)
    #[arg(long, value_name = "ROW")]
    pub(crate) only: Option<RowKind>,

    /// In-process row only: send with ignore_result, nothing stored (no
    /// latency figures)
    #[arg(long)]
    pub(crate) no_results: bool,

    /// Workers acknowledge after each task instead of on receipt
    #[arg(long)]
    pub(crate) acks_late: bool,

    /// Messages per publish [default: 1000; paced with --rate: one chunk per
    /// millisecond]
    #[arg(long, value_name = "N")]
    pub(crate) chunk: Option<usize>,

    /// Queue to use, kept apart from real work
    #[arg(
        short = 'q',
        long,
        value_name = "QUEUE",
        default_value = "celeriac.bench"
    )]
    pub(crate) queue: String,

    /// In-process row only: the task to send; it must take no arguments
    #[arg(long, value_name = "NAME", default_value = "tasks.noop")]
    pub(crate) task: String,

    /// Pace the end-to-end phase's producer at this many tasks per second,
    /// to read the latency of a queue that keeps up (e.g. 1000, 10000)
    /// [default: as fast as it can]
    #[arg(long, value_name = "TASKS_PER_SECOND")]
    pub(crate) rate: Option<f64>,

    /// Give up a phase after this many seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 300.0)]
    pub(crate) timeout: f64,

    /// Print the report as JSON
    #[arg(long)]
    pub(crate) json: bool,

    /// Also drain the worker row's raw messages with Python Celery (one
    /// worker, prefork, concurrency = cores), at its defaults and tuned
    /// (prefetch multiplier 128, without gossip, mingle and heartbeat), on
    /// this Redis URL, and print both ratios. Runs
    /// bench/python/celery_bench.py with $CELERIAC_PYTHON, else
    /// .venv/bin/python, else python3. THE DATABASE AT THIS URL IS FLUSHED:
    /// give it a scratch database.
    #[arg(long, value_name = "REDIS_URL")]
    pub(crate) compare_celery: Option<String>,

    /// Tasks for each Python Celery drain [default: -n]
    #[arg(long, value_name = "N")]
    pub(crate) celery_tasks: Option<usize>,
}

const AFTER_HELP: &str = "\
Rows:
  worker       `celeriac worker` processes at default flags (what a user runs),
               fed raw Celery messages for the sync task tasks.add(2, 2), results
               stored. Figures: enqueue, drain (from the processes' start, and
               steady from the first result), CPU per task (worker and Redis),
               end to end (latency enqueue -> date_done), worker RSS (idle,
               peak, after the run).
  in-process   a worker inside this process running the async no-op tasks.noop
               (-c 128, prefetch 512): the queue's own cost.

Examples:
  celeriac bench                                    # embedded SQLite, scratch file
  celeriac bench --broker redis://127.0.0.1:6379/1 --backend redis://127.0.0.1:6379/1 \\
      --compare-celery redis://127.0.0.1:6379/2
  celeriac bench --broker ... --backend ... --only worker -n 10000 --rate 1000
";

/// Which row(s) to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RowKind {
    /// `celeriac worker` processes, raw Celery messages for tasks.add.
    Worker,
    /// A worker in this process, the async no-op.
    InProcess,
}

impl RowKind {
    /// What each task of the row returns, when the bench knows it.
    pub(super) fn expected(self) -> Option<i64> {
        match self {
            RowKind::Worker => Some(message::RESULT),
            RowKind::InProcess => None,
        }
    }
}
