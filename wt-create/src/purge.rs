//! `--remove --all --purge`: one command that leaves nothing of wt behind in a repository.
//!
//! It removes every worktree wt manages (as `--remove` does: never one with uncommitted work or
//! unmerged commits unless `--force`), with the branches wt made and the panes running or
//! listed there (ended through the supervisor's socket, which is then stopped if it has no
//! pane left), drops every kept database (by the sibling `wt-env --drop-kept`), deletes the
//! `wt/*` branches no worktree has checked out (only those merged into HEAD unless `--force`),
//! the refs under `refs/wt/` (wt-merge's backup, base and merged refs), wt's state directory
//! (`<git common dir>/wt`: ledger, leases, logs, share records, store) and the worktree root
//! (`<repo>.wt/`) once it is empty.
//!
//! It first says what it will delete, then asks, unless `--yes`; where it cannot ask (stdin or
//! stderr is not a terminal) it refuses without `--yes`. Every worktree is checked before
//! anything is deleted, so a refused one leaves everything as it was.
//!
//! Crash safety: each step only removes what is there, and the plan is made again from what is
//! there, so a rerun of a purge killed half-way finishes it. The ledger goes last of all (it
//! lists the kept databases until they are dropped), and the state directory goes only once
//! every worktree and database is gone.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use wt_common::proc::panes::Supervisor;
use wt_common::record::output::Output;
use wt_common::{git, proc::failpoint, Error, Record};

use crate::context::{Context, Snapshot, TOOL};
use crate::create::Want;
use crate::remove::{self, How};

/// Everything a purge deletes, found before it deletes anything.
#[derive(Debug, Default)]
struct Plan {
    /// The worktrees to remove, by name, with their directory.
    worktrees: Vec<(Want, String, PathBuf)>,
    /// Panes (running or ended) in those worktrees.
    panes: Vec<String>,
    /// `wt/*` branches no worktree has checked out.
    branches: Vec<String>,
    /// Refs under `refs/wt/`.
    refs: Vec<String>,
    /// Databases kept from removed worktrees, and those leased to the worktrees now.
    databases: Vec<String>,
    /// wt's state directory, if there is one.
    state_dir: Option<PathBuf>,
    /// The worktree root, if there is one.
    root: Option<PathBuf>,
}

impl Plan {
    fn find(ctx: &Context) -> Result<Plan, Error> {
        let snap = Snapshot::take(ctx)?;
        let mut plan = Plan::default();
        let main = snap.worktrees.first().map(|w| w.path.clone());
        for (name, entry) in &snap.ledger.worktrees {
            plan.worktrees.push((Want::Name(name.clone()), name.clone(), entry.path.clone()));
        }
        // Worktrees wt made that the ledger no longer lists (`wt-env --gc` released them), and
        // what a killed wt-merge left in wt's state directory.
        let state_dir = ctx.repo.state_dir();
        for wt in snap.worktrees.iter().skip(1) {
            let ours = wt.branch.as_deref().is_some_and(|b| b.starts_with("wt/"))
                || wt.path.starts_with(&ctx.root)
                || wt.path.starts_with(&state_dir);
            let known = plan.worktrees.iter().any(|(_, _, p)| *p == wt.path);
            if ours && !known && Some(&wt.path) != main.as_ref() {
                let name = wt.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                plan.worktrees.push((Want::Path(wt.path.clone()), name, wt.path.clone()));
            }
        }
        for (_, _, path) in &plan.worktrees {
            // No supervisor, or one that does not answer: no panes to end.
            let panes = wt_common::proc::panes::listed_in(&ctx.repo, path).unwrap_or_default();
            plan.panes.extend(panes.into_iter().map(|p| p.name));
        }
        let checked_out: Vec<&str> = snap.worktrees.iter().filter_map(|w| w.branch.as_deref()).collect();
        let removed_with_worktrees: Vec<String> = plan.worktrees.iter().map(|(_, n, _)| format!("wt/{n}")).collect();
        for name in snap.wt_branches.keys() {
            let branch = format!("wt/{name}");
            if !checked_out.contains(&branch.as_str()) && !removed_with_worktrees.contains(&branch) {
                plan.branches.push(branch);
            }
        }
        let refs = git::run(ctx.repo.git_dir(), ["for-each-ref", "--format=%(refname)", "refs/wt/"])?;
        plan.refs = refs.lines().map(str::to_string).collect();
        plan.databases = wt_common::ledger::kept_db::all(&snap.ledger).into_keys().collect();
        for entry in snap.ledger.worktrees.values() {
            if let Some(db) = wt_common::ledger::lease::db_of(entry).filter(|d| d.made_by_us()) {
                plan.databases.push(db.name);
            }
        }
        plan.state_dir = Some(state_dir).filter(|d| d.symlink_metadata().is_ok());
        plan.root = Some(ctx.root.clone()).filter(|d| d.is_dir());
        Ok(plan)
    }

