//! What each of a repository's managed worktrees really costs on disk, and all of them with the
//! share store together (`fs::disk_usage` does the counting; this file says what is counted).
//!
//! Counted: every managed worktree git lists (in the ledger's order, by name: the first of two
//! worktrees that share a file pays for it), the share store (`<state>/store`, which pays for
//! the shared files before any worktree does), and nothing of the main worktree: its shared
//! directories are walked only so that a file hard-linked from them costs nothing. Each
//! worktree's build directories are confirmed with git (`build_dirs::rebuildable`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::fs::disk_usage::{self, Cost, Trees};
use crate::git::repo::{GitWorktree, Repo};
use crate::git::worktree_check::Registered;
use crate::ledger::{shared_dirs, Ledger};
use crate::Error;

/// One worktree's cost.
#[derive(Debug, Clone)]
pub struct WorktreeCost {
    pub name: String,
    pub worktree: GitWorktree,
    pub cost: Cost,
    /// The directories wt-create shared into it (from the store).
    pub shared: Vec<PathBuf>,
    /// Its registration, when git's files agree (`None`: not checked, never acted on).
    pub registered: Option<Registered>,
    /// What its confined runs' store holds (`<state>/confine/<name>/`: copy-on-write layers),
    /// counted against it; never reclaimed by `--gc`.
    pub confine: u64,
    /// Why none of its build directories could be confirmed (git stuck or failed, a
    /// `.gitignore` that is not a file): they are counted as its checkout.
    pub unconfirmed: Option<String>,
}

/// All of them, and the store.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub worktrees: Vec<WorktreeCost>,
    /// What the share store holds beyond the main worktree's files.
    pub store: u64,
}

impl Measured {
    /// All of wt's worktrees and its store: what `du` over them says, less the main
    /// worktree's part.
    pub fn total(&self) -> u64 {
        self.store + self.worktrees.iter().map(|w| w.cost.total() + w.confine).sum::<u64>()
    }
}

/// Measures every managed worktree of `repo` (see the module's comment). `build_names`: the
/// names of build directories (`build_dirs::names`).
pub fn measure(repo: &Repo, ledger: &Ledger, build_names: &[String]) -> Result<Measured, Error> {
    let live = repo.worktrees()?;
    let state = repo.state_dir();
    let mut worktrees: Vec<(String, GitWorktree, Vec<PathBuf>)> = Vec::new();
    let mut all_shared: BTreeSet<PathBuf> = BTreeSet::new();
    for (name, entry) in &ledger.worktrees {
        let Some(wt) = live.iter().find(|w| w.path == entry.path && !w.prunable) else { continue };
        let shared = shared_dirs::read(&shared_dirs::file(&state, name));
        all_shared.extend(shared.iter().cloned());
        worktrees.push((name.clone(), wt.clone(), shared));
    }
    let main: Vec<PathBuf> = match &repo.main_worktree {
        Some(m) => all_shared.iter().map(|d| m.join(d)).collect(),
        None => Vec::new(),
    };
    let store = state.join("store");
    let trees = Trees {
        main,
        store: store.is_dir().then_some(store),
        worktrees: worktrees.iter().map(|(_, w, _)| w.path.clone()).collect(),
        build_names,
    };
    let acc = disk_usage::account(&trees);
    let confirmed = crate::proc::parallel::map(&worktrees, crate::proc::parallel::cores(), |(_, wt, _)| {
        let reg = crate::git::worktree_check::verify_if_agreed(repo, &wt.path).and_then(Result::ok);
        (reg.clone(), reg.map(|reg| crate::git::build_dirs::rebuildable(&reg, &candidates(&wt.path, &acc, &trees))))
    });
    let mut out = Measured { worktrees: Vec::new(), store: acc.store };
    for (((name, worktree, shared), mut cost), (registered, rebuildable)) in
        worktrees.into_iter().zip(acc.worktrees.iter().cloned()).zip(confirmed)
    {
        let mut unconfirmed = None;
        match rebuildable {
            Some(Ok(ok)) => cost.confirm(|rel| ok.contains(rel)),
            // Unchecked (git's files disagree, or git failed): nothing in it is taken as
            // rebuildable.
            Some(Err(e)) => {
                unconfirmed = Some(format!("its build dirs are not confirmed: {}", e.message));
                cost.confirm(|_| false)
            }
            None => cost.confirm(|_| false),
        }
        let confine = state.join("confine").join(&name);
        let confine = if confine.is_dir() { disk_usage::du(&confine) } else { 0 };
        out.worktrees.push(WorktreeCost { name, worktree, cost, shared, registered, confine, unconfirmed });
    }
    Ok(out)
}

/// The build directories the walk found in the worktree at `path`.
fn candidates(path: &std::path::Path, acc: &disk_usage::Accounting, trees: &Trees) -> Vec<PathBuf> {
    let i = trees.worktrees.iter().position(|w| w == path).expect("walked");
    acc.worktrees[i].build_dirs.iter().map(|d| d.rel.clone()).collect()
}

/// A worktree's `disk` key, in `wt-create --share-status` and `wt-status --disk` records:
/// ```json
/// "disk": {"bytes": 5242880, "checkout": 1048576, "build": 4194304,
///          "build_dirs": [{"dir": "target", "bytes": 4194304}]}
/// ```
/// `"confine": bytes` when its confined runs' store holds any (counted in `bytes`), and
/// `"unconfirmed": "why"` when git could not confirm its build dirs (they are then counted
/// in `checkout`).
/// `bytes` is what the worktree costs beyond the main worktree, the store and the worktrees
/// before it (by name): its share of `du` over all of them.
pub fn disk_value(wt: &WorktreeCost) -> serde_json::Value {
    let dirs: Vec<serde_json::Value> =
        wt.cost.build_dirs.iter().map(|d| serde_json::json!({"dir": d.rel, "bytes": d.bytes})).collect();
    let mut v = serde_json::json!({"bytes": wt.cost.total() + wt.confine, "checkout": wt.cost.checkout, "build": wt.cost.build(), "build_dirs": dirs});
    if wt.confine > 0 {
        v["confine"] = serde_json::json!(wt.confine);
    }
    if let Some(why) = &wt.unconfirmed {
        v["unconfirmed"] = serde_json::json!(why);
    }
    v
}
