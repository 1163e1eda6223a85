//! The target's lock files. A git killed while it changed the target (its ref, the HEAD or the
//! index of the worktree where it is checked out) leaves its lock; with it, the ref could move
//! while the files could not, or every compare-and-swap would fail and be taken for a race.
//! Before anything is built or verified, a provably stale lock is removed, and a lock a
//! process holds or may hold stops the merge, naming that process (`stale_lock`).

use std::path::{Path, PathBuf};

use wt_common::git::repo::Repo;
use wt_common::{proc::stale_lock, Error};

/// The lock files that moving `into` (checked out in `worktree`, if anywhere) takes.
fn target_locks(repo: &Repo, into: &str, worktree: Option<&Path>) -> Result<Vec<PathBuf>, Error> {
    let mut locks = vec![repo.common_dir.join(format!("refs/heads/{into}.lock"))];
    if let Some(wt) = worktree {
        let dir = crate::checkout::git_in(repo, wt, &["rev-parse", "--absolute-git-dir"])?;
        locks.push(Path::new(&dir).join("HEAD.lock"));
        locks.push(Path::new(&dir).join("index.lock"));
    }
    Ok(locks)
}

/// Clears the target's stale locks, or says which lock a running git holds.
pub fn clear_stale(repo: &Repo, into: &str) -> Result<(), Error> {
    let worktree = crate::checkout::of(repo, into)?;
    clear(repo, target_locks(repo, into, worktree.as_deref())?)
}

/// Clears the stale locks of the checkout at `worktree` (its HEAD and index), before a killed
/// run's update of its files is finished.
pub fn clear_stale_checkout(repo: &Repo, worktree: &Path) -> Result<(), Error> {
    let dir = crate::checkout::git_in(repo, worktree, &["rev-parse", "--absolute-git-dir"])?;
    let locks = vec![Path::new(&dir).join("HEAD.lock"), Path::new(&dir).join("index.lock")];
    clear(repo, locks)
}

fn clear(repo: &Repo, locks: Vec<PathBuf>) -> Result<(), Error> {
    for lock in locks {
        if let Err(kept) = stale_lock::clear(repo, &lock) {
            return Err(Error::failed(
                "target-locked",
                format!("{} exists and {kept}; merge again when it has finished", lock.display()),
            ));
        }
    }
    Ok(())
}
