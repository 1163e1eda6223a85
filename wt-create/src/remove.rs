//! `--remove`: removes worktrees and the branches wt-create made, and forgets their leases.
//! A worktree with uncommitted changes, or a branch with commits not in its base, is refused
//! unless `--force`: removing it would lose work.

use std::path::{Path, PathBuf};

use wt_common::git::repo::GitWorktree;
use wt_common::git::worktree;
use wt_common::git::worktree_check::Registered;
use wt_common::ledger::Entry;
use wt_common::record::output::Output;
use wt_common::{git, Error, Record};

use crate::context::{Context, Snapshot, TOOL};
use crate::create::Want;

/// How one worktree is removed.
#[derive(Debug, Clone, Copy, Default)]
pub struct How {
    /// `--force`: even with uncommitted changes or unmerged commits; ends its panes.
    pub force: bool,
    /// End the panes running there rather than refuse (`--purge` does, without `--force`).
    pub end_panes: bool,
    /// Only check that it could be removed (nothing is removed; the record says `removed`
    /// false).
    pub check_only: bool,
    /// Commits on a remote-tracking branch count as kept (`--gc --remove-idle`: a pushed
    /// branch loses nothing with its worktree).
    pub pushed_is_kept: bool,
}

pub fn run(ctx: &Context, wants: &[Want], force: bool, out: &mut Output) -> Result<(), Error> {
    for want in wants {
        let how = How { force, end_panes: force, ..How::default() };
        let rec = remove_one(ctx, want, how).unwrap_or_else(|(name, e)| Record::failed(&name, TOOL, &e));
        out.emit(&rec);
        if out.closed() {
            break;
        }
    }
    Ok(())
}

pub type Failure = (String, Error);

