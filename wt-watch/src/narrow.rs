//! The narrow re-run: after a red round is fed, only its failing tests run again, the runner's
//! own way, while the agent reads. A failing test that passes then is probably flaky, not the
//! agent's doing, and the agent is told so.
//!
//! The runner is known from the test command (its words, or a `sh -c` string that is one plain
//! command) and the failing tests from the round's output, as the excerpt library reads them
//! (`excerpt::detect`, `excerpt::failures`): nothing here parses a runner's output itself.
//!
//! | runner | narrowed to the failing tests by |
//! |---|---|
//! | pytest (`pytest`, `py.test`, `python -m pytest`) | `--lf --lfnf=none` (pytest's own cache of what failed) |
//! | cargo test | `-- --exact NAME…` (libtest's filters) |
//! | go test | `-count=1 -v -run '^(TestA|TestB)$'` (every package of the command) |
//! | mocha | `--grep '^(full title A|full title B)$'` |
//!
//! Any other command (`make test`, `npm test`, node's runner, a script) is not narrowed and not
//! run again. A re-run that passed counts only when it ran the tests: a filter that matched
//! nothing passes too (libtest's and mocha's counts must reach the tests', go's `-v` must say
//! `--- PASS` for each, pytest must report some passed).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use wt_common::record::excerpt::{self, Runner};

use crate::round::Finished;

/// A re-run of a red round's failing tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub argv: Vec<String>,
    pub runner: Runner,
    /// The failing tests, as the excerpt names them (go: the top-level test).
    pub tests: Vec<String>,
}

/// What the re-run says of the round's failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// They all passed: probably flaky.
    AllPassed,
    /// Some or none passed (`passed`), the others failed again (`still`).
    Failing { passed: Vec<String>, still: Vec<String> },
    /// The re-run said nothing wt can read (it could not be narrowed after all, the cache was
    /// gone): nothing to tell.
    Nothing,
}

/// The re-run of the failing tests in `output` (the red round's log) for the test command
/// `command`; `None` when the command is not one of a runner wt can narrow, or the output names
/// no failing test of that runner.
pub fn plan(command: &[String], output: &str) -> Option<Plan> {
    let words = plain_words(command)?;
    let runner = excerpt::detect(output)?;
    let tests = names(runner, output);
    if tests.is_empty() {
        return None;
    }
    let argv = narrowed(&words, runner, &tests)?;
    Some(Plan { argv, runner, tests })
}

/// The re-run of a red round that ended by itself (a timed-out round's tests hang, they are
/// not flaky), from its log.
pub fn of_round(command: &[String], round: &Finished) -> Option<Plan> {
    if round.passed || round.timed_out.is_some() {
        return None;
    }
    plan(command, &read_run_log(&round.run))
}

/// The log of a run (its record's `run.log`), as the excerpt reads it.
pub fn read_run_log(run: &Value) -> String {
    run["log"].as_str().and_then(|log| excerpt::read_log(Path::new(log), excerpt::READ_BYTES)).unwrap_or_default()
}

/// The verdict of the re-run: `passed` whether it passed, `output` its log.
pub fn verdict(plan: &Plan, passed: bool, output: &str) -> Verdict {
    if passed {
        return if ran_all(plan, output) { Verdict::AllPassed } else { Verdict::Nothing };
    }
    let Some(again) = failing_again(plan, output) else { return Verdict::Nothing };
    let (still, passed) = plan.tests.iter().cloned().partition(|t| again.contains(t));
    Verdict::Failing { passed, still }
}

/// Whether a passing re-run ran the plan's tests: what the runner says it ran (not which
/// failed: that is the excerpt library's).
fn ran_all(plan: &Plan, output: &str) -> bool {
    let sum = |pattern: &str| -> usize {
        regex::Regex::new(pattern)
            .expect("a valid pattern")
            .captures_iter(output)
            .filter_map(|c| c[1].parse::<usize>().ok())
            .sum()
    };
    let n = plan.tests.len();
    match plan.runner {
        Runner::Pytest => sum(r"(?m)\b(\d+) passed\b") >= 1,
        Runner::Cargo => sum(r"(?m)^running (\d+) tests?$") >= n,
        Runner::Mocha => sum(r"(?m)^\s+(\d+) passing\b") >= n,
        Runner::GoTest => plan.tests.iter().all(|t| output.contains(&format!("--- PASS: {t} ("))),
        _ => false,
    }
}

/// The tests a red run of `plan` names failing, when it is the plan's runner that says so;
/// `None` when the run was red for another reason (a usage error, a crash).
pub fn failing_again(plan: &Plan, output: &str) -> Option<BTreeSet<String>> {
    if excerpt::detect(output) != Some(plan.runner) {
        return None;
    }
    let again: BTreeSet<String> = names(plan.runner, output).into_iter().collect();
    (!again.is_empty()).then_some(again)
}

