//! One client's connection, a state machine on the supervisor's event loop: it holds no
//! thread, whatever it waits for.
//!
//! - **Requests**: lines are read as they come (at most `MAX_REQUEST` a line) and answered in
//!   order, one at a time; an answer not yet taken by the client is written as it reads, and
//!   no further request is read until it is (a client that does not read holds one answer).
//! - **Working**: an ordinary request's answer is made on a worker (`workers`), since some
//!   take a while (a kill's grace, a tmux command, a write to a program that reads slowly).
//! - **Waiting** (`pane.wait`): a condition looked at again when the pane prints or ends, or
//!   its agent state changes, and at its deadline (or when the pane will have been quiet for
//!   long enough): a timer only for what is due. A tmux pane, which tells nothing, is looked
//!   at every `TMUX_WAIT_EVERY`, each look on a worker.
//! - **Streaming** (`pane.attach`, `events.subscribe`): a line at a time from the client's
//!   bounded queue, written as its socket takes it. A client that read nothing for
//!   `STREAM_WRITE_TIMEOUT`, or whose queue overflowed, is dropped with `too-slow`.
//! - **Closing**: what is left (an error, the reason of a drop) is written, then it closes.
//!
//! A waiting or streaming client that goes away (its end closed: EPOLLRDHUP/EPOLLHUP) is let
//! go at once. Its slot of the connection cap is given back when the connection is dropped.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::access::Access;
use super::handle::Handle;
use super::protocol::{Request, Response, MAX_REQUEST};
use super::pty::Pane;
use super::reactor::{Reactor, Source, NOTIFIED, TIMER};
use super::server::{self, Supervisor};
use super::stream::{json_line, Feed, Next};
use super::tmux::{TmuxLook, TmuxPane, TMUX_WAIT_EVERY};
use super::tracker::Tracker;
use super::wait::{Poll, Until};

/// A stream's client that reads nothing for this long is dropped (`too-slow`).
pub const STREAM_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the reason a stream's client was dropped waits to be read.
const REASON_WAIT: Duration = Duration::from_secs(600);

/// Bytes read from a client at a time.
const READ_CHUNK: usize = 64 * 1024;

const IN: u32 = libc::EPOLLIN as u32;
const OUT: u32 = libc::EPOLLOUT as u32;
const RDHUP: u32 = libc::EPOLLRDHUP as u32;
const HUP: u32 = (libc::EPOLLHUP | libc::EPOLLERR) as u32;

pub struct Conn {
    stream: UnixStream,
    me: Weak<Conn>,
    token: OnceLock<u64>,
    sup: Arc<Supervisor>,
    access: Access,
    /// The listener's count of its open connections.
    open: Arc<AtomicUsize>,
    inner: Mutex<Inner>,
    /// A worker's answer, for the loop to send.
    answer: Mutex<Option<Done>>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("token", &self.token.get()).finish_non_exhaustive()
    }
}

/// What a worker made for a connection.
enum Done {
    Answer(Response),
    /// A tmux pane's `pane.wait` looked and saw nothing yet.
    NotYet,
    /// The answer could not be made (a bug): the connection is closed, as its thread ended
    /// before.
    Failed,
}

struct Inner {
    phase: Phase,
    input: Vec<u8>,
    /// The rest of an oversized line is being skipped (its answer is `too-large`).
    skipping: bool,
    /// The client closed its writing end: what it sent is all it will send.
    peer_done: bool,
    /// Read to its end.
    eof: bool,
    /// Nothing can reach the client any more (hung up, or a write failed).
    hung_up: bool,
    out: Vec<u8>,
    sent: usize,
    /// When a write last made progress, or output was queued on an empty buffer.
    progress_at: Instant,
    /// What the descriptor is waited for now (`None`: not at all).
    armed: Option<u32>,
}

enum Phase {
    Requests,
    Working,
    Waiting(Waiter),
    Streaming(Box<dyn Feed>),
    /// Write what is left, until then at most, and close.
    Closing(Instant),
}

struct Waiter {
    id: Value,
    deadline: Instant,
    kind: WaitFor,
}

