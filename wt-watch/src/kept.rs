//! How a round ended, kept for wt-status (`wt_common::ledger::outcome`, kind `watch`): the
//! person hears of a loop that ended where it needs them, in the inbox and on the board.
//!
//! - `pass`: green.
//! - `red`: red, the agent has the failure (`failing`, `lines`: the failing tests).
//! - `gave-up`: the loop ended without green (`detail`: why; the last failure's tests).
//! - `flaky`: red, then green with no change (`detail`; the red run's failing tests).
//! - `guarded`: green, but by changing guarded files (`paths`) or running fewer tests
//!   (`lines`: the tests that went missing); `detail` says which, `into` is the worktree's base.

use std::path::PathBuf;

use serde_json::Value;
use wt_common::git::tested::Tested;
use wt_common::ledger::outcome::{Kind, Outcome};
use wt_common::Record;

/// The kept outcome of a round of `rec` that ended `status`, with the record's `extra` keys
/// (`reason`, `guard_touched`, `tests_dropped`); `round`: its run and what it tested, none when
/// the loop gave up between runs.
pub fn of_round(
    rec: &Record,
    status: &str,
    round: Option<(&Value, &Tested)>,
    cmd: &str,
    failure: Option<&str>,
    extra: &[(&str, Value)],
) -> Outcome {
    let get = |key: &str| extra.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
    let state = match status {
        "green" => "pass",
        "green-guard-touched" => "guarded",
        "red" | "gave-up" | "flaky" => status,
        _ => "red",
    };
    let mut o = Outcome {
        log: round.and_then(|(run, _)| run["log"].as_str().map(PathBuf::from)),
        commit: round.and_then(|(_, tested)| tested.commit.clone()),
        cmd: Some(cmd.to_string()),
        ..Outcome::now(Kind::Watch, state)
    };
    match state {
        "red" | "gave-up" | "flaky" => {
            if let Some(excerpt) = failure {
                o = o.with_excerpt(excerpt);
            }
            o.detail = match state {
                "gave-up" => get("reason").and_then(Value::as_str).map(str::to_string),
                "flaky" => Some("red, then green when run again with no change: a flaky test".into()),
                _ => None,
            };
        }
        "guarded" => {
            let touched: Vec<String> = get("guard_touched")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default();
            let mut said = Vec::new();
            if !touched.is_empty() {
                said.push(format!("changed guarded {}", touched.join(", ")));
            }
            if let Some(d) = get("tests_dropped") {
                let unit = d["unit"].as_str().unwrap_or("tests");
                said.push(match d["ran"].as_u64() {
                    Some(ran) => format!("{ran} {unit} ran, {} in the first round", d["base"]),
                    None => format!("no test summary, {} {unit} in the first round", d["base"]),
                });
                let missing = d["missing"].as_array().cloned().unwrap_or_default();
                o.lines = missing.iter().filter_map(Value::as_str).take(5).map(|m| format!("missing {m}")).collect();
            }
            o.detail = Some(format!("green, but {}", said.join("; ")));
            o.paths = touched;
            o.into = rec.base.clone();
        }
        _ => {}
    }
    o
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn kept(status: &str, failure: Option<&str>, extra: &[(&str, Value)]) -> Outcome {
        let mut rec = Record::named("a");
        rec.base = Some("main".into());
        let run = json!({"log": "/l/watch-1.log"});
        let tested = Tested { commit: Some("c".repeat(40)), dirty: false };
        let round = (status != "gave-up").then_some((&run, &tested));
        of_round(&rec, status, round, "pytest -q", failure, extra)
    }

    #[test]
    fn a_loop_that_needs_the_person_is_kept_as_such_with_why() {
        let red = "1 failing test (pytest):\n\n✗ t.py::a\n    assert 1\n";
        assert_eq!(kept("green", None, &[]).state, "pass");
        let r = kept("red", Some(red), &[]);
        assert_eq!((r.state.as_str(), r.failing, r.lines.clone()), ("red", Some(1), vec!["✗ t.py::a".to_string()]));
        let g = kept("gave-up", Some(red), &[("reason", json!("still red after 5 rounds"))]);
        assert_eq!(
            (g.state.as_str(), g.detail.as_deref(), g.failing),
            ("gave-up", Some("still red after 5 rounds"), Some(1))
        );
        assert_eq!(g.log, None, "it gave up between runs");
        let f = kept("flaky", None, &[]);
        assert_eq!(f.state, "flaky");
        assert!(f.detail.unwrap().contains("flaky"));
        let dropped = json!({"runner": "pytest", "unit": "tests", "base": 2, "ran": 1, "missing": ["t.py::a"]});
        let guarded = kept(
            "green-guard-touched",
            None,
            &[("guard_touched", json!(["pyproject.toml [tool.pytest]"])), ("tests_dropped", dropped)],
        );
        assert_eq!(guarded.state, "guarded");
        assert_eq!(guarded.paths, ["pyproject.toml [tool.pytest]"]);
        assert_eq!(guarded.lines, ["missing t.py::a"]);
        assert_eq!(guarded.into.as_deref(), Some("main"));
        assert_eq!(
            guarded.detail.as_deref(),
            Some("green, but changed guarded pyproject.toml [tool.pytest]; 1 tests ran, 2 in the first round")
        );
        // What it writes, wt-status reads back (the states are known to the parser).
        let text = serde_json::to_string(&guarded).unwrap();
        assert!(wt_common::ledger::outcome::parse(&text, Kind::Watch).is_ok());
    }
}
