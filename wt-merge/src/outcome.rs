//! What a merge came to, kept for wt-status (`ledger::outcome`, kind `merge`): a conflict with
//! its paths, a failed verification with its failing tests, a held merge with why, an error,
//! or merged. A record wt-merge skipped (nothing to merge, a red watch) or that came with
//! another tool's error leaves the last outcome as it was.

use serde_json::Value;
use wt_common::git::repo::Repo;
use wt_common::ledger::outcome::{self, Kind, Outcome};
use wt_common::Record;

use crate::TOOL;

/// Keeps the outcome of `rec`'s merge, when it has one of its own.
pub fn keep(repo: &Repo, rec: &Record) {
    if let Some(o) = of(rec) {
        outcome::write(&repo.state_dir(), &rec.name, &o);
    }
}

fn of(rec: &Record) -> Option<Outcome> {
    if wt_common::host::of(rec).is_some() {
        return None; // the host keeps its worktree's outcome
    }
    let m = rec.key("merge").cloned().unwrap_or_default();
    let text = |v: &Value| v.as_str().map(str::to_string);
    let state = match (&rec.error, m["status"].as_str()) {
        (Some(e), _) if e.tool == TOOL => "error",
        (Some(_), _) => return None,
        (None, Some(s)) if Kind::Merge.states().contains(&s) => s,
        _ => return None,
    };
    let mut o = Outcome {
        commit: text(&m["commit"]),
        into: text(&m["into"]),
        detail: rec.error.as_ref().map(|e| e.message.clone()).or_else(|| text(&m["reason"])),
        ..Outcome::now(Kind::Merge, state)
    };
    if state == "conflict" {
        o.paths = m["conflicts"].as_array().map(|a| a.iter().filter_map(text).collect()).unwrap_or_default();
    }
    if state == "verify-failed" {
        let v = &m["verify"];
        o.log = v["log"].as_str().map(std::path::PathBuf::from);
        o.cmd = text(&v["cmd"]);
        let tail = || {
            let lines = v["tail"].as_array().map(Vec::as_slice).unwrap_or_default();
            let said: Vec<&str> = lines.iter().filter_map(Value::as_str).filter(|l| !l.trim().is_empty()).collect();
            said[said.len().saturating_sub(3)..].join("\n")
        };
        o = o.with_excerpt(&v["excerpt"].as_str().map(str::to_string).unwrap_or_else(tail));
    }
    Some(o)
}
