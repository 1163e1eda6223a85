//! One pane: a program in a pseudo-terminal (its own session, with the PTY as its controlling
//! terminal), whose output feeds a terminal emulator (`vt100`, bounded scrollback) and a raw
//! log. A kill waits for the exit on a condition variable the exit wakes; `pane.wait` clients
//! are looked at by the supervisor's loop after each turn that read output (`conn.rs`).

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{native_pty_system, Child, CommandBuilder, MasterPty, PtySize};
use serde_json::{json, Value};

use super::events::Events;
use super::fanout::{Fanout, Subscription, ATTACH_QUEUE};
use super::rawlog::RawLog;
use super::reactor::{Reactor, Source};
use super::run_shortener::{Geometry, RunShortener};

/// Lines of scrollback kept per pane: this bounds a pane's memory, however much it prints. Rows
/// that leave the screen are kept as their text (the emulator's `text_scrollback`, see
/// vendor/vt100/PATCHES.md), about a byte a character plus 32 bytes a row: at most about
/// 150 KiB at 120 columns, where the emulator's cells took 3.7 MiB (tmux keeps 2,000 lines as
/// cells by default).
pub const SCROLLBACK: usize = 1000;

/// How long a write to a pane waits for its program to read its input.
const WRITE_WAIT: Duration = Duration::from_secs(10);
/// How long a write to a pane waits behind another write to it.
const WRITE_QUEUE: Duration = Duration::from_secs(2);

/// How long an exited pane keeps its emulator awake; then its last screen is kept as what
/// redraws it (a few KiB, not 150 KiB of cells at 40×120) and its scrollback as text rows. An
/// exited pane prints no more, so nothing but the text is needed: at once.
pub const KEEP_EXITED_SCROLLBACK: Duration = Duration::ZERO;

/// What a program in a pane is, and how to start it.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    pub name: String,
    pub cmd: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    pub rows: u16,
    pub cols: u16,
    pub log: PathBuf,
}

/// How the program ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub code: u32,
    pub signal: Option<String>,
    /// Ended by `pane.kill` (someone asked for it), not on its own: no one needs telling.
    pub killed: bool,
}

pub struct Screen {
    /// The emulator: read it through `parser`, which wakes it and parses what is held back
    /// first.
    vt: vt100::Parser,
    /// A sleeping emulator (`vt` is then a 1×1 stand-in): what redraws its screen, and its size.
    asleep: Option<(Vec<u8>, u16, u16)>,
    /// Output not parsed yet: a plain burst, shortened (see `run_shortener`).
    held: RunShortener,
    pub exit: Option<Exit>,
    pub last_output: Instant,
    pub bytes: u64,
    /// Terminal notifications seen (OSC 9/99/777, BEL), and the latest with its text.
    pub notifications: u64,
    pub last_notification: Option<(Instant, String)>,
    /// When something was last typed into the pane through the supervisor.
    pub last_input: Option<Instant>,
    /// When the program ended.
    pub exited_at: Option<Instant>,
    /// An exited pane's emulator has been put to sleep for good (`release_scrollback`).
    pub released: bool,
    /// Scrollback of emulators put to sleep (by `sleep`), as text rows, oldest first: older than what
    /// the emulator's own scrollback holds.
    kept_rows: Vec<String>,
    /// `pane.kill` was asked for: the exit that follows is the one asked for.
    pub killed: bool,
}

impl Screen {
    /// The emulator, with every byte of output parsed: what was held back is parsed now. Every
    /// reader of the screen goes through here, so what it reads is exact.
    pub fn parser(&mut self) -> &mut vt100::Parser {
        self.awake();
        let vt = &mut self.vt;
        self.held.flush(&mut |b| vt.process(b));
        vt
    }

    /// Takes a chunk of output in: parsed at once unless it is part of a plain burst, whose
    /// end is parsed when someone looks (most of a burst scrolls away unseen).
    pub fn feed(&mut self, chunk: &[u8]) {
        self.awake();
        let vt = &mut self.vt;
        let (rows, cols) = vt.screen().size();
        self.held.feed(chunk, Geometry { rows, cols, scrollback: SCROLLBACK }, &mut |b| vt.process(b));
    }

    /// Wakes the emulator if it sleeps (its screen redrawn into a new one).
    fn awake(&mut self) {
        if let Some((state, rows, cols)) = self.asleep.take() {
            let mut vt = super::emulator::new(rows, cols, SCROLLBACK);
            vt.process(&state);
            self.vt = vt;
        }
    }

