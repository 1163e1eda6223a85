//! A pane's output, read on the supervisor's event loop: each chunk goes to the raw log, the
//! terminal emulator (plain bursts shortened, see `run_shortener`), the attached clients and
//! the event subscribers. A ready terminal is read a few large chunks at a time, then the
//! loop moves on, so one pane printing fast does not starve the others.
//!
//! The reading path does as little per byte and per read as it can (issue 29): a terminal
//! hands over at most 4 KiB a read, so the reads of one turn are gathered into one buffer
//! (shared by every pane: one thread reads them all) and taken in together: one log write,
//! one scan for notifications (memchr), one feed of the emulator, one lock. A program that
//! prints in small writes (`seq`: a line a write on a terminal) leaves a little at a time:
//! the turn goes on reading while more waits, so what it gathers is taken in at once. Nothing
//! is woken per read: `pane.wait` clients are looked at by the loop after the turn (`conn.rs`),
//! the trackers at most every `OUTPUT_EVERY` (a waiter woken per read took the lock from the
//! reader and a core from the program).

use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use serde_json::json;

use super::events::Events;
use super::fanout::Fanout;
use super::osc::Scanner;
use super::pty::Screen;
use super::rawlog::RawLog;
use super::reactor::{Reactor, Source};
use super::tracker::OUTPUT_EVERY;

/// Bytes gathered per turn of the loop for one pane, at most.
const CHUNK: usize = 64 * 1024;
/// What a terminal hands over per read at most (the line discipline's buffer).
const PTY_READ: usize = 4096;

thread_local! {
    /// The read buffer of the loop's thread, shared by every pane it reads: idle panes keep none.
    static READ_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// What copies one pane's output; registered with the reactor until the terminal closes.
pub struct PtyOutput {
    reader: std::fs::File,
    name: String,
    state: Arc<(Mutex<Screen>, Condvar)>,
    watchers: Arc<Fanout<Vec<u8>>>,
    events: Arc<Events>,
    pump: Mutex<Pump>,
}

impl std::fmt::Debug for PtyOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PtyOutput").field("name", &self.name).finish_non_exhaustive()
    }
}

struct Pump {
    log: RawLog,
    scanner: Scanner,
    /// When the trackers were last told of output.
    poked: Option<Instant>,
    /// Told once the terminal has closed (the reaper waits for it before saying "exited").
    done: Option<Sender<()>>,
}

impl PtyOutput {
    pub fn new(
        reader: std::fs::File,
        log: RawLog,
        name: String,
        state: Arc<(Mutex<Screen>, Condvar)>,
        watchers: Arc<Fanout<Vec<u8>>>,
        events: Arc<Events>,
        done: Sender<()>,
    ) -> PtyOutput {
        let pump = Pump { log, scanner: Scanner::default(), poked: None, done: Some(done) };
        PtyOutput { reader, name, state, watchers, events, pump: Mutex::new(pump) }
    }

    /// Takes what one turn read in. A plain burst is held back in the screen, and parsed when
    /// someone looks or the pane turns quiet (see `Screen::feed`).
    fn take(&self, pump: &mut Pump, chunk: &[u8]) {
        let Pump { log, scanner, poked, .. } = pump;
        let n = chunk.len();
        let _ = log.write(chunk);
        let notes = scanner.scan(chunk);
        let mut s = self.state.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        s.feed(chunk);
        s.bytes += n as u64;
        let now = Instant::now();
        s.last_output = now;
        if let Some(last) = notes.into_iter().reduce(|a, b| if b.is_empty() { a } else { b }) {
            s.notifications += 1;
            s.last_notification = Some((s.last_output, last));
        }
        // Published under the screen's lock: an attach that subscribes takes that lock to draw the
        // screen, so it sees this chunk either in its redraw or after it, never both.
        // In pieces of a read's size at most: an attached client's queue is bounded in pieces
        // (`ATTACH_QUEUE`), so what a client that does not read holds stays as it was.
        if !self.watchers.is_empty() {
            for piece in chunk.chunks(PTY_READ) {
                self.watchers.publish(&piece.to_vec());
            }
        }
        drop(s);
        // While output flows the trackers are told at most every OUTPUT_EVERY (each look that
        // sees output looks again that much later, so no chunk goes unseen for longer).
        if poked.is_none_or(|at| now.duration_since(at) >= OUTPUT_EVERY) {
            *poked = Some(now);
            super::watchers::poke();
        }
        if self.events.listened() {
            self.events.publish(json!({"event": "output", "pane": self.name, "bytes": n}));
        }
    }

    /// The terminal closed: what is held back is parsed, and the reaper told.
    fn closed(&self, pump: &mut Pump) {
        let (lock, cvar) = &*self.state;
        let mut s = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        s.parser(); // what was held back is parsed
        drop(s);
        cvar.notify_all();
        if let Some(done) = pump.done.take() {
            let _ = done.send(());
        }
    }
}

impl Source for PtyOutput {
    fn fd(&self) -> RawFd {
        self.reader.as_raw_fd()
    }

    fn ready(&self, _: &Reactor) -> bool {
        let mut pump = self.pump.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        READ_BUF.with_borrow_mut(|buf| {
            if buf.is_empty() {
                *buf = vec![0; CHUNK];
            }
            // Reads of a terminal that is ready: the loop said so for the first,
            // `output_waiting` for the rest. The descriptor is non-blocking (shared with the
            // writer, which must not wait for ever on a program that does not read): nothing
            // to read after all ends the turn, not the pane.
            let mut got = 0;
            let open = loop {
                match (&self.reader).read(&mut buf[got..]) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break true,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    // EIO once every holder of the terminal has closed it.
                    Ok(0) | Err(_) => break false,
                    Ok(n) => got += n,
                }
                if got + PTY_READ > CHUNK || !output_waiting(&self.reader) {
                    break true;
                }
            };
            if got > 0 {
                self.take(&mut pump, &buf[..got]);
            }
            if !open {
                self.closed(&mut pump);
            }
            open
        })
    }
}

/// Whether more output can be read at once.
#[allow(unsafe_code)]
fn output_waiting(reader: &std::fs::File) -> bool {
    let mut p = libc::pollfd { fd: reader.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd for a descriptor `reader` owns, and a zero timeout.
    let ready = unsafe { libc::poll(&mut p, 1, 0) };
    ready == 1 && p.revents & libc::POLLIN != 0
}
