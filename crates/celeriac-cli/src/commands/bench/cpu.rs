//! CPU time spent per task, which a shared machine's load skews far less
//! than wall-clock rates: the workers' (this process, or the worker
//! processes) from `/proc/<pid>/stat`, and the Redis server's from its own
//! `INFO cpu` (`used_cpu_user + used_cpu_sys`).

use serde::Serialize;

/// User + system CPU seconds of a process (Linux), or `None` where
/// `/proc` cannot say.
pub(super) fn process_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // After the parenthesized command name, utime and stime are fields 12 and 13.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / CLOCK_TICKS)
}

/// `sysconf(_SC_CLK_TCK)` on every Linux we run on.
const CLOCK_TICKS: f64 = 100.0;

/// The Redis server's CPU seconds so far, when the broker is Redis.
pub(super) async fn redis_seconds(broker_url: &str) -> Option<f64> {
    let transport = celeriac::Transport::parse(broker_url).ok()?;
    let client = redis::Client::open(transport.redis_url()?).ok()?;
    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query_async(&mut conn)
        .await
        .ok()?;
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    Some(field("used_cpu_user")? + field("used_cpu_sys")?)
}

/// CPU microseconds per task during a phase.
#[derive(Debug, Clone, Copy, Serialize)]
pub(super) struct CpuPerTask {
    /// The workers (this process when they run in it; it also counts the
    /// bench's own bookkeeping, which is small next to them).
    pub(super) workers_us: f64,
    /// The Redis server, when the broker is Redis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) redis_us: Option<f64>,
}

/// CPU readings at the start of a phase.
pub(super) struct CpuMark {
    workers: Option<f64>,
    redis: Option<f64>,
}

impl CpuMark {
    /// Reads the clocks just before the workers start: this process's when
    /// they will run in it, zero for worker processes not started yet.
    pub(super) async fn before_workers(in_process: bool, broker_url: &str) -> CpuMark {
        CpuMark {
            workers: if in_process {
                process_seconds(None)
            } else {
                Some(0.0)
            },
            redis: redis_seconds(broker_url).await,
        }
    }

    /// CPU per task since this mark, for `tasks` tasks; `pids` are the
    /// worker processes (empty: the workers run in this process).
    pub(super) async fn per_task(
        &self,
        tasks: usize,
        pids: &[u32],
        broker_url: &str,
    ) -> Option<CpuPerTask> {
        let per_task = |seconds: f64| seconds * 1e6 / tasks.max(1) as f64;
        let workers = workers_seconds(pids)? - self.workers?;
        let redis = match (self.redis, redis_seconds(broker_url).await) {
            (Some(before), Some(after)) => Some(per_task(after - before)),
            _ => None,
        };
        Some(CpuPerTask {
            workers_us: per_task(workers),
            redis_us: redis,
        })
    }
}

fn workers_seconds(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return process_seconds(None);
    }
    pids.iter().map(|pid| process_seconds(Some(*pid))).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_cpu_clock_that_moves() {
        let before = process_seconds(None).expect("/proc/self/stat");
        let mut x = 0u64;
        let started = std::time::Instant::now();
        // Spin until the clock has had time to tick at least twice.
        while started.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let after = process_seconds(None).expect("/proc/self/stat");
        assert!(after > before, "{before} -> {after}");
        assert_eq!(process_seconds(Some(u32::MAX)), None);
    }
}
