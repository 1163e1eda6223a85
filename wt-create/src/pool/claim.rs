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

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::json;
use wt_common::git::repo::GitWorktree;
use wt_common::ledger::Entry;
use wt_common::proc::lock::FileLock;
use wt_common::{git, proc::failpoint, Error, Record};

use super::{Claim, Pooled, State};
use crate::context::{Base, Context, TOOL};
use crate::pending::{Marker, MADE_BY};

/// The bases whose pools this run claimed from: each then needs a refill.
static CLAIMED_FROM: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

pub fn claimed_from() -> BTreeSet<String> {
    CLAIMED_FROM.lock().map(|b| b.clone()).unwrap_or_default()
}

/// Claims a pooled worktree as `name` (no worktree, directory or branch of that name exists);
/// `None` when none matches. The caller holds the worktree lock (`_worktree_lock`) throughout.
pub fn try_claim(ctx: &Context, _worktree_lock: &FileLock, base: &Base, name: &str) -> Option<Result<Record, Error>> {
    let pool = super::read_all(ctx);
    if pool.is_empty() {
        return None;
    }
    let fingerprint = super::fingerprint::of(ctx);
    let mut ready: Vec<Pooled> = pool
        .into_iter()
        .filter(|p| p.state == State::Ready && p.fingerprint == fingerprint && super::is_pooled_path(ctx, &p.path))
        .collect();
    // One of this base's pool first (another base's pool is left for its own claims), at the
    // base's commit first; else one a few files behind it.
    ready.sort_by_key(|p| (p.base != base.name, p.commit != base.commit));
    let mut advanceable = std::collections::HashMap::new();
    for pooled in &ready {
        if pooled.commit != base.commit
            && !*advanceable
                .entry(pooled.commit.clone())
                .or_insert_with(|| super::fill::advanceable(ctx, &pooled.commit, &base.commit))
        {
            continue;
        }
        let Ok(Some(held)) = pooled.try_lock(ctx) else { continue };
        if !whole(ctx, pooled) {
            // Its directory or its admin dir is gone or not wt's: nothing there to claim.
            tracing::warn!("pooled worktree {} is gone or not whole; dropping it", pooled.id);
            super::remove(ctx, pooled);
            continue;
        }
        // The seal answers in a few hundred lstat calls; only a broken one (or none) costs a
        // read of the whole checkout.
        if !super::seal::intact(ctx, pooled) && !super::untouched::untouched(ctx, pooled) {
            // Written into (or a git died in it): not what a fresh create makes. Replaced.
            tracing::warn!("pooled worktree {} was changed since it was filled; removing it", pooled.id);
            super::remove(ctx, pooled);
            continue;
        }
        let made_at = pooled.commit.clone();
        let pooled = &match advance_in_pool(ctx, pooled, &base.commit, &held) {
            Some(advanced) => advanced,
            None => continue,
        };
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
        if let Ok(mut from) = CLAIMED_FROM.lock() {
            from.insert(pooled.base.clone());
        }
        tracing::info!("claiming pooled worktree {} as '{name}'", pooled.id);
        match finish(ctx, &claiming, &claim, &held) {
            Ok(entry) => return Some(Ok(record(ctx, pooled, &made_at, &claim, &entry))),
            Err(e) => {
                // Failed before the ledger knew it (the ledger write is its last fallible
                // step): put back in the pool, and a fresh create tries (and reports what fails).
                tracing::warn!("claiming pooled worktree {} as '{name}': {}; putting it back", pooled.id, e.message);
                undo(ctx, &claiming, &claim);
                continue;
            }
        }
    }
    None
}

/// Moves a pooled worktree that is a few files behind to `commit` while it is still in the
/// pool (journal `advancing`: killed here, the next run removes it, as it removes a fill's
/// advance, so a half-done checkout is never claimed); `None` if the checkout failed (it is
/// removed then).
fn advance_in_pool(ctx: &Context, pooled: &Pooled, commit: &str, held: &FileLock) -> Option<Pooled> {
    if pooled.commit == commit {
        return Some(pooled.clone());
    }
    let mut advancing = pooled.clone();
    advancing.state = State::Advancing;
    advancing.save(ctx).ok()?;
    let mut checkout = git::command(&pooled.path);
    checkout.args(["-c", "core.hooksPath=/dev/null", "checkout", "--quiet", "--detach", commit]);
    let moved = git::output_under(&mut checkout, held);
    failpoint::hit("claim-pool-advanced");
    let mut ready = advancing.clone();
    ready.state = State::Ready;
    ready.commit = commit.to_string();
    match moved.and_then(|_| ready.save(ctx)) {
        Ok(()) => Some(ready),
        Err(e) => {
            tracing::warn!("pooled worktree {}: {}; removing it", pooled.id, e.message);
            super::remove(ctx, &advancing);
            None
        }
    }
}

