//! The supervisor (`wt-run serve`): holds the panes of one repository and answers the protocol
//! on its socket. One per repository: an flock on `<socket>.lock`, held for its lifetime,
//! keeps a second from starting. It exits when no pane is alive and no client has been
//! connected for the idle time, and leaves no file behind: its socket, its confined panes'
//! sockets and its lock file go with it. A supervisor killed with SIGKILL cannot remove them,
//! so the next one (which holds the lock, so knows it is dead) removes what it left.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wt_common::proc::lock::FileLock;
use wt_common::Error;

use super::access::Access;
use super::agent::Source;
use super::answer::Reply;
use super::conn::Conn;
use super::events::Events;
use super::handle::{Failure, Handle};
use super::own_socket::OwnSocket;
use super::protocol::{Request, Response};
use super::pty::{Pane, SpawnSpec};
use super::reactor::{Reactor, Source as Ready};
use super::tmux::TmuxPane;
use super::tracker::Tracker;

/// Connections a confined pane's socket serves at once.
pub const MAX_PANE_CONNECTIONS: usize = 16;

/// Connections the supervisor's socket serves at once. Each is a state machine on the event
/// loop (`conn`), holding no thread, but its buffers and descriptor; a client beyond it is
/// answered `too-many-connections` and closed.
pub const MAX_CONNECTIONS: usize = 128;

/// Shared by the event loop, the workers and the trackers.
pub struct Supervisor {
    panes: Mutex<BTreeMap<String, Handle>>,
    clients: AtomicUsize,
    last_activity: Mutex<Instant>,
    socket: PathBuf,
    logs: PathBuf,
    pub stop: std::sync::atomic::AtomicBool,
    pub events: Arc<Events>,
    /// The own sockets of confined panes, by pane name.
    own_sockets: Mutex<BTreeMap<String, OwnSocket>>,
    /// Each pane's agent state, by pane name.
    trackers: Mutex<BTreeMap<String, Arc<Tracker>>>,
    /// The tmux session of this repository's tmux panes (`wt-<repo>-<hash>`).
    tmux_session: String,
    /// The event loop: listening sockets, clients, panes' terminals and programs.
    pub reactor: Arc<Reactor>,
    /// The connections in `pane.wait` on a native pane or an agent state, looked at again
    /// after every turn of the loop in which something happened (see `look_at_waiters`).
    waiters: Mutex<Vec<(u64, Weak<Conn>)>>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor").field("socket", &self.socket).finish_non_exhaustive()
    }
}

impl Supervisor {
    /// The connection `token` waits in `pane.wait`: look at it after every turn.
    pub fn add_waiter(&self, token: u64, conn: Weak<Conn>) {
        // Once per connection: a client that pipelines waits answered at once would otherwise be
        // looked at once per wait, every turn, while its last one waits.
        let mut waiters = lock(&self.waiters);
        if !waiters.iter().any(|(t, _)| *t == token) {
            waiters.push((token, conn));
        }
    }

    /// A client's connection was dropped.
    pub fn client_left(&self) {
        self.clients.fetch_sub(1, Ordering::SeqCst);
        *lock(&self.last_activity) = Instant::now();
        self.reactor.wake();
    }
}

/// Looks at every waiting `pane.wait` again: a pane printed, ended, or an agent state changed
/// (the pump runs on the loop; the reaper and the trackers wake it). A look that sees nothing
/// new costs a lock and a comparison (the screen is matched only once it changed).
fn look_at_waiters(sup: &Supervisor) {
    let waiters = lock(&sup.waiters).clone();
    if waiters.is_empty() {
        return;
    }
    for (token, _) in &waiters {
        sup.reactor.run_for(*token, super::reactor::NOTIFIED);
    }
    lock(&sup.waiters).retain(|(_, c)| c.upgrade().is_some_and(|c| c.waits_on_panes()));
}

/// One turn of the loop, then the waiters.
fn turn(sup: &Supervisor, deadline: Option<Instant>) {
    sup.reactor.turn(deadline);
    look_at_waiters(sup);
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
        waiters: Mutex::default(),
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
        turn(&sup, idle_at.into_iter().chain(due).min());
    }
    end_panes(&sup);
    let _ = std::fs::remove_file(&sup.socket);
    lock(&sup.own_sockets).clear();
    drop(held); // the lock file goes last, once the rest is gone
    Ok(())
}