    fn is_empty(&self) -> bool {
        self.worktrees.is_empty()
            && self.panes.is_empty()
            && self.branches.is_empty()
            && self.refs.is_empty()
            && self.databases.is_empty()
            && self.state_dir.is_none()
            && self.root.is_none()
    }

    /// What will be deleted, a line per kind, for people.
    fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut add = |what: &str, items: Vec<String>| {
            if !items.is_empty() {
                lines.push(format!("  {what} ({}): {}", items.len(), items.join(", ")));
            }
        };
        add(
            "worktrees, with the branches wt made",
            self.worktrees.iter().map(|(_, n, p)| format!("{n} ({})", p.display())).collect(),
        );
        add("panes", self.panes.clone());
        add("branches without a worktree", self.branches.clone());
        add("databases", self.databases.clone());
        add("refs", self.refs.clone());
        if let Some(dir) = &self.state_dir {
            lines.push(format!("  wt's state: {} (ledger, leases, logs, share records, store)", dir.display()));
        }
        if let Some(root) = &self.root {
            lines.push(format!("  {} (once empty)", root.display()));
        }
        lines
    }
}

pub fn run(ctx: &Context, force: bool, yes: bool, out: &mut Output) -> Result<(), Error> {
    let _merge_queue = refuse_merge_in_progress(ctx)?;
    let plan = Plan::find(ctx)?;
    if plan.is_empty() {
        eprintln!("wt-create: nothing of wt is left in this repository");
        return Ok(());
    }
    // Every worktree is checked before anything goes: a refusal leaves all as it was.
    if !force {
        let how = How { force, end_panes: true, check_only: true, ..How::default() };
        for (want, _, _) in &plan.worktrees {
            if let Err((name, e)) = remove::remove_one(ctx, want, how) {
                return Err(Error::failed(&e.code, format!("{name}: {}; nothing was removed", e.message)));
            }
        }
        // A branch refused only once the worktrees are gone would leave the purge half done.
        for branch in &plan.branches {
            refuse_unmerged_branch(ctx, branch)
                .map_err(|e| Error::failed(&e.code, format!("{}; nothing was removed", e.message)))?;
        }
    }
    eprintln!("wt-create: --purge deletes:");
    for line in plan.describe() {
        eprintln!("{line}");
    }
    if !yes {
        confirm()?;
    }
    let mut complete = true;
    for pane in &plan.panes {
        match wt_common::proc::panes::kill_and_forget(&ctx.repo, pane) {
            // Its logs go with it, also when the supervisor runs on (and the state dir stays).
            Ok(()) => _ = wt_common::record::pane_logs::forget(&ctx.repo.state_dir().join("logs"), pane),
            Err(e) => {
                eprintln!("wt-create: pane '{pane}': {}", e.message);
                complete = false;
            }
        }
    }
    let how = How { force, end_panes: true, ..How::default() };
    for (want, _, _) in &plan.worktrees {
        let rec = remove::remove_one(ctx, want, how).unwrap_or_else(|(name, e)| Record::failed(&name, TOOL, &e));
        complete &= !rec.has_error();
        out.emit(&rec);
    }
    failpoint::hit("purge-after-worktrees");
    if !complete {
        return Err(Error::failed(
            "purge-incomplete",
            "not every worktree was removed (see above); fix that, then purge again",
        ));
    }
    drop_databases(ctx)?;
    failpoint::hit("purge-after-databases");
    delete_branches(ctx, &plan.branches, force)?;
    for r in &plan.refs {
        git::run(ctx.repo.git_dir(), ["update-ref", "-d", r])?;
    }
    // A supervisor with panes elsewhere (the main worktree's) runs on, writing its logs and
    // pane notes into wt's state directory: those stay.
    let supervisor = wt_common::proc::panes::stop_supervisor_if_idle(&ctx.repo);
    let keep: &[&str] = match &supervisor {
        Ok(Supervisor::Busy(panes)) => {
            eprintln!(
                "wt-create: the pane supervisor runs on for panes outside wt's worktrees ({}); its logs stay",
                panes.join(", ")
            );
            &["logs", "panes"]
        }
        Ok(_) => &[],
        Err(e) => {
            eprintln!("wt-create: the pane supervisor: {}; its logs stay", e.message);
            &["logs", "panes"]
        }
    };
    // The state directory goes under the worktree lock and the ledger's, after a last look for
    // anything made since the plan: a worktree made (or being made, its crash marker locked)
    // or a lease taken meanwhile would be lost with the ledger, its port block handed out
    // again, and a half-made worktree's marker deleted under its maker.
    let state_dir = ctx.repo.state_dir();
    let worktree_lock = ctx.worktree_lock()?;
    let ledger_lock = ctx.ledger.hold()?;
    let made = made_meanwhile(ctx);
    if !made.is_empty() {
        return Err(Error::failed(
            "purge-incomplete",
            format!("{} made while purging; nothing more was removed: purge again", made.join(", ")),
        ));
    }
    // Looked for again: taking the worktree lock above makes the directory if it was gone.
    if state_dir.symlink_metadata().is_ok() {
        remove_state_dir(&state_dir, keep)?;
    }
    drop((ledger_lock, worktree_lock));
    if let Some(root) = &plan.root {
        let _ = std::fs::remove_dir(root.join(crate::pool::POOL_DIR)); // emptied with the pooled worktrees
        if std::fs::remove_dir(root).is_err() && root.is_dir() {
            eprintln!("wt-create: kept {}: it holds files wt did not make", root.display());
        }
    }
    eprintln!("wt-create: purged");
    Ok(())
}