enum WaitFor {
    Screen { pane: Arc<Pane>, until: Until, seen: Option<super::wait::Seen> },
    State { tracker: Arc<Tracker>, states: Vec<&'static str>, timeout: Duration },
    Tmux { pane: Arc<TmuxPane>, until: Arc<Until>, look: Arc<Mutex<TmuxLook>>, looking: bool, next: Instant },
}

/// What the next line of a client's input is.
enum Line {
    Request(Vec<u8>),
    TooLarge,
    /// Not all of it is here yet.
    More,
    /// The client sent all it will.
    End,
    /// The connection no longer acts for what it was accepted for.
    NotCurrent,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Conn {
    /// A connection accepted by a listener (which counted it in `open` and `sup.clients`),
    /// registered with the loop.
    pub fn start(sup: Arc<Supervisor>, stream: UnixStream, access: Access, open: Arc<AtomicUsize>) {
        let conn = Arc::new_cyclic(|me| Conn {
            stream,
            me: me.clone(),
            token: OnceLock::new(),
            sup,
            access,
            open,
            inner: Mutex::new(Inner {
                phase: Phase::Requests,
                input: Vec::new(),
                skipping: false,
                peer_done: false,
                eof: false,
                hung_up: false,
                out: Vec::new(),
                sent: 0,
                progress_at: Instant::now(),
                armed: Some(IN | RDHUP),
            }),
            answer: Mutex::new(None),
        });
        let _ = conn.stream.set_nonblocking(true);
        let reactor = Arc::clone(&conn.sup.reactor);
        // Registered from the loop's own thread (the listener's), so no event comes before
        // the token is known.
        match reactor.register(Arc::clone(&conn) as Arc<dyn Source>) {
            Ok(token) => {
                let _ = conn.token.set(token);
            }
            Err(e) => tracing::warn!("cannot serve a client: {e}"),
        }
    }

    fn token(&self) -> u64 {
        self.token.get().copied().unwrap_or(0)
    }

    /// Whether it waits on a pane's change (see `server::look_at_waiters`).
    pub fn waits_on_panes(&self) -> bool {
        matches!(&lock(&self.inner).phase, Phase::Waiting(w) if !matches!(w.kind, WaitFor::Tmux { .. }))
    }

    /// Moves on as far as it can; false once the connection is done.
    fn advance(&self, s: &mut Inner, reactor: &Reactor, events: u32) -> bool {
        loop {
            self.write_out(s);
            let flushed = s.out.is_empty();
            let now = Instant::now();
            match &mut s.phase {
                Phase::Closing(until) => {
                    if flushed || s.hung_up || now >= *until {
                        return false;
                    }
                    reactor.set_timer(self.token(), Some(*until));
                    return true;
                }
                Phase::Working => return true,
                Phase::Requests => {
                    if !flushed {
                        return true; // the answer is read first
                    }
                    match self.next_line(s) {
                        Line::Request(line) => self.start_request(s, reactor, &line),
                        Line::TooLarge => {
                            let msg = format!("request over {MAX_REQUEST} bytes");
                            queue(s, &json_line(&Response::err(Value::Null, "too-large", msg)));
                        }
                        Line::More => return true,
                        Line::End | Line::NotCurrent => return false,
                    }
                }
                Phase::Waiting(w) => {
                    if s.hung_up {
                        return false; // the client went away: let go at once
                    }
                    // A client that closed its writing end still reads: a wait already met is
                    // answered (and what it sent after it carried out); one not met is let go.
                    let Some(answer) = self.look(w, reactor) else { return !s.peer_done };
                    queue(s, &json_line(&answer));
                    s.phase = Phase::Requests;
                }
                Phase::Streaming(feed) => {
                    if s.hung_up || s.peer_done {
                        return false;
                    }
                    if !flushed {
                        let due = s.progress_at + STREAM_WRITE_TIMEOUT;
                        if events & TIMER != 0 && now >= due {
                            // Read nothing for that long: dropped. The line cut short is ended,
                            // and the reason follows, for when it reads again.
                            feed.drop_queue();
                            let mut reason = b"\n".to_vec();
                            reason.extend(json_line(&feed.reason()));
                            s.out = reason;
                            s.sent = 0;
                            s.phase = Phase::Closing(now + REASON_WAIT);
                            continue;
                        }
                        reactor.set_timer(self.token(), Some(due));
                        return true;
                    }
                    match feed.next() {
                        Next::Line(line) => queue(s, &line),
                        Next::Empty => return true,
                        Next::End(reason) => {
                            if let Some(reason) = reason {
                                queue(s, &json_line(&reason));
                            }
                            s.phase = Phase::Closing(now + STREAM_WRITE_TIMEOUT);
                        }
                        Next::Stop => return false,
                    }
                }
            }
        }
    }

    /// Writes what is queued, as far as the socket takes it.
    fn write_out(&self, s: &mut Inner) {
        while s.sent < s.out.len() {
            if s.hung_up {
                break;
            }
            match (&self.stream).write(&s.out[s.sent..]) {
                Ok(0) => s.hung_up = true,
                Ok(n) => {
                    s.sent += n;
                    s.progress_at = Instant::now();
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => s.hung_up = true,
            }
        }
        // Written, or nowhere to go.
        s.out.clear();
        s.sent = 0;
    }

    /// The next request line, reading what the client sent as needed.
    fn next_line(&self, s: &mut Inner) -> Line {
        loop {
            if s.skipping {
                match s.input.iter().position(|b| *b == b'\n') {
                    Some(i) => {
                        s.input.drain(..=i);
                        s.skipping = false;
                        return Line::TooLarge;
                    }
                    None => s.input.clear(),
                }
            } else if let Some(i) = s.input.iter().take(MAX_REQUEST + 1).position(|b| *b == b'\n') {
                let line: Vec<u8> = s.input.drain(..=i).collect();
                if !server::current(&self.sup, &self.access) {
                    return Line::NotCurrent; // its pane was replaced: it acts for nobody now
                }
                return if line.len() > MAX_REQUEST { Line::TooLarge } else { Line::Request(line) };
            } else if s.input.len() > MAX_REQUEST {
                if !server::current(&self.sup, &self.access) {
                    return Line::NotCurrent;
                }
                // Over the limit without its end: the rest of the line is skipped, then answered.
                s.input.drain(..=MAX_REQUEST);
                s.skipping = true;
                continue;
            }
            if s.eof {
                return Line::End; // a line cut short is no request
            }
            let mut buf = vec![0u8; READ_CHUNK];
            match (&self.stream).read(&mut buf) {
                Ok(0) => s.eof = true,
                Ok(n) => s.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Line::More,
                Err(_) => {
                    s.eof = true;
                    s.hung_up = true;
                }
            }
        }
    }

    /// Starts on one request: answers it, or moves to the phase that will.
    fn start_request(&self, s: &mut Inner, reactor: &Reactor, line: &[u8]) {
        let mut req = match serde_json::from_slice::<Request>(line) {
            Ok(req) => req,
            Err(e) => {
                let answer = Response::err(Value::Null, "bad-request", format!("not a request: {e}"));
                return queue(s, &json_line(&answer));
            }
        };
        if let Err((code, msg)) = self.access.admit(&mut req) {
            return queue(s, &json_line(&Response::err(req.id, code, msg)));
        }
        match req.method.as_str() {
            "events.subscribe" => self.subscribe(s, req),
            "pane.attach" => self.attach(s, req),
            "pane.wait" => self.wait(s, req),
            "server.stop" => {
                queue(s, &json_line(&Response::ok(req.id, json!({"stopping": true}))));
                self.write_out(s);
                // The loop sees it after this turn, with the answer written.
                self.sup.stop.store(true, Ordering::SeqCst);
                reactor.wake();
            }
            _ => {
                s.phase = Phase::Working;
                let Some(me) = self.me.upgrade() else { return };
                let (sup, access, token) = (Arc::clone(&self.sup), self.access.clone(), self.token());
                super::workers::submit(move || {
                    let answer =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server::handle(&sup, req, &access)));
                    *lock(&me.answer) = Some(answer.map_or(Done::Failed, Done::Answer));
                    sup.reactor.notify(token);
                });
            }
        }
    }

