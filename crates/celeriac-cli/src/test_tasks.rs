//! Test-only tasks, registered only by `celeriac worker --with-test-tasks DIR`.
//!
//! `tasks.record(path, value)` and `tasks.slow_record(path, value, seconds)`
//! append `<task id>\t<value as JSON>` to a file, one line per execution, so
//! a test can see a task run twice. A production worker must not run a task
//! that writes where its caller says, so:
//!
//! 1. they are not among the shipped tasks: a default `celeriac worker`
//!    answers them with `NotRegistered`, and `celeriac serve` refuses them;
//! 2. with the flag, they write only to files directly inside `DIR` (a bare
//!    file name, or an absolute path whose directory is `DIR`), never
//!    through a symbolic link; any other path fails with `PermissionError`
//!    and nothing is written.

use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use celeriac::task::{ArgReader, TaskCall};
use celeriac::{AppBuilder, Context, Task, TaskError};
use serde_json::{Map, Value};

/// Environment variable equivalent to `--with-test-tasks DIR`.
pub(crate) const TEST_TASKS_ENV: &str = "CELERIAC_TEST_TASKS_DIR";
/// Name of the task appending one line per run.
pub(crate) const RECORD: &str = "tasks.record";
/// Name of the task sleeping, then appending one line.
pub(crate) const SLOW_RECORD: &str = "tasks.slow_record";

/// The one directory the test tasks may write in (canonical).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TestTasksDir(PathBuf);

impl TestTasksDir {
    /// The directory at `dir`, which must exist.
    ///
    /// # Errors
    /// When `dir` does not exist or is not a directory.
    pub(crate) fn open(dir: &Path) -> anyhow::Result<TestTasksDir> {
        let canonical = dir.canonicalize().with_context(|| {
            format!("--with-test-tasks: cannot open directory {}", dir.display())
        })?;
        if !canonical.is_dir() {
            anyhow::bail!("--with-test-tasks: {} is not a directory", dir.display());
        }
        Ok(TestTasksDir(canonical))
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// Where a caller's `path` may be written: a file directly inside the
    /// directory, not a symbolic link.
    ///
    /// # Errors
    /// `PermissionError` for any other path.
    fn resolve(&self, path: &str) -> Result<PathBuf, TaskError> {
        let refuse = || {
            TaskError::new(
                "PermissionError",
                format!(
                    "test tasks write only to files directly in {} (--with-test-tasks); \
                     refused {}",
                    self.0.display(),
                    celeriac::printable(path)
                ),
            )
        };
        let given = Path::new(path);
        let name = match given.file_name() {
            Some(name) if given.components().next_back() == Some(Component::Normal(name)) => name,
            _ => return Err(refuse()),
        };
        let inside = match given.parent() {
            // A bare file name.
            Some(parent) if parent.as_os_str().is_empty() => true,
            Some(parent) if given.is_absolute() => {
                parent.canonicalize().is_ok_and(|parent| parent == self.0)
            }
            _ => false,
        };
        if !inside {
            return Err(refuse());
        }
        let target = self.0.join(name);
        if std::fs::symlink_metadata(&target).is_ok_and(|m| !m.is_file()) {
            return Err(refuse());
        }
        Ok(target)
    }
}

/// Register `tasks.record` and `tasks.slow_record`, writing only in `dir`.
pub(crate) fn register(builder: AppBuilder, dir: &TestTasksDir) -> AppBuilder {
    let dir = Arc::new(dir.clone());
    builder.task(Record(Arc::clone(&dir))).task(SlowRecord(dir))
}

/// `tasks.record(path, value)`: append `<task id>\t<value>` and return
/// `value`.
struct Record(Arc<TestTasksDir>);

impl Task for Record {
    fn name(&self) -> &'static str {
        RECORD
    }

    fn call(
        &self,
        ctx: Context,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Result<TaskCall, TaskError> {
        let mut reader = ArgReader::new(RECORD, args, kwargs);
        let path: String = reader.next("path")?;
        let value: Value = reader.next("value")?;
        reader.finish(2)?;
        let dir = Arc::clone(&self.0);
        Ok(TaskCall::Blocking(Box::new(move || {
            append_line(&dir.resolve(&path)?, ctx.task_id(), &value)?;
            Ok(value)
        })))
    }
}

/// `tasks.slow_record(path, value, seconds)`: sleep (holding a blocking-pool
/// thread, as CPU-bound work would), then do what `tasks.record` does.
struct SlowRecord(Arc<TestTasksDir>);

impl Task for SlowRecord {
    fn name(&self) -> &'static str {
        SLOW_RECORD
    }

