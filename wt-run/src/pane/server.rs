//! The supervisor (`wt-run serve`): holds the panes of one repository and answers the protocol
//! on its socket. One per repository: an flock on `<socket>.lock`, held for its lifetime,
//! keeps a second from starting. It exits when no pane is alive and no client has been
//! connected for the idle time, and leaves no file behind: its socket, its confined panes'
//! sockets and its lock file go with it. A supervisor killed with SIGKILL cannot remove them,
//! so the next one (which holds the lock, so knows it is dead) removes what it left.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wt_common::proc::lock::FileLock;
use wt_common::Error;

use super::access::Access;
use super::agent::Source;
use super::answer::Reply;
use super::events::Events;
use super::fanout::{ATTACH_QUEUE, EVENT_QUEUE};
use super::handle::{Failure, Handle};
use super::own_socket::OwnSocket;
use super::protocol::{Request, Response, MAX_REQUEST};
use super::pty::{Pane, SpawnSpec};
use super::reactor::{Reactor, Source as Ready};
use super::tmux::TmuxPane;
use super::tracker::Tracker;

/// Connections a confined pane's socket serves at once.
pub const MAX_PANE_CONNECTIONS: usize = 16;

/// Connections the supervisor's socket serves at once. Each is served by a thread of its own
/// (a stream, `pane.wait`, holds it), so this bounds the supervisor's threads; a client beyond
/// it is answered `too-many-connections` and closed.
pub const MAX_CONNECTIONS: usize = 128;

/// Shared by every client thread.
struct Supervisor {
    panes: Mutex<BTreeMap<String, Handle>>,
    clients: AtomicUsize,
    last_activity: Mutex<Instant>,
    socket: PathBuf,
    logs: PathBuf,
    stop: std::sync::atomic::AtomicBool,
    events: Arc<Events>,
    /// The own sockets of confined panes, by pane name.
    own_sockets: Mutex<BTreeMap<String, OwnSocket>>,
    /// Each pane's agent state, by pane name.
    trackers: Mutex<BTreeMap<String, Arc<Tracker>>>,
    /// The tmux session of this repository's tmux panes (`wt-<repo>-<hash>`).
    tmux_session: String,
    /// The event loop: listening sockets, panes' terminals and programs.
    reactor: Arc<Reactor>,
}

/// Runs the supervisor until it is idle for `idle` (or told to stop).
pub fn serve(socket: &Path, logs: &Path, tmux_session: &str, idle: Duration) -> Result<(), Error> {
    restore_ignored_signals();
    let lock_path = socket.with_extension("lock");
    let Some(mut held) = FileLock::try_acquire(&lock_path)? else {
        return Err(Error::env("already-running", format!("a supervisor is already running on {}", socket.display())));
    };
    // Nothing needs the lock file once no supervisor holds it.
    held.remove_when_released();
    let _ = std::fs::remove_file(socket); // left by a supervisor that crashed: its lock was free
    let orphans = super::orphans::end_all(logs, Duration::from_secs(2));
    if orphans > 0 {
        tracing::warn!("ended {orphans} pane(s) a supervisor that died left running");
    }
    remove_left_files(socket);
    let listener = UnixListener::bind(socket).map_err(|e| Error::io(socket.display(), e))?;
    let _ = std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600));
    std::fs::create_dir_all(logs).map_err(|e| Error::io(logs.display(), e))?;
    let reactor = Reactor::new().map_err(|e| Error::io("epoll", e))?;
    let sup = Arc::new(Supervisor {
        panes: Mutex::new(BTreeMap::new()),
        clients: AtomicUsize::new(0),
        last_activity: Mutex::new(Instant::now()),
        socket: socket.to_path_buf(),
        logs: logs.to_path_buf(),
        stop: Default::default(),
        events: Arc::new(Events::default()),
        own_sockets: Mutex::default(),
        trackers: Mutex::default(),
        tmux_session: tmux_session.to_string(),
        reactor: Arc::clone(&reactor),
    });
    // SIGTERM, SIGINT or SIGHUP: stop as `server.stop` does, ending every pane. The signal
    // also wakes the loop.
    let terminated = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT, signal_hook::consts::SIGHUP] {
        let _ = signal_hook::flag::register(sig, Arc::clone(&terminated));
        if let Ok(waker) = reactor.waker() {
            let _ = signal_hook::low_level::pipe::register(sig, waker);
        }
    }
    listen(&sup, listener, None).map_err(|e| Error::io(socket.display(), e))?;
    // Only what is due wakes the loop: the idle exit, an ended pane's scrollback to let go, a
    // tmux pane to look at (tmux tells nothing when its panes end).
    loop {
        let (running, due) = any_running(&sup);
        let busy = sup.clients.load(Ordering::SeqCst) > 0 || running;
        if busy {
            *sup.last_activity.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
        }
        let last = *sup.last_activity.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if sup.stop.load(Ordering::SeqCst) || terminated.load(Ordering::SeqCst) || last.elapsed() >= idle {
            break;
        }
        let idle_at = (!busy).then_some(last + idle);
        reactor.turn(idle_at.into_iter().chain(due).min());
    }
    end_panes(&sup, &reactor);
    let _ = std::fs::remove_file(&sup.socket);
    lock(&sup.own_sockets).clear();
    drop(held); // the lock file goes last, once the rest is gone
    Ok(())
}