/// Removes one worktree (or, `check_only`, says whether it could be); the failure carries the
/// worktree's name.
pub fn remove_one(ctx: &Context, want: &Want, how: How) -> Result<Record, Failure> {
    let force = how.force;
    let label = match want {
        Want::Name(n) => n.clone(),
        Want::Path(p) => p.display().to_string(),
    };
    let lock = ctx.worktree_lock().map_err(|e| (label.clone(), e))?;
    // A worktree a killed wt-create left half-made is rolled back first, as the next
    // wt-create would: git cannot remove it (its `.git` file may be cut off). Locks a killed
    // git left go before (the rollback deletes a branch, which takes `packed-refs.lock`).
    wt_common::proc::stale_lock::sweep_repository(&ctx.repo);
    crate::pending::reap_dead(&ctx.repo, &ctx.ledger).map_err(|e| (label.clone(), e))?;
    wt_common::fs::sweep_removing(&ctx.root);
    let snap = Snapshot::take(ctx).map_err(|e| (label.clone(), e))?;
    let (name, wt, entry) = find(ctx, &snap, want).map_err(|e| (label.clone(), e))?;
    let fail = |e: Error| (name.clone(), e);
    // A confined run's commits must be on the branch before it is judged merged or not;
    // `--force` removes the worktree even when they cannot be published.
    if let Err(e) = wt_common::confine::store::publish(&ctx.repo.common_dir, &name) {
        if !force {
            return Err(fail(e));
        }
        tracing::warn!("{name}: {e}");
    }
    // Without a ledger entry (released by `wt-env --gc`), a `wt/<name>` branch is taken as
    // made by wt-create, as adopting does.
    let made_by_us = match &entry {
        Some(e) => e.branch_created,
        None => wt.branch.as_deref() == Some(&format!("wt/{name}")),
    };
    // git may not name the branch of a worktree whose admin dir is broken; the ledger does.
    let branch_name = wt.branch.clone().or_else(|| entry.as_ref().and_then(|e| e.branch.clone()));
    let delete_branch = made_by_us && branch_name.is_some();
    // The branch as it is now, after the publish above (which may have moved it): what is
    // judged merged, and what a delete may take; one that moves after this is kept.
    let head = branch_name
        .as_deref()
        .and_then(|b| git::run(ctx.repo.git_dir(), ["rev-parse", "--verify", "-q", &format!("refs/heads/{b}")]).ok())
        .or_else(|| wt.head.clone());
    // A directory that is gone, or no longer a worktree (what a killed removal left), holds no
    // files to check.
    let reg = match wt.path.join(".git").exists() && !wt.prunable {
        true => Some(wt_common::git::worktree_check::verify(&ctx.repo, &wt.path).map_err(fail)?),
        false => None,
    };
    if let Some(reg) = &reg {
        clear_stale_index_lock(&ctx.repo, reg);
    }
    if !force {
        if let Some(reg) = &reg {
            refuse_dirty(reg).map_err(fail)?;
        }
        if let (true, Some(branch), Some(head)) = (delete_branch, &branch_name, &head) {
            refuse_unmerged(ctx, &format!("branch {branch}"), head, entry.as_ref(), how.pushed_is_kept)
                .map_err(fail)?;
        }
        // A detached HEAD (an agent's `git checkout --detach`, a rebase stopped half way) may
        // hold commits of its own: they go with the worktree's admin dir and its reflog.
        if let (None, Some(detached)) = (&wt.branch, &wt.head) {
            if head.as_deref() != Some(detached.as_str()) {
                refuse_unmerged(ctx, "its detached HEAD", detached, entry.as_ref(), how.pushed_is_kept)
                    .map_err(fail)?;
            }
        }
    }
    if how.check_only {
        let mut rec = ctx.record(&name, &wt, entry.as_ref());
        rec.removed = Some(false);
        return Ok(rec);
    }
    wt_common::proc::failpoint::hit("remove-checked");
    // An agent working in it would go on in a deleted directory, holding the name.
    wt_common::proc::panes::end_or_refuse(&ctx.repo, &wt.path, force || how.end_panes).map_err(fail)?;
    // Ended now, but still listed: their logs go with the worktree.
    let panes = wt_common::proc::panes::listed_in(&ctx.repo, &wt.path).unwrap_or_default();
    let branch = branch_name.as_deref().filter(|_| delete_branch);
    tracing::info!("removing '{name}' at {} (branch {})", wt.path.display(), branch.unwrap_or("kept"));
    let branch = branch.map(|name| worktree::Branch { name, judged_at: head.as_deref() });
    let kept = worktree::remove(&lock, &ctx.repo, &ctx.ledger, &name, Some(&wt.path), branch, force).map_err(fail)?;
    // The logs of its panes (and of a pane named after it, whose supervisor may be gone): a
    // pane log can be 16 MiB a part.
    let logs = ctx.repo.state_dir().join("logs");
    for pane in panes.iter().map(|p| p.name.as_str()).chain([name.as_str()]) {
        wt_common::record::pane_logs::forget(&logs, pane);
    }
    let mut rec = ctx.record(&name, &wt, entry.as_ref());
    rec.removed = Some(true);
    if let Some(why) = kept {
        eprintln!("wt-create: {name}: {why}");
        rec.set_key("branch_kept", serde_json::json!(why));
    }
    Ok(rec)
}