/// Ends every pane, all at once (each has its grace, side by side), while the loop goes on
/// turning: it is what notices each program's end.
fn end_panes(sup: &Supervisor) {
    let reactor = &sup.reactor;
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
        turn(sup, Some(Instant::now() + Duration::from_millis(100)));
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

/// Serves each connection `listener` accepts on the event loop (`conn`), at most `MAX_CONNECTIONS`
/// at once (`MAX_PANE_CONNECTIONS` on a pane's socket): with the capability of the pane `own`
/// (a confined pane's own socket), or else of the supervisor's socket. Accepting is done on the
/// event loop; a listener shut down (a confined pane's socket, replaced) is let go there.
fn listen(sup: &Arc<Supervisor>, listener: UnixListener, own: Option<Access>) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    // As mount points are listed: the real path.
    let dir = sup.socket.parent().map(|d| d.canonicalize().unwrap_or_else(|_| d.to_path_buf())).unwrap_or_default();
    let source = Listener { sup: Arc::downgrade(sup), listener, own, dir, open: Arc::new(AtomicUsize::new(0)) };
    sup.reactor.register(Arc::new(source)).map(|_| ())
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
        // A confined pane may hold only so many connections: each costs the supervisor its
        // buffers, and an agent must not exhaust what serves the others.
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
            sup.clients.fetch_add(1, Ordering::SeqCst);
            self.open.fetch_add(1, Ordering::SeqCst);
            Conn::start(Arc::clone(&sup), stream, access, Arc::clone(&self.open));
        }
    }
}

/// Whether a connection still acts for what it was accepted for: a pane's socket connection
/// only while that socket is its pane's.
pub fn current(sup: &Supervisor, access: &Access) -> bool {
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
        // A tmux pane's end as its watcher saw it: the loop never asks tmux itself.
        let ended = match pane {
            Handle::Native(p) => p.exited(),
            Handle::Tmux(t) => t.exit_seen(),
        };
        if !ended {
            running = true;
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

fn send_line(out: &mut UnixStream, value: &impl serde::Serialize) -> bool {
    let mut line = serde_json::to_vec(value).expect("serializes");
    line.push(b'\n');
    out.write_all(&line).is_ok()
}

/// An ordinary request's answer (made on a worker: see `conn`).
pub fn handle(sup: &Arc<Supervisor>, req: Request, access: &Access) -> Response {
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
        "pane.resize" => {
            if p.get("rows").is_none() || p.get("cols").is_none() {
                return Err(("bad-params", "pane.resize needs rows (1-1000) and cols (2-1000)".into()));
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
pub fn wanted_states(p: &Value) -> Result<Vec<&'static str>, Failure> {
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

pub fn tracker(sup: &Supervisor, params: &Value) -> Result<Arc<Tracker>, Failure> {
    let name = params.get("pane").and_then(Value::as_str).unwrap_or_default();
    lock(&sup.trackers).get(name).cloned().ok_or(("no-such-pane", format!("no pane '{name}' (see `wt-run pane ls`)")))
}

pub fn pane(sup: &Supervisor, params: &Value) -> Result<Handle, Failure> {
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
    // The build governor's lease for the pane's builds, made before the panes' lock: a governor
    // slow to answer (or to start) holds up this request only, not every other (the loop's
    // look at the panes takes that lock too).
    let lease = crate::governed::pane(&env.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>(), &name);
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
        "native" => Pane::spawn(spec, lease, Arc::clone(&sup.events), &sup.reactor)
            .map_err(|e| ("spawn-failed", e))
            .map(|pane| {
                if let Some(pid) = pane.pid {
                    super::orphans::record(&sup.logs, &name, pid);
                }
                Handle::Native(pane)
            }),
        "tmux" => TmuxPane::spawn(spec, lease, &sup.tmux_session).map_err(|e| ("spawn-failed", e)).map(|pane| {
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
    // A change of state is looked at by the `pane.wait --state` waiters on the loop.
    let reactor = Arc::downgrade(&sup.reactor);
    tracker.on_change(Box::new(move || {
        if let Some(r) = reactor.upgrade() {
            r.wake();
        }
    }));
    match &pane {
        Handle::Native(native) => super::watchers::watch(Arc::clone(&tracker), Arc::clone(native)),
        Handle::Tmux(t) => super::tmux_watchers::watch(Arc::clone(&tracker), Arc::clone(t)),
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
/// A pane's `rows` (1 to 1000) or `cols` (2 to 1000: a wide character needs two).
fn size(p: &Value, key: &str, default: u16) -> Result<u16, Failure> {
    let least = if key == "cols" { 2 } else { 1 };
    match p.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .filter(|n| (least..=1000).contains(n))
            .map(|n| n as u16)
            .ok_or(("bad-params", format!("{key} must be a number from {least} to 1000, not {v}"))),
    }
}
