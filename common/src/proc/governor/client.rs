//! A connection to the governor's server, started on demand: the first wt tool that needs a
//! token and finds no server starts one (`<tool> __governor N`, which starts the server itself
//! in a session of its own and returns, so no tool is left with a zombie when the server ends).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::Error;

/// The argument that starts a governor (see `host::guard::early_main`).
pub const START_ARG: &str = "__governor";
/// The argument of the server itself, started by `START_ARG`.
pub const SERVE_ARG: &str = "__governor-serve";

/// The server's socket: beside the pane supervisors' (`$XDG_RUNTIME_DIR/wt/`, else
/// `/tmp/wt-$UID/`), one per user.
pub fn socket() -> Result<PathBuf, Error> {
    Ok(crate::proc::supervisor::socket_dir()?.join("governor.sock"))
}

/// One connection to the server.
#[derive(Debug)]
pub struct Connection {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// How many tokens the server holds in all.
    pub tokens: u32,
}

impl Connection {
    /// Connects to the running server, starting one with `tokens` tokens if none runs.
    pub fn open(label: &str, tokens: u32) -> Result<Connection, Error> {
        let socket = socket()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut started: Option<Instant> = None;
        loop {
            if let Some(conn) = Connection::try_open(&socket, label) {
                return Ok(conn);
            }
            // Again after a second: a server ending idle just as this one started made that
            // one give way to it, and then end.
            if started.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                start(tokens)?;
                started = Some(Instant::now());
            }
            if Instant::now() >= deadline {
                return Err(Error::env(
                    "governor-start",
                    format!(
                        "the build governor did not start (its socket is {}); run with --no-governor to go without it",
                        socket.display()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Connects to a running server only; `None` when there is none (or it is ending).
    pub fn try_open(socket: &std::path::Path, label: &str) -> Option<Connection> {
        let stream = UnixStream::connect(socket).ok()?;
        let writer = stream.try_clone().ok()?;
        // A stopped or wedged governor must not hang every tool: its hello comes within 2 s.
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut conn = Connection { reader: BufReader::new(stream), writer, tokens: 0 };
        conn.send(&json!({"op": "hello", "label": label, "pid": std::process::id()})).ok()?;
        let hello = conn.next_line().ok()??;
        conn.reader.get_ref().set_read_timeout(None).ok()?;
        conn.tokens = hello.get("tokens").and_then(Value::as_u64)? as u32;
        Some(conn)
    }

    pub fn send(&mut self, msg: &Value) -> Result<(), Error> {
        let mut line = msg.to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes()).map_err(|e| lost(&e))
    }

    /// The server's next line; `None` when it closed the connection.
    pub fn next_line(&mut self) -> Result<Option<Value>, Error> {
        let mut line = String::new();
        // Whatever answers on the socket, a line is never read without end.
        match (&mut self.reader).take(1 << 20).read_line(&mut line) {
            Ok(0) => Ok(None),
            Ok(_) => {
                serde_json::from_str(&line).map(Some).map_err(|e| Error::env("governor-bad-answer", e.to_string()))
            }
            Err(e) => Err(lost(&e)),
        }
    }

    /// Waits for one token, telling `queued` how many asks are ahead while it waits.
    pub fn acquire(&mut self, queued: &mut dyn FnMut(usize)) -> Result<(), Error> {
        self.send(&json!({"op": "acquire"}))?;
        loop {
            // Woken every 200 ms to see whether the tool was asked to stop (Ctrl-C, SIGTERM,
            // whose handler keeps the default exit from happening) while it waits in the queue.
            if self.reader.buffer().is_empty() {
                use std::os::fd::AsFd;
                let mut fds = [nix::poll::PollFd::new(self.writer.as_fd(), nix::poll::PollFlags::POLLIN)];
                if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(200u16)).is_ok_and(|n| n == 0) {
                    if let Some(sig) = crate::proc::signals::interrupted() {
                        return Err(Error::failed(
                            "interrupted",
                            format!("interrupted (signal {sig}) while queued for a build slot"),
                        ));
                    }
                    continue;
                }
            }
            let Some(msg) = self.next_line()? else {
                return Err(Error::env("governor-lost", "the build governor went away"));
            };
            if msg.get("granted").is_some() {
                return Ok(());
            }
            if let Some(ahead) = msg.get("queued").and_then(Value::as_u64) {
                queued(ahead as usize);
            }
        }
    }

    /// The server's state (`status` in docs/protocol.md).
    pub fn status(&mut self) -> Result<Value, Error> {
        self.send(&json!({"op": "status"}))?;
        loop {
            let Some(msg) = self.next_line()? else {
                return Err(Error::env("governor-lost", "the build governor went away"));
            };
            if let Some(status) = msg.get("status") {
                return Ok(status.clone());
            }
        }
    }

    /// The connection's stream and what the server sent that was not read yet.
    pub fn into_parts(self) -> (UnixStream, Vec<u8>) {
        let unread = self.reader.buffer().to_vec();
        (self.writer, unread)
    }
}

fn lost(e: &std::io::Error) -> Error {
    Error::env("governor-lost", format!("the build governor went away: {e}"))
}

/// The state of the running governor, if one runs (`wt-status`); never starts one.
pub fn status() -> Option<Value> {
    let socket = socket().ok()?;
    let mut conn = Connection::try_open(&socket, "wt-status")?;
    let _ = conn.writer.set_read_timeout(Some(Duration::from_secs(2)));
    conn.status().ok()
}

/// Starts a server and returns once the starter (not the server) has ended.
fn start(tokens: u32) -> Result<(), Error> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| Error::io("current executable", e))?;
    let status = super::outside_any_job(&mut Command::new(exe))
        .arg(START_ARG)
        .arg(tokens.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0) // a Ctrl-C meant for the tool does not reach it
        .status()
        .map_err(|e| Error::env("governor-start", format!("cannot start the build governor: {e}")))?;
    let _ = status;
    Ok(())
}

/// `<tool> __governor N`: starts the server (`__governor-serve N`) and returns at once.
pub fn start_main(args: &[String]) -> i32 {
    let Some(tokens) = args.first() else { return 2 };
    let Ok(exe) = std::env::current_exe() else { return 3 };
    let log = socket()
        .ok()
        .and_then(|s| s.parent().map(|d| d.join("governor.log")))
        .and_then(|p| std::fs::OpenOptions::new().create(true).append(true).open(p).ok());
    let stderr = log.map_or_else(Stdio::null, Stdio::from);
    match Command::new(exe).arg(SERVE_ARG).arg(tokens).stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr).spawn()
    {
        Ok(_) => 0,
        Err(_) => 3,
    }
}

