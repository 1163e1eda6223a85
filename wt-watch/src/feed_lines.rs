//! `--feed jsonl:PATH`: a channel that is not typing. Every round, red or not, appends one JSON
//! line to PATH, for a monitor the agent runs itself (Claude Code's Monitor tool on
//! `tail -n 0 -F PATH`, a script that starts a Codex app-server turn with it): no keystrokes
//! into a pane, nothing interrupted, and the agent reads it when it reads it.
//!
//! ```json
//! {"v":1,"name":"agent-1","round":2,"status":"red","commit":"<40 hex>","dirty":false,
//!  "failing":["tests/test_calc.py::test_add"],"excerpt":"1 failing test (pytest): …",
//!  "message":"wt-watch: the tests of worktree agent-1 failed (round 2, `pytest -q`).\n…",
//!  "log":"/…/.git/wt/logs/agent-1/watch-….log","best":{"commit":"<40 hex>","passed":41},
//!  "at_ms":1767225600000}
//! ```
//!
//! - `status`: as the record's `watch.status` (`red`, `green`, `flaky`, `green-guard-touched`,
//!   `gave-up`); `round`: the record's `watch.rounds`.
//! - `commit`, `dirty`: what the round tested (absent for a `gave-up` between rounds).
//! - `failing`: the failing tests' names from the runner's summary (`record::test_counts`),
//!   when it names them; `excerpt`: the failure excerpt (red and gave-up rounds); `message`:
//!   what a pane feed would have typed (red rounds), the best-so-far line first when the round
//!   regressed; `regressed`: that line alone; `reason`: why a loop gave up; `log`: the round's
//!   full output; `best`: the best so far (`watch.best`).
//!
//! Each line is appended in one write (`fs::append`), so a follower never reads half of one.

use std::path::Path;

use serde_json::{json, Map, Value};
use wt_common::record::{excerpt, test_counts};
use wt_common::Error;

use crate::feed::{self, Target};

