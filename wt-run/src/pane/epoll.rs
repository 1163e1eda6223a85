//! The few kernel calls the supervisor's event loop needs: epoll(7) on raw descriptors, and a
//! pidfd (a descriptor that becomes readable when a process ends), so one thread can wait on
//! every pane's terminal, every pane's program and every listening socket at once.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

#[derive(Debug)]
pub struct Epoll(OwnedFd);

impl Epoll {
    #[allow(unsafe_code)]
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes only flags; a non-negative result is a descriptor we own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned to us and nothing else owns it.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Watches `fd` for input (level-triggered), reported as `token`.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.add_for(fd, token, libc::EPOLLIN as u32)
    }

    /// Watches `fd` for `events` (epoll's bits, level-triggered), reported as `token`.
    pub fn add_for(&self, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        self.ctl(libc::EPOLL_CTL_ADD, fd, &mut event)
    }

    /// Watches `fd` (already added) for `events` instead.
    pub fn modify(&self, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        self.ctl(libc::EPOLL_CTL_MOD, fd, &mut event)
    }

    /// Stops watching `fd` (before it is closed, so a reused number is never reported).
    pub fn delete(&self, fd: RawFd) {
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        let _ = self.ctl(libc::EPOLL_CTL_DEL, fd, &mut event);
    }

    #[allow(unsafe_code)]
    fn ctl(&self, op: libc::c_int, fd: RawFd, event: &mut libc::epoll_event) -> io::Result<()> {
        // SAFETY: a valid epoll descriptor and a pointer to an event that outlives the call.
        let r = unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd, event) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits until something is ready or `timeout` passes (forever without one); the tokens of
    /// what is ready, with what it is ready for, go into `ready`.
    #[allow(unsafe_code)]
    pub fn wait(&self, ready: &mut Vec<(u64, u32)>, timeout: Option<Duration>) -> io::Result<()> {
        ready.clear();
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
        // Rounded up, so a timer is never woken for a moment before it is due.
        let ms = timeout.map_or(-1, |t| t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32);
        // SAFETY: `events` is a writable array of the length given.
        let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), events.len() as i32, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(()) } else { Err(e) };
        }
        ready.extend(events[..n as usize].iter().map(|e| (e.u64, e.events)));
        Ok(())
    }
}

/// A descriptor that becomes readable when process `pid` (a child of ours, not yet reaped) ends.
#[allow(unsafe_code)]
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags; a non-negative result is a descriptor we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just returned to us, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}
