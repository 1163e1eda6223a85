//! Removing a managed worktree: git's registration and directory, the branch wt made for it,
//! its ledger entry (with every lease in it) and its private git store of confined runs.
//! wt-create `--remove` and wt-merge `--cleanup` both end a worktree this way.
//!
//! A removal killed half-way, or a directory deleted behind git's back, leaves a registration
//! without a directory. The next removal unregisters exactly that worktree by deleting its admin
//! dir; it never runs `git worktree prune`, which would also drop the registration of every
//! other worktree whose directory is only momentarily missing.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::fs::{remove_any, remove_tree};
use crate::git::repo::Repo;
use crate::ledger::LedgerFile;
use crate::proc::lock::FileLock;
use crate::{git, Error};

/// The branch a removal deletes, and the commit it was judged at (merged, or the one merged):
/// a branch found elsewhere once its worktree is gone (the agent committed after the judgement)
/// is kept, with its commits.
#[derive(Debug, Clone, Copy)]
pub struct Branch<'a> {
    pub name: &'a str,
    /// `None`: judged at no particular commit (`--force` on a branch git could not read).
    pub judged_at: Option<&'a str>,
}

/// Removes the worktree at `path` (if it is still there), deletes `branch` (if given, and
/// still at the commit it was judged at; else it is kept and the reason returned) and
/// forgets `name` in the ledger. `force` removes it even with local changes. The caller holds
/// the repository's worktree lock (`Repo::worktree_lock`) and passes it as proof: taking it
/// here again would deadlock. A database the worktree held is kept, and listed in the ledger
/// as kept (see `kept_db`), so that it is never handed to another worktree and can still be
/// dropped by name.
pub fn remove(
    locked: &FileLock,
    repo: &Repo,
    ledger: &LedgerFile,
    name: &str,
    path: Option<&Path>,
    branch: Option<Branch<'_>>,
    force: bool,
) -> Result<Option<String>, Error> {
    if let Some(path) = path {
        let registered = || repo.worktrees().is_ok_and(|all| all.iter().any(|w| w.path == path));
        if path.exists() && (!path.join(".git").exists() || !registered()) {
            // What a removal killed (or disturbed) half-way left: no longer a worktree, so git
            // refuses it.
            if !force {
                return Err(Error::failed(
                    "half-removed",
                    format!(
                        "{} is no longer a worktree (a removal was killed half-way?); pass --force to delete what is left",
                        path.display()
                    ),
                ));
            }
            remove_tree(path).map_err(|e| Error::io(path.display(), e))?;
        }
        if path.exists() {
            // Never on a tampered worktree: git would find it by a `gitdir` the agent rewrote.
            let reg = crate::git::worktree_check::verify(repo, path)?;
            crate::git::worktree_check::refuse_foreign_claims(repo, &reg)?;
            let mut cmd = git::about_worktrees(repo.git_dir(), &repo.common_dir);
            // git's own clean-check must not leave an index.lock in a worktree that survives
            // when it is killed.
            cmd.env("GIT_OPTIONAL_LOCKS", "0").args(["worktree", "remove"]);
            if force {
                cmd.arg("--force");
            }
            // Killed with this process, git still deletes for a moment: noted with the lock, so
            // that no other run finds the directory half-deleted meanwhile.
            match git::output_under(cmd.arg(&reg.path), locked) {
                Ok(_) => {}
                // git refuses a worktree whose files a killed git left half-written (a cut-off
                // `.git`, an admin dir without HEAD); forced, its directory and its own admin
                // dir (as the registration names it) go all the same.
                Err(e) if force => {
                    tracing::warn!("{}: {}; removing it directly", reg.path.display(), e.message);
                    remove_tree(&reg.path).map_err(|e| Error::io(reg.path.display(), e))?;
                    remove_any(&reg.admin_dir).map_err(|e| Error::io(reg.admin_dir.display(), e))?;
                }
                Err(e) => return Err(e),
            }
        }
        unregister(locked, repo, path);
    }
    let mut kept = None;
    if let Some(Branch { name: branch, judged_at }) = branch {
        let full = format!("refs/heads/{branch}");
        clear_stale_branch_lock(repo, branch);
        // With its worktree gone, nothing of the agent's can move the branch any more: what it
        // is at now is what deleting it would lose.
        match git::run(repo.git_dir(), ["rev-parse", "--verify", "-q", &full]) {
            Ok(now) if judged_at.is_some_and(|at| at != now) => {
                let at = judged_at.unwrap_or_default();
                let why = format!(
                    "branch '{branch}' kept: it moved from {} to {} after it was checked (a commit made meanwhile); delete it with `git branch -D {branch}` if that work is not wanted",
                    crate::git::refs::short(at),
                    crate::git::refs::short(&now)
                );
                tracing::warn!("{why}");
                kept = Some(why);
            }
            Ok(_) => {
                let mut cmd = git::about_worktrees(repo.git_dir(), &repo.common_dir);
                git::output_under(cmd.args(["branch", "-D", "--quiet", branch]), locked)?;
            }
            Err(_) => {}
        }
    }
    // What its runs, rounds and merges came to: nobody asks about them any more. Before the
    // ledger entry goes, so that a removal killed in between is finished by the next one (which
    // finds the entry) rather than leaving them to a worktree made again under the name.
    crate::ledger::outcome::forget(&repo.state_dir(), name);
    let _ = fs::remove_file(crate::ledger::shared_dirs::file(&repo.state_dir(), name));
    // Its best commit so far (wt-watch's): no round will be compared with it again.
    crate::git::best::forget(repo, name);
    // Its confined runs' private git store (published by the caller before it judged the branch).
    crate::confine::store::remove(&repo.common_dir, name)?;
    ledger.update_then(
        |l| {
            let removed = l.worktrees.remove(name);
            if let Some(entry) = &removed {
                crate::ledger::kept_db::keep(l, name, entry);
            }
            Ok(removed)
        },
        |removed| {
            // Its port block is free on the whole machine again, once the ledger says so: freed
            // before, a kill in between left a block this ledger holds free to another
            // repository. (A registry that cannot be reached now finds the claim stale at its
            // next lease.)
            if removed.as_ref().and_then(crate::ledger::lease::block_of).is_some() {
                if let Ok(machine) = crate::ledger::machine_ports::Registry::lock(Duration::from_secs(5)) {
                    machine.release(&repo.common_dir, name);
                }
            }
        },
    )?;
    Ok(kept)
}