/// Ends every pane, all at once (each has its grace, side by side), while the loop goes on
/// turning: it is what notices each program's end.
fn end_panes(sup: &Supervisor, reactor: &Reactor) {
    let panes: Vec<Handle> = lock(&sup.panes).values().filter(|p| !p.exited()).cloned().collect();
    let left = Arc::new(AtomicUsize::new(panes.len()));
    for pane in panes {
        let (left, waker) = (Arc::clone(&left), reactor.waker());
        std::thread::spawn(move || {
            pane.kill(Duration::from_millis(500));
            left.fetch_sub(1, Ordering::SeqCst);
            if let Ok(mut w) = waker {
                let _ = w.write(&[1]);
            }
        });
    }
    while left.load(Ordering::SeqCst) > 0 {
        reactor.turn(Some(Instant::now() + Duration::from_millis(100)));
    }
}

/// What killed supervisors left in the socket directory: the own sockets of this repository's
/// confined panes (their panes were ended by `orphans::end_all`), and the lock file of any
/// repository whose supervisor is gone (no socket beside it, and nobody holds it).
fn remove_left_files(socket: &Path) {
    let (Some(dir), Some(stem)) = (socket.parent(), socket.file_stem().and_then(|s| s.to_str())) else { return };
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let panes = format!("{stem}.pane-");
    for path in entries.flatten().map(|e| e.path()) {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if name.starts_with(&panes) && name.ends_with(".sock") {
            let _ = std::fs::remove_file(&path);
        } else if name.ends_with(".lock") && path != socket.with_extension("lock") {
            if path.with_extension("sock").exists() {
                continue; // its supervisor may be running
            }
            if let Ok(Some(mut gone)) = FileLock::try_existing(&path) {
                gone.remove_when_released();
            }
        }
    }
}

/// Serves each connection `listener` accepts on a thread of its own, at most `MAX_CONNECTIONS`
/// at once (`MAX_PANE_CONNECTIONS` on a pane's socket): with the capability of the pane `own`
/// (a confined pane's own socket), or else of the supervisor's socket. Accepting is done on the
/// event loop; a listener shut down (a confined pane's socket, replaced) is let go there.
fn listen(sup: &Arc<Supervisor>, listener: UnixListener, own: Option<Access>) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    // As mount points are listed: the real path.
    let dir = sup.socket.parent().map(|d| d.canonicalize().unwrap_or_else(|_| d.to_path_buf())).unwrap_or_default();
    let source = Listener { sup: Arc::downgrade(sup), listener, own, dir, open: Arc::new(AtomicUsize::new(0)) };
    sup.reactor.register(Arc::new(source))
}

/// A listening socket on the event loop.
struct Listener {
    sup: std::sync::Weak<Supervisor>,
    listener: UnixListener,
    own: Option<Access>,
    dir: PathBuf,
    open: Arc<AtomicUsize>,
}

