//! The supervisor's event loop: one thread waits (epoll) on every listening socket, every
//! pane's terminal and program, and every client's connection, and does what each is ready
//! for. Nothing wakes it but an event, a timer a source asked for (a `pane.wait`'s deadline, a
//! stream client that read nothing for too long) or one the caller asks for (the idle exit, a
//! pane's scrollback to let go), so a supervisor whose panes print nothing sleeps.
//!
//! Other threads register what they open (a new pane, a confined pane's socket), wake the loop
//! (`wake`) when they change something it decides on (a client left, a pane ended), and
//! `notify` a source when they have something for it (a worker's answer, a stream's item).

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::epoll::Epoll;

/// `on_events`'s bits beside epoll's own: a timer the source set is due.
pub const TIMER: u32 = 1 << 30;
/// `on_events`'s bits beside epoll's own: the source was `notify`d.
pub const NOTIFIED: u32 = 1 << 29;

/// Something the loop waits on.
pub trait Source: Send + Sync {
    /// The descriptor waited on, open for as long as the source is registered.
    fn fd(&self) -> RawFd;
    /// Does what the descriptor is ready for, without blocking for long; false when the source
    /// is done (it is then unregistered and dropped).
    fn ready(&self, reactor: &Reactor) -> bool;
    /// What the descriptor is waited for at first (epoll's bits): input, unless it says.
    fn interest(&self) -> u32 {
        libc::EPOLLIN as u32
    }
    /// Handles `events` (epoll's bits, `TIMER`, `NOTIFIED`): by default `ready`.
    fn on_events(&self, reactor: &Reactor, events: u32) -> bool {
        let _ = events;
        self.ready(reactor)
    }
}

/// Timers, at most one a source.
#[derive(Default)]
struct Timers {
    by_time: BTreeSet<(Instant, u64)>,
    of: HashMap<u64, Instant>,
}

