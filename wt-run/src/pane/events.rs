//! `events.subscribe`: a stream of what happens to panes (`spawned`, `output`, `exited`), one
//! JSON line per event, for as long as the subscriber stays connected and keeps up.

use serde_json::Value;

use super::fanout::{Fanout, Subscription, EVENT_QUEUE};

/// The subscribers of one supervisor.
#[derive(Debug)]
pub struct Events {
    subscribers: Fanout<Value>,
}

impl Default for Events {
    fn default() -> Self {
        Events { subscribers: Fanout::new(EVENT_QUEUE) }
    }
}

impl Events {
    pub fn subscribe(&self) -> Subscription<Value> {
        self.subscribers.subscribe(None)
    }

    /// Whether anyone listens (an event nobody gets need not be made).
    pub fn listened(&self) -> bool {
        !self.subscribers.is_empty()
    }

    /// Sends an event to every subscriber still listening.
    pub fn publish(&self, event: Value) {
        self.subscribers.publish(&event);
    }
}