    /// The screen's size, without waking it.
    pub fn size(&self) -> (u16, u16) {
        match &self.asleep {
            Some((_, rows, cols)) => (*rows, *cols),
            None => self.vt.screen().size(),
        }
    }

    /// Whether the alternate screen shows (a sleeping screen never does), without waking it.
    pub fn alternate_screen(&self) -> bool {
        self.asleep.is_none() && self.vt.screen().alternate_screen()
    }

    /// Lets the emulator's cells go (a screen is 150 KiB at 40×120):
    /// what redraws the screen is kept (a few KiB), and the scrollback as text rows (a byte a
    /// character; all a reader of the scrollback gets, see `screen_json`). The next output or
    /// look wakes it. Only when a redraw carries every state the output set (see
    /// `RunShortener::redraw_carries_state`; not on the alternate screen), unless `always`
    /// (the program has exited: no more output will depend on that state).
    pub fn sleep(&mut self, always: bool) {
        if self.asleep.is_some() {
            return;
        }
        let alternate = self.parser().screen().alternate_screen();
        if !always && (alternate || !self.held.redraw_carries_state()) {
            return;
        }
        let mut rows = scrollback_rows(self, usize::MAX);
        self.kept_rows.append(&mut rows);
        let over = self.kept_rows.len().saturating_sub(SCROLLBACK);
        self.kept_rows.drain(..over);
        self.kept_rows.shrink_to_fit();
        let (height, width) = self.vt.screen().size();
        self.asleep = Some((self.vt.screen().state_formatted(), height, width));
        self.vt = vt100::Parser::new(1, 1, 0);
        give_back_freed_memory();
    }
}

impl std::fmt::Debug for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Screen").field("exit", &self.exit).field("bytes", &self.bytes).finish()
    }
}

pub struct Pane {
    /// Attached clients: each gets every chunk of raw output, while it keeps up.
    pub watchers: Arc<Fanout<Vec<u8>>>,
    pub spec: SpawnSpec,
    pub pid: Option<u32>,
    pub started: Instant,
    pub state: Arc<(Mutex<Screen>, Condvar)>,
    writer: Mutex<Box<dyn Write + Send>>,
    master: Mutex<Box<dyn MasterPty + Send>>,
}

impl std::fmt::Debug for Pane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pane").field("name", &self.spec.name).field("pid", &self.pid).finish()
    }
}

impl Pane {
    /// `lease`: the build governor's jobserver for the agent's builds (`governed::pane`), held
    /// while the pane lives.
    pub fn spawn(
        spec: SpawnSpec,
        lease: Option<wt_common::proc::governor::Lease>,
        events: Arc<Events>,
        reactor: &Reactor,
    ) -> Result<Arc<Pane>, String> {
        let size = PtySize { rows: spec.rows, cols: spec.cols, pixel_width: 0, pixel_height: 0 };
        let pair = native_pty_system().openpty(size).map_err(|e| format!("cannot open a PTY: {e}"))?;
        let mut cmd = CommandBuilder::new(&spec.cmd[0]);
        cmd.args(&spec.cmd[1..]);
        cmd.cwd(&spec.cwd);
        cmd.env("TERM", "xterm-256color");
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        for (k, v) in lease.as_ref().map(crate::governed::pane_env).unwrap_or_default() {
            cmd.env(k, v);
        }
        let child = pair.slave.spawn_command(cmd).map_err(|e| format!("cannot start {}: {e}", spec.cmd[0]))?;
        drop(pair.slave); // the child holds its end; our copy would keep the PTY open forever
        let reader = own_copy(pair.master.as_ref())?;
        // Non-blocking, for the reader and the writer alike (one open terminal): see `write`.
        set_nonblocking(&reader)?;
        let writer = pair.master.take_writer().map_err(|e| e.to_string())?;
        let log = RawLog::create(spec.log.clone()).map_err(|e| format!("{}: {e}", spec.log.display()))?;
        let screen = Screen {
            // Asleep until it prints or is looked at: a pane that printed nothing costs no cells.
            vt: vt100::Parser::new(1, 1, 0),
            asleep: Some((Vec::new(), spec.rows, spec.cols)),
            held: RunShortener::default(),
            exit: None,
            last_output: Instant::now(),
            bytes: 0,
            notifications: 0,
            last_notification: None,
            last_input: None,
            exited_at: None,
            released: false,
            kept_rows: Vec::new(),
            killed: false,
        };
        let pane = Arc::new(Pane {
            watchers: Arc::new(Fanout::new(ATTACH_QUEUE)),
            pid: child.process_id(),
            started: Instant::now(),
            state: Arc::new((Mutex::new(screen), Condvar::new())),
            writer: Mutex::new(writer),
            master: Mutex::new(pair.master),
            spec,
        });
        // Before any output event can be published, so subscribers see the spawn first.
        events.publish(json!({"event": "spawned", "pane": pane.spec.name, "pid": pane.pid}));
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let output = super::pump::PtyOutput::new(
            reader,
            log,
            pane.spec.name.clone(),
            Arc::clone(&pane.state),
            Arc::clone(&pane.watchers),
            Arc::clone(&events),
            done_tx,
        );
        let pidfd = match pane.pid {
            Some(pid) => super::epoll::pidfd_open(pid).map_err(|e| format!("cannot watch the program: {e}"))?,
            None => return Err("the program has no process id".into()),
        };
        let end = ProgramEnd {
            pidfd,
            child: Mutex::new(Some((child, done_rx))),
            state: Arc::clone(&pane.state),
            name: pane.spec.name.clone(),
            events,
            confined: crate::confine::policy_of(&pane.spec.cmd),
            lease: Mutex::new(lease),
        };
        reactor.register(Arc::new(output)).map_err(|e| format!("cannot read the PTY: {e}"))?;
        reactor.register(Arc::new(end)).map_err(|e| format!("cannot watch the program: {e}"))?;
        Ok(pane)
    }