    /// `events.subscribe`: the subscription is answered, then every event (of its own pane
    /// only, on a pane's socket) follows as a line.
    fn subscribe(&self, s: &mut Inner, req: Request) {
        let queue_ = self.sup.events.subscribe();
        self.notify_on_item(&queue_);
        let only = self.access.events_of().map(str::to_string);
        let (sup, access) = (Arc::clone(&self.sup), self.access.clone());
        let feed = super::stream::events(queue_, only, Box::new(move || server::current(&sup, &access)));
        queue(s, &json_line(&Response::ok(req.id, json!({"subscribed": true}))));
        s.phase = Phase::Streaming(feed);
    }

    /// `pane.attach`: the pane's raw output, base64 in JSON lines, a redraw of its screen first.
    fn attach(&self, s: &mut Inner, req: Request) {
        let fail = |s: &mut Inner, code: &str, msg: String| {
            queue(s, &json_line(&Response::err(req.id.clone(), code, msg)));
            s.phase = Phase::Closing(Instant::now() + STREAM_WRITE_TIMEOUT);
        };
        let pane = match server::pane(&self.sup, &req.params) {
            Ok(Handle::Native(p)) => p,
            Ok(Handle::Tmux(_)) => return fail(s, "tmux-pane", "attach to a tmux pane with tmux itself".into()),
            Err((code, msg)) => return fail(s, code, msg),
        };
        let chunks = pane.watch();
        // The redraw woke its screen: a quiet one sleeps again until it prints.
        super::wait::back_to_sleep_if_quiet(&mut lock(&pane.state.0));
        self.notify_on_item(&chunks);
        queue(s, &json_line(&Response::ok(req.id, json!({"attached": true}))));
        s.phase = Phase::Streaming(super::stream::output(chunks));
    }

