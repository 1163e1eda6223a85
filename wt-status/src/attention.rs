//! What needs the person about one worktree, and why: `overview.attention`, oldest first.
//!
//! ```json
//! "attention": [
//!   {"reason": "waiting", "since": 1767225600000, "pane": "agent-2",
//!    "detail": "Allow this tool to run `cargo test`?", "next": "wt-run pane answer agent-2 yes|no"},
//!   {"reason": "red", "since": 1767225660000, "detail": "3 failing", "source": "watch",
//!    "log": "/…/watch-….log", "next": "less '/…/watch-….log'"}]
//! ```
//!
//! - `waiting`: a pane of the worktree whose agent waits for the person (its question, or the
//!   dialog's text, is the detail); `exited`: a pane that exited non-zero or by a signal.
//! - `red`: the newer of the last wt-run and wt-watch outcome failed (`source` says which);
//!   the detail is how many tests failed, else the output's last line.
//! - `gave-up`, `flaky`, `guarded`: the newer outcome is a wt-watch loop that ended so (it gave
//!   up, its red round passed when run again, or it turned green by changing guarded files or
//!   running fewer tests); the detail says why, `tests` the failing or missing tests, `paths` the
//!   guarded files changed.
//! - `conflict` (the paths) and `verify-failed` (how many failed): the last wt-merge of it.
//!
//! `since` is when it began, in milliseconds since the Unix epoch; `next` is a command that
//! is the next step.

use std::path::Path;

use serde_json::{json, Value};
use wt_common::host::quote::quote;
use wt_common::ledger::outcome::Outcome;

/// The attention entries of a worktree, oldest first, from its panes (as `pane.list` gives
/// them) and its last outcomes (`red`: the newer of run and watch; `merge`).
pub fn of(
    name: &str,
    path: Option<&Path>,
    panes: &[Value],
    red: Option<&Outcome>,
    merge: Option<&Outcome>,
) -> Vec<Value> {
    let mut out = Vec::new();
    let now = now_ms();
    for p in panes {
        let pane = p["name"].as_str().unwrap_or_default();
        let since = p["since"].as_u64().unwrap_or(now);
        if p["alive"] == true && p["state"] == "waiting" {
            let detail = p["message"].as_str().filter(|m| !m.is_empty()).unwrap_or("waiting for you");
            out.push(json!({"reason": "waiting", "since": since, "pane": pane, "detail": detail,
                            "next": format!("wt-run pane answer {} yes|no", quote(pane))}));
        }
        if p["alive"] == false && exited_badly(&p["exit"]) {
            let how = wt_common::proc::panes::exit_text(&p["exit"]);
            out.push(json!({"reason": "exited", "since": since, "pane": pane, "detail": format!("{pane} {how}"),
                            "next": format!("wt-run pane screen {} --lines 50", quote(pane))}));
        }
    }
    if let Some(o) = red.filter(|o| o.state == "red") {
        let detail = match (o.failing, o.lines.last()) {
            (Some(n), _) => format!("{n} failing"),
            (None, Some(line)) => line.clone(),
            (None, None) => "failed".into(),
        };
        let next = match &o.log {
            Some(log) => format!("less {}", quote(&log.to_string_lossy())),
            None => format!("wt-run logs {}", quote(name)),
        };
        out.push(json!({"reason": "red", "since": o.at_ms, "source": o.kind.as_str(), "detail": detail,
                        "tests": o.lines, "log": o.log, "next": next}));
    }
    if let Some(o) = red.filter(|o| matches!(o.state.as_str(), "gave-up" | "flaky" | "guarded")) {
        out.push(loop_ended(name, path, o));
    }
    if let Some(o) = merge {
        let into = o.into.as_deref().unwrap_or("main");
        match o.state.as_str() {
            "conflict" => {
                // `into` is quoted too: a branch name may hold `;`, `&`, `|`, `$(` (and the
                // outcome file of a repository an agent made is the agent's text).
                let next = match path {
                    Some(p) => format!(
                        "git -C {} rebase {}   # or tell its agent: wt-run pane send {} {} --enter",
                        quote(&p.to_string_lossy()),
                        quote(into),
                        quote(name),
                        quote(&format!("rebase onto {into}"))
                    ),
                    None => format!("rebase its branch onto {into}, or tell its agent to"),
                };
                out.push(json!({"reason": "conflict", "since": o.at_ms, "detail": o.paths.join(", "),
                                "paths": o.paths, "next": next}));
            }
            "verify-failed" => {
                let detail = match (o.failing, o.lines.last()) {
                    (Some(n), _) => format!("{n} failed"),
                    (None, Some(line)) => line.clone(),
                    (None, None) => "the verification failed".into(),
                };
                let verify = o.cmd.as_deref().map(|c| format!(" --verify {}", quote(c))).unwrap_or_default();
                out.push(json!({"reason": "verify-failed", "since": o.at_ms, "detail": detail, "tests": o.lines,
                                "log": o.log, "next": format!("wt-merge {}{verify}", quote(name))}));
            }
            _ => {}
        }
    }
    out.sort_by_key(|e| e["since"].as_u64().unwrap_or(0));
    out
}