impl Ready for Listener {
    fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.listener.as_raw_fd()
    }

    fn ready(&self, _: &Reactor) -> bool {
        let Some(sup) = self.sup.upgrade() else { return false };
        // A confined pane may hold only so many connections: each costs the supervisor a
        // thread, and an agent must not exhaust what serves the others.
        let limit = if self.own.is_some() { MAX_PANE_CONNECTIONS } else { MAX_CONNECTIONS };
        let whose = if self.own.is_some() { "a confined pane may hold" } else { "the pane supervisor serves" };
        loop {
            let mut stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // EINVAL: the listener was shut down (its pane's socket was replaced).
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return false,
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    return true;
                }
            };
            if !same_user(&stream) {
                continue; // dropped: only the owner may drive the panes
            }
            if self.open.load(Ordering::SeqCst) >= limit {
                let msg = format!("{whose} {limit} connections at once; close one, or try again later");
                let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
                send_line(&mut stream, &Response::err(Value::Null, "too-many-connections", msg));
                continue;
            }
            let access = self.own.clone().unwrap_or_else(|| super::peer::access_of(&stream, &self.dir));
            let (sup, open) = (Arc::clone(&sup), Arc::clone(&self.open));
            sup.clients.fetch_add(1, Ordering::SeqCst);
            open.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                serve_client(&sup, stream, &access);
                open.fetch_sub(1, Ordering::SeqCst);
                sup.clients.fetch_sub(1, Ordering::SeqCst);
                *lock(&sup.last_activity) = Instant::now();
                sup.reactor.wake();
            });
        }
    }
}

