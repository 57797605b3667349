//! Exit codes, decided in one place (ripgrep's `main` does the same).
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the task ran and failed (FAILURE), or was revoked |
//! | 2 | an error: bad arguments or configuration, broker or backend unreachable |
//! | 3 | timed out waiting for a result (`--wait --timeout`) |

/// Success.
pub(crate) const OK: u8 = 0;
/// The awaited task failed or was revoked.
pub(crate) const TASK_FAILED: u8 = 1;
/// Any other error (clap also exits 2 on a usage error).
pub(crate) const ERROR: u8 = 2;
/// Waiting for a result timed out.
pub(crate) const TIMED_OUT: u8 = 3;

/// The exit codes as help text, shown after `--help` of `call` and `result`.
pub(crate) const HELP: &str = "Exit status: 0 success; 1 the task failed or was revoked; \
2 error (bad arguments, broker unreachable); 3 timed out waiting.";

/// The exit code for a command's error.
pub(crate) fn code_for(err: &anyhow::Error) -> u8 {
    match err.downcast_ref::<celeriac::Error>() {
        Some(celeriac::Error::TaskFailed { .. } | celeriac::Error::TaskRevoked { .. }) => {
            TASK_FAILED
        }
        Some(celeriac::Error::Timeout(_)) => TIMED_OUT,
        _ => ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn outcomes_map_to_distinct_codes() {
        let failed = anyhow::Error::new(celeriac::Error::TaskFailed {
            task_id: "id".into(),
            exc_type: "ValueError".into(),
            exc_module: None,
            exc_message: "boom".into(),
            traceback: None,
        });
        assert_eq!(code_for(&failed), TASK_FAILED);
        let timeout = anyhow::Error::new(celeriac::Error::Timeout(Duration::from_secs(1)));
        assert_eq!(code_for(&timeout), TIMED_OUT);
        assert_eq!(code_for(&anyhow::anyhow!("bad flag")), ERROR);
        assert_ne!(OK, ERROR);
    }
}