/// The entry of a wt-watch loop that ended needing the person: gave up, flaky, guarded.
fn loop_ended(name: &str, path: Option<&Path>, o: &Outcome) -> Value {
    let mut detail = o.detail.clone().unwrap_or_else(|| o.state.clone());
    if let (Some(n), "gave-up" | "flaky") = (o.failing, o.state.as_str()) {
        detail = format!("{detail} ({n} failing)");
    }
    let log = || match &o.log {
        Some(log) => format!("less {}", quote(&log.to_string_lossy())),
        None => format!("wt-run logs {}", quote(name)),
    };
    let next = match o.state.as_str() {
        // What the agent did to the guard: its diff of the guarded files against its base.
        "guarded" => match path {
            Some(p) => {
                let base = o.into.as_deref().unwrap_or("HEAD");
                // `pyproject.toml [tool.pytest]` is the file pyproject.toml.
                let files: Vec<String> = o.paths.iter().map(|f| quote(f.split(" [").next().unwrap_or(f))).collect();
                let files = if files.is_empty() { String::new() } else { format!(" -- {}", files.join(" ")) };
                format!("git -C {} diff {}{files}", quote(&p.to_string_lossy()), quote(base))
            }
            None => log(),
        },
        // Run it again, in its worktree, to see whether it fails.
        "flaky" => match &o.cmd {
            Some(cmd) => format!("wt-run -w {} -- sh -c {}", quote(name), quote(cmd)),
            None => log(),
        },
        _ => log(),
    };
    json!({"reason": o.state, "since": o.at_ms, "source": o.kind.as_str(), "detail": detail,
           "tests": o.lines, "paths": o.paths, "log": o.log, "next": next})
}

/// Whether a pane's `exit` says it failed: a non-zero code, or a signal; but a pane ended by
/// `pane kill` was ended on purpose, and nobody needs telling.
fn exited_badly(exit: &Value) -> bool {
    exit["killed"] != true && (exit["signal"].is_string() || exit["code"].as_i64().is_some_and(|c| c != 0))
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// One entry as a person reads it: `waiting: Allow …?`, `red 2m ago: 3 failing`, `conflict:
/// README.md`, `verify-failed: 40 failed`, `exited: dev killed by SIGTERM`.
pub fn text(e: &Value) -> String {
    let reason = e["reason"].as_str().unwrap_or_default();
    let detail = e["detail"].as_str().unwrap_or_default();
    match reason {
        "red" => format!("red {}: {detail}", ago(e["since"].as_u64().unwrap_or(0))),
        "waiting" => format!("waiting ({}): {detail}", e["pane"].as_str().unwrap_or_default()),
        _ => format!("{reason}: {detail}"),
    }
}

/// `just now`, `2m ago`.
pub fn ago(since_ms: u64) -> String {
    let ms = now_ms().saturating_sub(since_ms);
    match ms / 1000 {
        0 => "just now".into(),
        s if s < 60 => format!("{s}s ago"),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 86400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86400),
    }
}
