//! Running a command as its own process group: its merged output captured to a log file and a
//! tail, a timeout, and a clean-up that leaves no member of the group behind. wt-run's runs and
//! wt-merge's verification both run this way.

use std::collections::{BTreeSet, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Error;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// When the process `pid` started, if it runs (a zombie counts as ended), to the kernel's
/// clock tick; the boot time it counts from is known to the second.
pub fn started_at(pid: i32) -> Option<std::time::SystemTime> {
    use std::time::{Duration, SystemTime};
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    let ticks: u64 = fields.get(19)?.parse().ok()?;
    let boot: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ").and_then(|s| s.trim().parse().ok()))?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().filter(|h| *h > 0)? as u64;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(boot) + Duration::from_millis(ticks * 1000 / hz))
}

/// Whether process `pid` is stopped (SIGSTOP, Ctrl-Z's SIGTSTP, or a tracer's stop): state `T`
/// or `t` in `/proc/PID/stat`. False when it runs, sleeps, or is gone.
pub fn is_stopped(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    matches!(state, Some("T" | "t"))
}

/// Whether process `pid` exists (a zombie counts: its pid is not free yet).
pub fn is_alive(pid: i32) -> bool {
    pid > 0
        && nix::sys::signal::kill(Pid::from_raw(pid), None).map_or_else(|e| e == nix::errno::Errno::EPERM, |()| true)
}

/// How many lines of output the record keeps.
pub const TAIL_LINES: usize = 20;
/// How much of one line the record keeps (the log has all of it): a test that prints a bundle
/// on one line must not make a record no reader takes (`record::jsonl::MAX_LINE`).
pub const TAIL_LINE_MAX: usize = 1024;
/// How much of one line is read at a time, and echoed at most: a command that prints without
/// a newline is never held whole.
const PIECE: usize = 64 << 10;

/// Process groups of runs in progress, so a signal to wt-run can end them all.
pub type Groups = Arc<Mutex<BTreeSet<i32>>>;

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub timed_out: bool,
    pub duration: Duration,
    pub tail: Vec<String>,
}

/// What a run needs besides the command.
#[derive(Debug)]
pub struct Spec<'a> {
    pub name: &'a str,
    pub log: PathBuf,
    pub timeout: Option<Duration>,
    pub grace: Duration,
    /// Copy output to stderr as `name | line`.
    pub echo: bool,
}

/// Starts `cmd` as the leader of a new process group and waits for it, then for the rest of
/// its group.
pub fn run(cmd: Command, spec: &Spec, groups: &Groups) -> Result<Outcome, Error> {
    let log = std::fs::File::create(&spec.log).map_err(|e| Error::io(spec.log.display(), e))?;
    run_to(cmd, spec, groups, Some(log))
}

/// Like `run`, but the command's stdout and stderr are this process's own (`wt-run
/// --passthrough`): nothing is logged, echoed or kept (`tail` is empty; `spec.log` is unused).
pub fn run_inherit(cmd: Command, spec: &Spec, groups: &Groups) -> Result<Outcome, Error> {
    run_to(cmd, spec, groups, None)
}

fn run_to(mut cmd: Command, spec: &Spec, groups: &Groups, log: Option<std::fs::File>) -> Result<Outcome, Error> {
    use std::os::unix::process::CommandExt;
    cmd.stdin(Stdio::null()).process_group(0);
    let output = match log {
        Some(log) => {
            let (reader, writer) = std::io::pipe().map_err(|e| Error::io("pipe", e))?;
            let writer2 = writer.try_clone().map_err(|e| Error::io("pipe", e))?;
            cmd.stdout(writer).stderr(writer2);
            Some((reader, log))
        }
        None => None,
    };
    die_with_parent(&mut cmd);
    // The child tells the reaper its group before it runs anything: then no kill of this
    // process can leave a group the reaper does not know of.
    let (pid_in, pid_out) = std::io::pipe().map_err(|e| Error::io("pipe", e))?;
    let announcing = crate::proc::reaper::announce_own_group(&mut cmd, &pid_out);
    let program = cmd.get_program().to_string_lossy().into_owned();
    let started = Instant::now();
    let spawned = cmd.spawn();
    drop((announcing, pid_out));
    drop(cmd); // closes our copies of the pipe's write end
    if spawned.is_err() {
        // Its exec failed after it announced its group: that group is gone.
        let mut pid = String::new();
        let _ = std::io::Read::read_to_string(&mut &pid_in, &mut pid);
        if let Ok(pid) = pid.trim().parse::<i32>() {
            crate::proc::reaper::forget(pid);
        }
    }
    let mut child = spawned.map_err(|e| spawn_error(&program, &e))?;
    let pgid = child.id() as i32;
    groups.lock().expect("groups").insert(pgid);
    let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
    let copier = output.map(|(reader, log)| {
        let (tail, name, echo) = (Arc::clone(&tail), spec.name.to_string(), spec.echo);
        std::thread::spawn(move || copy_output(reader, log, &tail, &name, echo))
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let (status, timed_out) = wait(&rx, pgid, spec)?;
    let duration = started.elapsed();
    end_group(pgid, spec.grace);
    crate::proc::reaper::forget(pgid);
    groups.lock().expect("groups").remove(&pgid);
    // A member that left the group (setsid) may hold the pipe open: do not wait for it forever.
    let deadline = Instant::now() + Duration::from_secs(1);
    while copier.as_ref().is_some_and(|c| !c.is_finished()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    let tail = tail.lock().expect("tail").iter().cloned().collect();
    Ok(Outcome { status, timed_out, duration, tail })
}

/// Asks the kernel to SIGKILL the command when the thread that started it ends: a tool killed
/// with SIGKILL (which it cannot catch) takes its command with it (and the `reaper` the rest of
/// the command's group). The thread that calls `run`
/// waits for the command, so nothing else ends that thread first.
#[allow(unsafe_code)]
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs between fork and exec and makes only async-signal-safe system
    // calls (prctl, getppid, kill); it allocates nothing and touches no lock.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            // The tool may have died before prctl took effect: then nobody would send it.
            if nix::unistd::getppid() != parent {
                let _ = nix::sys::signal::raise(Signal::SIGKILL);
            }
            Ok(())
        });
    }
}