    /// Types bytes into the program: waits at most `WRITE_WAIT` for it to read them, and at
    /// most `WRITE_QUEUE` behind another write to the same pane. Before, a program that did not
    /// read its input (a frozen TUI, a raw-mode program asleep) held every request worker that
    /// wrote to it, for good, and with them every other request.
    pub fn write(&self, bytes: &[u8]) -> Result<(), String> {
        let queued = Instant::now();
        let mut w = loop {
            match self.writer.try_lock() {
                Ok(w) => break w,
                Err(std::sync::TryLockError::Poisoned(p)) => break p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) if queued.elapsed() < WRITE_QUEUE => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(std::sync::TryLockError::WouldBlock) => {
                    return Err("busy: an earlier write to this pane still waits for its program to read it".into())
                }
            }
        };
        // Noted before the write: the program may answer (and notify again) before it returns.
        self.state.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).last_input = Some(Instant::now());
        super::watchers::poke();
        let deadline = Instant::now() + WRITE_WAIT;
        let mut rest = bytes;
        while !rest.is_empty() {
            match w.write(rest) {
                Ok(0) => return Err("cannot write to the pane: its terminal is closed".into()),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() || !self.writable(left) {
                        return Err(format!(
                            "the program has not read its input for {} s: {} of {} bytes not typed",
                            WRITE_WAIT.as_secs(),
                            rest.len(),
                            bytes.len()
                        ));
                    }
                }
                Err(e) => return Err(format!("cannot write to the pane: {e}")),
            }
        }
        w.flush().map_err(|e| format!("cannot write to the pane: {e}"))
    }

    /// Whether the terminal takes input again within `wait`.
    #[allow(unsafe_code)]
    fn writable(&self, wait: Duration) -> bool {
        let master = self.master.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(fd) = master.as_raw_fd() else { return false };
        let mut p = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
        let ms = wait.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd for the master's descriptor, open while `master` is held.
        let ready = unsafe { libc::poll(&mut p, 1, ms) };
        ready == 1 && p.revents & libc::POLLOUT != 0
    }

    pub fn resize(&self, rows: u16, cols: u16) -> Result<(), String> {
        let size = PtySize { rows, cols, pixel_width: 0, pixel_height: 0 };
        self.master
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .resize(size)
            .map_err(|e| e.to_string())?;
        self.state
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .parser()
            .screen_mut()
            .set_size(rows, cols);
        Ok(())
    }

    /// Lets an exited pane's screen go as cells once it has been exited for `after`: its
    /// last screen is kept (redrawn into an emulator without scrollback), its scrollback as
    /// text rows (all a reader of the scrollback gets: `screen_json`).
    pub fn release_scrollback(&self, after: Duration) {
        let mut s = self.state.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if s.released || s.exited_at.is_none_or(|t| t.elapsed() < after) {
            return;
        }
        s.sleep(true);
        s.released = true;
    }

    /// When an exited pane's scrollback is to be let go, if it is still held.
    pub fn scrollback_release_at(&self) -> Option<Instant> {
        let s = self.state.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        s.exited_at.filter(|_| !s.released).map(|t| t + KEEP_EXITED_SCROLLBACK)
    }

    pub fn exited(&self) -> bool {
        self.state.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).exit.is_some()
    }

    /// A stream of the pane's raw output from now on, after a redraw of the current screen.
    pub fn watch(&self) -> Subscription<Vec<u8>> {
        // Under the screen's lock, so no output falls between the redraw and the stream.
        let mut s = self.state.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.watchers.subscribe(Some(s.parser().screen().contents_formatted()))
    }

    /// SIGTERM to the pane's session (its process group), then SIGKILL after `grace`.
    pub fn kill(&self, grace: Duration) {
        let Some(pid) = self.pid else { return };
        let pgid = nix::unistd::Pid::from_raw(pid as i32);
        let (lock, cvar) = &*self.state;
        let mut guard = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.exit.is_none() {
            guard.killed = true;
        }
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGTERM);
        let (guard, _) = cvar
            .wait_timeout_while(guard, grace, |s| s.exit.is_none())
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.exit.is_none() {
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            // Answer only once the program is reaped, so the caller sees it dead. The reaper
            // waits up to 500 ms for the last output; SIGKILL cannot be caught.
            let _ = cvar.wait_timeout_while(guard, Duration::from_secs(5), |s| s.exit.is_none());
        }
    }

    /// The pane as `pane.list` shows it.
    pub fn describe(&self) -> Value {
        let s = self.state.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (rows, cols) = s.size();
        json!({
            "name": self.spec.name, "pid": self.pid, "cmd": self.spec.cmd, "cwd": self.spec.cwd,
            "alive": s.exit.is_none(), "exit": s.exit.as_ref().map(exit_json),
            "rows": rows, "cols": cols, "bytes": s.bytes, "log": self.spec.log,
            "alternate_screen": s.alternate_screen(),
        })
    }
}

