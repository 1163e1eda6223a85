//! `--list`: the worktrees the tools manage (`--all-git`: every worktree git knows). Each is
//! named and given its branch by the ledger, and checked against git's registration first
//! (`worktree_check::verify`), so an agent that rewrote its git files cannot pass its branch
//! off under another worktree's name.

use std::collections::BTreeMap;

use wt_common::git::repo::GitWorktree;
use wt_common::git::worktree_check;
use wt_common::ledger::Entry;
use wt_common::record::output::Output;
use wt_common::{git, git::checkout_state, proc::parallel, Error, Record};

use crate::context::{Context, TOOL};

pub fn run(ctx: &Context, all_git: bool, status: bool, jobs: usize, out: &mut Output) -> Result<(), Error> {
    // What confined runs committed reaches their branches when published: before reading heads.
    for (name, e) in wt_common::confine::store::publish_all(&ctx.repo.common_dir) {
        tracing::warn!("{name}: {e}");
    }
    crate::pool::recover_if_needed(ctx)?;
    let ledger = ctx.ledger.read()?;
    let mut records = Vec::new();
    // Verified (and repaired) before git lists them: git reads each admin dir's `gitdir`.
    let mut refused = verify_all(ctx, &ledger.worktrees, jobs);
    let worktrees = ctx.repo.worktrees()?;
    if all_git {
        for wt in worktrees.iter().filter(|w| !w.bare) {
            let name = match ledger.name_of_path(&wt.path) {
                Some(n) => n.to_string(),
                None => wt.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            };
            if refused.iter().any(|r| r.name == name) {
                continue;
            }
            let entry = ledger.worktrees.get(&name);
            if entry.is_none() && crate::pool::is_pooled_path(ctx, &wt.path) {
                let mut rec = record(ctx, &name, wt, None);
                rec.set_key("pooled", serde_json::Value::Bool(true));
                records.push(rec);
                continue;
            }
            if entry.is_none() && worktrees.first() != Some(wt) {
                if let Err(e) = worktree_check::verify(&ctx.repo, &wt.path) {
                    refused.push(Record::failed(&name, TOOL, &e));
                    continue;
                }
            }
            records.push(record(ctx, &name, wt, entry));
        }
        // Main first, as git lists it; the rest in a stable order (git's is readdir order).
        if records.len() > 1 {
            records[1..].sort_by_cached_key(|r| natural_key(&r.name));
        }
    } else {
        // By path, once: finding each worktree in git's list by scanning it was quadratic.
        let mut by_path: std::collections::HashMap<&std::path::Path, &GitWorktree> = Default::default();
        for w in &worktrees {
            by_path.entry(w.path.as_path()).or_insert(w); // the first, as git lists them
        }
        let refused_names: std::collections::HashSet<&str> = refused.iter().map(|r| r.name.as_str()).collect();
        for (name, entry) in ledger.worktrees.iter().filter(|(n, _)| !refused_names.contains(n.as_str())) {
            match by_path.get(entry.path.as_path()).copied() {
                Some(wt) => records.push(record(ctx, name, wt, Some(entry))),
                // A person at a terminal sees it as a row; a pipe gets only worktrees that exist.
                None if out.is_table() => {
                    let gone = GitWorktree { path: entry.path.clone(), ..Default::default() };
                    records.push(record(ctx, name, &gone, Some(entry)));
                }
                None => tracing::warn!(
                    "{name}: {} no longer exists; `wt-create --remove {name}` forgets it",
                    entry.path.display()
                ),
            }
        }
        records.sort_by_cached_key(|r| natural_key(&r.name));
    }
    records.extend(refused);
    // The status costs two git processes a worktree, where the rest costs none: only when it
    // is asked for, or shown (a person at a terminal), and then several at a time.
    if status || out.is_table() {
        add_status(ctx, &mut records, jobs);
    }
    for rec in &records {
        out.emit(rec);
        if out.closed() {
            break;
        }
    }
    Ok(())
}

/// `worktree_check::verify` of every managed worktree; the records of those refused. Those
/// whose files agree with their registration (the usual case) are checked `jobs` threads at a
/// time (it is file-system calls, a few dozen a worktree); the others one after another, since
/// repairing one may decide which admin dir another one gets.
fn verify_all(ctx: &Context, managed: &BTreeMap<String, Entry>, jobs: usize) -> Vec<Record> {
    let all: Vec<(&String, &Entry)> = managed.iter().collect();
    let agreed = parallel::map(&all, jobs, |(_, e)| worktree_check::verify_if_agreed(&ctx.repo, &e.path));
    let mut refused = Vec::new();
    for ((name, entry), checked) in all.iter().zip(agreed) {
        let checked = checked.unwrap_or_else(|| worktree_check::verify(&ctx.repo, &entry.path));
        match checked {
            Err(e) if e.code != "worktree-missing" => refused.push(Record::failed(name, TOOL, &e)),
            _ => {}
        }
    }
    refused
}

/// Adds `status` to every record that is not an error, `jobs` worktrees at a time.
fn add_status(ctx: &Context, records: &mut [Record], jobs: usize) {
    let asked: Vec<&Record> = records.iter().filter(|r| !r.has_error()).collect();
    let mut statuses = checkout_state::of_many(&ctx.repo, &asked, jobs).into_iter();
    for rec in records.iter_mut().filter(|r| !r.has_error()) {
        if let Some(status) = statuses.next() {
            rec.set_key("status", status);
        }
    }
}

/// The record of a worktree, with the branch the ledger gave it: the worktree's HEAD is the
/// agent's to change, so it can name another agent's branch.
fn record(ctx: &Context, name: &str, wt: &GitWorktree, entry: Option<&Entry>) -> Record {
    let mut rec = ctx.record(name, wt, entry);
    if let Some(branch) = entry.and_then(|e| e.branch.as_ref()).filter(|b| wt.branch.as_ref() != Some(*b)) {
        let dir = ctx.repo.git_dir();
        rec.head = git::run(dir, ["rev-parse", "--verify", "-q", &format!("refs/heads/{branch}")]).ok();
        rec.branch = Some(branch.clone());
    }
    rec
}

/// Sorts `agent-2` before `agent-10`.
fn natural_key(name: &str) -> Vec<(String, u64)> {
    let mut key = Vec::new();
    let mut text = String::new();
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            let mut n = c.to_digit(10).unwrap_or(0) as u64;
            while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                n = n.saturating_mul(10).saturating_add(d as u64);
                chars.next();
            }
            key.push((std::mem::take(&mut text), n));
        } else {
            text.push(c);
        }
    }
    key.push((text, 0));
    key
}

#[cfg(test)]
mod tests {
    #[test]
    fn natural_order() {
        let mut v = vec!["agent-10", "agent-2", "b", "agent-1"];
        v.sort_by_key(|n| super::natural_key(n));
        assert_eq!(v, ["agent-1", "agent-2", "agent-10", "b"]);
    }
}