fn spawn_error(program: &str, e: &std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::failed("not-found", format!("command not found: {program} (check the name and PATH)"))
        }
        std::io::ErrorKind::PermissionDenied => {
            Error::failed("not-executable", format!("{program} cannot be run: {e} (is it executable?)"))
        }
        _ => Error::failed("spawn-failed", format!("cannot start {program}: {e}")),
    }
}

/// Waits for the leader; on timeout, SIGTERM to the group, then SIGKILL after the grace.
fn wait(rx: &mpsc::Receiver<std::io::Result<ExitStatus>>, pgid: i32, spec: &Spec) -> Result<(ExitStatus, bool), Error> {
    let got = |r: std::io::Result<ExitStatus>| r.map_err(|e| Error::io("waiting for the command", e));
    let Some(limit) = spec.timeout else {
        return got(rx.recv().expect("waiter sends")).map(|s| (s, false));
    };
    if let Ok(r) = rx.recv_timeout(limit) {
        return got(r).map(|s| (s, false));
    }
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
    if let Ok(r) = rx.recv_timeout(spec.grace) {
        return got(r).map(|s| (s, true));
    }
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    got(rx.recv().expect("waiter sends")).map(|s| (s, true))
}

/// Ends what is left of a group once its leader is gone: background jobs the command started
/// get SIGTERM, then SIGKILL after the grace. Nothing the run started outlives it.
pub fn end_group(pgid: i32, grace: Duration) {
    end_groups(&[pgid], grace);
}

/// Ends the groups `pgids` all at once: SIGTERM to every one, one grace for all of them, then
/// SIGKILL to those left. Returns as soon as none is left, and within about `grace` in any case
/// (never one group's grace after another's).
pub fn end_groups(pgids: &[i32], grace: Duration) {
    let alive = |pgid: &&i32| killpg(Pid::from_raw(**pgid), None).is_ok();
    let mut live: Vec<i32> = pgids.iter().filter(alive).copied().collect();
    for pgid in &live {
        let _ = killpg(Pid::from_raw(*pgid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while !live.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        live.retain(|pgid| killpg(Pid::from_raw(*pgid), None).is_ok());
    }
    for pgid in live {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}

/// Copies the run's output to its log, keeps the last lines (each cut at `TAIL_LINE_MAX`), and
/// echoes them when asked, reading a piece at a time.
fn copy_output(
    reader: std::io::PipeReader,
    mut log: std::fs::File,
    tail: &Mutex<VecDeque<String>>,
    name: &str,
    echo: bool,
) {
    let mut reader = BufReader::new(reader);
    let mut piece = Vec::new();
    // In the rest of a line longer than a piece: logged only.
    let mut rest = false;
    loop {
        piece.clear();
        match reader.by_ref().take(PIECE as u64).read_until(b'\n', &mut piece) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let _ = log.write_all(&piece);
        // A piece without a newline is a line cut at the piece's size, or the output's last
        // line (it ended without one): only the first is marked cut.
        let goes_on = !piece.ends_with(b"\n") && piece.len() == PIECE;
        if std::mem::replace(&mut rest, goes_on) {
            continue;
        }
        let cut = if goes_on { "…" } else { "" };
        let text = String::from_utf8_lossy(&piece);
        let text = text.trim_end_matches(['\n', '\r']);
        if echo {
            let _ = writeln!(std::io::stderr().lock(), "{name} | {text}{cut}");
        }
        let kept = match text.len() > TAIL_LINE_MAX {
            true => {
                let cut = (0..=TAIL_LINE_MAX).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
                format!("{}…", &text[..cut])
            }
            false => format!("{text}{cut}"),
        };
        let mut t = tail.lock().expect("tail");
        if t.len() == TAIL_LINES {
            t.pop_front();
        }
        t.push_back(kept);
    }
    let _ = log.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real process stopped with SIGSTOP is stopped; resumed, or gone, it is not.
    #[test]
    fn a_stopped_process_is_told_apart() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as i32;
        assert!(!is_stopped(pid));
        nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGSTOP).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !is_stopped(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(is_stopped(pid), "stopped");
        nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGCONT).unwrap();
        while is_stopped(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!is_stopped(pid), "resumed");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!is_stopped(pid), "gone");
    }
}