/// Whether a connection still acts for what it was accepted for: a pane's socket connection
/// only while that socket is its pane's.
fn current(sup: &Supervisor, access: &Access) -> bool {
    match access {
        Access::Pane { name, socket, .. } => lock(&sup.own_sockets).get(name).is_some_and(|o| o.id == *socket),
        _ => true,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether a pane still runs, and when to look again without an event (an ended pane's
/// scrollback to let go, a running tmux pane's end to notice). On the way, for the panes that
/// ended: their pid files are dropped, a native pane's scrollback is let go after a while, and
/// a tmux pane's end is noticed here (a native pane's by `watchers`), its agent state `exited`.
fn any_running(sup: &Supervisor) -> (bool, Option<Instant>) {
    let panes = lock(&sup.panes);
    let trackers = lock(&sup.trackers);
    let mut running = false;
    let mut due: Option<Instant> = None;
    for (name, pane) in panes.iter() {
        if !pane.exited() {
            running = true;
            if let Handle::Native(p) = pane {
                due = due.into_iter().chain(p.tell_waiters()).min(); // output a waiter was not told of
            }
            if let Handle::Tmux(_) = pane {
                due = due.into_iter().chain(Some(Instant::now() + super::tracker::TMUX_EVERY)).min();
            }
            continue;
        }
        // A native pane's end is told by `watchers`, with its exit status.
        if let (Handle::Tmux(_), Some(t)) = (pane, trackers.get(name)) {
            t.exited(None); // once: a tracker that knows it already does nothing
        }
        if let Handle::Native(p) = pane {
            if let Some(pid) = p.pid {
                super::orphans::forget(&sup.logs, name, pid);
            }
            p.release_scrollback(super::pty::KEEP_EXITED_SCROLLBACK);
            due = due.into_iter().chain(p.scrollback_release_at()).min();
        }
    }
    (running, due)
}

/// Panes must start with every signal at its default, but ignored signals survive exec, and
/// this process may have inherited some: glibc's posix_spawn sets its internal real-time
/// signals (32, 33) to ignored in the child, and a shell may ignore others. portable-pty only
/// resets a fixed list in the pane, so the supervisor resets every signal it inherited as
/// ignored, except SIGPIPE (which Rust's runtime ignores on purpose, and portable-pty resets
/// for the pane). Handlers (such as the one glibc installs for signal 33) are left alone.
///
/// glibc's `sigaction` refuses its internal signals, so this talks to the kernel directly.
#[allow(unsafe_code)]
fn restore_ignored_signals() {
    /// The kernel's `struct sigaction` on Linux (x86_64, aarch64): handler, flags, restorer, mask.
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: u64,
        restorer: usize,
        mask: u64,
    }
    const SIG_IGN: usize = 1;
    let default = KernelSigaction { handler: 0, flags: 0, restorer: 0, mask: 0 };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP || sig == libc::SIGPIPE {
            continue;
        }
        let mut old = KernelSigaction { handler: 0, flags: 0, restorer: 0, mask: 0 };
        // SAFETY: rt_sigaction(2) with these plain structs of the kernel's layout and size 8
        // (64 signals): the first call only reads; the second installs SIG_DFL, which runs no
        // code of ours in a signal context.
        unsafe {
            let read = libc::syscall(libc::SYS_rt_sigaction, sig, std::ptr::null::<KernelSigaction>(), &mut old, 8);
            if read == 0 && old.handler == SIG_IGN {
                libc::syscall(libc::SYS_rt_sigaction, sig, &default, std::ptr::null_mut::<KernelSigaction>(), 8);
            }
        }
    }
}

fn same_user(stream: &UnixStream) -> bool {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    getsockopt(stream, PeerCredentials).is_ok_and(|c| c.uid() == nix::unistd::getuid().as_raw())
}

/// Answers one client's requests, one line each, until it goes away.
fn serve_client(sup: &Arc<Supervisor>, stream: UnixStream, access: &Access) {
    let Ok(mut out) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = Vec::new();
        // Read at most one byte past the limit, so an oversized line is known without keeping it.
        let n = match (&mut reader).take(MAX_REQUEST as u64 + 1).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if !current(sup, access) {
            return; // its pane was replaced: the connection acts for nobody now
        }
        let response = if n > MAX_REQUEST {
            // Skip the rest of the oversized line before answering.
            if !line.ends_with(b"\n") && skip_line(&mut reader).is_err() {
                return;
            }
            Response::err(Value::Null, "too-large", format!("request over {MAX_REQUEST} bytes"))
        } else if !line.ends_with(b"\n") {
            return; // the client went away mid-request
        } else {
            match serde_json::from_slice::<Request>(&line) {
                Ok(mut req) => match access.admit(&mut req) {
                    Err((code, msg)) => Response::err(req.id, code, msg),
                    Ok(()) if req.method == "events.subscribe" => {
                        return stream_events(sup, req, with_write_timeout(out), access)
                    }
                    Ok(()) if req.method == "pane.attach" => return stream_output(sup, req, with_write_timeout(out)),
                    Ok(()) => handle(sup, req, access),
                },
                Err(e) => Response::err(Value::Null, "bad-request", format!("not a request: {e}")),
            }
        };
        let mut text = serde_json::to_vec(&response).expect("response serializes");
        text.push(b'\n');
        let written = out.write_all(&text);
        if sup.stop.load(Ordering::SeqCst) {
            sup.reactor.wake(); // `server.stop`, answered: the supervisor may go now
        }
        if written.is_err() {
            return;
        }
    }
}

/// A stream's connection: a client that reads nothing for this long is dropped, rather than
/// holding a thread and its queue.
fn with_write_timeout(out: UnixStream) -> UnixStream {
    let _ = out.set_write_timeout(Some(Duration::from_secs(30)));
    out
}

/// Answers the subscription, then writes every event (of the pane `only`, if given) as a line
/// until the client goes away.
fn stream_events(sup: &Supervisor, req: Request, mut out: UnixStream, access: &Access) {
    let only = access.events_of();
    let events = sup.events.subscribe();
    let mut line = serde_json::to_vec(&Response::ok(req.id, json!({"subscribed": true}))).expect("response");
    line.push(b'\n');
    if out.write_all(&line).is_err() {
        return;
    }
    let mut failed = None;
    for event in until_gone(&events.rx, out.try_clone().ok()).filter(|e| only.is_none_or(|p| e["pane"] == p)) {
        if !current(sup, access) {
            return;
        }
        let mut line = serde_json::to_vec(&event).expect("event");
        line.push(b'\n');
        if let Err(e) = out.write_all(&line) {
            failed = Some(e);
            break;
        }
    }
    if let Some(e) = failed {
        drop(events); // what was queued goes now, not when the reason is read
        return dropped_unread(&mut out, &e, &too_slow(EVENT_QUEUE, "events"));
    }
    if events.overflowed() {
        send_line(&mut out, &too_slow(EVENT_QUEUE, "events"));
    }
}