pub struct Reactor {
    epoll: Epoll,
    sources: Mutex<HashMap<u64, Arc<dyn Source>>>,
    next_token: AtomicU64,
    /// A byte on this socket pair wakes the loop.
    wake_rx: UnixStream,
    wake_tx: UnixStream,
    /// A byte is on its way: another `wake` need not write one.
    woken: AtomicBool,
    notified: Mutex<Vec<u64>>,
    timers: Mutex<Timers>,
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
            woken: AtomicBool::new(false),
            notified: Mutex::default(),
            timers: Mutex::default(),
        }))
    }

    /// Waits on `source` from now on (from any thread); its token, for `notify`, `set_timer`
    /// and `rearm`.
    pub fn register(&self, source: Arc<dyn Source>) -> std::io::Result<u64> {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (fd, interest) = (source.fd(), source.interest());
        lock(&self.sources).insert(token, source);
        self.epoll.add_for(fd, token, interest).inspect_err(|_| {
            lock(&self.sources).remove(&token);
        })?;
        Ok(token)
    }

    /// Waits on the source `token`'s descriptor for `events` from now on; `None`: not at all
    /// (a descriptor whose peer is gone reports a hang-up whatever it is waited for).
    pub fn rearm(&self, token: u64, fd: RawFd, events: Option<u32>) {
        match events {
            Some(events) => {
                if self.epoll.modify(fd, token, events).is_err() {
                    let _ = self.epoll.add_for(fd, token, events); // it was taken off
                }
            }
            None => self.epoll.delete(fd),
        }
    }

    /// The source `token` is handed `NOTIFIED` on the loop's next turn (from any thread).
    pub fn notify(&self, token: u64) {
        let mut notified = lock(&self.notified);
        if !notified.contains(&token) {
            notified.push(token);
        }
        drop(notified);
        self.wake();
    }

    /// The source `token` is handed `TIMER` once `at` has come (its earlier timer, if any, is
    /// replaced); `None` cancels it.
    pub fn set_timer(&self, token: u64, at: Option<Instant>) {
        let mut timers = lock(&self.timers);
        if let Some(old) = timers.of.remove(&token) {
            timers.by_time.remove(&(old, token));
        }
        if let Some(at) = at {
            timers.of.insert(token, at);
            timers.by_time.insert((at, token));
        }
    }

    /// Hands `events` to the source `token` now (on the loop's thread only).
    pub fn run_for(&self, token: u64, events: u32) {
        // Not under the map's lock: a source may register others.
        let Some(source) = lock(&self.sources).get(&token).cloned() else { return };
        // A bug met by one source (a pane's output the emulator chokes on, one client's request)
        // ends that source, not the supervisor and every pane with it.
        let keep = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| source.on_events(self, events)))
            .unwrap_or_else(|_| {
                tracing::error!("a source of the supervisor's loop panicked: it is dropped");
                false
            });
        if !keep {
            self.epoll.delete(source.fd());
            self.set_timer(token, None);
            // Dropped after the map's lock is let go: a source's drop may call back in.
            let gone = lock(&self.sources).remove(&token);
            drop((gone, source));
        }
    }

    /// Makes the loop's current or next `turn` return (from any thread, or a signal handler's
    /// pipe: see `waker`).
    pub fn wake(&self) {
        if !self.woken.swap(true, Ordering::SeqCst) {
            let _ = (&self.wake_tx).write(&[1]); // a full socket already wakes it
        }
    }

    /// A copy of the waking end, for `signal_hook::low_level::pipe`.
    pub fn waker(&self) -> std::io::Result<UnixStream> {
        self.wake_tx.try_clone()
    }

    /// Waits until something is ready, `wake` is called, a source's timer or `deadline`
    /// passes, and handles what is ready.
    pub fn turn(&self, deadline: Option<Instant>) {
        let mut ready = Vec::new();
        let first_timer = lock(&self.timers).by_time.first().map(|(at, _)| *at);
        let deadline = deadline.into_iter().chain(first_timer).min();
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if let Err(e) = self.epoll.wait(&mut ready, timeout) {
            tracing::error!("epoll_wait: {e}");
            std::thread::sleep(std::time::Duration::from_millis(100));
            return;
        }
        for (token, events) in ready {
            if token == WAKER {
                // Drained, then cleared: a `wake` that saw it set wrote nothing, and what it
                // notified was pushed before, so it is handled below, this turn; one after
                // this writes again. (Cleared first, a byte written meanwhile would be drained
                // with the flag left set, and no `wake` would write again.)
                let mut sink = [0u8; 256];
                while matches!((&self.wake_rx).read(&mut sink), Ok(n) if n > 0) {}
                self.woken.store(false, Ordering::SeqCst);
                continue;
            }
            self.run_for(token, events);
        }
        let notified = std::mem::take(&mut *lock(&self.notified));
        for token in notified {
            self.run_for(token, NOTIFIED);
        }
        let now = Instant::now();
        let mut due = Vec::new();
        {
            let mut timers = lock(&self.timers);
            while let Some(&(at, token)) = timers.by_time.first() {
                if at > now {
                    break;
                }
                timers.by_time.pop_first();
                timers.of.remove(&token);
                due.push(token);
            }
        }
        for token in due {
            self.run_for(token, TIMER);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// Counts the notifications it is handed.
    struct Counter {
        fd: UnixStream,
        seen: Arc<AtomicUsize>,
    }

    impl Source for Counter {
        fn fd(&self) -> RawFd {
            self.fd.as_raw_fd()
        }
        fn ready(&self, _: &Reactor) -> bool {
            true
        }
        fn interest(&self) -> u32 {
            0 // only notified
        }
        fn on_events(&self, _: &Reactor, events: u32) -> bool {
            if events & NOTIFIED != 0 {
                self.seen.fetch_add(1, Ordering::SeqCst);
            }
            true
        }
    }

    /// Every `notify` from another thread wakes the loop, however it falls against the loop
    /// draining its waker: a lost one would leave the loop asleep with a notification pending
    /// (a stream not written, a worker's answer not sent) until something else woke it.
    #[test]
    fn a_notification_from_another_thread_always_wakes_the_loop() {
        let reactor = Reactor::new().unwrap();
        let (fd, _other) = UnixStream::pair().unwrap();
        let seen = Arc::new(AtomicUsize::new(0));
        let token = reactor.register(Arc::new(Counter { fd, seen: Arc::clone(&seen) })).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        // Two threads notify as fast as they can, so some notifications fall while the loop
        // drains its waker.
        let notifiers: Vec<_> = (0..2)
            .map(|_| {
                let (reactor, done) = (Arc::clone(&reactor), Arc::clone(&done));
                std::thread::spawn(move || {
                    while !done.load(Ordering::SeqCst) {
                        reactor.notify(token);
                    }
                })
            })
            .collect();
        let turns = Instant::now();
        while turns.elapsed() < Duration::from_secs(2) {
            // A lost wakeup sleeps until this deadline: no turn may take that long, as each
            // has a notification pending.
            let started = Instant::now();
            reactor.turn(Some(started + Duration::from_secs(10)));
            assert!(started.elapsed() < Duration::from_secs(5), "a notification did not wake the loop");
        }
        done.store(true, Ordering::SeqCst);
        for n in notifiers {
            n.join().unwrap();
        }
        assert!(seen.load(Ordering::SeqCst) > 0);
    }
}
