//! Panes a killed supervisor left running. A native pane is its own session, so a supervisor
//! killed with SIGKILL leaves it alive (its PTY closes, but a program that ignores SIGHUP goes
//! on) and unknown to any later supervisor. So each live pane has a pid file,
//! `<state>/panes/<name>.pid` (pid and kernel start time, which tell a reused pid apart), and a
//! starting supervisor, which holds the supervisor lock and so knows the previous one is dead,
//! ends the session of every pane still listed there.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// The directory of the pid files, beside the logs.
pub fn dir(logs: &Path) -> PathBuf {
    logs.with_file_name("panes")
}

/// The kernel's start time of `pid` (field 22 of /proc/PID/stat), if it is running.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command name: state is field 3, start time field 22.
    (fields.first() != Some(&"Z")).then_some(())?;
    fields.get(19)?.parse().ok()
}

/// Notes a live pane's session.
pub fn record(logs: &Path, name: &str, pid: u32) {
    let dir = dir(logs);
    let Some(start) = start_time(pid as i32) else { return };
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = wt_common::fs::write_atomic(&dir.join(format!("{name}.pid")), format!("{pid} {start}\n").as_bytes());
    }
}

/// Forgets a pane whose program has ended.
pub fn forget(logs: &Path, name: &str, pid: u32) {
    let file = dir(logs).join(format!("{name}.pid"));
    // A new pane of the same name may have replaced the file: only our own line goes.
    if wt_common::fs::read_small(&file).text().is_some_and(|t| t.split_whitespace().next() == Some(&pid.to_string())) {
        let _ = std::fs::remove_file(file);
    }
}

/// Ends the session of every pane a dead supervisor left running (SIGTERM, SIGKILL after
/// `grace`), and forgets them. Call only while holding the supervisor lock.
pub fn end_all(logs: &Path, grace: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(dir(logs)) else { return 0 };
    let mut live = Vec::new();
    for file in entries.flatten().map(|e| e.path()) {
        // In the common dir, which an unconfined agent can write: read as an untrusted small
        // file, and only a session (a pane is one) whose start matches is ended.
        let text = wt_common::fs::read_small(&file).text().unwrap_or_default();
        let mut it = text.split_whitespace().map(str::parse::<u64>);
        if let (Some(Ok(pid)), Some(Ok(start))) = (it.next(), it.next()) {
            let pid = pid as i32;
            let leads_its_session = pid > 1 && nix::unistd::getsid(Some(Pid::from_raw(pid))) == Ok(Pid::from_raw(pid));
            if leads_its_session && start_time(pid) == Some(start) {
                tracing::warn!("ending pane session {pid} ({:?}), left by a supervisor that died", file);
                let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
                live.push(pid);
            }
        }
        let _ = std::fs::remove_file(&file);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && live.iter().any(|p| killpg(Pid::from_raw(*p), None).is_ok()) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for pid in &live {
        let _ = killpg(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    live.len()
}
