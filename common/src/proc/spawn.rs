//! Starting a short-lived child that dies with this process, without copying this process.
//!
//! `std::process::Command` starts a child with `fork` whenever code must run in it before
//! `exec` (`pre_exec`): for wt, always, as every child dies with its parent
//! (`process::die_with_parent`, `PR_SET_PDEATHSIG`). `fork` copies the page tables of the whole
//! process and makes each of its pages copy-on-write: about 0.3 ms a child here, and at a look
//! at 500 worktrees (one git each) a tenth of the whole look. `spawn` starts the child as glibc's
//! `posix_spawn` does, `clone(CLONE_VM | CLONE_VFORK)` onto a stack of its own (the calling
//! thread waits until the child has called `execve`), and sets the parent-death signal that
//! `posix_spawn` cannot.
//!
//! The child shares this process's memory until `execve`: everything it needs is made before
//! the clone, and it makes only system calls (no allocation, no lock, no handler of this
//! process's signals can run in it: they are reset to the default before signals are
//! unblocked).
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Output};
use std::time::{Duration, Instant};

use nix::libc;

/// A child started by `spawn`: the leader of a process group of its own, with its output's
/// pipes. It is reaped by `wait_output` (dropped without that, it stays a zombie until this
/// process ends).
#[derive(Debug)]
pub struct Child {
    pub pid: i32,
    stdout: OwnedFd,
    stderr: OwnedFd,
}

/// The child's stack: its frames are a few system calls' arguments.
const STACK: usize = 64 << 10;

/// What the child needs, made before the clone.
struct Plan {
    program: CString,
    /// NULL-ended pointers into `_strings`.
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    _strings: Vec<CString>,
    cwd: Option<CString>,
    /// Its stdin, stdout and stderr, each numbered 3 or above (so that putting one in place
    /// never overwrites another).
    fds: [RawFd; 3],
    parent: libc::pid_t,
    /// The `errno` of the step that failed in the child (it then exits 127), 0 when it got to
    /// `execve`.
    error: libc::c_int,
}

/// Starts `cmd` (its program, arguments, environment changes and directory; nothing else of it
/// is read) with stdin `/dev/null`, stdout and stderr piped, in a process group of its own,
/// dying with the calling thread. `ErrorKind::Unsupported` when `cmd`'s program is not a path
/// (the caller starts it some other way).
pub fn spawn(cmd: &Command) -> io::Result<Child> {
    let program = cmd.get_program();
    if !program.as_bytes().contains(&b'/') {
        return Err(io::Error::new(io::ErrorKind::Unsupported, "the program is not a path"));
    }
    let program = cstring(program.as_bytes().to_vec())?;
    let mut strings = vec![program.clone()];
    for arg in cmd.get_args() {
        strings.push(cstring(arg.as_bytes().to_vec())?);
    }
    let argc = strings.len();
    let mut env: BTreeMap<OsString, OsString> = std::env::vars_os().collect();
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => env.insert(key.to_owned(), value.to_owned()),
            None => env.remove(key),
        };
    }
    for (key, value) in env {
        let mut pair = key.into_vec();
        pair.push(b'=');
        pair.extend(value.into_vec());
        strings.push(cstring(pair)?);
    }
    let pointers = |s: &[CString]| s.iter().map(|c| c.as_ptr()).chain([std::ptr::null()]).collect::<Vec<_>>();
    let argv = pointers(&strings[..argc]);
    let envp = pointers(&strings[argc..]);
    let cwd = cmd.get_current_dir().map(|d| cstring(d.as_os_str().as_bytes().to_vec())).transpose()?;

    let stdin = above_stdio(std::fs::File::open("/dev/null")?.into())?;
    let (out_read, out_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (err_read, err_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (out_write, err_write) = (above_stdio(out_write)?, above_stdio(err_write)?);
    let mut plan = Plan {
        program,
        argv,
        envp,
        _strings: strings,
        cwd,
        fds: [stdin.as_raw_fd(), out_write.as_raw_fd(), err_write.as_raw_fd()],
        parent: std::process::id() as libc::pid_t,
        error: 0,
    };
    let mut stack = vec![0u8; STACK];
    // SAFETY: the stack is ours and outlives the child's use of it (the calling thread is
    // suspended until the child has called `execve` or exited); the top is 16-byte aligned as
    // the ABI asks. `plan` is valid for as long. Every signal is blocked in this thread around
    // the clone, so none is handled in the child before it has reset its dispositions.
    let pid = unsafe {
        let top = stack.as_mut_ptr().add(STACK);
        let top = top.sub(top as usize % 16);
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut before: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut before);
        let pid = libc::clone(
            child_main,
            top.cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&mut plan as *mut Plan).cast(),
        );
        let clone_error = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &before, std::ptr::null_mut());
        if pid < 0 {
            return Err(clone_error);
        }
        pid
    };
    drop(stack);
    // SAFETY: the child wrote it (if at all) before this thread was let go.
    let error = unsafe { std::ptr::read_volatile(&plan.error) };
    if error != 0 {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        return Err(io::Error::from_raw_os_error(error));
    }
    Ok(Child { pid, stdout: out_read, stderr: err_read })
}

