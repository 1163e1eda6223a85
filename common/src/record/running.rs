//! The tests a run was still running when its timeout stopped it, from what the runner itself
//! printed: the line a timed-out round's excerpt begins with (`excerpt::timed_out`) names them,
//! so that an agent fed a hang is told which test hung and where.
//!
//! What each runner prints of a test that has not ended:
//! - pytest with `-v`: the node id, then nothing (`tests/test_a.py::test_hang `); with
//!   `faulthandler_timeout` (which wt-watch asks for, through `PYTEST_ADDOPTS`), a dump of the
//!   threads' stacks once a test has run that long: `Timeout (0:01:00)!`, then `File "…", line N
//!   in test_hang`, the innermost frame first. The dump says where it hangs, with or without
//!   `-v`, and is taken first.
//! - cargo test: `test NAME has been running for over 60 seconds`, and with one test thread
//!   `test NAME ... ` before its result.
//! - go test with `-v`: `=== RUN   TestX` with no `--- PASS/FAIL/SKIP: TestX` after it; go's own
//!   `-timeout` panics with `running tests:` and their names.
//! - node's runner and mocha print a test only once it has ended: nothing names the one running.
//!
//! Linear in the output (an agent writes it; wt-merge reads it under its queue lock), and at
//! most [`NAMED`] tests are named.
//!
//! **What wt asks of pytest** ([`pytest_addopts`]), which prints nothing of a running test by
//! default (`-q` prints only dots): wt-watch's rounds and wt-merge's verifications that have a
//! timeout add `-o faulthandler_timeout=S` to `PYTEST_ADDOPTS`, S half the timeout. A test that
//! runs that long gets Python's dump of its stack in the output and runs on. Nothing else
//! changes: the person's command is untouched, no test is stopped by it, the outcome and the
//! report are the same (on itsdangerous' 297 tests: the same `297 passed`, the same output),
//! and a command that is not pytest ignores the variable. A `PYTEST_ADDOPTS` of the person's
//! own is kept, ours after it; one that already sets `faulthandler_timeout` is left alone. Half
//! the timeout: a hanging test is dumped while the run still runs if it started in the first
//! half, which with wt-watch's default timeout (3× the last green round) it does unless the
//! suite got 50% slower. Other runners are not asked: cargo test says on its own which tests
//! have run over a minute; go test names them with `-v`, which would change the whole of its
//! output, so that is left to the person (or go's own `-timeout`, whose panic lists them).

use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

use super::excerpt::project_frame;

/// The most tests a timed-out excerpt names.
pub const NAMED: usize = 5;

/// A test that had started and not ended when the run was stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub test: String,
    /// `path:line` where it was when a stack was dumped (the innermost frame in the project).
    pub location: Option<String>,
}

/// The variable pytest reads extra arguments from.
pub const PYTEST_ADDOPTS: &str = "PYTEST_ADDOPTS";

/// `PYTEST_ADDOPTS` as a run with `timeout` sets it, given the run's `env` on top of
/// `inherited` (the tool's own environment's value); `None` when it is left as it is.
pub fn pytest_addopts(
    env: &[(String, String)],
    inherited: Option<String>,
    timeout: Option<Duration>,
) -> Option<String> {
    let timeout = timeout?;
    let theirs = env.iter().rev().find(|(k, _)| k == PYTEST_ADDOPTS).map(|(_, v)| v.clone()).or(inherited);
    let theirs = theirs.unwrap_or_default();
    if theirs.contains("faulthandler_timeout") {
        return None;
    }
    let after = (timeout.as_millis() / 2).max(1);
    let ours = format!("-o faulthandler_timeout={}.{:03}", after / 1000, after % 1000);
    Some(if theirs.trim().is_empty() { ours } else { format!("{theirs} {ours}") })
}

/// `env` with [`pytest_addopts`] set in it (the tool's own `PYTEST_ADDOPTS` read as inherited).
pub fn asking_pytest(env: &mut Vec<(String, String)>, timeout: Option<Duration>) {
    if let Some(v) = pytest_addopts(env, std::env::var(PYTEST_ADDOPTS).ok(), timeout) {
        env.retain(|(k, _)| k != PYTEST_ADDOPTS);
        env.push((PYTEST_ADDOPTS.into(), v));
    }
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a valid pattern")
}

/// The tests still running at the end of `text` (without ANSI codes), as the runner that wrote
/// it says; empty when it says nothing of them.
pub fn running(text: &str) -> Vec<Running> {
    let lines: Vec<&str> = text.lines().collect();
    let found = [faulthandler(&lines), pytest_verbose(&lines), cargo(&lines), go(&lines)]
        .into_iter()
        .find(|r| !r.is_empty())
        .unwrap_or_default();
    found.into_iter().take(NAMED).collect()
}

