//! The worktree where the target branch is checked out, if any: it moves with the branch
//! (its files follow, as a fast-forward would), and only when it has no uncommitted changes.
//! That worktree may be an agent's (its HEAD is the agent's to write), so git runs there by
//! its registration, never through its `.git` file.

use std::path::{Path, PathBuf};

use wt_common::git::repo::Repo;
use wt_common::{git, Error};

/// The worktree that has `branch` checked out.
pub fn of(repo: &Repo, branch: &str) -> Result<Option<PathBuf>, Error> {
    Ok(repo.worktrees()?.into_iter().find(|w| w.branch.as_deref() == Some(branch)).map(|w| w.path))
}

/// The tracked files with uncommitted changes there (empty: clean), as a refusal names them.
pub fn changed_paths(repo: &Repo, worktree: &Path) -> Result<Vec<String>, Error> {
    // Never into submodules: a checked-out one's own config (the agent's to write) would have
    // git run its filter drivers here, unconfined.
    let args = ["status", "--porcelain", "-z", "--no-renames", "--untracked-files=no", "--ignore-submodules=dirty"];
    Ok(wt_common::git::checkout_state::porcelain_paths(git_in(repo, worktree, &args)?.as_bytes()))
}

/// Brings a clean checkout's index and files from `old` to `new` after its branch moved.
pub fn follow(repo: &Repo, worktree: &Path, old: &str, new: &str) -> Result<(), Error> {
    git_in(repo, worktree, &["read-tree", "-m", "-u", old, new]).map(|_| ())
}

/// Finishes a `follow` that a killed run left part-way: the index still at `old`, some files
/// already at `new` (git writes the files, then the index). `read-tree -m -u` refuses those
/// files ("not uptodate"), so each file that differs from the index, and each file `new` adds,
/// is checked: at `old` (not reached yet), at `new` (written by the killed git) or absent as
/// there, it is the update's own, and the checkout is reset to `new`. Anything else is
/// somebody's edit since, and nothing is touched.
pub fn finish_follow(repo: &Repo, worktree: &Path, old: &str, new: &str) -> Result<(), Error> {
    let listed = |args: &[&str]| -> Result<Vec<String>, Error> {
        Ok(git_in(repo, worktree, args)?.split('\0').filter(|p| !p.is_empty()).map(str::to_string).collect())
    };
    let mut paths = listed(&["diff-files", "--name-only", "-z"])?;
    if paths.is_empty() {
        return follow(repo, worktree, old, new);
    }
    paths.extend(listed(&["diff", "--name-only", "-z", "--diff-filter=A", old, new, "--"])?);
    let blob = |commit: &str, path: &str| {
        git_in(repo, worktree, &["rev-parse", "--verify", "-q", &format!("{commit}:{path}")]).ok()
    };
    for path in &paths {
        let on_disk = match worktree.join(path).symlink_metadata() {
            Ok(_) => Some(git_in(repo, worktree, &["hash-object", "--", path])?),
            Err(_) => None,
        };
        if on_disk != blob(old, path) && on_disk != blob(new, path) {
            return Err(Error::failed(
                "checkout-changed",
                format!(
                    "{}: '{path}' was changed after a killed wt-merge began updating this checkout to {new}; commit or restore it, then run wt-merge again (or `git read-tree --reset -u {new}` there to drop the change)",
                    worktree.display()
                ),
            ));
        }
    }
    git_in(repo, worktree, &["read-tree", "--reset", "-u", new]).map(|_| ())
}

/// Runs git in a checked-out worktree, checked first (`worktree_check::verify`); its stdout,
/// trailing newline removed.
pub fn git_in(repo: &Repo, worktree: &Path, args: &[&str]) -> Result<String, Error> {
    let reg = wt_common::git::worktree_check::verify(repo, worktree)?;
    let out = git::output(git::in_worktree(&reg).args(args))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.strip_suffix('\n').unwrap_or(&text).to_string())
}
