//! The build governor as wt-status shows it (docs/governor.md): on a terminal, a line under
//! the table (`governor: 2/2 tokens in use, 3 waiting: wt-watch agent-2 (waits), …`); in
//! records, a `governor` field (docs/protocol.md). Nothing when no governor runs: wt-status
//! never starts one.

use serde_json::{json, Value};
use wt_common::record::Record;

/// The running governor's state: `{tokens, in_use, waiting, holders}`.
pub fn state() -> Option<Value> {
    wt_common::proc::governor::client::status()
}

/// Adds the `governor` field (its counts, without the holders) to a worktree's record.
pub fn tag(rec: &mut Record, state: Option<&Value>) {
    if let Some(s) = state {
        rec.set_key(
            "governor",
            json!({"tokens": s["tokens"], "in_use": s["in_use"], "on_offer": s["on_offer"], "waiting": s["waiting"]}),
        );
    }
}

/// The terminal's line.
pub fn line(state: &Value) -> String {
    let n = |k: &str| state.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mut text = format!("governor: {}/{} tokens in use", n("in_use"), n("tokens"));
    if n("on_offer") > 0 {
        text.push_str(&format!(", {} on offer to idle builds", n("on_offer")));
    }
    if n("waiting") > 0 {
        text.push_str(&format!(", {} waiting", n("waiting")));
    }
    let holders: Vec<String> = state
        .get("holders")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|h| {
            let label = h["label"].as_str().unwrap_or("?");
            let held = h["held"].as_u64().unwrap_or(0);
            let used = held.saturating_sub(h["on_offer"].as_u64().unwrap_or(0));
            let holds = match (used, held - used) {
                (used, 0) => format!("{used}"),
                (0, offered) => format!("{offered} on offer"),
                (used, offered) => format!("{used}, {offered} on offer"),
            };
            match (held, h["waiting"].as_u64().unwrap_or(0)) {
                (_, 0) => format!("{label} ({holds})"),
                (0, _) => format!("{label} (waits)"),
                (_, _) => format!("{label} ({holds}, waits)"),
            }
        })
        .collect();
    if !holders.is_empty() {
        text.push_str(": ");
        text.push_str(&holders.join(", "));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_what_is_in_use_and_what_waits() {
        let s = json!({"tokens": 2, "in_use": 2, "waiting": 1, "holders": [
            {"label": "wt-run a", "held": 2, "waiting": 0},
            {"label": "wt-watch b", "held": 0, "waiting": 1},
        ]});
        assert_eq!(line(&s), "governor: 2/2 tokens in use, 1 waiting: wt-run a (2), wt-watch b (waits)");
        let idle = json!({"tokens": 2, "in_use": 1, "on_offer": 1, "waiting": 0, "holders": [
            {"label": "pane a", "held": 1, "on_offer": 1, "waiting": 0},
            {"label": "wt-run b", "held": 1, "on_offer": 0, "waiting": 0},
        ]});
        assert_eq!(
            line(&idle),
            "governor: 1/2 tokens in use, 1 on offer to idle builds: pane a (1 on offer), wt-run b (1)"
        );
    }
}
