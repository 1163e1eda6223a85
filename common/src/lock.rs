//! Exclusive advisory locks (`flock`) with a timeout. A lock dies with its process, so a tool
//! killed while holding one never blocks the next run.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::Error;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a tool waits for a lock before it gives up with exit 3: `WT_LOCK_TIMEOUT`
/// (seconds), else 30 s. Every tool checks the variable at start (`timeout_from_env`), so an
/// invalid value never gets this far; should it, the default holds.
pub fn default_timeout() -> Duration {
    timeout_from_env().unwrap_or(DEFAULT_TIMEOUT)
}

/// `WT_LOCK_TIMEOUT` read strictly: unset means the default; anything but a number of seconds
/// from 0 to a day (`abc`, `-1`, an empty value, `1e300`) is a usage error naming the fix.
pub fn timeout_from_env() -> Result<Duration, Error> {
    match std::env::var("WT_LOCK_TIMEOUT") {
        Err(_) => Ok(DEFAULT_TIMEOUT),
        Ok(text) => parse_timeout(&text),
    }
}

fn parse_timeout(text: &str) -> Result<Duration, Error> {
    const MAX_SECONDS: f64 = 86_400.0;
    let seconds = text.trim().parse::<f64>().ok().filter(|s| s.is_finite() && (0.0..=MAX_SECONDS).contains(s));
    seconds.map(Duration::from_secs_f64).ok_or_else(|| {
        Error::usage(
            "bad-env",
            format!(
                "WT_LOCK_TIMEOUT='{}' is not a number of seconds from 0 to 86400; set e.g. WT_LOCK_TIMEOUT=30, or unset it",
                text.escape_debug()
            ),
        )
    })
}

/// An exclusive lock on a file, held until dropped.
#[derive(Debug)]
pub struct FileLock {
    _lock: Flock<File>,
}

impl FileLock {
    /// Lets the child `cmd` starts hold this lock too (its descriptor stays open across exec):
    /// the lock is then released only when this process and that child have both ended.
    #[allow(unsafe_code)]
    pub fn share_with(&self, cmd: &mut std::process::Command) {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let fd = self._lock.as_raw_fd();
        // SAFETY: between fork and exec only fcntl(2) runs, async-signal-safe; it clears the
        // close-on-exec flag of the child's copy of the descriptor, not ours.
        unsafe {
            cmd.pre_exec(move || {
                if nix::libc::fcntl(fd, nix::libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    /// Waits up to `timeout` for an exclusive lock on `path` (created if missing).
    pub fn acquire(path: &Path, timeout: Duration) -> Result<FileLock, Error> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(1);
        let mut file = open(path)?;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(FileLock { _lock: lock }),
                Err((f, Errno::EWOULDBLOCK)) | Err((f, Errno::EINTR)) => file = f,
                Err((_, errno)) => {
                    return Err(Error::env("lock-failed", format!("cannot lock {}: {errno}", path.display())))
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::env(
                    "lock-timeout",
                    format!(
                        "timed out after {:.1}s waiting for the lock {} (another wt process holds it; wait for it, or raise WT_LOCK_TIMEOUT)",
                        timeout.as_secs_f64(),
                        path.display()
                    ),
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// Takes the lock only if nobody holds it; `None` when it is held.
    pub fn try_acquire(path: &Path) -> Result<Option<FileLock>, Error> {
        match Flock::lock(open(path)?, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(FileLock { _lock: lock })),
            Err((_, Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, errno)) => Err(Error::env("lock-failed", format!("cannot lock {}: {errno}", path.display()))),
        }
    }
}

fn open(path: &Path) -> Result<File, Error> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::env("lock-failed", format!("cannot open lock file {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_timeout_takes_seconds_and_refuses_the_rest() {
        assert_eq!(parse_timeout("2.5").unwrap(), Duration::from_millis(2500));
        assert_eq!(parse_timeout("0").unwrap(), Duration::ZERO);
        for bad in ["", "abc", "-1", "1e300", "inf", "NaN", "90000"] {
            let e = parse_timeout(bad).unwrap_err();
            assert_eq!(e.kind, crate::ErrorKind::Usage, "{bad:?}");
            assert!(e.message.contains("WT_LOCK_TIMEOUT") && !e.message.contains('\n'), "{}", e.message);
        }
    }
}