pub fn exit_json(e: &Exit) -> Value {
    let mut v = match &e.signal {
        Some(sig) => json!({"signal": sig}),
        None => json!({"code": e.code}),
    };
    if e.killed {
        v["killed"] = json!(true);
    }
    v
}

/// The screen as text rows; with `lines`, that many lines of scrollback above it too.
pub fn screen_json(s: &mut Screen, lines: usize) -> Value {
    let (rows, cols) = s.parser().screen().size();
    let mut out: Vec<String> = Vec::new();
    if lines > 0 {
        let recent = scrollback_rows(s, lines);
        // What a sleeping emulator left as text is older than what the awake one holds.
        let from_text = (lines - recent.len()).min(s.kept_rows.len());
        out.extend(s.kept_rows[s.kept_rows.len() - from_text..].iter().cloned());
        out.extend(recent);
    }
    out.extend(s.parser().screen().rows(0, cols));
    let (cr, cc) = s.parser().screen().cursor_position();
    let text = out.iter().map(|l| l.trim_end()).collect::<Vec<_>>().join("\n");
    json!({
        "rows": rows, "cols": cols, "lines": out, "text": text.trim_end(), "cursor": [cr, cc],
        "alternate_screen": s.parser().screen().alternate_screen(),
        "exit": s.exit.as_ref().map(exit_json),
    })
}

/// Hands memory freed inside the heap back to the system: the cells of a sleeping emulator are
/// thousands of small blocks, which the allocator would otherwise keep for the process.
#[allow(unsafe_code)]
fn give_back_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim(3) only returns free memory at the heap's top and in free pages to
    // the kernel; it touches no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The last `lines` rows of the emulator's scrollback (above the screen), as text, oldest first.
fn scrollback_rows(s: &mut Screen, lines: usize) -> Vec<String> {
    super::emulator::scrollback(s.parser(), lines)
}

/// Makes the pane's terminal non-blocking (its reader's and its writer's open file).
fn set_nonblocking(file: &std::fs::File) -> Result<(), String> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = fcntl(file, FcntlArg::F_GETFL).map_err(|e| format!("cannot set up the PTY: {e}"))?;
    fcntl(file, FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK))
        .map(|_| ())
        .map_err(|e| format!("cannot set up the PTY: {e}"))
}

