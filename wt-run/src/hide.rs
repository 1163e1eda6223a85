//! Hides directories from a confined command: the confinement helper enters a mount namespace
//! of its own, covers each hidden directory with an empty tmpfs, binds chosen files (a pane's
//! own socket) back in at their paths, and makes the covers read-only. Landlock, applied next,
//! forbids every later mount and umount, so the command cannot lift a cover; and it forbids
//! reaching another process's view through `/proc/PID/root`.
//!
//! This is how a confined command is kept from the pane supervisor's full socket and from the
//! user's tmux server, either of which would run anything it asks, unconfined.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::Mode;

/// A cover's options: private to its owner, and small (nothing is ever written in it).
const COVER: &str = "mode=0700,size=64k,nr_inodes=64";

/// Covers `dirs` (creating those that do not exist yet, so a supervisor started later is hidden
/// too), keeps the files of `keep` that are inside them reachable, and returns the directories
/// it covered.
pub fn hide(dirs: &[PathBuf], keep: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let dirs = existing(dirs);
    if dirs.is_empty() {
        return Ok(dirs);
    }
    enter_namespace()?;
    // Opened in the new namespace (a bind's source must be a mount of it), before anything is
    // covered: the files to bind back in, as they are now.
    let kept = keep
        .iter()
        .filter_map(|p| p.canonicalize().ok())
        .filter(|p| dirs.iter().any(|d| p.starts_with(d)))
        .map(|p| {
            let fd = nix::fcntl::open(&p, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
                .map_err(|e| format!("cannot open {}: {e}", p.display()))?;
            Ok((p, fd))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    for dir in &dirs {
        mount(Some("tmpfs"), dir, Some("tmpfs"), flags, Some(COVER))
            .map_err(|e| format!("cannot cover {}: {e}", dir.display()))?;
    }
    for (path, fd) in &kept {
        bind_file(fd, path)?;
    }
    for dir in &dirs {
        mount(None::<&str>, dir, None::<&str>, flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, Some(COVER))
            .map_err(|e| format!("cannot make the cover of {} read-only: {e}", dir.display()))?;
    }
    Ok(dirs)
}

/// The directories to cover, each once, made first if missing (private, as their owners make
/// them); a directory whose parent is missing is left out: nothing listens there.
fn existing(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        let _ = std::fs::DirBuilder::new().mode(0o700).create(dir);
        if let Ok(real) = dir.canonicalize() {
            if real.is_dir() && !out.contains(&real) {
                out.push(real);
            }
        }
    }
    out
}

/// A mount namespace of this process's own, whose mounts do not propagate back. Without
/// CAP_SYS_ADMIN, a user namespace that maps this user to itself grants it.
fn enter_namespace() -> Result<(), String> {
    if unshare(CloneFlags::CLONE_NEWNS).is_err() {
        let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
        unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
            .map_err(|e| format!("cannot make a mount namespace: {e}"))?;
        let write =
            |file: &str, text: String| std::fs::write(file, text).map_err(|e| format!("cannot write {file}: {e}"));
        write("/proc/self/setgroups", "deny".into())?;
        write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
        write("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
    }
    let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
    mount(None::<&str>, "/", None::<&str>, private, None::<&str>)
        .map_err(|e| format!("cannot make mounts private: {e}"))
}

/// Binds the file open as `fd` at `path`, inside a cover.
fn bind_file(fd: &OwnedFd, path: &Path) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        let _ = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(parent);
    }
    std::fs::File::create(path).map_err(|e| format!("cannot make {}: {e}", path.display()))?;
    let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
    mount(Some(source.as_str()), path, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| format!("cannot bind {}: {e}", path.display()))
}