/// The items of a stream's queue until the client goes away: a client that vanished is seen
/// within `GONE_CHECK` even when nothing is sent to it (a pane that never prints again, a
/// supervisor with nothing to tell), so its connection does not hold a slot of the cap, nor
/// keep the supervisor from its idle exit, for ever.
fn until_gone<T>(rx: &std::sync::mpsc::Receiver<T>, probe: Option<UnixStream>) -> impl Iterator<Item = T> + '_ {
    std::iter::from_fn(move || loop {
        match rx.recv_timeout(GONE_CHECK) {
            Ok(item) => return Some(item),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return None,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if probe.as_ref().is_some_and(hung_up) => return None,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
    })
}

/// How often a stream that sends nothing looks whether its client is still there.
const GONE_CHECK: Duration = Duration::from_secs(1);

/// Whether the client closed its end (or the connection failed): poll without waiting. Raw
/// `poll(2)`: nix drops the revents it has no name for (POLLRDHUP).
#[allow(unsafe_code)]
fn hung_up(out: &UnixStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut fd = nix::libc::pollfd { fd: out.as_raw_fd(), events: nix::libc::POLLRDHUP, revents: 0 };
    // SAFETY: one pollfd, owned by this frame, for the call's duration; no wait.
    let n = unsafe { nix::libc::poll(&mut fd, 1, 0) };
    let gone = nix::libc::POLLRDHUP | nix::libc::POLLHUP | nix::libc::POLLERR | nix::libc::POLLNVAL;
    n < 0 || (n > 0 && fd.revents & gone != 0)
}

/// The last line a client that fell too far behind gets before it is disconnected.
fn too_slow(bound: usize, what: &str) -> Value {
    json!({"error": {"code": "too-slow", "message": format!("disconnected: more than {bound} {what} were waiting to be read; read faster, or reconnect")}})
}

/// `pane.attach`: the pane's raw output, base64 in JSON lines, until either side goes away.
fn stream_output(sup: &Supervisor, req: Request, mut out: UnixStream) {
    let chunks = match pane(sup, &req.params) {
        Ok(Handle::Native(p)) => p.watch(),
        Ok(Handle::Tmux(_)) => {
            send_line(&mut out, &Response::err(req.id, "tmux-pane", "attach to a tmux pane with tmux itself"));
            return;
        }
        Err((code, msg)) => {
            send_line(&mut out, &Response::err(req.id, code, msg));
            return;
        }
    };
    if !send_line(&mut out, &Response::ok(req.id, json!({"attached": true}))) {
        return;
    }
    let mut failed = None;
    for chunk in until_gone(&chunks.rx, out.try_clone().ok()) {
        let mut line = serde_json::to_vec(&json!({"data_b64": super::attach::encode(&chunk)})).expect("chunk");
        line.push(b'\n');
        if let Err(e) = out.write_all(&line) {
            failed = Some(e);
            break;
        }
    }
    if let Some(e) = failed {
        drop(chunks); // what was queued goes now, not when the reason is read
        return dropped_unread(&mut out, &e, &too_slow(ATTACH_QUEUE, "chunks of output"));
    }
    if chunks.overflowed() {
        send_line(&mut out, &too_slow(ATTACH_QUEUE, "chunks of output"));
    }
}

/// How long the reason a stream's client was dropped waits to be read, holding its thread.
const REASON_WAIT: Duration = Duration::from_secs(600);

/// A stream's client that read nothing for the write timeout (`e` a timeout, not a client
/// gone) is dropped: its queue goes, the line cut short is ended, and `reason` follows, for
/// when it reads again. What it costs meanwhile is its thread and a full socket buffer, no
/// more.
fn dropped_unread(out: &mut UnixStream, e: &std::io::Error, reason: &Value) {
    if !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) {
        return;
    }
    let _ = out.set_write_timeout(Some(REASON_WAIT));
    let mut line = b"\n".to_vec();
    line.extend(serde_json::to_vec(reason).expect("reason"));
    line.push(b'\n');
    let _ = out.write_all(&line);
}

