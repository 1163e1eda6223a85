//! `--remove`: removes worktrees and the branches wt-create made, and forgets their leases.
//! A worktree with uncommitted changes, or a branch with commits not in its base, is refused
//! unless `--force`: removing it would lose work.

use std::path::PathBuf;

use wt_common::ledger::Entry;
use wt_common::output::Output;
use wt_common::repo::GitWorktree;
use wt_common::worktree_check::Registered;
use wt_common::{git, Error, Record};

use crate::context::{Context, Snapshot, TOOL};
use crate::create::Want;

pub fn run(ctx: &Context, wants: &[Want], force: bool, out: &mut Output) -> Result<(), Error> {
    for want in wants {
        let rec = remove_one(ctx, want, force).unwrap_or_else(|(name, e)| Record::failed(&name, TOOL, &e));
        out.emit(&rec);
        if out.closed() {
            break;
        }
    }
    Ok(())
}

type Failure = (String, Error);

fn remove_one(ctx: &Context, want: &Want, force: bool) -> Result<Record, Failure> {
    let label = match want {
        Want::Name(n) => n.clone(),
        Want::Path(p) => p.display().to_string(),
    };
    let lock = ctx.worktree_lock().map_err(|e| (label.clone(), e))?;
    let snap = Snapshot::take(ctx).map_err(|e| (label.clone(), e))?;
    let (name, wt, entry) = find(ctx, &snap, want).map_err(|e| (label.clone(), e))?;
    let fail = |e: Error| (name.clone(), e);
    // A confined run's commits must be on the branch before it is judged merged or not;
    // `--force` removes the worktree even when they cannot be published.
    if let Err(e) = wt_common::confine_store::publish(&ctx.repo.common_dir, &name) {
        if !force {
            return Err(fail(e));
        }
        tracing::warn!("{name}: {e}");
    }
    // A directory that is gone holds no work to lose and no files to check.
    let reg = match wt.path.exists() {
        true => Some(wt_common::worktree_check::verify(&ctx.repo, &wt.path).map_err(fail)?),
        false => None,
    };
    let delete_branch = entry.as_ref().is_some_and(|e| e.branch_created) && wt.branch.is_some();
    if !force {
        if let Some(reg) = &reg {
            refuse_dirty(reg).map_err(fail)?;
        }
        if delete_branch {
            refuse_unmerged(ctx, &wt, entry.as_ref()).map_err(fail)?;
        }
    }
    let branch = wt.branch.as_deref().filter(|_| delete_branch);
    tracing::info!("removing '{name}' at {} (branch {})", wt.path.display(), branch.unwrap_or("kept"));
    wt_common::worktree::remove(&lock, &ctx.repo, &ctx.ledger, &name, Some(&wt.path), branch, force).map_err(fail)?;
    let mut rec = ctx.record(&name, &wt, entry.as_ref());
    rec.removed = Some(true);
    Ok(rec)
}

/// The worktree a name or path stands for, with its ledger entry.
fn find(ctx: &Context, snap: &Snapshot, want: &Want) -> Result<(String, GitWorktree, Option<Entry>), Error> {
    let (name, wt) = match want {
        Want::Name(n) => {
            wt_common::name::validate(n).map_err(|e| Error::failed("bad-name", e.message))?;
            let wt = snap
                .managed(n)
                .map(|(_, w)| w)
                .or_else(|| snap.worktree_at(&ctx.root.join(n)))
                .or_else(|| snap.worktree_on_branch(&format!("wt/{n}")));
            (n.clone(), wt)
        }
        Want::Path(p) => {
            let canonical = p.canonicalize().unwrap_or_else(|_| PathBuf::from(p));
            let name =
                snap.ledger.name_of_path(&canonical).map(str::to_string).unwrap_or_else(|| {
                    canonical.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
                });
            (name, snap.worktree_at(&canonical))
        }
    };
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
    Ok((name, wt.clone(), entry))
}

fn refuse_dirty(wt: &Registered) -> Result<(), Error> {
    let mut cmd = git::in_worktree(wt);
    let out = git::output(cmd.args(["status", "--porcelain", "-z", "--ignore-submodules=none"]))?;
    let changed = out.stdout.split(|b| *b == 0).filter(|s| !s.is_empty()).count();
    if changed > 0 {
        return Err(Error::failed(
            "dirty",
            format!(
                "{} has {changed} uncommitted change(s); commit or stash them, or pass --force to discard them",
                wt.path.display()
            ),
        ));
    }
    Ok(())
}

/// Refuses when the branch has commits its base does not (they would be lost with it).
fn refuse_unmerged(ctx: &Context, wt: &GitWorktree, entry: Option<&Entry>) -> Result<(), Error> {
    let (Some(head), Some(branch)) = (&wt.head, &wt.branch) else { return Ok(()) };
    let dir = ctx.repo.git_dir();
    let target = entry
        .and_then(|e| e.base.as_deref())
        .filter(|b| git::run(dir, ["rev-parse", "--verify", "-q", &format!("{b}^{{commit}}")]).is_ok())
        .unwrap_or("HEAD");
    let ahead = git::run(dir, ["rev-list", "--count", &format!("{target}..{head}")])?;
    if ahead.trim() != "0" {
        return Err(Error::failed(
            "unmerged",
            format!("branch {branch} has {ahead} commit(s) not in {target}; merge them first (wt-merge), or pass --force to delete them"),
        ));
    }
    Ok(())
}
