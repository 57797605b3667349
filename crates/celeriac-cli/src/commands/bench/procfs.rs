//! What `/proc` says about the bench's worker processes and the machine:
//! CPU of a process tree (a prefork pool), resident memory, load average.

/// CPU seconds of a process and its living descendants (a prefork pool's
/// children), or `None` when the process itself cannot be read.
pub(super) fn tree_seconds(pid: u32) -> Option<f64> {
    let own = super::cpu::process_seconds(Some(pid))?;
    // Children are listed under the thread that started them, not only
    // under the main thread: read every thread's list.
    let mut children = String::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
                children.push_str(&list);
                children.push(' ');
            }
        }
    }
    Some(
        own + children
            .split_whitespace()
            .filter_map(|c| c.parse().ok())
            .filter_map(tree_seconds)
            .sum::<f64>(),
    )
}

/// A `/proc/<pid>/status` memory field (`VmRSS`, `VmHWM`) in MiB.
pub(super) fn memory_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// The 1-, 5- and 15-minute load averages (`/proc/loadavg`).
pub(super) fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_process_cpu_counts_in_its_parents_tree() {
        let me = std::process::id();
        let alone = tree_seconds(me).expect("own tree");
        // A child that burns CPU until killed.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("sh");
        let started = std::time::Instant::now();
        let mut with_child = alone;
        while started.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(50));
            with_child = tree_seconds(me).expect("own tree");
            if with_child > alone + 0.02 {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(with_child > alone + 0.02, "{alone} -> {with_child}");
        assert_eq!(tree_seconds(u32::MAX), None);
    }

    #[test]
    fn memory_and_load_are_read_from_proc() {
        let me = std::process::id();
        let rss = memory_mib(me, "VmRSS").expect("VmRSS");
        let peak = memory_mib(me, "VmHWM").expect("VmHWM");
        assert!(rss > 0.1 && peak >= rss, "rss {rss} peak {peak}");
        assert_eq!(memory_mib(me, "NoSuchField"), None);
        let load = load_average().expect("/proc/loadavg");
        assert!(load.iter().all(|l| *l >= 0.0), "{load:?}");
    }
}