/// How a timed-out excerpt's first line goes on after `timed out after 2m00s`: ` while running
/// test_hang (tests/test_a.py:5) at app/spin.py:2`, several joined by `, `; empty when none is
/// known.
pub fn phrase(running: &[Running]) -> String {
    if running.is_empty() {
        return String::new();
    }
    let named: Vec<String> = running
        .iter()
        .map(|r| match &r.location {
            Some(at) => format!("{} at {at}", r.test),
            None => r.test.clone(),
        })
        .collect();
    format!(" while running {}", named.join(", "))
}

/// Python's faulthandler dump (pytest's `faulthandler_timeout`), the last one in the output: in
/// the thread that runs pytest, the test is the function pytest called (the frame above
/// `pytest_pyfunc_call`, named with its file and line), and where it was is the innermost frame
/// in the project.
fn faulthandler(lines: &[&str]) -> Vec<Running> {
    static FRAME: LazyLock<Regex> = LazyLock::new(|| re(r#"^\s+File "([^"]+)", line (\d+) in (\S+)$"#));
    // After pytest -q's dots on the same line.
    static TIMEOUT: LazyLock<Regex> = LazyLock::new(|| re(r"Timeout \(\d+:\d\d:\d\d(?:\.\d+)?\)!$"));
    let Some(start) = lines.iter().rposition(|l| TIMEOUT.is_match(l)) else {
        return Vec::new();
    };
    let mut frames: Vec<(String, String)> = Vec::new(); // (path:line, function), innermost first
    for line in &lines[start + 1..] {
        if line.contains(" (most recent call first):") {
            if frames.iter().any(|(_, f)| f == "pytest_pyfunc_call") {
                break; // the thread that runs the test was the one before
            }
            frames.clear();
            continue;
        }
        match FRAME.captures(line) {
            Some(c) => frames.push((format!("{}:{}", &c[1], &c[2]), c[3].to_string())),
            None if line.trim().is_empty() => continue,
            None => break,
        }
    }
    let Some(call) = frames.iter().position(|(_, f)| f == "pytest_pyfunc_call") else { return Vec::new() };
    let Some((test_at, test)) = call.checked_sub(1).map(|i| &frames[i]) else { return Vec::new() };
    let at = frames[..call].iter().find(|(place, _)| project_frame(place)).map(|(place, _)| place.clone());
    let location = at.filter(|a| a != test_at);
    vec![Running { test: format!("{test} ({test_at})"), location }]
}

/// pytest `-v`: the last node id printed, when no outcome followed it.
fn pytest_verbose(lines: &[&str]) -> Vec<Running> {
    static NODE: LazyLock<Regex> = LazyLock::new(|| re(r"^(\S+\.py::\S+)(?: (.*))?$"));
    static OUTCOME: LazyLock<Regex> = LazyLock::new(|| re(r"\b(?:PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b"));
    let Some((i, c)) = lines.iter().enumerate().rev().find_map(|(i, l)| NODE.captures(l).map(|c| (i, c))) else {
        return Vec::new();
    };
    let rest = c.get(2).map_or("", |m| m.as_str());
    if OUTCOME.is_match(rest) || lines[i + 1..].iter().any(|l| OUTCOME.is_match(l)) {
        return Vec::new();
    }
    vec![Running { test: c[1].to_string(), location: None }]
}

/// cargo test: the tests said to have run over a minute, and one a single test thread started
/// (`test NAME ... ` with no result yet), but those that ended after.
fn cargo(lines: &[&str]) -> Vec<Running> {
    static LONG: LazyLock<Regex> = LazyLock::new(|| re(r"^test (\S+) has been running for over \d+ seconds$"));
    static STARTED: LazyLock<Regex> = LazyLock::new(|| re(r"^test (\S+) \.\.\. ?(\S*)"));
    let mut started: Vec<&str> = Vec::new();
    let mut ended: HashSet<&str> = HashSet::new();
    for line in lines {
        if let Some(c) = LONG.captures(line) {
            started.extend(c.get(1).map(|m| m.as_str()));
        } else if let Some(c) = STARTED.captures(line) {
            let name = c.get(1).map_or("", |m| m.as_str());
            if c[2].is_empty() {
                started.push(name);
            } else {
                ended.insert(name);
            }
        }
    }
    unique(started.into_iter().filter(|t| !ended.contains(t)))
}

/// go test: `=== RUN` (or go's own timeout's `running tests:`) with no end after it; a parent
/// whose subtest runs is not named apart from it.
fn go(lines: &[&str]) -> Vec<Running> {
    static RUN: LazyLock<Regex> = LazyLock::new(|| re(r"^=== RUN\s+(\S+)$"));
    static END: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*--- (?:PASS|FAIL|SKIP): (\S+) \("));
    static LISTED: LazyLock<Regex> = LazyLock::new(|| re(r"^\t+(\S+) \(\S+\)$"));
    if let Some(i) = lines.iter().rposition(|l| *l == "running tests:") {
        let listed = lines[i + 1..].iter().map_while(|l| LISTED.captures(l)).filter_map(|c| c.get(1));
        return unique(listed.map(|m| m.as_str()));
    }
    let mut started: Vec<&str> = Vec::new();
    let mut ended: HashSet<&str> = HashSet::new();
    for line in lines {
        if let Some(c) = RUN.captures(line) {
            started.extend(c.get(1).map(|m| m.as_str()));
        } else if let Some(c) = END.captures(line) {
            ended.extend(c.get(1).map(|m| m.as_str()));
        }
    }
    let open: Vec<&str> = started.into_iter().filter(|t| !ended.contains(t)).collect();
    let mut sorted = open.clone();
    sorted.sort_unstable();
    // Names under `t/` sort together, right after `t/`.
    let is_parent = |t: &str| {
        let under = format!("{t}/");
        let i = sorted.partition_point(|o| *o < under.as_str());
        sorted.get(i).is_some_and(|o| o.starts_with(&under))
    };
    unique(open.iter().copied().filter(|t| !is_parent(t)))
}

/// The names in their first order, each once.
fn unique<'a>(names: impl Iterator<Item = &'a str>) -> Vec<Running> {
    let mut seen = HashSet::new();
    names.filter(|n| seen.insert(*n)).map(|n| Running { test: n.to_string(), location: None }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/excerpt").join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn named(text: &str) -> Vec<(String, Option<String>)> {
        running(text).into_iter().map(|r| (r.test, r.location)).collect()
    }

    /// pytest -q with `faulthandler_timeout`, killed while `test_hang` spins in `app/spin.py`:
    /// the dots, then Python's dump of the stack.
    #[test]
    fn pytest_faulthandler_names_the_test_and_where_it_hangs() {
        assert_eq!(
            named(&sample("pytest-q-hang.txt")),
            [("test_hang (/tmp/exr/py/tests/test_a.py:5)".to_string(), Some("/tmp/exr/py/app/spin.py:2".to_string()))]
        );
    }

    /// pytest -v killed in `test_hang`: its node id, with no outcome after it.
    #[test]
    fn pytest_verbose_names_the_node_id_left_without_an_outcome() {
        let text = sample("pytest-v-hang.txt");
        assert_eq!(named(&text), [("tests/test_a.py::test_hang".to_string(), None)]);
        assert!(named(&format!("{text}PASSED                    [ 66%]\n")).is_empty(), "it ended");
    }

    /// cargo test, two tests over a minute (parallel), and one test thread's started test.
    #[test]
    fn cargo_names_the_tests_running_for_over_a_minute() {
        assert_eq!(
            named(&sample("cargo-hang.txt")),
            [("tests::hangs".to_string(), None), ("tests::sleeps".to_string(), None)]
        );
        let one_thread = "running 3 tests\ntest tests::ok ... ok\ntest tests::hangs ... ";
        assert_eq!(named(one_thread), [("tests::hangs".to_string(), None)]);
    }

    /// go test -v killed in a subtest: the subtest, not its parent as well; go's own timeout's
    /// list when it gives one.
    #[test]
    fn go_names_the_innermost_run_without_an_end() {
        assert_eq!(named(&sample("gotest-v-hang.txt")), [("TestHang/inner".to_string(), None)]);
        let own =
            "panic: test timed out after 5s\nrunning tests:\n\tTestHang (5s)\n\tTestHang/inner (5s)\n\ngoroutine 1";
        assert_eq!(named(own), [("TestHang".to_string(), None), ("TestHang/inner".to_string(), None)]);
    }

    #[test]
    fn at_most_five_are_named_and_other_output_names_none() {
        let many: String = (0..1000).map(|i| format!("=== RUN   Test{i}\n")).collect();
        assert_eq!(running(&many).len(), NAMED);
        assert!(running("collecting 3 items\n").is_empty());
        assert!(running(".....").is_empty());
        assert_eq!(phrase(&[]), "");
        let r = [
            Running { test: "a".into(), location: Some("x.py:1".into()) },
            Running { test: "b".into(), location: None },
        ];
        assert_eq!(phrase(&r), " while running a at x.py:1, b");
    }

    #[test]
    fn half_the_timeout_after_the_persons_own_options() {
        let t = Some(Duration::from_secs(120));
        assert_eq!(pytest_addopts(&[], None, t).as_deref(), Some("-o faulthandler_timeout=60.000"));
        assert_eq!(
            pytest_addopts(&[], Some("-x".into()), Some(Duration::from_millis(1500))).as_deref(),
            Some("-x -o faulthandler_timeout=0.750")
        );
        let env = [(PYTEST_ADDOPTS.to_string(), "-p no:randomly".to_string())];
        assert_eq!(
            pytest_addopts(&env, Some("-x".into()), t).as_deref(),
            Some("-p no:randomly -o faulthandler_timeout=60.000"),
            "the round's env over wt-watch's"
        );
        assert_eq!(pytest_addopts(&[], Some("-o faulthandler_timeout=5".into()), t), None, "theirs");
        assert_eq!(pytest_addopts(&[], None, None), None, "no timeout, nothing to dump before");
    }
}
