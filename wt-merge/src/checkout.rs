//! The worktree where the target branch is checked out, if any: it moves with the branch
//! (its files follow, as a fast-forward would), and only when it has no uncommitted changes.

use std::path::{Path, PathBuf};

use wt_common::repo::Repo;
use wt_common::{git, Error};

/// The worktree that has `branch` checked out.
pub fn of(repo: &Repo, branch: &str) -> Result<Option<PathBuf>, Error> {
    Ok(repo.worktrees()?.into_iter().find(|w| w.branch.as_deref() == Some(branch)).map(|w| w.path))
}

/// Whether tracked files have uncommitted changes there.
pub fn is_dirty(worktree: &Path) -> Result<bool, Error> {
    Ok(!git::run(worktree, ["status", "--porcelain", "--untracked-files=no"])?.is_empty())
}

/// Brings a clean checkout's index and files from `old` to `new` after its branch moved.
pub fn follow(worktree: &Path, old: &str, new: &str) -> Result<(), Error> {
    git::run(worktree, ["read-tree", "-m", "-u", old, new]).map(|_| ())
}
