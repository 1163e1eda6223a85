//! The supervisor's event loop: one thread waits (epoll) on every listening socket, every
//! pane's terminal and every pane's program, and does what each is ready for. Nothing wakes it
//! but an event or a timer the caller asks for (the idle exit, a pane's scrollback to let go),
//! so a supervisor whose panes print nothing sleeps.
//!
//! Other threads register what they open (a new pane, a confined pane's socket) and wake the
//! loop (`wake`) when they change something it decides on (a client left, a pane ended).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::epoll::Epoll;

/// Something the loop waits on.
pub trait Source: Send + Sync {
    /// The descriptor waited on, open for as long as the source is registered.
    fn fd(&self) -> RawFd;
    /// Does what the descriptor is ready for, without blocking for long; false when the source
    /// is done (it is then unregistered and dropped).
    fn ready(&self, reactor: &Reactor) -> bool;
}

pub struct Reactor {
    epoll: Epoll,
    sources: Mutex<HashMap<u64, Arc<dyn Source>>>,
    next_token: AtomicU64,
    /// A byte on this socket pair wakes the loop.
    wake_rx: UnixStream,
    wake_tx: UnixStream,
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor").finish_non_exhaustive()
    }
}

/// The token of the waker.
const WAKER: u64 = 0;

impl Reactor {
    pub fn new() -> std::io::Result<Arc<Reactor>> {
        let epoll = Epoll::new()?;
        let (wake_rx, wake_tx) = UnixStream::pair()?;
        wake_rx.set_nonblocking(true)?;
        wake_tx.set_nonblocking(true)?;
        epoll.add(wake_rx.as_raw_fd(), WAKER)?;
        Ok(Arc::new(Reactor {
            epoll,
            sources: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(WAKER + 1),
            wake_rx,
            wake_tx,
        }))
    }

    /// Waits on `source` from now on (from any thread).
    pub fn register(&self, source: Arc<dyn Source>) -> std::io::Result<()> {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let fd = source.fd();
        lock(&self.sources).insert(token, source);
        self.epoll.add(fd, token).inspect_err(|_| {
            lock(&self.sources).remove(&token);
        })
    }

    /// Makes the loop's current or next `turn` return (from any thread, or a signal handler's
    /// pipe: see `waker`).
    pub fn wake(&self) {
        let _ = (&self.wake_tx).write(&[1]); // a full socket already wakes it
    }

    /// A copy of the waking end, for `signal_hook::low_level::pipe`.
    pub fn waker(&self) -> std::io::Result<UnixStream> {
        self.wake_tx.try_clone()
    }

    /// Waits until something is ready, `wake` is called, or `deadline` passes, and handles
    /// what is ready.
    pub fn turn(&self, deadline: Option<Instant>) {
        let mut ready = Vec::new();
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if let Err(e) = self.epoll.wait(&mut ready, timeout) {
            tracing::error!("epoll_wait: {e}");
            std::thread::sleep(std::time::Duration::from_millis(100));
            return;
        }
        for token in ready {
            if token == WAKER {
                let mut sink = [0u8; 256];
                while matches!((&self.wake_rx).read(&mut sink), Ok(n) if n > 0) {}
                continue;
            }
            // Not under the map's lock: a source may register others.
            let Some(source) = lock(&self.sources).get(&token).cloned() else { continue };
            if !source.ready(self) {
                self.epoll.delete(source.fd());
                lock(&self.sources).remove(&token);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
