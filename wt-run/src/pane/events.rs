//! `events.subscribe`: a stream of what happens to panes (`spawned`, `output`, `exited`), one
//! JSON line per event, for as long as the subscriber stays connected.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;

use serde_json::Value;

/// The subscribers of one supervisor.
#[derive(Debug, Default)]
pub struct Events {
    subscribers: Mutex<Vec<Sender<Value>>>,
}

impl Events {
    pub fn subscribe(&self) -> Receiver<Value> {
        let (tx, rx) = channel();
        self.subscribers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(tx);
        rx
    }

    /// Sends an event to every subscriber still listening.
    pub fn publish(&self, event: Value) {
        self.subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|s| s.send(event.clone()).is_ok());
    }
}