/// The pump's own copy of the master end: it reads from it and asks it whether more output
/// is waiting.
#[allow(unsafe_code)]
fn own_copy(master: &dyn MasterPty) -> Result<std::fs::File, String> {
    let fd = master.as_raw_fd().ok_or("the PTY has no descriptor to read")?;
    // SAFETY: `fd` is the master end, open for as long as `master` is (the whole call).
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    borrowed.try_clone_to_owned().map(std::fs::File::from).map_err(|e| format!("cannot read the PTY: {e}"))
}

/// Waits for the program, lets the last output in, and records how it ended.
fn reap(
    mut child: Box<dyn Child + Send + Sync>,
    state: &(Mutex<Screen>, Condvar),
    output_done: &std::sync::mpsc::Receiver<()>,
    after_exit: &dyn Fn(),
) -> Exit {
    let status = child.wait();
    // Output written just before the exit is still in the PTY: read it before saying "exited".
    let _ = output_done.recv_timeout(Duration::from_millis(500));
    after_exit();
    let exit = match status {
        Ok(s) => Exit { code: s.exit_code(), signal: s.signal().map(signal_name), killed: false },
        Err(_) => Exit { code: 255, signal: None, killed: false },
    };
    let (lock, cvar) = state;
    let mut s = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let exit = Exit { killed: s.killed, ..exit };
    s.exit = Some(exit.clone());
    s.exited_at = Some(Instant::now());
    drop(s);
    cvar.notify_all();
    super::watchers::poke();
    exit
}

/// A started program, and what tells when its terminal closed.
type Unreaped = (Box<dyn Child + Send + Sync>, std::sync::mpsc::Receiver<()>);

/// What notices a pane's program end (its pidfd turns readable on the event loop) and reaps
/// it, on a short-lived thread of its own: the reaper lets the last output in and publishes a
/// confined agent's commits before anyone is told, which must not hold up the other panes.
struct ProgramEnd {
    pidfd: std::os::fd::OwnedFd,
    child: Mutex<Option<Unreaped>>,
    state: Arc<(Mutex<Screen>, Condvar)>,
    name: String,
    events: Arc<Events>,
    confined: Option<crate::confine::Policy>,
    /// The build governor's lease of the pane's builds (`governed::pane`), given back when the
    /// program ends.
    lease: Mutex<Option<wt_common::proc::governor::Lease>>,
}

impl Source for ProgramEnd {
    fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.pidfd.as_raw_fd()
    }

    fn ready(&self, reactor: &Reactor) -> bool {
        let Some((child, done)) = self.child.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() else {
            return false;
        };
        let (state, name, events) = (Arc::clone(&self.state), self.name.clone(), Arc::clone(&self.events));
        let waker = reactor.waker();
        let confined = self.confined.clone();
        let lease = self.lease.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        std::thread::spawn(move || {
            // A confined agent's commits reach its branch when it exits, before anyone is told
            // it exited (a tool that reads branches publishes them first too).
            let publish = || {
                if let Some(Err(e)) = confined.as_ref().map(crate::confine::publish) {
                    tracing::warn!("{name}: {e}");
                }
            };
            let exit = reap(child, &state, &done, &publish);
            drop(lease);
            events.publish(json!({"event": "exited", "pane": name, "exit": exit_json(&exit)}));
            if let Ok(mut w) = waker {
                let _ = w.write(&[1]); // the supervisor decides on its idle exit again
            }
        });
        false
    }
}

/// The short name of a signal (`KILL`, `TERM`), as batch runs write it, from the description
/// the PTY library gives (`Killed`, `Terminated`: strsignal's text); the text itself if unknown.
fn signal_name(description: &str) -> String {
    nix::sys::signal::Signal::iterator()
        .find(|s| describe_signal(*s).as_deref() == Some(description))
        .map_or_else(|| description.to_string(), |s| s.as_str().trim_start_matches("SIG").to_string())
}

#[allow(unsafe_code)]
fn describe_signal(sig: nix::sys::signal::Signal) -> Option<String> {
    // SAFETY: strsignal(3) returns a pointer to a NUL-terminated string, static for every
    // signal `Signal` knows; it is copied at once.
    let text = unsafe { libc::strsignal(sig as libc::c_int) };
    (!text.is_null()).then(|| unsafe { std::ffi::CStr::from_ptr(text) }.to_string_lossy().into_owned())
}
