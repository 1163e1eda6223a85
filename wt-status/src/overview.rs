//! The `overview` key of one worktree: its leases, its pane, its last run and its merge, each
//! from where the tools keep it (the ledger, the supervisor, the log directory, git's refs).
//!
//! ```json
//! "overview": {"ports": [20010, 20019], "database": "app_wt2",
//!   "pane": {"name": "agent-2", "pid": 4242, "alive": true, "exit": null},
//!   "last_run": {"log": "/…/.git/wt/logs/agent-2/….log", "age_s": 83},
//!   "merge": {"state": "merged", "commit": "<40 hex>"}}
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{json, Value};
use wt_common::git::repo::Repo;
use wt_common::ledger::Entry;
use wt_common::{git, Record};

/// The overview of `rec`, with `entry` its ledger entry (if managed) and `panes` the
/// supervisor's panes by name.
pub fn of(repo: &Repo, rec: &Record, entry: Option<&Entry>, panes: &BTreeMap<String, Value>) -> Value {
    let mut o = json!({});
    if let Some(block) = entry.and_then(wt_common::ledger::lease::block_of) {
        o["ports"] = json!([block.start, block.end()]);
    }
    if let Some(db) = entry.and_then(wt_common::ledger::lease::db_of) {
        o["database"] = json!(db.name);
    }
    if let Some(p) = panes.get(&rec.name) {
        o["pane"] = json!({"name": p["name"], "pid": p["pid"], "alive": p["alive"], "exit": p["exit"]});
        // The agent's own report (`wt-run pane notify`), when its hooks made one.
        if let Some(state) = p.get("state").filter(|s| s.is_string()) {
            o["pane"]["agent"] = json!({"state": state, "message": p["message"]});
        }
    }
    if let Some((log, age)) = last_log(&repo.state_dir().join("logs").join(&rec.name)) {
        o["last_run"] = json!({"log": log, "age_s": age});
    }
    o["merge"] = merge_state(repo, rec);
    o
}

/// The newest log a run or a verification left, and how many seconds ago it was written.
fn last_log(dir: &Path) -> Option<(PathBuf, u64)> {
    let logs = std::fs::read_dir(dir).ok()?.flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".log"));
    let dated = logs.filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())));
    let (when, path) = dated.max_by_key(|(t, _)| *t)?;
    Some((path, SystemTime::now().duration_since(when).map(|d| d.as_secs()).unwrap_or(0)))
}

/// `merged` (wt-merge landed it: its undo ref is there), or `unmerged`; `no-branch` without
/// a branch to merge.
fn merge_state(repo: &Repo, rec: &Record) -> Value {
    let dir = repo.git_dir();
    let merged = git::run(dir, ["rev-parse", "--verify", "-q", &format!("refs/wt/merged/{}", rec.name)]).ok();
    match (merged, &rec.branch) {
        (Some(commit), _) if !commit.is_empty() => json!({"state": "merged", "commit": commit}),
        (_, None) => json!({"state": "no-branch"}),
        _ => json!({"state": "unmerged"}),
    }
}
