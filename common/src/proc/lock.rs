//! Exclusive advisory locks (`flock`) with a timeout. A lock dies with its process, so a tool
//! killed while holding one never blocks the next run.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
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
///
/// A child that writes what the lock protects (`git worktree add`, `git reset --hard`) can
/// outlive a holder killed with SIGKILL by a moment: its parent-death signal is delivered, but
/// a write it is in the middle of completes. So the holder notes such a child
/// (`note_children_of`, in `<lock>.children`), and whoever takes the lock next first waits for the
/// noted children that still run. Handing the child the lock's descriptor instead would also
/// hand it to everything git starts (hooks, filters), and a daemon among them would hold the
/// lock for ever.
///
/// A lock file may be removed by its holder (`remove_when_released`): every taker checks,
/// once it holds the lock, that the path still names the file it locked, and starts again if
/// not (else it would hold a lock on a removed file while the next taker made a new one).
#[derive(Debug)]
pub struct FileLock {
    _lock: Flock<File>,
    path: PathBuf,
    remove: bool,
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // The children noted ended before this drop (the holder waited for them).
        let _ = std::fs::remove_file(children_file(&self.path));
        // Removed while still held: a taker waiting on this file sees it gone and starts over.
        if self.remove {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Where the children of a lock's holder are noted: `<lock>.children`, one pid per line.
pub fn children_file(lock: &Path) -> PathBuf {
    let mut name = lock.as_os_str().to_owned();
    name.push(".children");
    PathBuf::from(name)
}

impl FileLock {
    /// The locked file, for a lock that is also a file with content (a crash marker).
    pub fn file(&self) -> &File {
        &self._lock
    }

    /// Makes the child `cmd` starts note itself with this lock (see above), before it runs
    /// git: noted by the parent after the start, a kill in between would go unnoticed. Keep the
    /// returned file open until the child has been started.
    #[allow(unsafe_code)]
    pub fn note_children_of(&self, cmd: &mut std::process::Command) -> Option<File> {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        // Never through a link, never blocking on a FIFO: the lock's directory is in the
        // common dir, which an unconfined agent can write.
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(children_file(&self.path))
            .ok()?;
        let fd = file.as_raw_fd();
        // SAFETY: between fork and exec only getpid(2) and write(2) run, both
        // async-signal-safe, on a buffer on the stack; no allocation, no lock.
        unsafe {
            cmd.pre_exec(move || {
                let mut line = [0u8; 16];
                let len = pid_line(nix::libc::getpid() as u32, &mut line);
                nix::libc::write(fd, line.as_ptr().cast(), len);
                Ok(())
            });
        }
        Some(file)
    }

    /// Removes the lock file when the lock is released, for a lock that is not needed once
    /// nobody holds it (one per repository in the per-user socket directory, say).
    pub fn remove_when_released(&mut self) {
        self.remove = true;
    }

    /// Forgets the children noted so far, which have all ended (the holder waited for each):
    /// a lock held for a whole run (wt-merge's queue) would otherwise note more and more, and
    /// a pid among them reused later could hold up the next holder.
    pub fn forget_children(&self) {
        let _ = std::fs::remove_file(children_file(&self.path));
    }

    /// Waits up to `timeout` for an exclusive lock on `path` (created if missing).
    pub fn acquire(path: &Path, timeout: Duration) -> Result<FileLock, Error> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(1);
        let mut file = open(path)?;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) if still_named(&lock, path) => return Ok(FileLock::taken(lock, path, deadline)),
                Ok(_) => file = open(path)?, // removed by its last holder: lock the new one
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
        loop {
            match Flock::lock(open(path)?, FlockArg::LockExclusiveNonblock) {
                Ok(lock) if still_named(&lock, path) => {
                    return Ok(Some(FileLock::taken(lock, path, Instant::now() + default_timeout())))
                }
                Ok(_) => continue, // removed by its last holder: lock the new one
                Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
                Err((_, errno)) => {
                    return Err(Error::env("lock-failed", format!("cannot lock {}: {errno}", path.display())))
                }
            }
        }
    }

    /// Takes the lock on an existing file only if nobody holds it, never creating the file:
    /// `Ok(None)` when it is held, or when there is no such file (nobody holds it then either;
    /// see `is_free`).
    pub fn try_existing(path: &Path) -> Result<Option<FileLock>, Error> {
        loop {
            let opened = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
                .open(path);
            let file = match opened {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => {
                    return Err(Error::env("lock-failed", format!("cannot open lock file {}: {e}", path.display())))
                }
            };
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) if still_named(&lock, path) => {
                    return Ok(Some(FileLock::taken(lock, path, Instant::now() + default_timeout())))
                }
                Ok(_) => continue,
                Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
                Err((_, errno)) => {
                    return Err(Error::env("lock-failed", format!("cannot lock {}: {errno}", path.display())))
                }
            }
        }
    }

    /// Whether nobody holds the lock at `path`: there is no such file, or it can be taken
    /// (and is let go at once). Never creates the file.
    pub fn is_free(path: &Path) -> Result<bool, Error> {
        if !path.exists() {
            return Ok(true);
        }
        Ok(FileLock::try_existing(path)?.is_some() || !path.exists())
    }
}

