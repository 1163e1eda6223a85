//! Removing a managed worktree: git's registration and directory, the branch wt made for it,
//! its ledger entry (with every lease in it) and its private git store of confined runs.
//! wt-create `--remove` and wt-merge `--cleanup` both end a worktree this way.

use std::path::Path;

use crate::ledger::LedgerFile;
use crate::lock::FileLock;
use crate::repo::Repo;
use crate::{git, Error};

/// Removes the worktree at `path` (if it is still there), deletes `branch` (if given) and
/// forgets `name` in the ledger. `force` removes it even with local changes. The caller holds
/// the repository's worktree lock (`Repo::worktree_lock`) and passes it as proof: taking it
/// here again would deadlock.
pub fn remove(
    _locked: &FileLock,
    repo: &Repo,
    ledger: &LedgerFile,
    name: &str,
    path: Option<&Path>,
    branch: Option<&str>,
    force: bool,
) -> Result<(), Error> {
    if let Some(path) = path.filter(|p| p.exists()) {
        // Never on a tampered worktree: git would find it by a `gitdir` the agent rewrote.
        let reg = crate::worktree_check::verify(repo, path)?;
        crate::worktree_check::refuse_foreign_claims(repo, &reg)?;
        let mut cmd = git::about_worktrees(repo.git_dir(), &repo.common_dir);
        cmd.args(["worktree", "remove"]);
        if force {
            cmd.arg("--force");
        }
        git::output(cmd.arg(&reg.path))?;
    }
    if let Some(branch) = branch {
        let mut cmd = git::about_worktrees(repo.git_dir(), &repo.common_dir);
        git::output(cmd.args(["branch", "-D", "--quiet", branch]))?;
    }
    ledger.update(|l| {
        l.worktrees.remove(name);
        Ok(())
    })?;
    // Its confined runs' private git store (published by the caller before it judged the branch).
    crate::confine_store::remove(&repo.common_dir, name)
}