/// `<tool> __governor-serve N`: the server, in a session of its own, with as many descriptors
/// as the hard limit allows (a connection per governed command and pane of every repository),
/// and none of its starter's (a pipe held open by a long-lived server would keep whoever waits
/// for its end waiting).
pub fn serve_main(args: &[String]) -> i32 {
    let _ = nix::unistd::setsid();
    ignore_terminal_signals();
    close_inherited();
    raise_fd_limit();
    let Some(tokens) = args.first().and_then(|t| t.parse::<u32>().ok()).filter(|t| *t > 0) else { return 2 };
    match socket() {
        Ok(socket) => super::server::main(&socket, tokens),
        Err(e) => {
            eprintln!("wt governor: {e}");
            3
        }
    }
}

/// Closes every descriptor above stderr (the starter's, inherited through the tools between).
#[allow(unsafe_code)]
fn close_inherited() {
    // SAFETY: close_range(2) closes descriptors this process owns and uses nothing else; none
    // above 2 is in use yet (this runs first thing in the server's main).
    unsafe {
        nix::libc::syscall(nix::libc::SYS_close_range, 3u32, u32::MAX, 0u32);
    }
}

/// The soft limit of descriptors raised to the hard limit.
#[allow(unsafe_code)]
fn raise_fd_limit() {
    let mut limit = nix::libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write the one struct given, which lives here.
    unsafe {
        if nix::libc::getrlimit(nix::libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            let _ = nix::libc::setrlimit(nix::libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[allow(unsafe_code)]
fn ignore_terminal_signals() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    for sig in [Signal::SIGINT, Signal::SIGHUP, Signal::SIGPIPE] {
        // SAFETY: SIG_IGN installs no handler, so no code of ours runs in a signal context.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
}
