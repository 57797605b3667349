//! In-process events over a broadcast channel, shared per URL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::broadcast;

use super::{EventBus, EventStream};
use crate::protocol::Event;
use crate::Result;

/// Events delivered inside this process.
pub struct MemoryEvents {
    sender: broadcast::Sender<Event>,
}

impl MemoryEvents {
    /// A bus with room for 4096 undelivered events per subscriber.
    pub fn new() -> Self {
        MemoryEvents {
            sender: broadcast::channel(4096).0,
        }
    }

    /// The process-wide bus for `name` (the same `memory://` URL shares it).
    pub fn named(name: &str) -> Arc<dyn EventBus> {
        static BUSES: std::sync::LazyLock<Mutex<HashMap<String, Arc<MemoryEvents>>>> =
            std::sync::LazyLock::new(Default::default);
        let mut buses = BUSES.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(
            buses
                .entry(name.to_owned())
                .or_insert_with(|| Arc::new(MemoryEvents::new())),
        ) as Arc<dyn EventBus>
    }
}

impl Default for MemoryEvents {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl EventBus for MemoryEvents {
    async fn publish(&self, event: &Event) -> Result<()> {
        // No subscriber is not an error: nobody is watching.
        let _ = self.sender.send(event.clone());
        Ok(())
    }

    async fn subscribe(&self) -> Result<EventStream> {
        Ok(lagging_stream(self.sender.subscribe()).boxed())
    }
}

/// A broadcast receiver as a stream that skips over lag: a slow monitor
/// loses old events instead of slowing down workers.
fn lagging_stream<T: Clone + Send + 'static>(
    receiver: broadcast::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::unfold(receiver, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(item) => return Some((item, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}