    fn notify_on_item<T>(&self, queue: &super::fanout::Subscription<T>) {
        let (reactor, token) = (Arc::downgrade(&self.sup.reactor), self.token());
        queue.on_item(Box::new(move || {
            if let Some(r) = reactor.upgrade() {
                r.notify(token);
            }
        }));
    }

    /// `pane.wait`: errors at once, else the waiting phase (looked at at once).
    fn wait(&self, s: &mut Inner, req: Request) {
        match self.waiter(&req.params) {
            Ok((timeout, kind)) => {
                let deadline = later(Instant::now(), timeout);
                s.phase = Phase::Waiting(Waiter { id: req.id, deadline, kind });
                self.sup.add_waiter(self.token(), self.me.clone());
            }
            Err((code, msg)) => queue(s, &json_line(&Response::err(req.id, code, msg))),
        }
    }

    fn waiter(&self, p: &Value) -> Result<(Duration, WaitFor), super::handle::Failure> {
        if p.get("state").is_some() {
            let states = server::wanted_states(p)?;
            let timeout = Duration::from_millis(p.get("timeout_ms").and_then(Value::as_u64).unwrap_or(30_000));
            server::pane(&self.sup, p)?;
            let tracker = server::tracker(&self.sup, p)?;
            return Ok((timeout, WaitFor::State { tracker, states, timeout }));
        }
        let pane = server::pane(&self.sup, p)?;
        let until = Until::parse(p)?;
        let timeout = until.timeout;
        Ok(match pane {
            Handle::Native(pane) => (timeout, WaitFor::Screen { pane, until, seen: None }),
            Handle::Tmux(pane) => {
                let (until, look) = (Arc::new(until), Arc::default());
                (timeout, WaitFor::Tmux { pane, until, look, looking: false, next: Instant::now() })
            }
        })
    }