/// What was made in wt's name since the plan was found: worktrees git lists under wt's root or on
/// a `wt/` branch, worktrees the ledger lists (leased by wt-env), worktrees being made (their
/// crash marker). Call holding the worktree lock and the ledger's.
fn made_meanwhile(ctx: &Context) -> Vec<String> {
    let mut made = std::collections::BTreeSet::new();
    // Every planned worktree is gone by now: any of wt's still listed was made since.
    for wt in ctx.repo.worktrees().unwrap_or_default() {
        let ours = wt.path.starts_with(&ctx.root) || wt.branch.as_deref().is_some_and(|b| b.starts_with("wt/"));
        if ours && Some(wt.path.as_path()) != ctx.repo.main_worktree.as_deref() {
            made.insert(format!("worktree {}", wt.path.display()));
        }
    }
    if let Ok(ledger) = ctx.ledger.read() {
        made.extend(ledger.worktrees.keys().map(|n| format!("lease of '{n}'")));
    }
    let pending = ctx.repo.state_dir().join("pending");
    for entry in std::fs::read_dir(pending).into_iter().flatten().flatten() {
        if let Some(name) = entry.file_name().to_str().and_then(|n| n.strip_suffix(".json")) {
            made.insert(format!("worktree '{name}' (being made)"));
        }
    }
    made.into_iter().collect()
}

/// wt-merge keeps its queue lock, its members' files and its journal in wt's state directory.
/// A running queue would find its verification worktree gone mid-run and make the state
/// directory again; the journal of one killed while it moved its target is what brings the
/// target's checkout along at the next run (deleted, the checkout stays behind its branch, and
/// committing it reverts the merge). Both are refused; the queue lock is held for the rest of
/// the purge, so that a wt-merge started meanwhile waits before it merges anything.
fn refuse_merge_in_progress(ctx: &Context) -> Result<Option<wt_common::proc::lock::FileLock>, Error> {
    let state_dir = ctx.repo.state_dir();
    let lock_file = state_dir.join("merge.lock");
    let held = wt_common::proc::lock::FileLock::try_existing(&lock_file)?;
    let running = running_merges(&state_dir);
    if (held.is_none() && lock_file.exists()) || !running.is_empty() {
        let pids = running.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
        let who = if pids.is_empty() { String::new() } else { format!(" (pid {pids})") };
        return Err(Error::failed(
            "merge-running",
            format!(
                "a wt-merge is running in this repository{who}; purge again once it has finished; nothing was removed"
            ),
        ));
    }
    let journal = state_dir.join("merge-journal");
    if journal.symlink_metadata().is_ok() {
        return Err(Error::failed(
            "merge-half-done",
            format!(
                "a wt-merge was killed while it moved its target branch ({} is its note): run wt-merge again on any worktree (it finishes that first), then purge again; nothing was removed",
                journal.display()
            ),
        ));
    }
    Ok(held)
}