impl FileLock {
    /// The lock, once the children its last holder noted have ended (or `deadline` passed:
    /// each was sent SIGKILL when its parent died, so that takes milliseconds). A noted pid
    /// counts while a process runs under it that started before the file was last written
    /// (with a second's slack: the boot time is known to the second), not one that got the pid
    /// later.
    fn taken(lock: Flock<File>, path: &Path, deadline: Instant) -> FileLock {
        let file = children_file(path);
        let written = std::fs::metadata(&file).and_then(|m| m.modified());
        let noted = crate::fs::read_untrusted(&file, crate::fs::untrusted::STATE_MAX);
        if let (Ok(Some(noted)), Ok(written)) = (noted, written) {
            for pid in noted.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let noted_one =
                    || crate::proc::process::started_at(pid).is_some_and(|t| t <= written + Duration::from_secs(1));
                while noted_one() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        FileLock { _lock: lock, path: path.to_path_buf(), remove: false }
    }
}

/// Whether `path` still names the file `lock` locked (its holder may have removed it, and
/// another process may have made a new one there, since it was opened).
fn still_named(lock: &Flock<File>, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (lock.metadata(), std::fs::metadata(path)) {
        (Ok(held), Ok(named)) => held.dev() == named.dev() && held.ino() == named.ino(),
        _ => false,
    }
}

/// `pid` and a newline into `buf`, without allocating (it runs between fork and exec); the
/// length written.
pub(crate) fn pid_line(pid: u32, buf: &mut [u8; 16]) -> usize {
    let mut digits = [0u8; 10];
    let (mut n, mut i) = (pid, digits.len());
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let len = digits.len() - i;
    buf[..len].copy_from_slice(&digits[i..]);
    buf[len] = b'\n';
    len + 1
}

/// Opens (or makes) a lock file: never through a link (its directory may be the agent's to
/// write), never blocking on a FIFO.
fn open(path: &Path) -> Result<File, Error> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
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

    /// A holder killed while its git child still ran: the next holder gets the lock only once
    /// that child has ended.
    #[test]
    fn the_next_holder_waits_for_the_children_a_killed_holder_noted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let holder = FileLock::acquire(&path, Duration::from_secs(30)).unwrap();
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("0.4");
        let noting = holder.note_children_of(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        drop(noting);
        let pid = child.id() as i32;
        assert_eq!(std::fs::read_to_string(children_file(&path)).unwrap(), format!("{pid}\n"), "noted by the child");
        // The holder is "killed": its lock goes, its children file stays (a kill skips `Drop`).
        let noted = std::fs::read(children_file(&path)).unwrap();
        drop(holder);
        std::fs::write(children_file(&path), noted).unwrap();
        let lock = FileLock::acquire(&path, Duration::from_secs(30)).unwrap();
        assert!(crate::proc::process::started_at(pid).is_none(), "the child ended before the lock was taken");
        child.wait().unwrap();
        drop(lock);
        assert!(!children_file(&path).exists(), "a holder's children file goes with it");
        // A pid that is gone, or garbage, holds nobody up.
        std::fs::write(children_file(&path), "999999999\nnot a line\n").unwrap();
        FileLock::acquire(&path, Duration::from_secs(30)).unwrap();
    }

    #[test]
    fn a_holder_forgets_the_children_it_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.lock");
        let holder = FileLock::acquire(&path, Duration::from_secs(30)).unwrap();
        let mut cmd = std::process::Command::new("true");
        let noting = holder.note_children_of(&mut cmd);
        cmd.status().unwrap();
        drop(noting);
        assert!(children_file(&path).exists(), "noted");
        holder.forget_children();
        assert!(!children_file(&path).exists(), "forgotten once ended");
    }

    #[test]
    fn a_pid_line_is_the_decimal_pid_and_a_newline() {
        let mut buf = [0u8; 16];
        for pid in [0u32, 7, 42, 4_194_304, u32::MAX] {
            let len = pid_line(pid, &mut buf);
            assert_eq!(&buf[..len], format!("{pid}\n").as_bytes());
        }
    }

    #[test]
    fn a_lock_removed_by_its_holder_is_never_held_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.lock");
        for _ in 0..50 {
            let mut first = FileLock::acquire(&path, Duration::from_secs(30)).unwrap();
            first.remove_when_released();
            // A taker that opened the file before it was removed must not end up holding it.
            let waiter = {
                let path = path.clone();
                std::thread::spawn(move || FileLock::acquire(&path, Duration::from_secs(30)).unwrap())
            };
            std::thread::sleep(Duration::from_millis(2));
            drop(first);
            let second = waiter.join().unwrap();
            assert!(path.exists(), "the waiter holds a lock file that is there");
            assert!(FileLock::try_acquire(&path).unwrap().is_none(), "held once, not twice");
            assert!(!FileLock::is_free(&path).unwrap());
            drop(second);
        }
        assert!(FileLock::is_free(&path).unwrap());
        std::fs::remove_file(&path).unwrap();
        assert!(FileLock::is_free(&path).unwrap());
        assert!(FileLock::try_existing(&path).unwrap().is_none());
        assert!(!path.exists(), "asking never makes the file");
    }
}
