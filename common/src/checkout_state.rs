//! What a person wants to know of a worktree's checkout before acting on it: is it there,
//! has it uncommitted changes, how far is its branch ahead of (and behind) its base. The
//! record's `status` key, written by `wt-create --list` and read by tables and the overview.
//!
//! ```json
//! "status": {"state": "dirty", "changed": 3, "ahead": 2, "behind": 0}
//! ```

use std::path::Path;

use serde_json::{json, Value};

use crate::{git, Record};

/// The `status` of a worktree record: `state` (`clean`, `dirty`, `missing`), `changed` (paths
/// `git status` lists), and `ahead`/`behind` of its base when both are known.
pub fn of(git_dir: &Path, rec: &Record) -> Value {
    let Some(path) = rec.path.as_deref().filter(|p| p.is_dir()) else {
        return json!({"state": "missing"});
    };
    let mut status = json!({});
    match changed_paths(path) {
        Some(0) => status["state"] = json!("clean"),
        Some(n) => {
            status["state"] = json!("dirty");
            status["changed"] = json!(n);
        }
        None => status["state"] = json!("unknown"),
    }
    if let (Some(branch), Some(base)) = (&rec.branch, rec.base.as_deref().or(rec.base_commit.as_deref())) {
        let range = format!("{base}...refs/heads/{branch}");
        let counts = git::run(git_dir, ["rev-list", "--left-right", "--count", &range]).ok();
        let mut n = counts.as_deref().unwrap_or_default().split_whitespace().map(|n| n.parse::<u64>().ok());
        if let (Some(Some(behind)), Some(Some(ahead))) = (n.next(), n.next()) {
            status["ahead"] = json!(ahead);
            status["behind"] = json!(behind);
        }
    }
    status
}

/// How many paths `git status` lists in the worktree; `None` if git cannot tell. The
/// worktree's own config could name an fsmonitor program: it is switched off, so reading the
/// status never runs code an agent planted.
fn changed_paths(path: &Path) -> Option<usize> {
    // One line per path (git quotes a path with a newline in it; a rename is one line too).
    let out = git::run(path, ["-c", "core.fsmonitor=false", "status", "--porcelain=v1", "--untracked-files=normal"]);
    out.ok().map(|text| text.lines().filter(|l| !l.is_empty()).count())
}

/// `status` as a table cell: `clean`, `dirty (3)`, `missing`, with `2 ahead, 1 behind`.
pub fn text(status: &Value) -> String {
    let mut parts = Vec::new();
    match (status["state"].as_str(), status["changed"].as_u64()) {
        (Some(state), Some(n)) => parts.push(format!("{state} ({n})")),
        (Some(state), None) => parts.push(state.to_string()),
        _ => {}
    }
    for key in ["ahead", "behind"] {
        if let Some(n) = status[key].as_u64().filter(|n| *n > 0) {
            parts.push(format!("{n} {key}"));
        }
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_cell_reads_as_words() {
        assert_eq!(text(&json!({"state": "clean", "ahead": 0, "behind": 0})), "clean");
        assert_eq!(
            text(&json!({"state": "dirty", "changed": 3, "ahead": 2, "behind": 1})),
            "dirty (3), 2 ahead, 1 behind"
        );
        assert_eq!(text(&json!({"state": "missing"})), "missing");
    }
}