fn send_line(out: &mut UnixStream, value: &impl serde::Serialize) -> bool {
    let mut line = serde_json::to_vec(value).expect("serializes");
    line.push(b'\n');
    out.write_all(&line).is_ok()
}

fn skip_line(reader: &mut BufReader<UnixStream>) -> std::io::Result<()> {
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if let Some(i) = buf.iter().position(|b| *b == b'\n') {
            reader.consume(i + 1);
            return Ok(());
        }
        let len = buf.len();
        reader.consume(len);
    }
}

fn handle(sup: &Arc<Supervisor>, req: Request, access: &Access) -> Response {
    let id = req.id.clone();
    match dispatch(sup, &req, access) {
        Ok(v) => Response::ok(id, v),
        Err((code, msg)) => Response::err(id, code, msg),
    }
}

fn dispatch(sup: &Arc<Supervisor>, req: &Request, access: &Access) -> Result<Value, Failure> {
    let p = &req.params;
    match req.method.as_str() {
        "pane.list" => {
            let panes = lock(&sup.panes).clone();
            Ok(json!(panes.iter().map(|(name, pane)| access.list_entry(describe(sup, name, pane))).collect::<Vec<_>>()))
        }
        "pane.spawn" => spawn(sup, p),
        "pane.notify" => {
            let signal = super::notify::signal_from_params(p)?;
            pane(sup, p)?;
            let tracker = tracker(sup, p)?;
            tracker.report(vec![(Source::Hook, Some(signal))], None);
            Ok(json!({"state": tracker.state()}))
        }
        "pane.read_screen" => {
            let lines = p.get("lines").and_then(Value::as_u64).unwrap_or(0) as usize;
            Ok(pane(sup, p)?.screen(lines))
        }
        "pane.send" => {
            let text = p.get("text").and_then(Value::as_str).ok_or(("bad-params", "pane.send needs text".into()))?;
            let enter = p.get("enter").and_then(Value::as_bool).unwrap_or(false);
            pane(sup, p)?.send_text(text, enter)?;
            Ok(json!({"pane": p["pane"], "sent": text.len()}))
        }
        "pane.write" => {
            let data =
                p.get("data_b64").and_then(Value::as_str).ok_or(("bad-params", "pane.write needs data_b64".into()))?;
            let bytes = super::attach::decode_strict(data)
                .ok_or(("bad-params", "pane.write: data_b64 is not valid base64".to_string()))?;
            match pane(sup, p)? {
                Handle::Native(pane) => pane.write(&bytes).map_err(|e| ("write-failed", e))?,
                Handle::Tmux(t) => t.send_text(&String::from_utf8_lossy(&bytes), false)?,
            }
            Ok(json!({"written": bytes.len()}))
        }
        "pane.answer" => {
            let reply = match (p.get("answer").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                (Some(a), None) if !a.is_empty() => Reply::Named(a.to_string()),
                (None, Some(t)) => Reply::Text(t.to_string()),
                _ => return Err(("bad-params", "pane.answer needs answer (yes, no) or text, one of them".into())),
            };
            let handle = pane(sup, p)?;
            tracker(sup, p)?.answer(&handle, &reply)
        }
        "pane.send_key" => {
            let key = p.get("key").and_then(Value::as_str).unwrap_or_default();
            pane(sup, p)?.send_key(key)?;
            Ok(json!({"pane": p["pane"], "sent": key}))
        }
        "pane.wait" if p.get("state").is_some() => {
            let states = wanted_states(p)?;
            let timeout = Duration::from_millis(p.get("timeout_ms").and_then(Value::as_u64).unwrap_or(30_000));
            pane(sup, p)?;
            tracker(sup, p)?.wait(&states, timeout)
        }
        "pane.wait" => pane(sup, p)?.wait(p),
        "pane.resize" => {
            if p.get("rows").is_none() || p.get("cols").is_none() {
                return Err(("bad-params", "pane.resize needs rows and cols (1-1000)".into()));
            }
            let (rows, cols) = (size(p, "rows", 0)?, size(p, "cols", 0)?);
            pane(sup, p)?.resize(rows, cols)?;
            Ok(json!({"rows": rows, "cols": cols}))
        }
        "pane.kill" => {
            let handle = pane(sup, p)?;
            let was_dead = handle.exited();
            handle.kill(Duration::from_secs(2));
            let name = p["pane"].as_str().unwrap_or_default();
            let mut described = describe(sup, name, &handle);
            // Killing a pane that had already ended drops it, with its screen (its log stays
            // on disk); a pane killed now stays listed, dead, until then.
            if was_dead {
                lock(&sup.panes).remove(name);
            }
            described["dropped"] = json!(was_dead);
            Ok(described)
        }
        "server.stop" => {
            sup.stop.store(true, Ordering::SeqCst); // the loop is woken once this is answered
            Ok(json!({"stopping": true}))
        }
        "server.ping" => Ok(json!({"pid": std::process::id()})),
        other => Err(("unknown-method", format!("unknown method '{other}'"))),
    }
}

