//! What makes a green round final: it tested a commit, not uncommitted changes (the record's
//! `commit` is what wt-merge merges), and, with `--until-green`, something the agent did: a
//! change made after the loop started, or a commit ahead of the worktree's base. A loop started
//! before the agent's change never ends green on the untouched base.
//!
//! A green round on uncommitted changes tells the agent to commit (through the feed failures
//! go through) and waits for the commit. A commit changes nothing in the worktree (objects,
//! index and branch are in the repository's git dir), so no file event says it came: the
//! branch is looked at until it moves (or the tree turns clean), and its next round tests it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use wt_common::git::repo::Repo;
use wt_common::git::tested::Tested;
use wt_common::Record;

use crate::session::Msg;

/// How often the branch is looked at while the loop waits for a commit (a few small reads).
const POLL: Duration = Duration::from_millis(500);

/// How a round that passed is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Green {
    /// Green on a commit: final with `--until-green`, merged by wt-merge.
    Final,
    /// Green on uncommitted changes: the agent is told to commit.
    Uncommitted,
    /// Green on the untouched base, with `--until-green`: the loop waits for the agent's change.
    Untouched,
}

/// Judges a green round. `changed`: what `git status` listed when it started; `after_change`:
/// the round started after a change made since the loop started.
///
/// A round whose commit or changes cannot be told (git could not answer; submodules, whose
/// checkouts are not looked into) is taken as it is: its record names no commit or says
/// `dirty`, and wt-merge does not merge it; asking for a commit would not make it known.
pub fn judge(
    repo: &Repo,
    rec: &Record,
    tested: &Tested,
    changed: &[String],
    after_change: bool,
    until_green: bool,
) -> Green {
    let Some(commit) = tested.commit.as_deref() else { return Green::Final };
    if tested.dirty && !changed.is_empty() {
        return Green::Uncommitted;
    }
    if until_green && !tested.dirty && !after_change && !ahead_of_base(repo, rec, commit) {
        return Green::Untouched;
    }
    Green::Final
}

/// Whether `commit` holds a commit its worktree's base does not (the commit the worktree was
/// made from, or its base branch). A base that cannot be told, or a git that fails, is "no":
/// the loop then waits for a change it saw.
fn ahead_of_base(repo: &Repo, rec: &Record, commit: &str) -> bool {
    let Some(base) = rec.base_commit.as_deref().or(rec.base.as_deref()) else { return false };
    let range = format!("{base}..{commit}");
    let count = wt_common::git::run(repo.git_dir(), ["rev-list", "--count", &range, "--"]);
    count.ok().and_then(|c| c.trim().parse::<u64>().ok()).is_some_and(|n| n > 0)
}

/// What the agent is told when its tests pass on uncommitted changes.
pub fn message(name: &str, round: u32, argv: &[String], changed: &[String]) -> String {
    let cmd = argv.join(" ");
    let what = if changed.is_empty() {
        "uncommitted changes".to_string()
    } else {
        wt_common::git::checkout_state::changes_named(changed)
    };
    format!(
        "wt-watch: the tests of worktree {name} pass (round {round}, `{cmd}`), but on {what}.\n\
         Commit your changes: only a commit the tests passed on is merged. The next round tests the commit."
    )
}

/// Looks at the worktree's branch on a thread of its own until it moves from `tested` (a
/// commit), then says so (`Msg::Committed`); `stop` ends it.
pub fn await_commit(
    tx: Sender<Msg>,
    id: usize,
    seq: u64,
    stop: Arc<AtomicBool>,
    at: (Repo, String, PathBuf),
    tested: Tested,
) {
    let (repo, name, root) = at;
    std::thread::spawn(move || {
        let before = tested.commit.or_else(|| wt_common::git::tested::commit_of(&repo, &name, &root));
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(POLL);
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let now = wt_common::git::tested::commit_of(&repo, &name, &root);
            if now.is_some() && now != before {
                let _ = tx.send(Msg::Committed { id, seq });
                return;
            }
        }
    });
}
