//! The worktree where the target branch is checked out, if any: it moves with the branch
//! (its files follow, as a fast-forward would), and only when it has no uncommitted changes.
//! That worktree may be an agent's (its HEAD is the agent's to write), so git runs there by
//! its registration, never through its `.git` file.

use std::path::{Path, PathBuf};

use wt_common::repo::Repo;
use wt_common::{git, Error};

/// The worktree that has `branch` checked out.
pub fn of(repo: &Repo, branch: &str) -> Result<Option<PathBuf>, Error> {
    Ok(repo.worktrees()?.into_iter().find(|w| w.branch.as_deref() == Some(branch)).map(|w| w.path))
}

/// Whether tracked files have uncommitted changes there.
pub fn is_dirty(repo: &Repo, worktree: &Path) -> Result<bool, Error> {
    Ok(!git_in(repo, worktree, &["status", "--porcelain", "--untracked-files=no"])?.is_empty())
}

/// Brings a clean checkout's index and files from `old` to `new` after its branch moved.
pub fn follow(repo: &Repo, worktree: &Path, old: &str, new: &str) -> Result<(), Error> {
    git_in(repo, worktree, &["read-tree", "-m", "-u", old, new]).map(|_| ())
}

/// Runs git in a checked-out worktree, checked first (`worktree_check::verify`); its stdout,
/// trailing newline removed.
pub fn git_in(repo: &Repo, worktree: &Path, args: &[&str]) -> Result<String, Error> {
    let reg = wt_common::worktree_check::verify(repo, worktree)?;
    let out = git::output(git::in_worktree(&reg).args(args))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.strip_suffix('\n').unwrap_or(&text).to_string())
}