/// A pane as `pane.list` shows it: what its backend says, its agent's reported state, and its
/// own socket if it has one.
fn describe(sup: &Supervisor, name: &str, pane: &Handle) -> Value {
    let mut described = pane.describe();
    if let Some(tracker) = lock(&sup.trackers).get(name) {
        tracker.describe_into(&mut described);
    }
    if let Some(own) = lock(&sup.own_sockets).get(name) {
        described["own_socket"] = json!({"path": own.path, "read_panes": own.read_panes});
    }
    described
}

/// `pane.wait`'s `state`: one state or a list of them.
fn wanted_states(p: &Value) -> Result<Vec<&'static str>, Failure> {
    let given: Vec<&str> = match &p["state"] {
        Value::String(s) => vec![s.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let states: Vec<&'static str> = given.iter().filter_map(|s| super::agent::state_named(s)).collect();
    if states.is_empty() || states.len() != given.len() {
        return Err((
            "bad-params",
            format!("pane.wait's state must be one or more of {}", super::agent::STATES.join(", ")),
        ));
    }
    Ok(states)
}

fn tracker(sup: &Supervisor, params: &Value) -> Result<Arc<Tracker>, Failure> {
    let name = params.get("pane").and_then(Value::as_str).unwrap_or_default();
    lock(&sup.trackers).get(name).cloned().ok_or(("no-such-pane", format!("no pane '{name}' (see `wt-run pane ls`)")))
}

fn pane(sup: &Supervisor, params: &Value) -> Result<Handle, Failure> {
    let name = params
        .get("pane")
        .and_then(Value::as_str)
        .ok_or(("bad-params", "params.pane (a pane name) is missing".to_string()))?;
    sup.panes
        .lock()
        .expect("panes")
        .get(name)
        .cloned()
        .ok_or(("no-such-pane", format!("no pane '{name}' (see `wt-run pane ls`)")))
}

fn spawn(sup: &Arc<Supervisor>, p: &Value) -> Result<Value, Failure> {
    let name = p.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    wt_common::ledger::name::validate(&name).map_err(|e| ("bad-params", e.message))?;
    let cmd: Vec<String> = p.get("cmd").and_then(|c| serde_json::from_value(c.clone()).ok()).unwrap_or_default();
    if cmd.is_empty() {
        return Err(("bad-params", "pane.spawn needs cmd, a non-empty list".into()));
    }
    let cwd = PathBuf::from(p.get("cwd").and_then(Value::as_str).unwrap_or("."));
    if !cwd.is_dir() {
        return Err(("no-such-directory", format!("pane.spawn: cwd {} is not a directory", cwd.display())));
    }
    let env: BTreeMap<String, String> =
        p.get("env").and_then(|e| serde_json::from_value(e.clone()).ok()).unwrap_or_default();
    let (rows, cols) = (size(p, "rows", 40)?, size(p, "cols", 120)?);
    super::program::find(&cmd[0], &cwd, env.get("PATH").map(String::as_str))?;
    let mut panes = sup.panes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if panes.get(&name).is_some_and(|old| !old.exited()) {
        return Err(("pane-exists", format!("pane '{name}' is running; kill it first or choose another name")));
    }
    let dir = sup.logs.join(&name);
    std::fs::create_dir_all(&dir).map_err(|e| ("io", e.to_string()))?;
    let profile: super::rules::ProfileSpec = match p.get("agent") {
        Some(a) => serde_json::from_value(a.clone()).map_err(|e| ("bad-params", format!("agent: {e}")))?,
        None => super::rules::ProfileSpec { name: "default".into(), ..Default::default() },
    };
    let profile = super::rules::Profile::compile(&profile)?;
    let on_state = super::on_state::OnState::from_params(p, cwd.clone(), env.clone().into_iter().collect())?;
    // The name's earlier pane, if any, has ended: so has its state, and its socket.
    lock(&sup.trackers).remove(&name);
    lock(&sup.own_sockets).remove(&name);
    let own = match p.get("restricted").and_then(Value::as_bool).unwrap_or(false) {
        true => Some(own_socket(sup, &name, p.get("read_panes").and_then(Value::as_bool).unwrap_or(false))?),
        false => None,
    };
    let mut env: Vec<(String, String)> = env.into_iter().collect();
    env.push(("WT_SOCKET".into(), own.as_ref().unwrap_or(&sup.socket).display().to_string()));
    env.push(("WT_PANE".into(), name.clone()));
    let spec = SpawnSpec {
        name: name.clone(),
        cmd,
        cwd,
        env,
        rows,
        cols,
        log: dir.join(format!("pane-{}.log", crate::unique_stem())),
    };
    let pane = match p.get("backend").and_then(Value::as_str).unwrap_or("native") {
        "native" => {
            Pane::spawn(spec, Arc::clone(&sup.events), &sup.reactor).map_err(|e| ("spawn-failed", e)).map(|pane| {
                if let Some(pid) = pane.pid {
                    super::orphans::record(&sup.logs, &name, pid);
                }
                Handle::Native(pane)
            })
        }
        "tmux" => TmuxPane::spawn(spec, &sup.tmux_session).map_err(|e| ("spawn-failed", e)).map(|pane| {
            sup.events.publish(json!({"event": "spawned", "pane": name, "pid": pane.pid}));
            Handle::Tmux(Arc::new(pane))
        }),
        other => Err(("bad-params", format!("unknown backend '{other}' (native or tmux)"))),
    };
    let pane = pane.inspect_err(|_| {
        lock(&sup.own_sockets).remove(&name);
    })?;
    let env = match &pane {
        Handle::Native(p) => p.spec.env.clone(),
        Handle::Tmux(t) => t.spec.env.clone(),
    };
    let tracker = Tracker::start(&name, profile, on_state, Arc::clone(&sup.events), &env);
    match &pane {
        Handle::Native(native) => {
            super::watchers::watch(Arc::clone(&tracker), Arc::clone(native));
        }
        Handle::Tmux(t) => {
            let (tracker, t) = (Arc::clone(&tracker), Arc::clone(t));
            std::thread::spawn(move || tracker.watch_tmux(t));
        }
    }
    lock(&sup.trackers).insert(name.clone(), tracker);
    let described = describe(sup, &name, &pane);
    panes.insert(name, pane);
    Ok(described)
}

/// A socket of the pane's own, listening before the pane starts (so its confinement can keep
/// it reachable while it hides the supervisor's), whose connections act for that pane only.
/// Returns its path.
fn own_socket(sup: &Arc<Supervisor>, name: &str, read_panes: bool) -> Result<PathBuf, Failure> {
    let path = super::socket::pane_socket_path(&sup.socket, name);
    let (own, listener) = OwnSocket::bind(&path, read_panes).map_err(|e| ("spawn-failed", e))?;
    let access = Access::Pane { name: name.to_string(), read_panes, socket: own.id };
    lock(&sup.own_sockets).insert(name.to_string(), own);
    listen(sup, listener, Some(access)).map_err(|e| ("spawn-failed", e.to_string()))?;
    Ok(path)
}

/// `rows` or `cols` of a request: absent means `default`; anything but 1-1000 is refused
/// rather than quietly replaced.
fn size(p: &Value, key: &str, default: u16) -> Result<u16, Failure> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=1000).contains(n))
            .map(|n| n as u16)
            .ok_or(("bad-params", format!("{key} must be a number from 1 to 1000, not {v}"))),
    }
}
