//! A cloneable shutdown signal for workers, beat and servers.
//!
//! Long-running loops take `shutdown: impl Future` (the binary passes
//! SIGINT/SIGTERM, tests pass a oneshot) and turn it into a [`Shutdown`]
//! that every sub-task can check or await.

use std::future::Future;

use tokio::sync::watch;

/// Observes whether shutdown was requested. Clone freely.
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// Requests shutdown for every clone of the paired [`Shutdown`].
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

impl Shutdown {
    /// A new signal and the trigger that fires it.
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger { tx }, Shutdown { rx })
    }

    /// A signal fired when `future` completes.
    pub fn from_future(future: impl Future<Output = ()> + Send + 'static) -> Shutdown {
        let (trigger, shutdown) = Shutdown::new();
        tokio::spawn(async move {
            future.await;
            trigger.fire();
        });
        shutdown
    }

    /// True once shutdown was requested.
    pub fn is_requested(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves when shutdown is requested (at once if it already was).
    pub async fn requested(&mut self) {
        // An error means the trigger is gone without firing; treat as fired.
        let _ = self.rx.wait_for(|fired| *fired).await;
    }
}

impl ShutdownTrigger {
    /// Request shutdown.
    pub fn fire(&self) {
        let _ = self.tx.send(true);
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn terminate_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