/// Puts a claim that failed back: the directory and admin dir back in the pool, linked to each
/// other, detached at whatever HEAD they reached, the branch the claim made deleted, the
/// journal `ready`. What cannot be put back is removed. Under the worktree lock, with the
/// pooled worktree's lock held.
fn undo(ctx: &Context, claiming: &Pooled, c: &Claim) {
    let admin_root = ctx.repo.common_dir.join("worktrees");
    let (old_admin, new_admin) = (admin_root.join(&claiming.id), admin_root.join(&c.admin));
    let owned = Owned::of(&admin_root, claiming, c);
    if owned.at_claim_path && claiming.path.symlink_metadata().is_err() {
        let _ = std::fs::rename(&c.path, &claiming.path);
    }
    if owned.new_admin && old_admin.symlink_metadata().is_err() {
        let _ = std::fs::rename(&new_admin, &old_admin);
    }
    let dot_git = claiming.path.join(".git");
    let relinked = is_real_dir(&claiming.path)
        && is_real_dir(&old_admin)
        && write_replace(&dot_git, format!("gitdir: {}\n", old_admin.display())).is_ok()
        && write_replace(&old_admin.join("gitdir"), format!("{}\n", dot_git.display())).is_ok();
    let head = relinked
        .then(|| git::run(&claiming.path, ["rev-parse", "--verify", "HEAD^{commit}"]).ok())
        .flatten()
        .map(|h| h.trim().to_string());
    // The branch did not exist when the claim began (`try_claim` is only asked then), and the
    // worktree lock was held since: if it exists, the claim made it.
    if super::branch_exists(ctx, &c.branch) {
        let _ = git::run(ctx.repo.git_dir(), ["update-ref", "-d", &format!("refs/heads/{}", c.branch)]);
    }
    let (state, from) = (ctx.repo.state_dir(), &c.name);
    let note = wt_common::ledger::shared_dirs::file(&state, from);
    if note.exists() {
        let _ = std::fs::rename(&note, wt_common::ledger::shared_dirs::file(&state, &claiming.id));
    }
    let put_back = head.is_some_and(|head| {
        let mut ready = claiming.clone();
        ready.state = State::Ready;
        ready.claim = None;
        ready.commit = head.clone();
        write_replace(&old_admin.join("HEAD"), format!("{head}\n")).is_ok()
            && std::fs::remove_file(old_admin.join("locked")).is_ok()
            && ready.save(ctx).is_ok()
    });
    if !put_back {
        drop_lost(ctx, claiming, c);
    }
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
    // Only what provably belongs to this claim is touched: whatever took the claim's path or
    // admin dir name since (a worktree made while the claimer lay dead) is someone's.
    let owned = Owned::of(&admin_root, pooled, c);
    if !owned.finishable() {
        return Err(lost(pooled));
    }
    if owned.old_admin && new_admin.symlink_metadata().is_err() {
        std::fs::write(old_admin.join("locked"), "wt-create: claiming a pooled worktree\n")
            .map_err(|e| io(&old_admin, e))?;
    }
    if owned.at_pooled_path && c.path.symlink_metadata().is_err() {
        std::fs::rename(&pooled.path, &c.path).map_err(|e| io(&c.path, e))?;
    }
    failpoint::hit("claim-moved");
    if owned.old_admin && new_admin.symlink_metadata().is_err() {
        std::fs::rename(&old_admin, &new_admin).map_err(|e| io(&new_admin, e))?;
    }
    failpoint::hit("claim-admin-moved");
    if !is_real_dir(&new_admin) || !is_real_dir(&c.path) {
        return Err(lost(pooled));
    }
    let dot_git = c.path.join(".git");
    write_replace(&dot_git, format!("gitdir: {}\n", new_admin.display()))?;
    write_replace(&new_admin.join("gitdir"), format!("{}\n", dot_git.display()))?;
    failpoint::hit("claim-linked");
    // What `--share` rewrote to name the pooled path (a venv's scripts, an editable install's
    // `.pth`) is moved with the worktree; redone, harmlessly, when a dead claim is finished.
    for dir in shared_dirs(pooled) {
        let at = c.path.join(&dir);
        crate::share::repoint::repoint(&at, &pooled.path, &c.path).map_err(|e| io(&at, e))?;
    }
    failpoint::hit("claim-repointed");
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

/// The error of a claim whose pooled worktree is gone, or whose place was taken meanwhile.
fn lost(pooled: &Pooled) -> Error {
    Error::failed(
        "claim-lost",
        format!("pooled worktree {} is gone (its directory or git's admin dir); nothing was claimed", pooled.id),
    )
}

/// Which of the places a claim moves a pooled worktree between are provably its own.
struct Owned {
    /// `<root>/.pool/<id>` is a real directory whose `.git` names the old or new admin dir.
    at_pooled_path: bool,
    /// The claim's path is such a directory.
    at_claim_path: bool,
    /// The claim's path is something else (someone's).
    claim_path_taken: bool,
    /// `.git/worktrees/<id>` is a real directory whose `gitdir` names either path's `.git`.
    old_admin: bool,
    new_admin: bool,
    new_admin_taken: bool,
}

impl Owned {
    fn of(admin_root: &Path, pooled: &Pooled, c: &Claim) -> Owned {
        let (old_admin, new_admin) = (admin_root.join(&pooled.id), admin_root.join(&c.admin));
        let admins = [old_admin.as_path(), new_admin.as_path()];
        let (pooled_git, claimed_git) = (pooled.path.join(".git"), c.path.join(".git"));
        let dot_gits = [pooled_git.as_path(), claimed_git.as_path()];
        let at_claim_path = links_to(&c.path, &admins);
        let new_admin_ours = admin_of(&new_admin, &dot_gits);
        Owned {
            at_pooled_path: links_to(&pooled.path, &admins),
            at_claim_path,
            claim_path_taken: !at_claim_path && c.path.symlink_metadata().is_ok(),
            old_admin: admin_of(&old_admin, &dot_gits),
            new_admin: new_admin_ours,
            new_admin_taken: !new_admin_ours && new_admin.symlink_metadata().is_ok(),
        }
    }

    /// Whether the claim can be done or redone: its worktree and admin dir are somewhere of
    /// its own, and nobody else's is where they go.
    fn finishable(&self) -> bool {
        (self.at_pooled_path || self.at_claim_path)
            && (self.old_admin || self.new_admin)
            && !self.claim_path_taken
            && !self.new_admin_taken
    }
}

fn is_real_dir(path: &Path) -> bool {
    path.symlink_metadata().is_ok_and(|m| m.is_dir())
}

/// Whether `dir` is a real directory whose `.git` file (read without following a link) names
/// one of `admins`.
fn links_to(dir: &Path, admins: &[&Path]) -> bool {
    is_real_dir(dir)
        && wt_common::fs::read_small(&dir.join(".git")).text().is_some_and(|text| {
            text.trim_end().strip_prefix("gitdir:").is_some_and(|to| admins.iter().any(|a| Path::new(to.trim()) == *a))
        })
}

/// Whether `admin` is a real directory whose `gitdir` names one of `dot_gits`.
fn admin_of(admin: &Path, dot_gits: &[&Path]) -> bool {
    is_real_dir(admin)
        && wt_common::fs::read_small(&admin.join("gitdir"))
            .text()
            .is_some_and(|text| dot_gits.iter().any(|g| Path::new(text.trim_end()) == *g))
}

/// Whether a ready pooled worktree is whole: its directory and its admin dir, linked to each
/// other, both real directories (a claim moves nothing else).
fn whole(ctx: &Context, pooled: &Pooled) -> bool {
    let admin = ctx.repo.common_dir.join("worktrees").join(&pooled.id);
    is_real_dir(&ctx.root.join(super::POOL_DIR))
        && links_to(&pooled.path, &[admin.as_path()])
        && admin_of(&admin, &[pooled.path.join(".git").as_path()])
}

/// Drops a claim that can be neither finished nor undone (`claim-lost`): what is left of the
/// pooled worktree goes, with its journal; nothing at the claim's path is touched unless it
/// is the claim's own admin dir, left naming a path that is gone.
pub fn drop_lost(ctx: &Context, pooled: &Pooled, c: &Claim) {
    let new_admin = ctx.repo.common_dir.join("worktrees").join(&c.admin);
    if c.path.symlink_metadata().is_err() && admin_of(&new_admin, &[c.path.join(".git").as_path()]) {
        let _ = std::fs::remove_dir_all(&new_admin);
    }
    super::remove(ctx, pooled);
}

fn write_replace(path: &Path, text: String) -> Result<(), Error> {
    wt_common::fs::write_replace(path, text.as_bytes()).map_err(|e| Error::io(path.display(), e))
}

/// The record of a fresh create, plus `"claimed": true` and the commit the pooled worktree was
/// made at (`pool_base`).
fn record(ctx: &Context, pooled: &Pooled, made_at: &str, c: &Claim, entry: &Entry) -> Record {
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
    rec.set_key("pool_base", json!(made_at));
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

/// The directories shared into a pooled worktree (its journal's copy of the record's `share`),
/// each a plain relative path.
fn shared_dirs(pooled: &Pooled) -> Vec<PathBuf> {
    let Some(dirs) = pooled.share.as_ref().and_then(|s| s["dirs"].as_array()) else { return Vec::new() };
    dirs.iter()
        .filter(|d| d["status"] == "shared")
        .filter_map(|d| d["dir"].as_str().map(PathBuf::from))
        .filter(|d| !d.as_os_str().is_empty() && d.components().all(|c| matches!(c, std::path::Component::Normal(_))))
        .collect()
}
