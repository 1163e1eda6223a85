//! The overview as a table: one row per worktree, the cells a person scans; REASON says what
//! needs the person (the oldest first, `+N` more).

use serde_json::Value;
use wt_common::record::output::{status_or_error, Column};
use wt_common::{git::checkout_state, Record};

use crate::attention;

fn overview(r: &Record) -> Value {
    r.key("overview").cloned().unwrap_or_default()
}

/// The board's columns; `disk`: with DISK (`wt-status --disk`).
pub fn columns(disk: bool) -> Vec<Column> {
    let mut cols = vec![
        Column { title: "NAME", value: |r| r.name.clone() },
        Column { title: "REASON", value: |r| reason_text(&overview(r)["attention"]) },
        Column { title: "BRANCH", value: |r| r.branch.clone().unwrap_or_default() },
        Column { title: "CHECKOUT", value: |r| r.key("status").map(checkout_state::text).unwrap_or_default() },
        Column {
            title: "PORTS",
            value: |r| match overview(r)["ports"].as_array().map(Vec::as_slice) {
                Some([a, b]) => format!("{a}-{b}"),
                _ => String::new(),
            },
        },
        Column { title: "DATABASE", value: |r| overview(r)["database"].as_str().unwrap_or_default().to_string() },
        Column { title: "PANES", value: |r| panes_text(&overview(r)) },
        Column { title: "LAST RUN", value: |r| last_run_text(&overview(r)["last_run"]) },
        Column { title: "MERGE", value: |r| overview(r)["merge"]["state"].as_str().unwrap_or_default().to_string() },
    ];
    if disk {
        cols.push(Column { title: "DISK", value: |r| r.key("disk").map(crate::disk::text).unwrap_or_default() });
    }
    cols.push(Column { title: "ERROR", value: |r| status_or_error(r, "") });
    cols
}

/// The oldest reason, and how many more.
fn reason_text(attention: &Value) -> String {
    let all = attention.as_array().map(Vec::as_slice).unwrap_or_default();
    match all {
        [] => String::new(),
        [one] => attention::text(one),
        [first, rest @ ..] => format!("{} (+{})", attention::text(first), rest.len()),
    }
}

/// `pass 2m ago`, `red just now (3 failing)`; without a kept outcome, the newest log's age.
fn last_run_text(last: &Value) -> String {
    let age = match last["age_s"].as_u64() {
        Some(0) => "just now".to_string(),
        Some(s) => format!("{} ago", wt_common::record::duration::human(std::time::Duration::from_secs(s))),
        None => return String::new(),
    };
    match (last["state"].as_str(), last["failing"].as_u64()) {
        (Some(state), Some(n)) => format!("{state} {age} ({n} failing)"),
        (Some(state), None) => format!("{state} {age}"),
        (None, _) => age,
    }
}

/// Every pane of the worktree: `agent-2 waiting (pid 42), dev-2 running (pid 50)`; the name is
/// left out for the pane named after the worktree when it is the only one.
fn panes_text(o: &Value) -> String {
    let panes = o["panes"].as_array().map(Vec::as_slice).unwrap_or_default();
    match panes {
        [] => String::new(),
        [one] => pane_text(one),
        many => many
            .iter()
            .map(|p| format!("{} {}", p["name"].as_str().unwrap_or_default(), pane_text(p)))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// `running (pid 42)`, `waiting (pid 42)`, `exited 0`, `killed by SIGKILL`.
fn pane_text(p: &Value) -> String {
    match (p["alive"].as_bool(), p["agent"]["state"].as_str()) {
        (Some(true), Some(state)) => format!("{state} (pid {})", p["pid"]),
        (Some(true), None) => format!("running (pid {})", p["pid"]),
        _ => wt_common::proc::panes::exit_text(&p["exit"]),
    }
}
