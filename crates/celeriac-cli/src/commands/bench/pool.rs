//! The workers a bench row measures: in this process, or worker processes
//! (`celeriac worker`, or Python Celery for `--compare-celery`).

use std::time::Duration;

use anyhow::{bail, Context as _};

use super::procfs;
use crate::inprocess::InProcessWorker;

/// Who consumes the bench queue.
pub(super) enum Pool {
    /// Workers in this process, sharing its broker connection.
    InProcess(Vec<InProcessWorker>),
    /// Worker processes (`celeriac worker`, or a Python Celery worker).
    Processes(Vec<tokio::process::Child>),
}

impl Pool {
    pub(super) fn describe(&self) -> &'static str {
        match self {
            Pool::InProcess(_) => "in-process",
            Pool::Processes(_) => "worker process",
        }
    }

    /// Tasks finished so far, when the pool can count them itself.
    pub(super) fn processed(&self) -> Option<u64> {
        match self {
            Pool::InProcess(workers) => Some(
                workers
                    .iter()
                    .map(|w| {
                        w.stats()
                            .processed
                            .load(std::sync::atomic::Ordering::Relaxed)
                    })
                    .sum(),
            ),
            Pool::Processes(_) => None,
        }
    }

    /// The worker processes' ids (none for in-process workers).
    pub(super) fn pids(&self) -> Vec<u32> {
        match self {
            Pool::InProcess(_) => Vec::new(),
            Pool::Processes(children) => children.iter().filter_map(|c| c.id()).collect(),
        }
    }

    /// The largest of the worker processes' `field` (`VmRSS`, `VmHWM`).
    pub(super) fn memory_mib(&self, field: &str) -> Option<f64> {
        self.pids()
            .into_iter()
            .filter_map(|pid| procfs::memory_mib(pid, field))
            .reduce(f64::max)
    }

    /// Fails if a worker process has exited (it cannot finish the run).
    pub(super) fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Pool::Processes(children) = self {
            for child in children {
                if let Some(status) = child.try_wait().context("polling a worker process")? {
                    bail!("a worker process exited early ({status}); run it by hand to see why");
                }
            }
        }
        Ok(())
    }

    pub(super) async fn stop(self) -> anyhow::Result<()> {
        match self {
            Pool::InProcess(workers) => {
                for w in workers {
                    w.stop().await?;
                }
            }
            Pool::Processes(children) => {
                for child in &children {
                    if let Some(pid) = child.id() {
                        let _ = tokio::process::Command::new("kill")
                            .args(["-TERM", &pid.to_string()])
                            .status()
                            .await;
                    }
                }
                for mut child in children {
                    match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
                        Ok(status) => {
                            let status = status.context("waiting for a worker process")?;
                            if !status.success() {
                                tracing::warn!(%status, "a bench worker process exited with an error");
                            }
                        }
                        Err(_) => {
                            tracing::warn!(
                                "a bench worker process ignored SIGTERM for 30 s; killing it"
                            );
                            let _ = child.kill().await;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