/// The failing tests in `output`, once each, in order; go's subtests as their top-level test
/// (what `-run` selects).
fn names(runner: Runner, output: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    excerpt::failures(runner, output)
        .into_iter()
        .map(|f| match runner {
            Runner::GoTest => f.test.split('/').next().unwrap_or_default().to_string(),
            _ => f.test,
        })
        .filter(|t| !t.is_empty() && seen.insert(t.clone()))
        .collect()
}

/// The command's words: its argv, or the string of `sh -c STRING` when that is one plain
/// command (no quoting, expansion, redirection or second command the words would lose).
fn plain_words(command: &[String]) -> Option<Vec<String>> {
    match command {
        [sh, c, script] if (sh == "sh" || sh == "bash") && c == "-c" => {
            const SHELL: &[char] = &[
                ';', '&', '|', '<', '>', '$', '`', '(', ')', '\'', '"', '\\', '*', '?', '[', ']', '{', '}', '~', '#',
                '\n', '=',
            ];
            if script.contains(SHELL) {
                return None;
            }
            let words: Vec<String> = script.split_whitespace().map(str::to_string).collect();
            (!words.is_empty()).then_some(words)
        }
        _ => Some(command.to_vec()),
    }
}

fn base(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// The command narrowed to `tests`, when it runs `runner`.
fn narrowed(words: &[String], runner: Runner, tests: &[String]) -> Option<Vec<String>> {
    let mut argv = words.to_vec();
    match runner {
        Runner::Pytest => {
            let direct = words.iter().any(|w| matches!(base(w), "pytest" | "py.test"));
            let module = words.windows(2).any(|p| p[0] == "-m" && p[1] == "pytest");
            if !(direct || module) {
                return None;
            }
            argv.extend(["--lf".into(), "--lfnf=none".into()]);
        }
        Runner::Cargo => {
            let at = words.iter().position(|w| base(w) == "cargo")?;
            let sub = words[at + 1..].iter().find(|w| !w.starts_with('+'))?;
            if sub != "test" {
                return None;
            }
            if !argv.iter().any(|w| w == "--") {
                argv.push("--".into());
            }
            argv.push("--exact".into());
            argv.extend(tests.iter().cloned());
        }
        Runner::GoTest => {
            let at = words.iter().position(|w| base(w) == "go")?;
            if words.get(at + 1).map(String::as_str) != Some("test") {
                return None;
            }
            let alternatives: Vec<String> = tests.iter().map(|t| regex_quote(t)).collect();
            argv.extend(["-count=1".into(), "-v".into(), "-run".into(), format!("^({})$", alternatives.join("|"))]);
        }
        Runner::Mocha => {
            if !words.iter().any(|w| base(w) == "mocha") {
                return None;
            }
            let alternatives: Vec<String> = tests.iter().map(|t| regex_quote(t)).collect();
            argv.extend(["--grep".into(), format!("^({})$", alternatives.join("|"))]);
        }
        _ => return None,
    }
    Some(argv)
}

/// `text` as a regular expression that matches only itself.
fn regex_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The second message, when some of the fed failures passed on their re-run.
pub fn message(name: &str, round: u32, passed: &[String], all: bool) -> String {
    let list = passed.iter().map(|t| format!("  {t}")).collect::<Vec<_>>().join("\n");
    let tail = if all {
        "They are probably flaky, not your change: the tests run again."
    } else {
        "They are probably flaky, not your change; the other failures stand."
    };
    format!(
        "wt-watch: worktree {name}, round {round}: these failing tests passed when run again with no change:\n{list}\n{tail}"
    )
}

/// The line a later failure's feedback starts with when some of its failing tests passed on a
/// re-run before (`flaky`: test and the round it passed in).
pub fn known_flaky_note(failing: &[String], flaky: &std::collections::BTreeMap<String, u32>) -> Option<String> {
    let known: Vec<String> = failing
        .iter()
        .filter_map(|t| flaky.get(t).map(|r| format!("{t} (passed when run again in round {r})")))
        .collect();
    (!known.is_empty())
        .then(|| format!("Probably flaky, not your change: {}; they are run again to see.\n\n", known.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    const CARGO: &str = "running 2 tests\ntest tests::adds ... FAILED\ntest tests::subs ... ok\n\nfailures:\n\n---- tests::adds stdout ----\nthread 'tests::adds' panicked at src/lib.rs:16:9:\nassertion failed\n\nfailures:\n    tests::adds\n\ntest result: FAILED. 1 passed; 1 failed\n";
    const GO: &str = "=== RUN   TestAdd\n=== RUN   TestAdd/neg\n    add_test.go:9: got -1\n--- FAIL: TestAdd (0.00s)\n    --- FAIL: TestAdd/neg (0.00s)\n--- FAIL: TestSub (0.00s)\nFAIL\nFAIL\texample.com/m\t0.01s\n";
    const PYTEST: &str = "F.\n=================================== FAILURES ===================================\n__________________________________ test_adds ___________________________________\n\n    def test_adds():\n>       assert 1 + 1 == 3\nE       assert 2 == 3\n\ntest_math.py:2: AssertionError\n=========================== short test summary info ============================\nFAILED test_math.py::test_adds - assert 2 == 3\n1 failed, 1 passed in 0.01s\n";

    #[test]
    fn each_runner_is_narrowed_its_own_way() {
        let p = plan(&argv(&["cargo", "test", "-q"]), CARGO).unwrap();
        assert_eq!(p.argv, argv(&["cargo", "test", "-q", "--", "--exact", "tests::adds"]));
        let p = plan(&argv(&["cargo", "+nightly", "test", "--", "--nocapture"]), CARGO).unwrap();
        assert_eq!(p.argv, argv(&["cargo", "+nightly", "test", "--", "--nocapture", "--exact", "tests::adds"]));
        let p = plan(&argv(&["go", "test", "./..."]), GO).unwrap();
        assert_eq!(p.tests, argv(&["TestAdd", "TestSub"]));
        assert_eq!(p.argv, argv(&["go", "test", "./...", "-count=1", "-v", "-run", "^(TestAdd|TestSub)$"]));
        let mocha = "  1 passing\n  1 failing\n\n  1) Array\n       #indexOf()\n         finds (1.5):\n     AssertionError: 2 == 1\n      at Context.<anonymous> (test/a.js:5:7)\n";
        let p = plan(&argv(&["npx", "mocha"]), mocha).unwrap();
        assert_eq!(p.argv, argv(&["npx", "mocha", "--grep", "^(Array #indexOf\\(\\) finds \\(1\\.5\\))$"]));
        let p = plan(&argv(&["sh", "-c", "python3 -m pytest -q"]), PYTEST).unwrap();
        assert_eq!(p.argv, argv(&["python3", "-m", "pytest", "-q", "--lf", "--lfnf=none"]));
        let p = plan(&argv(&["/v/bin/pytest"]), PYTEST).unwrap();
        assert_eq!(p.argv, argv(&["/v/bin/pytest", "--lf", "--lfnf=none"]));
    }

    #[test]
    fn what_wt_cannot_narrow_is_not_run_again() {
        assert_eq!(plan(&argv(&["make", "test"]), CARGO), None, "make runs cargo test its own way");
        assert_eq!(plan(&argv(&["npm", "test"]), PYTEST), None);
        assert_eq!(plan(&argv(&["sh", "-c", "cd sub && pytest"]), PYTEST), None, "not one plain command");
        assert_eq!(plan(&argv(&["sh", "-c", "pytest; echo $?"]), PYTEST), None);
        assert_eq!(plan(&argv(&["cargo", "nextest", "run"]), CARGO), None);
        assert_eq!(plan(&argv(&["pytest"]), "just red\n"), None, "no failing test named");
    }

    #[test]
    fn the_verdict_compares_the_failures_by_name() {
        let p = plan(&argv(&["go", "test", "./..."]), GO).unwrap();
        let both = "=== RUN   TestAdd\n--- PASS: TestAdd (0.00s)\n--- PASS: TestSub (0.00s)\nPASS\n";
        assert_eq!(verdict(&p, true, both), Verdict::AllPassed);
        let none = "testing: warning: no tests to run\nPASS\nok  \texample.com/m\t0.01s [no tests to run]\n";
        assert_eq!(verdict(&p, true, none), Verdict::Nothing, "a filter that matched nothing proves nothing");
        let cargo = plan(&argv(&["cargo", "test"]), CARGO).unwrap();
        assert_eq!(verdict(&cargo, true, "running 0 tests\n\ntest result: ok.\n"), Verdict::Nothing);
        assert_eq!(verdict(&cargo, true, "running 1 test\n.\ntest result: ok.\nrunning 0 tests\n"), Verdict::AllPassed);
        let same = Verdict::Failing { passed: vec![], still: argv(&["TestAdd", "TestSub"]) };
        assert_eq!(verdict(&p, false, GO), same, "the same failures");
        let sub_only = "--- FAIL: TestSub (0.00s)\nFAIL\n";
        let some = Verdict::Failing { passed: argv(&["TestAdd"]), still: argv(&["TestSub"]) };
        assert_eq!(verdict(&p, false, sub_only), some);
        assert_eq!(verdict(&p, false, "flag provided but not defined: -run\n"), Verdict::Nothing);
    }

    #[test]
    fn a_failure_seen_flaky_before_is_said_so() {
        let mut seen = std::collections::BTreeMap::new();
        assert_eq!(known_flaky_note(&argv(&["t"]), &seen), None);
        seen.insert("t".to_string(), 2);
        let note = known_flaky_note(&argv(&["t", "u"]), &seen).unwrap();
        assert!(note.contains("t (passed when run again in round 2)") && !note.contains("u ("), "{note}");
    }
}
