//! What each of a repository's managed worktrees really costs on disk, and all of them with the
//! share store together (`fs::disk_usage` does the counting; this file says what is counted).
//!
//! Counted: every managed worktree git lists (in the ledger's order, by name: the first of two
//! worktrees that share a file pays for it), the share store (`<state>/store`, which pays for
//! the shared files before any worktree does), and nothing of the main worktree: its shared
//! directories are walked only so that a file hard-linked from them costs nothing. Each
//! worktree's build directories are confirmed with git (`build_dirs::rebuildable`). After the
//! managed worktrees: the pool's warm worktrees (`<root>/.pool/*`, which git lists and the
//! ledger does not) and the trash (`<root>/.wt-trash`), each as one figure: they are wt's disk
//! too, and count against a budget's `max_size`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::fs::disk_usage::{self, Cost, Trees};
use crate::git::repo::{GitWorktree, Repo};
use crate::git::worktree_check::Registered;
use crate::ledger::{root_layout, shared_dirs, Ledger};
use crate::record::size::human;
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
    /// The pool's warm worktrees: how many, and what they hold beyond all the above.
    pub pooled: usize,
    pub pool: u64,
    /// What the trash holds (build dirs a `--gc` killed half way left there).
    pub trash: u64,
}

impl Measured {
    /// All of wt's worktrees and its store: what `du` over them says, less the main
    /// worktree's part.
    pub fn total(&self) -> u64 {
        self.store + self.pool + self.trash + self.worktrees.iter().map(|w| w.cost.total() + w.confine).sum::<u64>()
    }
}

impl Measured {
    /// What the total holds beyond the managed worktrees and the store, for a summary line:
    /// `, the pool's 2 worktrees 40 MiB, trash 3 MiB`, or nothing.
    pub fn others_text(&self) -> String {
        let mut out = String::new();
        if self.pooled > 0 {
            out.push_str(&format!(", the pool's {} worktree(s) {}", self.pooled, human(self.pool)));
        }
        if self.trash > 0 {
            out.push_str(&format!(", trash {}", human(self.trash)));
        }
        out
    }
}

/// Measures every managed worktree of `repo` (see the module's comment). `build_names`: the
/// names of build directories (`build_dirs::names`); `root`: the worktree root, whose trash is
/// counted (the pool is found from git's list).
pub fn measure(repo: &Repo, ledger: &Ledger, build_names: &[String], root: Option<&Path>) -> Result<Measured, Error> {
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
    let managed: BTreeSet<&Path> = ledger.worktrees.values().map(|e| e.path.as_path()).collect();
    let pooled: Vec<PathBuf> = live
        .iter()
        .filter(|w| !w.prunable && !managed.contains(w.path.as_path()) && is_pooled(&w.path))
        .map(|w| w.path.clone())
        .collect();
    // lstat: a link planted as the trash is not walked (the walk follows no link below it).
    let trash = root.map(|r| r.join(root_layout::TRASH_DIR)).filter(|t| t.symlink_metadata().is_ok_and(|m| m.is_dir()));
    let mut all: Vec<PathBuf> = worktrees.iter().map(|(_, w, _)| w.path.clone()).collect();
    all.extend(pooled.iter().cloned());
    all.extend(trash.iter().cloned());
    let trees = Trees { main, store: store.is_dir().then_some(store), worktrees: all, build_names };
    let mut acc = disk_usage::account(&trees);
    let others = acc.worktrees.split_off(worktrees.len());
    let (pool_costs, trash_costs) = others.split_at(pooled.len());
    let confirmed = crate::proc::parallel::map(&worktrees, crate::proc::parallel::cores(), |(_, wt, _)| {
        let reg = crate::git::worktree_check::verify_if_agreed(repo, &wt.path).and_then(Result::ok);
        (reg.clone(), reg.map(|reg| crate::git::build_dirs::rebuildable(&reg, &candidates(&wt.path, &acc, &trees))))
    });
    let mut out = Measured {
        worktrees: Vec::new(),
        store: acc.store,
        pooled: pooled.len(),
        pool: pool_costs.iter().map(Cost::total).sum(),
        trash: trash_costs.iter().map(Cost::total).sum(),
    };
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

/// Whether `path` is a pooled worktree's place: `<root>/.pool/<id>`.
fn is_pooled(path: &Path) -> bool {
    path.parent().and_then(Path::file_name).is_some_and(|n| n == root_layout::POOL_DIR)
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