    fn call(
        &self,
        ctx: Context,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Result<TaskCall, TaskError> {
        let mut reader = ArgReader::new(SLOW_RECORD, args, kwargs);
        let path: String = reader.next("path")?;
        let value: Value = reader.next("value")?;
        let seconds: f64 = reader.next("seconds")?;
        reader.finish(3)?;
        let dir = Arc::clone(&self.0);
        Ok(TaskCall::Blocking(Box::new(move || {
            let pause = Duration::try_from_secs_f64(seconds).map_err(|_| {
                TaskError::new("ValueError", format!("cannot sleep {seconds} seconds"))
            })?;
            let target = dir.resolve(&path)?;
            std::thread::sleep(pause);
            append_line(&target, ctx.task_id(), &value)?;
            Ok(value)
        })))
    }
}

/// One `write` on a file opened for appending: concurrent writers (several
/// worker processes) never interleave within a line this short.
fn append_line(path: &Path, task_id: &str, value: &Value) -> Result<(), TaskError> {
    let line = format!("{task_id}\t{value}\n");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(line.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(task: &dyn Task, args: Vec<Value>) -> Result<Value, TaskError> {
        let ctx = Context::detached("id-1", task.name());
        match task.call(ctx, args, Map::new())? {
            TaskCall::Blocking(f) => f(),
            TaskCall::Async(_) => panic!("the test tasks are blocking"),
        }
    }

    /// As [`run`], with the error as text (for `?` in tests).
    fn ok(task: &dyn Task, args: Vec<Value>) -> Result<Value, String> {
        run(task, args).map_err(|e| format!("{}: {}", e.exc_type, e.exc_message))
    }

    #[test]
    fn record_appends_one_line_per_run_inside_the_directory(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let tasks = Arc::new(TestTasksDir::open(dir.path())?);
        let record = Record(Arc::clone(&tasks));
        let absolute = dir.path().join("runs.txt").to_string_lossy().into_owned();
        assert_eq!(ok(&record, vec![json!(absolute), json!(7)])?, json!(7));
        ok(&record, vec![json!("runs.txt"), json!("x")])?;
        let slow = SlowRecord(tasks);
        ok(&slow, vec![json!("runs.txt"), json!(null), json!(0)])?;
        assert_eq!(
            std::fs::read_to_string(dir.path().join("runs.txt"))?,
            "id-1\t7\nid-1\t\"x\"\nid-1\tnull\n"
        );
        Ok(())
    }

    #[test]
    fn paths_outside_the_directory_are_refused_and_nothing_is_written(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let root = tempfile::tempdir()?;
        let allowed = root.path().join("allowed");
        let sub = allowed.join("sub");
        std::fs::create_dir_all(&sub)?;
        let outside = root.path().join("outside.txt");
        std::os::unix::fs::symlink(&outside, allowed.join("link.txt"))?;
        let record = Record(Arc::new(TestTasksDir::open(&allowed)?));
        let cases = [
            outside.to_string_lossy().into_owned(),
            format!("{}/../outside.txt", allowed.display()),
            "../outside.txt".to_owned(),
            "sub/x.txt".to_owned(),
            sub.join("x.txt").to_string_lossy().into_owned(),
            "link.txt".to_owned(),
            String::new(),
            ".".to_owned(),
            "..".to_owned(),
            allowed.to_string_lossy().into_owned(),
            "/etc/cron.d/x".to_owned(),
        ];
        for path in cases {
            let err = run(&record, vec![json!(path), json!(1)])
                .expect_err(&format!("{path:?} must be refused"));
            assert_eq!(err.exc_type, "PermissionError", "{path:?}: {err:?}");
        }
        assert!(!outside.exists(), "nothing written through the symlink");
        assert!(!sub.join("x.txt").exists());
        assert_eq!(std::fs::read_dir(&sub)?.count(), 0);
        Ok(())
    }

    #[test]
    fn the_directory_must_exist() {
        let err =
            TestTasksDir::open(Path::new("/no/such/celeriac/dir")).expect_err("missing directory");
        assert!(format!("{err:#}").contains("--with-test-tasks"), "{err:#}");
    }
}
