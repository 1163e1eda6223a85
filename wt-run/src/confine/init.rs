//! The run's own pid namespace: every process a confined command starts ends with it.
//!
//! A process group is not a boundary: `setsid`, a double fork or a daemon leaves it, and would
//! keep acting after wt-run reported the run over (and race the publish of its commits). A pid
//! namespace is: when its first process (pid 1, its "init") exits, the kernel kills every
//! other process in it, and the init's exit completes only once they are all gone. It works
//! as root and, inside the run's user namespace, unprivileged.
//!
//! The helper unshares `CLONE_NEWPID` with the mount namespace, then forks (`split`):
//! - the **outer** process keeps the pid (and process group) wt-run knows, waits for the init
//!   and ends exactly as the command did (its exit code, or the same signal);
//! - the **init** (pid 1 inside) lays out the sandbox, mounts a `/proc` of the namespace, and
//!   runs the command as its child (`run`), reaps orphans until the command exits, and passes
//!   the command's wait status to the outer process over a pipe.
//!
//! Signals: wt signals a run's process group (`killpg`), which holds all three processes unless
//! the command left it. The outer process and the init ignore the signals that end a run (a
//! handler that does nothing: pid 1 gets only signals it handles), so the command decides how
//! it ends; a command that moved to a group of its own (an interactive shell with job control)
//! gets them from the init. Terminal signals reach whichever group is in the foreground.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// Set in the init once `split` returned there.
static IS_INIT: AtomicBool = AtomicBool::new(false);
/// The command's pid (inside the namespace), for the init's signal handler.
static COMMAND: AtomicI32 = AtomicI32::new(0);
/// The write end of the status pipe, in the init.
static STATUS_OUT: AtomicI32 = AtomicI32::new(-1);

/// The signals that end a run.
const ENDING: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT];

/// Whether this process is the init of a run's pid namespace.
pub fn active() -> bool {
    IS_INIT.load(Ordering::Relaxed)
}

/// Forks after `unshare(CLONE_NEWPID)`: returns in the child, the namespace's pid 1; the parent
/// waits for it and exits as the command did, never returning.
#[allow(unsafe_code)]
pub fn split() -> Result<(), String> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("cannot make a pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just made and belong to nothing else.
    let (status_in, status_out) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the helper is single-threaded, so the child may run any code after fork.
    match unsafe { libc::fork() } {
        -1 => Err(format!("cannot start the pid namespace's first process: {}", std::io::Error::last_os_error())),
        0 => {
            drop(status_in);
            // The init dies with the outer process (killed by wt-run or its reaper), and the
            // kernel then ends everything in the namespace.
            // SAFETY: prctl with integer arguments.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                // The init shares the command's user, Landlock domain and (no) capabilities,
                // but never execs: without this the command could ptrace it, read its
                // environment (the caller's, unfiltered) in /proc/1/environ, or copy its
                // descriptors with pidfd_getfd. The command's own exec makes it dumpable again.
                libc::prctl(libc::PR_SET_DUMPABLE, 0);
            }
            // The outer process may have died before that took effect (its pid is not visible
            // from here): then the pipe's read end, which only it holds, is closed.
            if reader_gone(&status_out) {
                // SAFETY: ends this process.
                unsafe { libc::_exit(137) };
            }
            STATUS_OUT.store(std::os::fd::IntoRawFd::into_raw_fd(status_out), Ordering::Relaxed);
            IS_INIT.store(true, Ordering::Relaxed);
            ignore_ending_signals(do_nothing);
            Ok(())
        }
        child => {
            drop(status_out);
            // SAFETY: prctl with integer arguments (the outer process is out of the command's
            // reach already: another pid namespace and Landlock domain; this is a second wall).
            unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0) };
            ignore_ending_signals(do_nothing);
            outer_wait(child, &status_in)
        }
    }
}

