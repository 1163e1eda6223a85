//! Claiming a pooled worktree for `wt-create NAME`: a rename and a branch, not a checkout.
//!
//! Under the worktree lock (the caller's), a ready pooled worktree whose fingerprint is this
//! run's and whose commit is the base's (or a few files behind it) gets a journal that says what
//! it becomes; then, each step redoable by whoever finds the claimer dead (`finish`):
//! its admin dir is marked `locked` (so `git worktree list` never calls it prunable while its
//! paths change), its directory is renamed `<root>/<name>`, its admin dir
//! `.git/worktrees/<name>` (or `<name>1`, … as git would name it), the two links between them
//! are rewritten, it is advanced to the base's commit if it was behind, branch `wt/<name>` is
//! made at its HEAD and HEAD is pointed at it (no file is touched: the index already matches),
//! the ledger gets the entry a fresh create writes, and the journal goes. The worktree then has
//! the path, branch, admin dir and entry a fresh `wt-create NAME` gives it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;
use wt_common::git::repo::GitWorktree;
use wt_common::ledger::Entry;
use wt_common::proc::lock::FileLock;
use wt_common::{git, proc::failpoint, Error, Record};

use super::{Claim, Pooled, State};
use crate::context::{Base, Context, TOOL};
use crate::pending::{Marker, MADE_BY};

/// Set once this run has claimed a pooled worktree: the pool then needs a refill.
static CLAIMED: AtomicBool = AtomicBool::new(false);

pub fn claimed_any() -> bool {
    CLAIMED.load(Ordering::SeqCst)
}

/// Claims a pooled worktree as `name` (no worktree, directory or branch of that name exists);
/// `None` when none matches. The caller holds the worktree lock (`_worktree_lock`) throughout.
pub fn try_claim(ctx: &Context, _worktree_lock: &FileLock, base: &Base, name: &str) -> Option<Result<Record, Error>> {
    let pool = super::read_all(ctx);
    if pool.is_empty() {
        return None;
    }
    let fingerprint = super::fingerprint::of(ctx);
    let ready: Vec<Pooled> = pool
        .into_iter()
        .filter(|p| p.state == State::Ready && p.fingerprint == fingerprint && super::is_pooled_path(ctx, &p.path))
        .collect();
    // One at the base's commit first; else one a few files behind it.
    let exact = ready.iter().filter(|p| p.commit == base.commit);
    let behind = ready.iter().filter(|p| p.commit != base.commit);
    let mut advanceable = std::collections::HashMap::new();
    for pooled in exact.chain(behind) {
        if pooled.commit != base.commit
            && !*advanceable
                .entry(pooled.commit.clone())
                .or_insert_with(|| super::fill::advanceable(ctx, &pooled.commit, &base.commit))
        {
            continue;
        }
        let Ok(Some(held)) = pooled.try_lock(ctx) else { continue };
        let path = ctx.root.join(name);
        let claim = Claim {
            name: name.to_string(),
            path,
            branch: format!("wt/{name}"),
            admin: free_admin_name(&ctx.repo.common_dir.join("worktrees"), name),
            commit: base.commit.clone(),
            base: base.name.clone(),
            made_by: Marker::new_id(),
        };
        let mut claiming = pooled.clone();
        claiming.state = State::Claiming;
        claiming.claim = Some(claim.clone());
        if let Err(e) = claiming.save(ctx) {
            return Some(Err(e));
        }
        failpoint::hit("claim-journal");
        CLAIMED.store(true, Ordering::SeqCst);
        tracing::info!("claiming pooled worktree {} as '{name}'", pooled.id);
        return Some(finish(ctx, &claiming, &claim, &held).map(|entry| record(ctx, pooled, &claim, &entry)));
    }
    None
}

/// The admin dir name git gives a new worktree `name`: `name`, else `name1`, `name2`, …
fn free_admin_name(admin_root: &Path, name: &str) -> String {
    if admin_root.join(name).symlink_metadata().is_err() {
        return name.to_string();
    }
    (1..).map(|k| format!("{name}{k}")).find(|n| admin_root.join(n).symlink_metadata().is_err()).expect("a free name")
}