/// Deletes what git still holds of the worktree at `path` once its directory is gone: its
/// admin dir (the one whose `gitdir` names `path/.git`), or the one a killed removal left
/// half-deleted: named after `path` (git's name, maybe with a number added), without `gitdir`
/// and without git's `locked` marker, so git no longer lists it. Call under the worktree lock.
pub fn unregister(_locked: &FileLock, repo: &Repo, path: &Path) {
    if path.exists() {
        return;
    }
    let dot_git = path.join(".git");
    let base = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let Ok(entries) = fs::read_dir(repo.common_dir.join("worktrees")) else { return };
    for admin in entries.flatten().map(|e| e.path()) {
        let ours = match crate::fs::read_small(&admin.join("gitdir")).text() {
            Some(gitdir) => Path::new(gitdir.trim_end()) == dot_git,
            None => is_named_after(&admin, base) && !admin.join("locked").exists(),
        };
        if ours {
            tracing::info!("unregistering {} (its directory is gone)", admin.display());
            let _ = remove_any(&admin);
        }
    }
}

/// Whether the admin dir `admin`, whose `gitdir` file holds `gitdir`, is one a `git worktree
/// add` of a worktree at `expected` (or under it) was killed in while writing that file: git's
/// "initializing" lock is still there, and `gitdir` is a cut-off start of the path. git writes
/// the file with one `write` after creating it, so a git killed in between (likely when the
/// disk is slow: the kill lands during the creation, which completes, and git dies before the
/// write) leaves it empty, and a short write leaves a prefix. A whole `gitdir` ends with a
/// newline.
pub fn killed_writing_gitdir(admin: &Path, gitdir: &str, expected: &Path) -> bool {
    admin.join("locked").exists()
        && !gitdir.ends_with('\n')
        && expected.as_os_str().as_encoded_bytes().starts_with(gitdir.as_bytes())
}

/// git names an admin dir after the worktree's directory, adding a number when that is taken.
pub fn is_named_after(admin: &Path, base: &str) -> bool {
    let name = admin.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    !base.is_empty() && name.strip_prefix(base).is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit()))
}

/// A git killed while it moved `branch` (a commit in its worktree, say) leaves the branch's
/// lock file (or that of packed-refs), and every later change to the branch fails until it is
/// gone. `git branch -D` also rewrites the config (dropping `branch.<b>.*`) under `config.lock`:
/// killed there, it leaves a lock that makes every later config write fail (`git config`,
/// `git remote add`), while `branch -D` itself only warns. Each is removed only when provably
/// stale (see `stale_lock`).
pub fn clear_stale_branch_lock(repo: &Repo, branch: &str) {
    // Deleting a branch also takes the locks of packed-refs and the config.
    for lock in [format!("refs/heads/{branch}.lock"), "packed-refs.lock".to_string(), "config.lock".to_string()] {
        if let Err(kept) = crate::proc::stale_lock::clear(repo, &repo.common_dir.join(&lock)) {
            tracing::debug!("{lock} kept: {kept}");
        }
    }
}
