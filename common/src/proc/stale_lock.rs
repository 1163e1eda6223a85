//! git's lock files (`index.lock`, `HEAD.lock`, `refs/heads/<b>.lock`, `config.lock`, …) left
//! by a git that was killed. git never removes another process's lock, and every later git that
//! needs it fails (or, for maintenance, silently skips). A lock is provably stale when it is
//! older than every git process now running on the machine: none of them existed when it was
//! made, so none can hold it, and the one that made it is gone. Only such a lock is ever
//! removed. Every git process counts, wherever it runs: git acts on a repository from any
//! directory (`git -C`, `--git-dir`, a worktree outside the usual root), so a process's working
//! directory says nothing certain about which repository it holds locks in.

use std::path::Path;
use std::time::{Duration, SystemTime};

/// The start times of the git processes running now.
fn git_processes() -> Vec<SystemTime> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())).map(str::to_string))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end().starts_with("git"))
        })
        .filter_map(|pid| pid.parse().ok().and_then(crate::proc::process::started_at))
        .collect()
}

/// Whether the lock at `path` exists and no running git process can hold it. The clock tick
/// and the boot time are coarse, so a lock is judged stale only if it is older than each git
/// process by more than a second.
pub fn is_stale(path: &Path) -> bool {
    let Ok(made) = std::fs::symlink_metadata(path).and_then(|m| m.modified()) else { return false };
    git_processes().iter().all(|started| made + Duration::from_secs(1) < *started)
}

/// Removes the lock if it is provably stale; returns whether the lock is gone (or was never
/// there). A lock some running git may hold is left alone.
pub fn clear(path: &Path) -> bool {
    if !path.exists() {
        return true;
    }
    if is_stale(path) {
        tracing::warn!("removing {}, left by a git that was killed", path.display());
        return std::fs::remove_file(path).is_ok() || !path.exists();
    }
    false
}

/// Locks of the whole repository that a killed git leaves and git never clears: while
/// `objects/maintenance.lock` is there (left by the `git maintenance run --auto` an agent's
/// commit starts), git skips every later maintenance without a word; while `config.lock` is
/// there (`git branch -D` rewrites the config), every config write fails; `packed-refs.lock`
/// blocks deleting branches.
pub const REPOSITORY_LOCKS: &[&str] = &["objects/maintenance.lock", "config.lock", "packed-refs.lock"];

/// Removes those of `REPOSITORY_LOCKS` that are provably stale (see `clear`). Costs a `stat`
/// each when there are none.
pub fn sweep_repository(repo: &crate::git::repo::Repo) {
    for lock in REPOSITORY_LOCKS {
        clear(&repo.common_dir.join(lock));
    }
}
