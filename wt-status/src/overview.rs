//! The `overview` key of one worktree: its leases, its panes, its last run and its merge, each
//! from where the tools keep it (the ledger, the supervisor, the kept outcomes, git's refs),
//! and what of it needs the person (`attention`, see `attention.rs`).
//!
//! ```json
//! "overview": {"ports": [20010, 20019], "database": "app_wt2",
//!   "pane": {"name": "agent-2", "pid": 4242, "alive": true, "exit": null,
//!            "agent": {"state": "waiting", "message": "Allow …?"}},
//!   "panes": [{"name": "agent-2", …}, {"name": "dev-2", "pid": 4250, "alive": true, "exit": null}],
//!   "last_run": {"log": "/…/.git/wt/logs/agent-2/….log", "age_s": 83, "state": "red",
//!                "source": "watch", "failing": 3},
//!   "merge": {"state": "conflict", "paths": ["README.md"], "at": 1767225600000},
//!   "attention": [{"reason": "waiting", …}]}
//! ```
//!
//! `pane` is the pane named after the worktree (or its first pane); `panes` is every pane whose
//! directory is inside the worktree. `last_run.state` (`pass` or `red`; a wt-watch loop's
//! `gave-up`, `flaky` or `guarded`) is the newer of the last wt-run and wt-watch outcome; without one, only the newest log's age is known.
//! `merge.state` is the last wt-merge outcome when it did not merge (`conflict`,
//! `verify-failed`, `untested`, `gate-changed`, `deps-differ`, `error`), else `merged` (its
//! undo ref is there), `unmerged` or `no-branch`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{json, Value};
use wt_common::git::repo::Repo;
use wt_common::ledger::outcome::{self, Kind, Outcome};
use wt_common::ledger::Entry;
use wt_common::{git, Record};

use crate::attention;

/// The overview of `rec`, with `entry` its ledger entry (if managed) and `panes` the
/// supervisor's panes that belong to it.
pub fn of(repo: &Repo, rec: &Record, entry: Option<&Entry>, panes: &[Value]) -> Value {
    let mut o = json!({});
    if let Some(block) = entry.and_then(wt_common::ledger::lease::block_of) {
        o["ports"] = json!([block.start, block.end()]);
    }
    if let Some(db) = entry.and_then(wt_common::ledger::lease::db_of) {
        o["database"] = json!(db.name);
    }
    let shown: Vec<Value> = panes.iter().map(pane_json).collect();
    let own = panes.iter().position(|p| p["name"] == rec.name.as_str()).or((!panes.is_empty()).then_some(0));
    if let Some(i) = own {
        o["pane"] = shown[i].clone();
    }
    if !shown.is_empty() {
        o["panes"] = json!(shown);
    }
    let state = repo.state_dir();
    let newest = [Kind::Run, Kind::Watch]
        .into_iter()
        .filter_map(|k| outcome::read(&state, &rec.name, k))
        .max_by_key(|o| o.at_ms);
    let log = last_log(&state.join("logs").join(&rec.name));
    if let Some(last) = last_run(newest.as_ref(), log) {
        o["last_run"] = last;
    }
    let merged = outcome::read(&state, &rec.name, Kind::Merge);
    o["merge"] = merge_state(repo, rec, merged.as_ref());
    o["attention"] = json!(attention::of(&rec.name, rec.path.as_deref(), panes, newest.as_ref(), merged.as_ref()));
    o
}

/// A pane as the overview shows it: its name, process, exit, and its agent's report.
fn pane_json(p: &Value) -> Value {
    let mut shown = json!({"name": p["name"], "pid": p["pid"], "alive": p["alive"], "exit": p["exit"]});
    if let Some(state) = p.get("state").filter(|s| s.is_string()) {
        shown["agent"] = json!({"state": state, "message": p["message"]});
    }
    shown
}

/// `last_run`: how the newer of the last run and round ended (its log, age, state), else the
/// newest log's age.
fn last_run(newest: Option<&Outcome>, log: Option<(PathBuf, u64)>) -> Option<Value> {
    let Some(o) = newest else {
        return log.map(|(log, age)| json!({"log": log, "age_s": age}));
    };
    let age = attention::now_ms().saturating_sub(o.at_ms) / 1000;
    let mut last = json!({"age_s": age, "state": o.state, "source": o.kind.as_str()});
    if let Some(log) = o.log.as_ref().or(log.as_ref().map(|(l, _)| l)) {
        last["log"] = json!(log);
    }
    if let Some(n) = o.failing {
        last["failing"] = json!(n);
    }
    Some(last)
}

/// The newest log a run or a verification left, and how many seconds ago it was written.
fn last_log(dir: &Path) -> Option<(PathBuf, u64)> {
    let logs = std::fs::read_dir(dir).ok()?.flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".log"));
    let dated = logs.filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())));
    let (when, path) = dated.max_by_key(|(t, _)| *t)?;
    Some((path, SystemTime::now().duration_since(when).map(|d| d.as_secs()).unwrap_or(0)))
}

/// The last merge's outcome when it did not merge; else `merged` (wt-merge landed it: its undo
/// ref is there), or `unmerged`; `no-branch` without a branch to merge.
fn merge_state(repo: &Repo, rec: &Record, last: Option<&Outcome>) -> Value {
    if let Some(o) = last.filter(|o| o.state != "merged") {
        let mut m = json!({"state": o.state, "at": o.at_ms});
        if !o.paths.is_empty() {
            m["paths"] = json!(o.paths);
        }
        if let Some(n) = o.failing {
            m["failing"] = json!(n);
        }
        if let Some(d) = &o.detail {
            m["detail"] = json!(d);
        }
        return m;
    }
    let merged = read_ref(repo, &format!("refs/wt/merged/{}", rec.name));
    match (merged, &rec.branch) {
        (Some(commit), _) if !commit.is_empty() => json!({"state": "merged", "commit": commit}),
        (_, None) => json!({"state": "no-branch"}),
        _ => json!({"state": "unmerged"}),
    }
}

/// The commit `full` (`refs/heads/wt/agent-2`, `refs/wt/merged/agent-2`) points at, from git's
/// ref files (microseconds; a board of 500 worktrees started 1,000 git processes for these),
/// or from git when the files cannot say for certain (reftable, a symbolic ref).
pub fn read_ref(repo: &Repo, full: &str) -> Option<String> {
    match git::refs::BranchReader::new(&repo.common_dir).and_then(|r| r.full_ref(full)) {
        Some(found) => found,
        None => git::run(repo.git_dir(), ["rev-parse", "--verify", "-q", full]).ok().filter(|c| !c.is_empty()),
    }
}
