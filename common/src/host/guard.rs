//! What runs first in every wt binary: `--protocol-version`, and the guard that a tool runs
//! under at a host.
//!
//! Without a terminal, sshd does not signal the remote command when the connection drops: a
//! `wt-run` there would go on with its runs, orphaned. So the remote command is
//! `<tool> __host-guard <tool args…>`: the guard says it started (a `\x06` line), starts the tool as its own process group, feeds
//! it the records from its stdin up to an end-of-input line (`\x04`, which no record or name
//! can be), and keeps reading. Its stdin ends only when the connection does; if the tool is
//! still running then, the guard sends its group SIGTERM (wt-run then ends its runs' groups
//! too) and SIGKILL after a grace period.

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// The first argument that makes a tool its own guard.
pub const GUARD_ARG: &str = "__host-guard";
/// The line the guard writes first, before the tool's records: the connection is up and the
/// command started, so a later failure of ssh is a connection lost, not a host unreachable.
pub const STARTED: &str = "\u{6}";
/// The line that ends the input of a tool under the guard.
pub const END_OF_INPUT: &str = "\u{4}";
/// What `<tool> --protocol-version` prints: the record protocol and the tools' version.
pub fn protocol_line() -> String {
    format!("wt/{} {}", crate::record::VERSION, env!("CARGO_PKG_VERSION"))
}
/// How long the tool has between SIGTERM and SIGKILL once its connection is gone.
const GRACE: Duration = Duration::from_secs(5);

/// Handles `--protocol-version`, `__host-guard`, the reaper and the governor before a tool parses its command line;
/// returns only when neither was asked for.
pub fn early_main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--protocol-version") => {
            let mut out = std::io::stdout();
            let _ = writeln!(out, "{}", protocol_line());
            std::process::exit(0);
        }
        Some(GUARD_ARG) => std::process::exit(guard(&args[2..])),
        Some(crate::proc::reaper::ARG) => std::process::exit(crate::proc::reaper::main()),
        Some(crate::proc::governor::client::START_ARG) => {
            std::process::exit(crate::proc::governor::client::start_main(&args[2..]))
        }
        Some(crate::proc::governor::client::SERVE_ARG) => {
            std::process::exit(crate::proc::governor::client::serve_main(&args[2..]))
        }
        _ => {}
    }
}

/// Runs this same binary with `args` under the guard; returns its exit code.
fn guard(args: &[String]) -> i32 {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("wt host guard: cannot find its own binary: {e}");
            return 3;
        }
    };
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{STARTED}").and_then(|()| out.flush());
    }
    let mut child = match Command::new(exe).args(args).stdin(Stdio::piped()).process_group(0).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wt host guard: cannot start the tool: {e}");
            return 3;
        }
    };
    let pgid = Pid::from_raw(child.id() as i32);
    let done = Arc::new(AtomicBool::new(false));
    let mut feed = child.stdin.take();
    let watcher_done = Arc::clone(&done);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        let mut lock = stdin.lock();
        loop {
            line.clear();
            match lock.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if line.trim_end_matches('\n') == END_OF_INPUT => feed = None,
                Ok(_) => {
                    if let Some(f) = feed.as_mut() {
                        if f.write_all(line.as_bytes()).is_err() {
                            feed = None;
                        }
                    }
                }
            }
        }
        // The connection is gone (or the client closed it): the tool must not outlive it.
        drop(feed);
        if watcher_done.load(Ordering::SeqCst) {
            return;
        }
        let _ = killpg(pgid, Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < GRACE && !watcher_done.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = killpg(pgid, Signal::SIGKILL);
    });
    let status = child.wait();
    done.store(true, Ordering::SeqCst);
    // Whatever the tool left in its group goes with it.
    let _ = killpg(pgid, Signal::SIGKILL);
    match status {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
        }
        Err(_) => 3,
    }
}