/// Checks at the start that the feed's file can be appended to (created `0600` if missing):
/// a link or a FIFO there is refused before any round runs, and so is a file in the worktree
/// that git does not ignore, as each line appended would be a change that starts the next
/// round, for ever (`exclude`: the repository's `info/exclude`, as the watcher obeys it).
pub fn prepare(target: &Target, exclude: Option<&Path>) -> Result<(), Error> {
    let Target::Jsonl { root, path } = target else { return Ok(()) };
    let full = wt_common::fs::lexical(&root.join(path));
    let existed = full.symlink_metadata().is_ok();
    wt_common::fs::append::open(root, path)?;
    if full.starts_with(root) {
        let mut noticed = crate::noticed::Noticed::default();
        noticed.add(full.clone(), false);
        if crate::noticed::matters(root, exclude, &noticed, &mut Default::default()) {
            if !existed {
                let _ = std::fs::remove_file(&full);
            }
            return Err(Error::failed(
                "feed-in-worktree",
                format!(
                    "--feed jsonl:{}: the file is in the worktree and git does not ignore it, so each line would start another round; put it outside the worktree (jsonl:/tmp/NAME.jsonl) or where git ignores it",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Appends the line of a round whose record's `watch` is `watch`, when the feed is a JSON-lines
/// file. `argv`: the test command, for the message.
pub fn append(target: &Target, name: &str, watch: &Map<String, Value>, argv: &[String]) -> Result<(), Error> {
    let Target::Jsonl { root, path } = target else { return Ok(()) };
    let text = line(name, watch, argv).to_string();
    wt_common::fs::append::line(root, path, &text)
}

/// A message to the agent that is no round of its own (`kind`: `commit-requested`, the green
/// round's request to commit; `note`, what a re-run or a check on the base found): a pane gets
/// it typed, a jsonl feed this line, `{"v":1,"name":…,"status":KIND,"message":TEXT,"at_ms":…}`.
pub fn append_message(target: &Target, name: &str, kind: &str, text: &str) -> Result<(), Error> {
    let Target::Jsonl { root, path } = target else { return Ok(()) };
    let at_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let l = json!({"v": 1, "name": name, "status": kind, "message": text, "at_ms": at_ms as u64});
    wt_common::fs::append::line(root, path, &l.to_string())
}

/// The line of one round.
fn line(name: &str, watch: &Map<String, Value>, argv: &[String]) -> Value {
    let mut l = Map::new();
    l.insert("v".into(), json!(1));
    l.insert("name".into(), json!(name));
    l.insert("round".into(), watch.get("rounds").cloned().unwrap_or(json!(0)));
    let status = watch.get("status").and_then(Value::as_str).unwrap_or_default();
    l.insert("status".into(), json!(status));
    for key in ["commit", "dirty"] {
        if let Some(v) = watch.get(key) {
            l.insert(key.into(), v.clone());
        }
    }
    let log = watch.get("run").and_then(|r| r.get("log")).and_then(Value::as_str);
    let red = matches!(status, "red" | "gave-up");
    if let Some(counts) =
        log.and_then(|p| excerpt::read_log(Path::new(p), excerpt::READ_BYTES)).and_then(|t| test_counts::of(&t))
    {
        if red || !counts.failing.is_empty() {
            l.insert("failing".into(), json!(counts.failing));
        }
    }
    let failure = watch.get("last_failure").and_then(Value::as_str).filter(|_| red);
    if let Some(f) = failure {
        l.insert("excerpt".into(), json!(f));
    }
    let regressed = watch.get("regressed").and_then(Value::as_str);
    if status == "red" {
        let rounds = watch.get("rounds").and_then(Value::as_u64).unwrap_or(0) as u32;
        let mut message = feed::message(name, rounds, argv, failure.unwrap_or_default());
        if let Some(r) = regressed {
            message = format!("{r}\n\n{message}");
        }
        l.insert("message".into(), json!(message));
    }
    if let Some(r) = regressed {
        l.insert("regressed".into(), json!(r));
    }
    for key in ["reason", "best", "guard_touched"] {
        if let Some(v) = watch.get(key) {
            l.insert(key.into(), v.clone());
        }
    }
    if let Some(p) = log {
        l.insert("log".into(), json!(p));
    }
    let at_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    l.insert("at_ms".into(), json!(at_ms));
    Value::Object(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_red_round_has_the_message_a_pane_would_get_and_a_green_one_none() {
        let t = tempfile::tempdir().unwrap();
        let log = t.path().join("round.log");
        std::fs::write(
            &log,
            "F.\n=== short test summary info ===\nFAILED t.py::test_a - assert 1 == 2\n1 failed, 1 passed in 0.01s\n",
        )
        .unwrap();
        let watch = json!({"status": "red", "rounds": 2, "commit": "abc", "dirty": false,
            "last_failure": "1 failing test (pytest):\n✗ t.py::test_a", "regressed": "round 2: 1 test that passed at abc (best so far) now fails: t.py::test_a",
            "run": {"log": log}});
        let l = line("agent-1", watch.as_object().unwrap(), &["pytest".into()]);
        assert_eq!(
            (l["name"].as_str(), l["round"].as_u64(), l["status"].as_str()),
            (Some("agent-1"), Some(2), Some("red"))
        );
        assert_eq!(l["failing"], json!(["t.py::test_a"]));
        let message = l["message"].as_str().unwrap();
        assert!(
            message.starts_with("round 2: 1 test that passed at abc") && message.contains("Do not change the tests"),
            "{message}"
        );
        assert_eq!(l["log"], json!(log));
        let green = json!({"status": "green", "rounds": 3, "commit": "def", "dirty": false, "last_failure": "old", "run": {"log": "/nowhere"}});
        let l = line("agent-1", green.as_object().unwrap(), &["pytest".into()]);
        assert!(l.get("message").is_none() && l.get("excerpt").is_none() && l.get("failing").is_none(), "{l}");
        assert!(!l.to_string().contains('\n'), "one line");
    }
}
