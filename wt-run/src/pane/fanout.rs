//! Streams to clients (`pane.attach`, `events.subscribe`) through bounded queues. A client that
//! does not read as fast as a pane prints would otherwise make the supervisor hold everything
//! it has not read yet, without bound. Once a client's queue is full it is dropped: what was
//! queued is still sent, then an error line (`too-slow`), and the connection is closed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

/// What tells a client's connection that its queue has something (or has ended).
pub type Notify = Box<dyn Fn() + Send + Sync>;

/// Output chunks (up to 64 KiB each) an attached client may have queued: at most 4 MiB.
pub const ATTACH_QUEUE: usize = 64;
/// Events a subscriber may have queued.
pub const EVENT_QUEUE: usize = 1024;

/// The supervisor's end of one client's queue.
pub struct Subscriber<T> {
    tx: SyncSender<T>,
    overflowed: Arc<AtomicBool>,
    notify: Arc<OnceLock<Notify>>,
}

/// The client's end: what to send it, and whether it fell too far behind.
pub struct Subscription<T> {
    pub rx: Receiver<T>,
    overflowed: Arc<AtomicBool>,
    notify: Arc<OnceLock<Notify>>,
}

impl<T> std::fmt::Debug for Subscriber<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber").finish_non_exhaustive()
    }
}

impl<T> std::fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

pub fn bounded<T>(bound: usize) -> (Subscriber<T>, Subscription<T>) {
    let (tx, rx) = sync_channel(bound);
    let overflowed = Arc::new(AtomicBool::new(false));
    let notify = Arc::new(OnceLock::new());
    (
        Subscriber { tx, overflowed: Arc::clone(&overflowed), notify: Arc::clone(&notify) },
        Subscription { rx, overflowed, notify },
    )
}

impl<T> Subscriber<T> {
    /// Queues `item`; false once the client is gone or has been dropped for being too slow.
    pub fn offer(&self, item: T) -> bool {
        let kept = match self.tx.try_send(item) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.overflowed.store(true, Ordering::SeqCst);
                false
            }
            Err(TrySendError::Disconnected(_)) => return false,
        };
        if kept {
            if let Some(notify) = self.notify.get() {
                notify();
            }
        }
        kept
    }
}

impl<T> Drop for Subscriber<T> {
    /// The queue ends with this end: the client's connection is told, to send what is left
    /// and close.
    fn drop(&mut self) {
        if let Some(notify) = self.notify.get() {
            notify();
        }
    }
}

impl<T> Subscription<T> {
    /// Whether the client was dropped for not reading.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::SeqCst)
    }

    /// `notify` is called whenever an item is queued, and when the client is dropped for
    /// being too slow (the queue then ends). Once; items queued before are already there.
    pub fn on_item(&self, notify: Notify) {
        let _ = self.notify.set(notify);
    }
}

/// Several clients of one stream.
#[derive(Debug)]
pub struct Fanout<T> {
    subscribers: Mutex<Vec<Subscriber<T>>>,
    bound: usize,
}

impl<T: Clone> Fanout<T> {
    pub fn new(bound: usize) -> Self {
        Fanout { subscribers: Mutex::new(Vec::new()), bound }
    }

    /// A new client, with `first` queued before anything published after it.
    pub fn subscribe(&self, first: Option<T>) -> Subscription<T> {
        let (tx, rx) = bounded(self.bound);
        let mut subs = self.subscribers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(item) = first {
            tx.offer(item);
        }
        subs.push(tx);
        rx
    }

    /// Sends `item` to every client still keeping up.
    pub fn publish(&self, item: &T) {
        self.subscribers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|s| s.offer(item.clone()));
    }

    /// How many clients are connected (for tests and `pane.list`).
    pub fn len(&self) -> usize {
        self.subscribers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_that_does_not_read_is_dropped_once_its_queue_is_full() {
        let fan = Fanout::new(3);
        let slow = fan.subscribe(Some(0));
        let fast = fan.subscribe(None);
        for i in 1..=2 {
            fan.publish(&i);
        }
        assert_eq!(fast.rx.try_iter().collect::<Vec<_>>(), [1, 2]);
        fan.publish(&3);
        assert_eq!(fan.len(), 1, "the slow one is dropped, the fast one kept");
        assert!(slow.overflowed() && !fast.overflowed());
        assert_eq!(slow.rx.iter().collect::<Vec<_>>(), [0, 1, 2], "what was queued still arrives, then the end");
    }
}
