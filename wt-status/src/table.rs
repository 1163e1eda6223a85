//! The overview as a table: one row per worktree, the cells a person scans.

use serde_json::Value;
use wt_common::record::duration::human;
use wt_common::record::output::{status_or_error, Column};
use wt_common::{git::checkout_state, Record};

fn overview(r: &Record) -> Value {
    r.key("overview").cloned().unwrap_or_default()
}

pub fn columns() -> Vec<Column> {
    vec![
        Column { title: "NAME", value: |r| r.name.clone() },
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
        Column { title: "PANE", value: |r| pane_text(&overview(r)["pane"]) },
        Column {
            title: "LAST RUN",
            value: |r| match overview(r)["last_run"]["age_s"].as_u64() {
                Some(0) => "just now".into(),
                Some(s) => format!("{} ago", human(std::time::Duration::from_secs(s))),
                None => String::new(),
            },
        },
        Column { title: "MERGE", value: |r| overview(r)["merge"]["state"].as_str().unwrap_or_default().to_string() },
        Column { title: "ERROR", value: |r| status_or_error(r, "") },
    ]
}

/// `running (pid 42)`, `exited 0`, `killed by SIGKILL`, or nothing without a pane.
fn pane_text(p: &Value) -> String {
    if p.is_null() {
        return String::new();
    }
    match (p["alive"].as_bool(), p["exit"]["code"].as_i64(), p["exit"]["signal"].as_str()) {
        (Some(true), _, _) if p["agent"]["state"].is_string() => {
            format!("{} (pid {})", p["agent"]["state"].as_str().unwrap_or_default(), p["pid"])
        }
        (Some(true), _, _) => format!("running (pid {})", p["pid"]),
        (_, _, Some(sig)) => format!("killed by SIG{sig}"),
        (_, Some(code), _) => format!("exited {code}"),
        _ => "exited".into(),
    }
}