/// The wt-merges running on the repository: a wt-merge holds the queue lock only while it
/// merges, but holds a lock on `<state>/merge-queue/<pid>` for as long as it runs (wt-merge's
/// `turn`), so one waiting for records between merges is seen too. A killed one's file is free.
fn running_merges(state_dir: &std::path::Path) -> Vec<u32> {
    let dir = state_dir.join("merge-queue");
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let pids = entries.flatten().filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()));
    pids.filter(|pid| matches!(wt_common::proc::lock::FileLock::is_free(&dir.join(pid.to_string())), Ok(false)))
        .collect()
}

/// Asks on the terminal; where there is none to ask on, refuses with the fix.
fn confirm() -> Result<(), Error> {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(Error::usage(
            "confirm",
            "--purge deletes all of the above and cannot ask here (no terminal); pass --yes to go ahead",
        ));
    }
    eprint!("wt-create: delete all of this? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    match answer.trim() {
        "y" | "Y" | "yes" => Ok(()),
        _ => Err(Error::usage("not-confirmed", "nothing deleted")),
    }
}

/// Every kept database (the removed worktrees' included), dropped by the sibling wt-env.
fn drop_databases(ctx: &Context) -> Result<(), Error> {
    if wt_common::ledger::kept_db::all(&*ctx.ledger.read()?).is_empty() {
        return Ok(());
    }
    let wt_env = wt_common::proc::sibling::tool("wt-env")?;
    let dir = ctx.repo.main_worktree.clone().unwrap_or_else(|| ctx.repo.common_dir.clone());
    let out = std::process::Command::new(&wt_env)
        .args(["--drop-kept", "--json"])
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Error::env("tool-missing", format!("cannot run {}: {e}", wt_env.display())))?;
    if !out.status.success() {
        return Err(Error::failed(
            "purge-incomplete",
            "wt-env could not drop every kept database (see above); fix that, then purge again",
        ));
    }
    Ok(())
}

/// `wt/*` branches no worktree has: deleted when merged into HEAD, or with `--force`.
fn delete_branches(ctx: &Context, branches: &[String], force: bool) -> Result<(), Error> {
    let dir = ctx.repo.git_dir();
    for branch in branches {
        if !force {
            refuse_unmerged_branch(ctx, branch)?;
        }
        let lock = ctx.worktree_lock()?;
        wt_common::git::worktree::clear_stale_branch_lock(&ctx.repo, branch);
        git::output_under(git::command(dir).args(["branch", "-D", "--quiet", branch]), &lock)?;
    }
    Ok(())
}

/// Refuses a `wt/*` branch with commits not in HEAD: deleting it would lose them.
fn refuse_unmerged_branch(ctx: &Context, branch: &str) -> Result<(), Error> {
    let range = format!("HEAD..refs/heads/{branch}");
    let ahead = git::run(ctx.repo.git_dir(), ["rev-list", "--count", &range]).unwrap_or_default();
    if ahead.trim() != "0" {
        return Err(Error::failed(
            "unmerged",
            format!(
                "branch {branch} has {} commit(s) not in HEAD; merge it first (wt-merge), or pass --force to delete it",
                ahead.trim()
            ),
        ));
    }
    Ok(())
}

/// Deletes wt's state directory but the entries named in `keep`: everything else but the
/// ledger first, the ledger (which lists what is still to drop) last, then the directory
/// (when nothing was kept).
fn remove_state_dir(dir: &Path, keep: &[&str]) -> Result<(), Error> {
    let io = |e: std::io::Error| Error::io(dir.display(), e);
    let ledger = dir.join("ledger.json");
    for entry in std::fs::read_dir(dir).map_err(io)?.flatten() {
        let kept = entry.file_name().to_str().is_some_and(|n| keep.contains(&n));
        if entry.path() != ledger && !kept {
            wt_common::fs::remove_any(&entry.path()).map_err(io)?;
        }
    }
    failpoint::hit("purge-before-ledger");
    wt_common::fs::remove_any(&ledger).map_err(io)?;
    if !keep.is_empty() {
        let _ = std::fs::remove_dir(dir); // only if nothing was there to keep
        return Ok(());
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
        _ => Ok(()),
    }
}