/// The worktree a name or path stands for, with its ledger entry.
fn find(ctx: &Context, snap: &Snapshot, want: &Want) -> Result<(String, GitWorktree, Option<Entry>), Error> {
    // The ledger's path for what is left of a worktree git no longer lists: for a path, only
    // if the ledger has an entry at exactly that path.
    let (name, wt, ledger_path) = match want {
        Want::Name(n) => {
            wt_common::ledger::name::validate(n).map_err(|e| Error::failed("bad-name", e.message))?;
            let wt = snap
                .managed(n)
                .map(|(_, w)| w)
                .or_else(|| snap.worktree_at(&ctx.root.join(n)))
                .or_else(|| snap.worktree_on_branch(&format!("wt/{n}")));
            (n.clone(), wt, snap.ledger.worktrees.get(n).map(|e| e.path.clone()))
        }
        Want::Path(p) => {
            let canonical = p.canonicalize().unwrap_or_else(|_| PathBuf::from(p));
            let in_ledger = snap.ledger.name_of_path(&canonical).map(str::to_string);
            let name = in_ledger
                .clone()
                .unwrap_or_else(|| canonical.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
            (name, snap.worktree_at(&canonical), in_ledger.map(|_| canonical))
        }
    };
    // A removal killed after git let go of the worktree leaves its branch and ledger entry:
    // finishing it is removing what is left.
    let wt = wt.cloned().or_else(|| ledger_path.and_then(|p| leftover(ctx, snap, &name, &p)));
    let Some(wt) = wt else {
        return Err(Error::failed(
            "no-such-worktree",
            format!("no worktree '{name}' in this repository (see `wt-create --list`)"),
        ));
    };
    if snap.worktrees.first().is_some_and(|main| main.path == wt.path) {
        return Err(Error::failed(
            "main-worktree",
            format!("{} is the main worktree; it is never removed", wt.path.display()),
        ));
    }
    let entry = snap.ledger.worktrees.get(&name).filter(|e| e.path == wt.path).cloned();
    Ok((name, wt, entry))
}

/// A managed worktree git no longer lists, as far as the ledger and its branch still hold it.
fn leftover(ctx: &Context, snap: &Snapshot, name: &str, path: &Path) -> Option<GitWorktree> {
    let entry = snap.ledger.worktrees.get(name).filter(|e| e.path == path)?;
    // Its directory may still exist, half-deleted: removing it needs --force (see
    // `wt_common::git::worktree::remove`).
    let branch = entry.branch.clone().filter(|b| snap.worktree_on_branch(b).is_none());
    let head = branch
        .as_deref()
        .and_then(|b| git::run(ctx.repo.git_dir(), ["rev-parse", "--verify", "-q", &format!("refs/heads/{b}")]).ok());
    let branch = branch.filter(|_| head.is_some());
    Some(GitWorktree { path: entry.path.clone(), head, branch, prunable: true, ..Default::default() })
}

/// A git killed in this worktree (a removal killed during its check, say) may have left its
/// `index.lock`; while it is there, every commit in the worktree fails.
fn clear_stale_index_lock(repo: &wt_common::git::repo::Repo, wt: &Registered) {
    if let Err(kept) = wt_common::proc::stale_lock::clear(repo, &wt.admin_dir.join("index.lock")) {
        tracing::debug!("{}/index.lock kept: {kept}", wt.admin_dir.display());
    }
}

/// Refuses a worktree with uncommitted changes, or with checked-out submodules, whose own
/// changes wt does not look at: git would look by running code the agent could have planted
/// in their config (`checkout_state::status_command`).
fn refuse_dirty(wt: &Registered) -> Result<(), Error> {
    let changed = wt_common::git::checkout_state::changed_paths(wt)?;
    if !changed.is_empty() {
        return Err(Error::failed(
            "dirty",
            format!(
                "{} has {}; commit or stash them, or pass --force to discard them",
                wt.path.display(),
                wt_common::git::checkout_state::changes_named(&changed)
            ),
        ));
    }
    let submodules = wt_common::git::checkout_state::populated_submodules(wt)?;
    if !submodules.is_empty() {
        return Err(Error::failed(
            "dirty",
            format!(
                "{} has submodules ({}) whose own changes wt does not check (that would run code from their config); check them yourself, then pass --force",
                wt.path.display(),
                submodules.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Refuses when `head` has commits its base does not (they would be lost with it). `what` names
/// it: `branch wt/NAME` (the ledger's branch, whether or not the worktree has it checked out: a
/// worktree with a detached HEAD still owns it), or its detached HEAD.
fn refuse_unmerged(
    ctx: &Context,
    what: &str,
    head: &str,
    entry: Option<&Entry>,
    pushed_is_kept: bool,
) -> Result<(), Error> {
    let dir = ctx.repo.git_dir();
    let target = entry
        .and_then(|e| e.base.as_deref())
        .filter(|b| git::run(dir, ["rev-parse", "--verify", "-q", &format!("{b}^{{commit}}")]).is_ok())
        .unwrap_or("HEAD");
    let ahead = match pushed_is_kept {
        true => git::run(dir, ["rev-list", "--count", head, "--not", target, "--remotes"])?,
        false => git::run(dir, ["rev-list", "--count", &format!("{target}..{head}")])?,
    };
    if ahead.trim() != "0" {
        return Err(Error::failed(
            "unmerged",
            format!("{what} has {ahead} commit(s) not in {target}; merge them first (wt-merge), or pass --force to delete them"),
        ));
    }
    Ok(())
}