/// Does (or redoes) every step of a claim; returns the ledger entry. Each step checks whether
/// it was done already, so a claimer killed at any point is finished by the next run.
pub fn finish(ctx: &Context, pooled: &Pooled, c: &Claim, held: &FileLock) -> Result<Entry, Error> {
    let admin_root = ctx.repo.common_dir.join("worktrees");
    let (old_admin, new_admin) = (admin_root.join(&pooled.id), admin_root.join(&c.admin));
    let io = |what: &Path, e: std::io::Error| Error::io(what.display(), e);
    if old_admin.is_dir() && new_admin.symlink_metadata().is_err() {
        std::fs::write(old_admin.join("locked"), "wt-create: claiming a pooled worktree\n")
            .map_err(|e| io(&old_admin, e))?;
    }
    if pooled.path.is_dir() && c.path.symlink_metadata().is_err() {
        std::fs::rename(&pooled.path, &c.path).map_err(|e| io(&c.path, e))?;
    }
    failpoint::hit("claim-moved");
    if old_admin.is_dir() && new_admin.symlink_metadata().is_err() {
        std::fs::rename(&old_admin, &new_admin).map_err(|e| io(&new_admin, e))?;
    }
    failpoint::hit("claim-admin-moved");
    if !new_admin.is_dir() || !c.path.is_dir() {
        return Err(Error::failed(
            "claim-lost",
            format!("pooled worktree {} is gone (its directory or git's admin dir); nothing was claimed", pooled.id),
        ));
    }
    let dot_git = c.path.join(".git");
    write_replace(&dot_git, format!("gitdir: {}\n", new_admin.display()))?;
    write_replace(&new_admin.join("gitdir"), format!("{}\n", dot_git.display()))?;
    failpoint::hit("claim-linked");
    if super::admin_head(&new_admin).is_some_and(|head| head != c.commit) {
        // Behind the base by a few files (`fill::advanceable`): checked out forward. Forced, as
        // a checkout a killed claimer left half done is redone: nothing in it is anyone's work.
        let mut checkout = git::command(&c.path);
        checkout.args(["-c", "core.hooksPath=/dev/null", "checkout", "--quiet", "--force", "--detach", &c.commit]);
        git::output(&mut checkout)?;
    }
    failpoint::hit("claim-advanced");
    let mut entry = Entry::new(c.path.clone());
    entry.branch = Some(c.branch.clone());
    entry.base = Some(c.base.clone());
    entry.base_commit = Some(c.commit.clone());
    entry.branch_created = true;
    entry.extra.insert(MADE_BY.into(), json!(c.made_by));
    let record_entry = |l: &mut wt_common::ledger::Ledger| {
        match l.worktrees.get(&c.name) {
            // Leases a post-checkout hook took meanwhile stay; so does a finished claim's entry.
            Some(old) if old.path == entry.path => {}
            Some(old) => {
                let old = old.clone();
                wt_common::ledger::kept_db::keep(l, &c.name, &old);
                l.worktrees.insert(c.name.clone(), entry.clone());
            }
            None => {
                l.worktrees.insert(c.name.clone(), entry.clone());
            }
        }
        Ok(())
    };
    // The ledger's entry is written and synced aside while git makes the branch (the sync is
    // most of a ledger write), and put in place by a rename once HEAD names the branch.
    let staged = match super::branch_exists(ctx, &c.branch) {
        true => None,
        false => {
            let mut branch = git::command(ctx.repo.git_dir());
            branch.args(["branch", "--quiet", &c.branch, &c.commit]);
            let (staged, made) = git::output_under_while(&mut branch, held, || ctx.ledger.stage(record_entry));
            made?;
            Some(staged)
        }
    };
    failpoint::hit("claim-branched");
    write_replace(&new_admin.join("HEAD"), format!("ref: refs/heads/{}\n", c.branch))?;
    let state = ctx.repo.state_dir();
    let (note_from, note_to) = (
        wt_common::ledger::shared_dirs::file(&state, &pooled.id),
        wt_common::ledger::shared_dirs::file(&state, &c.name),
    );
    if note_from.exists() {
        std::fs::rename(&note_from, &note_to).map_err(|e| io(&note_to, e))?;
    }
    match staged {
        Some(Ok(staged)) => ctx.ledger.commit(staged, record_entry)?,
        _ => ctx.ledger.update(record_entry)?,
    }
    failpoint::hit("claim-recorded");
    let _ = std::fs::remove_file(new_admin.join("locked"));
    pooled.forget(ctx);
    Ok(entry)
}

fn write_replace(path: &Path, text: String) -> Result<(), Error> {
    wt_common::fs::write_replace(path, text.as_bytes()).map_err(|e| Error::io(path.display(), e))
}

/// The record of a fresh create, plus `"claimed": true` and the commit the pooled worktree was
/// made at (`pool_base`).
fn record(ctx: &Context, pooled: &Pooled, c: &Claim, entry: &Entry) -> Record {
    let wt = GitWorktree {
        path: c.path.clone(),
        head: Some(c.commit.clone()),
        branch: Some(c.branch.clone()),
        ..Default::default()
    };
    let mut rec = ctx.record(&c.name, &wt, Some(entry));
    rec.created = Some(true);
    if let Some(share) = &pooled.share {
        rec.set_key("share", share.clone());
    }
    rec.set_key("claimed", json!(true));
    rec.set_key("pool_base", json!(pooled.commit));
    rec
}

/// After the claim, outside the worktree lock: the post-checkout hook, as git runs it after
/// `git worktree add` (a fresh create runs it after its checkout).
pub fn after(ctx: &Context, rec: &mut Record) {
    if rec.has_error() || rec.key("claimed").is_none() {
        return;
    }
    let (Some(path), Some(head)) = (rec.path.clone(), rec.head.clone()) else { return };
    if let Err(e) = ctx.repo.run_post_checkout_hook(&path, &head) {
        rec.set_error(TOOL, &e);
    }
}