    /// One look at what a `pane.wait` waits for: its answer, or `None` (a timer set for when
    /// to look again without a change).
    fn look(&self, w: &mut Waiter, reactor: &Reactor) -> Option<Response> {
        let token = self.token();
        let answer = |id: &Value, r: Result<Value, super::handle::Failure>| match r {
            Ok(v) => Response::ok(id.clone(), v),
            Err((code, msg)) => Response::err(id.clone(), code, msg),
        };
        match &mut w.kind {
            WaitFor::Screen { pane, until, seen } => match super::wait::poll(pane, until, w.deadline, seen) {
                Poll::Done(r) => Some(answer(&w.id, r)),
                Poll::Until(at) => {
                    reactor.set_timer(token, Some(at));
                    None
                }
            },
            WaitFor::State { tracker, states, timeout } => match tracker.poll_wait(states, *timeout, w.deadline) {
                Some(r) => Some(answer(&w.id, r)),
                None => {
                    reactor.set_timer(token, Some(w.deadline));
                    None
                }
            },
            WaitFor::Tmux { pane, until, look, looking, next } => {
                if *looking {
                    return None;
                }
                if Instant::now() < *next {
                    reactor.set_timer(token, Some(*next));
                    return None;
                }
                // tmux commands take a while: the look runs on a worker, and says when done.
                *looking = true;
                let (pane, until, look, deadline, id) =
                    (Arc::clone(pane), Arc::clone(until), Arc::clone(look), w.deadline, w.id.clone());
                let (me, sup) = (self.me.upgrade()?, Arc::clone(&self.sup));
                super::workers::submit(move || {
                    let looked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        pane.look(&until, deadline, &mut lock(&look))
                    }));
                    let done = match looked {
                        Ok(Some(r)) => Done::Answer(answer(&id, r)),
                        Ok(None) => Done::NotYet,
                        Err(_) => Done::Failed,
                    };
                    *lock(&me.answer) = Some(done);
                    sup.reactor.notify(token);
                });
                None
            }
        }
    }

    /// Takes a worker's answer in, if one came; false if it failed.
    fn take_answer(&self, s: &mut Inner) -> bool {
        let Some(done) = lock(&self.answer).take() else { return true };
        match (done, &mut s.phase) {
            (Done::Failed, _) => return false,
            (Done::Answer(answer), Phase::Working | Phase::Waiting(_)) => {
                queue(s, &json_line(&answer));
                s.phase = Phase::Requests;
            }
            (Done::NotYet, Phase::Waiting(Waiter { kind: WaitFor::Tmux { looking, next, .. }, .. })) => {
                *looking = false;
                *next = Instant::now() + TMUX_WAIT_EVERY;
            }
            _ => {}
        }
        true
    }

    /// What the descriptor is to be waited for in the phase it is in.
    fn wanted(s: &Inner) -> Option<u32> {
        if s.hung_up {
            return None; // a hang-up is reported whatever is asked; nothing more can come
        }
        let out = if s.out.is_empty() { 0 } else { OUT };
        Some(match s.phase {
            Phase::Requests if out != 0 => out,
            Phase::Requests => IN | RDHUP,
            Phase::Working => 0,
            Phase::Waiting(_) | Phase::Streaming(_) => out | RDHUP,
            Phase::Closing(_) => out,
        })
    }
}

/// `at + by`, or a time too far to come if that overflows: a client may ask for any timeout,
/// and a panic on the loop would end the supervisor.
pub fn later(at: Instant, by: Duration) -> Instant {
    at.checked_add(by).unwrap_or_else(|| at + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// Queues `line` for the client.
fn queue(s: &mut Inner, line: &[u8]) {
    if s.out.is_empty() {
        s.progress_at = Instant::now();
    }
    s.out.extend_from_slice(line);
}

impl Source for Conn {
    fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    fn ready(&self, reactor: &Reactor) -> bool {
        self.on_events(reactor, IN)
    }

    fn interest(&self) -> u32 {
        IN | RDHUP
    }

    fn on_events(&self, reactor: &Reactor, events: u32) -> bool {
        // A request's handling runs on the loop: a bug it hits ends this connection (as it
        // ended a connection's thread before), not the supervisor.
        let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.handle_events(reactor, events)));
        handled.unwrap_or_else(|_| {
            tracing::error!("a client's request failed; its connection is closed");
            false
        })
    }
}

impl Conn {
    fn handle_events(&self, reactor: &Reactor, events: u32) -> bool {
        let mut s = lock(&self.inner);
        if events & HUP != 0 {
            (s.hung_up, s.peer_done) = (true, true);
        }
        if events & RDHUP != 0 {
            s.peer_done = true;
        }
        if events & NOTIFIED != 0 && !self.take_answer(&mut s) {
            return false;
        }
        if !self.advance(&mut s, reactor, events) {
            return false;
        }
        let wanted = Conn::wanted(&s);
        if wanted != s.armed {
            s.armed = wanted;
            reactor.rearm(self.token(), self.fd(), wanted);
        }
        true
    }
}

impl Drop for Conn {
    /// Its slot of the cap is free again, and the supervisor decides on its idle exit anew.
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
        self.sup.client_left();
    }
}
