//! Ends the process groups of a tool's runs when the tool dies without ending them, SIGKILL
//! included. Each command gets a parent-death SIGKILL (`process::die_with_parent`), but that
//! reaches only the command itself, not what it started in the background in its group.
//!
//! So the first run a tool starts also starts a reaper: this same binary as
//! `<tool> __reaper`, in a process group of its own (a Ctrl-C or a group kill meant for the
//! tool or a run does not reach it), reading from a pipe whose other end only the tool holds.
//! Each run tells it `+PGID` itself as its group starts, before it runs anything
//! (`announce_own_group`), and the tool tells it `-PGID` once that group has been ended. When
//! the pipe closes (the tool exited, or was killed), the reaper ends every group it still
//! knows, all at once (SIGTERM to each, one grace, then SIGKILL to those left), and exits. A
//! tool that ended its groups itself leaves the reaper nothing to do.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The argument that makes a wt binary the reaper (see `host::guard::early_main`).
pub const ARG: &str = "__reaper";

/// How long the reaper gives the groups between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

static PIPE: OnceLock<Mutex<Option<ChildStdin>>> = OnceLock::new();

/// Makes the child `cmd` starts, the leader of a new process group, tell the reaper its group
/// itself, between fork and exec: told by this process after the start, a kill in between left
/// the group unknown to the reaper (CI found a background job that outlived wt-run so). It
/// also writes its pid to `own_pid`, so that if its exec fails this process can `forget` the
/// group it announced (else the reaper would end a group of that number at the tool's exit,
/// which by then could be another's). Keep the returned descriptor until the child has been
/// started; `None` if there is no reaper.
#[allow(unsafe_code)]
pub fn announce_own_group(cmd: &mut Command, own_pid: &std::io::PipeWriter) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::{AsFd, AsRawFd};
    use std::os::unix::process::CommandExt;
    let pipe = PIPE.get_or_init(|| Mutex::new(start()));
    let guard = pipe.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // A copy, so that the number the child writes to stays this pipe's until the start.
    let fd = guard.as_ref()?.as_fd().try_clone_to_owned().ok()?;
    let (raw, pid_out) = (fd.as_raw_fd(), own_pid.as_raw_fd());
    // SAFETY: between fork and exec only getpid(2) and two write(2)s of at most 17 bytes (a
    // pipe write that small is atomic, so it never interleaves with the tool's own lines) run,
    // on buffers on the stack; no allocation, no lock.
    unsafe {
        cmd.pre_exec(move || {
            let mut pid = [0u8; 16];
            let len = crate::proc::lock::pid_line(nix::libc::getpid() as u32, &mut pid);
            nix::libc::write(pid_out, pid.as_ptr().cast(), len);
            let mut line = [0u8; 17];
            line[0] = b'+';
            line[1..=len].copy_from_slice(&pid[..len]);
            nix::libc::write(raw, line.as_ptr().cast(), len + 1);
            Ok(())
        });
    }
    Some(fd)
}

/// `pgid` has been ended by this process: the reaper lets it go.
pub fn forget(pgid: i32) {
    tell(&format!("-{pgid}\n"));
}

fn tell(line: &str) {
    let pipe = PIPE.get_or_init(|| Mutex::new(start()));
    let mut guard = pipe.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(stdin) = guard.as_mut() {
        if stdin.write_all(line.as_bytes()).and_then(|()| stdin.flush()).is_err() {
            *guard = None; // the reaper is gone: the parent-death signal still holds
        }
    }
}

/// Starts the reaper; `None` if it cannot be (then only the parent-death signal holds).
fn start() -> Option<ChildStdin> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().ok()?;
    let mut child = Command::new(exe)
        .arg(ARG)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .ok()?;
    let stdin = child.stdin.take();
    // Reaped by nobody while the tool runs; when the tool exits, init adopts and reaps it.
    std::mem::forget(child);
    stdin
}

/// The reaper's main: reads `+PGID`/`-PGID` lines until its stdin closes, then ends the groups
/// left. Returns the exit code.
pub fn main() -> i32 {
    ignore_terminal_signals();
    let mut groups = BTreeSet::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match (line.get(..1), line.get(1..).and_then(|n| n.parse::<i32>().ok())) {
            (Some("+"), Some(pgid)) if pgid > 1 => {
                groups.insert(pgid);
            }
            (Some("-"), Some(pgid)) => {
                groups.remove(&pgid);
            }
            _ => {}
        }
    }
    // All at once: a tool with many runs must not leave their background jobs one grace
    // after another.
    crate::proc::process::end_groups(&groups.into_iter().collect::<Vec<_>>(), GRACE);
    0
}

/// Signals meant for the tool's terminal or session are not for the reaper: it ends when the
/// tool does, after cleaning up.
#[allow(unsafe_code)]
fn ignore_terminal_signals() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    for sig in [Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: SIG_IGN installs no handler, so no code of ours runs in a signal context.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
}