fn cstring(bytes: Vec<u8>) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in a command"))
}

/// `fd` renumbered to 3 or above (a tool started with stdin closed gets its pipes at 0).
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    Ok(nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3)).map(|n| {
        // SAFETY: `fcntl` just made it, and nothing else owns it.
        unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(n) }
    })?)
}

/// The child, until `execve`: on the parent's memory, with only system calls.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Plan` the parent made, alive while the parent waits for this
    // `execve`. Only async-signal-safe system calls follow.
    unsafe {
        let plan = &mut *arg.cast::<Plan>();
        // No handler of the parent's may run on its memory here: every caught signal back to
        // its default before any is let through (ignored ones stay ignored, as across a
        // `fork`, except SIGPIPE, which Rust ignores for itself: git gets its default, as from
        // `std::process::Command`).
        let mut action: libc::sigaction = std::mem::zeroed();
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        for signal in 1..=libc::SIGRTMAX() {
            if signal == libc::SIGKILL || signal == libc::SIGSTOP {
                continue;
            }
            if libc::sigaction(signal, std::ptr::null(), &mut action) == 0
                && (action.sa_sigaction != libc::SIG_IGN || signal == libc::SIGPIPE)
                && action.sa_sigaction != libc::SIG_DFL
            {
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            return fail(plan);
        }
        // The parent may have died before the line above took effect: then nobody would send it.
        if libc::getppid() != plan.parent {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        if libc::setpgid(0, 0) != 0 {
            return fail(plan);
        }
        for (target, fd) in plan.fds.iter().enumerate() {
            if libc::dup2(*fd, target as libc::c_int) < 0 {
                return fail(plan);
            }
        }
        if let Some(cwd) = &plan.cwd {
            if libc::chdir(cwd.as_ptr()) != 0 {
                return fail(plan);
            }
        }
        libc::execve(plan.program.as_ptr(), plan.argv.as_ptr(), plan.envp.as_ptr());
        fail(plan)
    }
}

/// Notes the failed step's `errno` for the parent and ends the child.
///
/// # Safety
/// Only in the child, before `execve`.
unsafe fn fail(plan: &mut Plan) -> libc::c_int {
    // SAFETY: the parent reads it only once this child has exited.
    unsafe {
        std::ptr::write_volatile(&mut plan.error, (*libc::__errno_location()).max(1));
        libc::_exit(127)
    }
}

/// The child's output and exit, or `None` when it had not ended within `limit` (its process
/// group is then killed, and it is reaped). A child that closed its output but goes on is
/// waited for within the same limit; on any error the group is killed and the child reaped.
pub fn wait_output(child: Child, limit: Duration) -> io::Result<Option<Output>> {
    let pid = child.pid;
    let deadline = Instant::now().checked_add(limit);
    let read = read_until(child, deadline);
    let ended = read.as_ref().is_ok_and(|r| r.is_some()) && exited_by(pid, deadline);
    if !ended {
        // Not reaped yet, so neither the pid nor the group can be another's. The child itself
        // too, should it have left its group.
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    let status = reap(pid)?;
    match read? {
        Some(_) if !ended => Ok(None),
        Some((stdout, stderr)) => Ok(Some(Output { status, stdout, stderr })),
        None => Ok(None),
    }
}

/// The child's stdout and stderr, read until both close; `None` at the deadline.
fn read_until(child: Child, deadline: Option<Instant>) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let Child { stdout, stderr, .. } = child;
    let mut pipes = [(Some(stdout), Vec::new()), (Some(stderr), Vec::new())];
    let mut buffer = vec![0u8; 64 << 10];
    loop {
        let open: Vec<usize> = (0..2).filter(|i| pipes[*i].0.is_some()).collect();
        if open.is_empty() {
            let [(_, stdout), (_, stderr)] = pipes;
            return Ok(Some((stdout, stderr)));
        }
        let wait = match deadline {
            None => PollTimeout::NONE,
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                None => return Ok(None),
                Some(left) => PollTimeout::try_from(left.as_millis().saturating_add(1).min(i32::MAX as u128) as i32)
                    .unwrap_or(PollTimeout::MAX),
            },
        };
        let mut fds: Vec<PollFd> =
            open.iter().map(|i| PollFd::new(pipes[*i].0.as_ref().expect("open").as_fd(), PollFlags::POLLIN)).collect();
        match poll(&mut fds, wait) {
            Err(nix::errno::Errno::EINTR) | Ok(0) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())).collect();
        drop(fds);
        for (i, ready) in open.into_iter().zip(ready) {
            if !ready {
                continue;
            }
            let (fd, read) = &mut pipes[i];
            match nix::unistd::read(fd.as_ref().expect("open"), &mut buffer) {
                Ok(0) => *fd = None,
                Ok(n) => read.extend_from_slice(&buffer[..n]),
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Whether the child has exited by the deadline (it closed its output, so it is about to: a
/// few short naps at most, unless it goes on without it).
fn exited_by(pid: i32, deadline: Option<Instant>) -> bool {
    use nix::sys::wait::{waitid, Id, WaitPidFlag};
    let mut nap = Duration::from_micros(100);
    loop {
        // Looked at, not reaped (`WNOWAIT`): `reap` takes its status.
        match waitid(
            Id::Pid(nix::unistd::Pid::from_raw(pid)),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
        ) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) | Err(nix::errno::Errno::EINTR) => {}
            _ => return true,
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|left| left.is_zero()) {
            return false;
        }
        std::thread::sleep(left.map_or(nap, |left| nap.min(left)));
        nap = (nap * 2).min(Duration::from_millis(20));
    }
}

/// Waits for the child's end and takes its status.
fn reap(pid: i32) -> io::Result<ExitStatus> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: a plain system call on a child of this process.
        match unsafe { libc::waitpid(pid, &mut status, 0) } {
            -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => continue,
            -1 => return Err(io::Error::last_os_error()),
            _ => return Ok(ExitStatus::from_raw(status)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(script: &str) -> Command {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn a_child_gets_its_arguments_environment_and_directory_and_its_output_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = command(r#"echo "$1 $WT_SPAWN_A ${HOME-unset} $(pwd)"; echo err >&2; exit 3"#);
        cmd.arg("sh").arg("one").env("WT_SPAWN_A", "a").env_remove("HOME").current_dir(dir.path());
        let out = wait_output(spawn(&cmd).unwrap(), Duration::from_secs(20)).unwrap().unwrap();
        let real = dir.path().canonicalize().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("one a unset {}\n", real.display()));
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn a_child_reads_nothing_and_leads_its_own_group() {
        let out =
            wait_output(spawn(&command("cat; ps -o pgid= -p $$")).unwrap(), Duration::from_secs(20)).unwrap().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let pgid: i32 = text.trim().parse().unwrap();
        assert_ne!(pgid, nix::unistd::getpgrp().as_raw(), "{text}");
        assert!(out.status.success(), "{out:?}");
    }

    #[test]
    fn a_child_starts_with_nothing_blocked_and_sigpipe_not_ignored() {
        // The program itself reads its own masks, as `execve` left them: a shell would show
        // its own (dash blocks every signal around its forks and waits).
        let mut cmd = Command::new("/bin/grep");
        cmd.args(["-E", "^Sig(Ign|Blk)", "/proc/self/status"]);
        let out = wait_output(spawn(&cmd).unwrap(), Duration::from_secs(20)).unwrap().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.lines().count(), 2, "{text}");
        // Nothing blocked; SIGPIPE (bit 13) not ignored, whatever this test process does.
        for line in text.lines() {
            let mask = u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap();
            if line.starts_with("SigBlk") {
                assert_eq!(mask, 0, "{text}");
            } else {
                assert_eq!(mask & (1 << 12), 0, "{text}");
            }
        }
    }

    #[test]
    fn a_child_that_outlives_its_limit_is_killed_with_its_group() {
        let child = spawn(&command("sleep 30 & sleep 30; echo never")).unwrap();
        let group = child.pid;
        assert!(wait_output(child, Duration::from_millis(300)).unwrap().is_none());
        // The group (the background sleep too) is gone.
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            nix::sys::signal::killpg(nix::unistd::Pid::from_raw(group), None).is_err()
        });
        assert!(gone);
    }

    #[test]
    fn a_child_that_closes_its_output_and_goes_on_is_killed_at_the_limit() {
        let child = spawn(&command("exec >&- 2>&-; sleep 30")).unwrap();
        let pid = child.pid;
        assert!(wait_output(child, Duration::from_millis(300)).unwrap().is_none());
        // Reaped: no such child any more.
        assert!(nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), Some(nix::sys::wait::WaitPidFlag::WNOHANG))
            .is_err());
    }

    #[test]
    fn a_limit_too_far_to_count_is_no_limit() {
        let out = wait_output(spawn(&command("echo ok")).unwrap(), Duration::MAX).unwrap().unwrap();
        assert_eq!(out.stdout, b"ok\n");
    }

    #[test]
    fn a_child_dies_with_the_thread_that_started_it() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("echo $$ > {}; exec sleep 30", pid_file.display());
        let thread = std::thread::spawn(move || spawn(&command(&script)).unwrap().pid);
        let pid = thread.join().unwrap();
        let dead = (0..250).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            // Reaped here (this test process is its parent): `WNOHANG` says when it ended.
            let status =
                nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), Some(nix::sys::wait::WaitPidFlag::WNOHANG));
            matches!(status, Ok(nix::sys::wait::WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGKILL, _)))
        });
        assert!(dead, "the child outlived the thread that started it");
    }

    #[test]
    fn a_program_that_cannot_be_started_is_an_error_with_its_cause() {
        let err = spawn(&Command::new("/nonexistent/git")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let err = spawn(&Command::new("git")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
    }
}
