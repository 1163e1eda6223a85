//! Exclusive advisory locks (`flock`) with a timeout. A lock dies with its process, so a tool
//! killed while holding one never blocks the next run.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::Error;

/// How long a tool waits for a lock before it gives up with exit 3. `WT_LOCK_TIMEOUT`
/// (seconds) overrides the default of 30 s.
pub fn default_timeout() -> Duration {
    std::env::var("WT_LOCK_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(30))
}

/// An exclusive lock on a file, held until dropped.
#[derive(Debug)]
pub struct FileLock {
    _lock: Flock<File>,
}

impl FileLock {
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