/// Whether nobody holds the read end of the pipe `out` writes to (`POLLERR` on a write end).
#[allow(unsafe_code)]
fn reader_gone(out: &OwnedFd) -> bool {
    let mut poll = libc::pollfd { fd: out.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
    // SAFETY: one pollfd, no wait.
    let n = unsafe { libc::poll(&mut poll, 1, 0) };
    n == 1 && poll.revents & libc::POLLERR != 0
}

/// In the init: runs `command` as its child, reaps every orphan of the namespace until the
/// command has exited, passes on its wait status and exits (which ends the rest). `exec`
/// runs in the child and returns only if the exec failed (its exit code).
#[allow(unsafe_code)]
pub fn run(exec: impl FnOnce() -> i32) -> ! {
    // SAFETY: the init is single-threaded.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // The command starts with default dispositions (a handler would be reset by exec
        // anyway; this covers the failed-exec path too).
        restore_ending_signals();
        let code = exec();
        // SAFETY: _exit ends this process without running the init's destructors twice.
        unsafe { libc::_exit(code) };
    }
    if pid < 0 {
        pass_on(127 << 8);
    }
    COMMAND.store(pid, Ordering::Relaxed);
    // The init needs nothing but the status pipe from here on: whatever else it holds (the
    // caller's descriptors, the report file) is closed, so nothing can be taken from it.
    let keep = STATUS_OUT.load(Ordering::Relaxed) as libc::c_uint;
    // SAFETY: close_range with integer bounds; the descriptors are this process's own.
    unsafe {
        if keep > 0 {
            libc::close_range(0, keep - 1, 0);
        }
        libc::close_range(keep + 1, libc::c_uint::MAX, 0);
    }
    ignore_ending_signals(forward);
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into the integer it is given.
        let got = unsafe { libc::waitpid(-1, &mut status, 0) };
        if got == pid {
            pass_on(status);
        }
        if got < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            pass_on(127 << 8);
        }
    }
}

/// Writes the command's wait status for the outer process and exits.
#[allow(unsafe_code)]
fn pass_on(status: libc::c_int) -> ! {
    let bytes = status.to_ne_bytes();
    // SAFETY: a 4-byte write from a stack buffer; then the process ends.
    unsafe {
        libc::write(STATUS_OUT.load(Ordering::Relaxed), bytes.as_ptr().cast(), bytes.len());
        libc::_exit(0)
    }
}

/// The outer process: waits for the init, then ends as the command did.
#[allow(unsafe_code)]
fn outer_wait(init: libc::pid_t, status_in: &OwnedFd) -> ! {
    let mut init_status = 0;
    loop {
        // SAFETY: waitpid writes the status into the integer it is given.
        let got = unsafe { libc::waitpid(init, &mut init_status, 0) };
        if got == init || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    let mut bytes = [0u8; 4];
    // SAFETY: reads at most 4 bytes into a stack buffer; the init wrote them before exiting.
    let n = unsafe { libc::read(status_in.as_raw_fd(), bytes.as_mut_ptr().cast(), bytes.len()) };
    // Without a status the init itself was killed (SIGKILL of the group): end the same way.
    let status = if n == 4 { libc::c_int::from_ne_bytes(bytes) } else { init_status };
    end_as(status)
}

/// Exits with `status`'s code, or dies of its signal (without a core dump of this process).
#[allow(unsafe_code)]
fn end_as(status: libc::c_int) -> ! {
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        // SAFETY: resetting a disposition, the core limit and the mask, then raising: plain
        // system calls on values of this process.
        unsafe {
            let none = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            libc::setrlimit(libc::RLIMIT_CORE, &none);
            libc::signal(sig, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::raise(sig);
            libc::_exit(128 + sig)
        }
    }
    // SAFETY: ends the process.
    unsafe { libc::_exit(if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 127 }) }
}

extern "C" fn do_nothing(_: libc::c_int) {}

/// The init's handler: a command that left the run's process group did not get a signal sent
/// to the group; it gets it now. (One still in the group got it already.)
#[allow(unsafe_code)]
extern "C" fn forward(sig: libc::c_int) {
    let command = COMMAND.load(Ordering::Relaxed);
    // SAFETY: getpgid, getpgrp and kill are async-signal-safe system calls.
    unsafe {
        let group = libc::getpgid(command);
        if command > 0 && group > 0 && group != libc::getpgrp() {
            libc::kill(-group, sig);
        }
    }
}

#[allow(unsafe_code)]
fn ignore_ending_signals(handler: extern "C" fn(libc::c_int)) {
    for sig in ENDING {
        // SAFETY: installs a handler that only makes async-signal-safe calls; SA_RESTART keeps
        // waitpid going.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

#[allow(unsafe_code)]
fn restore_ending_signals() {
    for sig in ENDING {
        // SAFETY: the default disposition; no handler code.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}
