//! How many tests passed and failed in a run, and which failed, from the runner's own summary:
//! pytest's last line (`3 failed, 1 passed in 0.24s`) and its short summary (`FAILED id - …`),
//! cargo test's `test result:` lines (summed over its test binaries) and `test NAME ... FAILED`,
//! go test's `--- PASS:` / `--- FAIL:` lines (passes are listed only with `-v`: without it the
//! number that passed is not known), mocha's `N passing` / `N failing`, node's runner's
//! `ℹ pass N` / `# pass N`, and, from any command, a plain `N passed, N failed` line alone.
//!
//! What wt-watch's best-so-far compares rounds by (`wt-watch/src/best.rs`). The counts come from
//! the summary, not from counting failure blocks, so a test's captured output that looks like a
//! header does not change them. Text is what `excerpt::read_log` read (the head and the end of a
//! huge log): the summaries are at the end.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;

use crate::record::excerpt::{self, Runner};

/// What a run's summary says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    /// The runner that wrote the summary (`pytest`, `cargo test`, `go test`, `mocha`,
    /// `node:test`, `plain`).
    pub runner: &'static str,
    /// Tests that passed; `None` when the runner does not say (go test without `-v`).
    pub passed: Option<u64>,
    pub failed: u64,
    /// The failing tests' names as the runner writes them, in order, each once; may be fewer
    /// than `failed` when the names are not in the output.
    pub failing: Vec<String>,
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a valid pattern")
}

/// The counts in a run's output (ANSI codes are stripped first); `None` when no runner's
/// summary is found.
pub fn of(output: &str) -> Option<Counts> {
    let text = excerpt::strip_ansi(output);
    cargo(&text)
        .or_else(|| pytest(&text))
        .or_else(|| mocha(&text))
        .or_else(|| node(&text))
        .or_else(|| go(&text))
        .or_else(|| plain(&text))
}

fn num(s: &str) -> u64 {
    s.parse().unwrap_or(0)
}

fn unique(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    names.into_iter().filter(|n| seen.insert(n.clone())).collect()
}

/// Names from the excerpt library's parse of the failure blocks.
fn names_from_failures(runner: Runner, text: &str) -> Vec<String> {
    unique(excerpt::failures(runner, text).into_iter().map(|f| f.test))
}

fn cargo(text: &str) -> Option<Counts> {
    static RESULT: LazyLock<Regex> =
        LazyLock::new(|| re(r"(?m)^test result: (?:ok|FAILED)\. (\d+) passed; (\d+) failed;"));
    static FAILED: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^test (\S+) \.\.\. FAILED$"));
    let mut found = false;
    let (mut passed, mut failed) = (0, 0);
    for c in RESULT.captures_iter(text) {
        found = true;
        passed += num(&c[1]);
        failed += num(&c[2]);
    }
    if !found {
        return None;
    }
    let failing = unique(FAILED.captures_iter(text).map(|c| c[1].to_string()));
    Some(Counts { runner: "cargo test", passed: Some(passed), failed, failing })
}

fn pytest(text: &str) -> Option<Counts> {
    // The last line: `=== 3 failed, 1 passed, 1 error in 0.24s ===` (`-q`: without the rules),
    // or `no tests ran in 0.01s`.
    static SUMMARY: LazyLock<Regex> = LazyLock::new(|| {
        re(r"(?m)^=*\s*((?:\d+ \w+)(?:, \d+ \w+)*|no tests ran) in [\d.]+s\b(?: \([^)]*\))?\s*=*\s*$")
    });
    static PART: LazyLock<Regex> = LazyLock::new(|| re(r"(\d+) (\w+)"));
    static SHORT: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^(?:FAILED|ERROR) (.+?)(?: - .*)?$"));
    let last = SUMMARY.captures_iter(text).last()?;
    let (mut passed, mut failed) = (0, 0);
    for p in PART.captures_iter(&last[1]) {
        match &p[2] {
            "passed" => passed += num(&p[1]),
            "failed" | "error" | "errors" => failed += num(&p[1]),
            _ => {}
        }
    }
    let mut failing = unique(SHORT.captures_iter(text).map(|c| c[1].trim().to_string()));
    if failing.is_empty() && failed > 0 {
        failing = names_from_failures(Runner::Pytest, text);
    }
    Some(Counts { runner: "pytest", passed: Some(passed), failed, failing })
}

fn mocha(text: &str) -> Option<Counts> {
    static PASSING: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^\s+(\d+) passing \("));
    static FAILING: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^\s+(\d+) failing$"));
    let passed = num(&PASSING.captures_iter(text).last()?[1]);
    let failed = FAILING.captures_iter(text).last().map_or(0, |c| num(&c[1]));
    let failing = if failed > 0 { names_from_failures(Runner::Mocha, text) } else { Vec::new() };
    Some(Counts { runner: "mocha", passed: Some(passed), failed, failing })
}

fn node(text: &str) -> Option<Counts> {
    static PASS: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^(?:ℹ|#) pass (\d+)$"));
    static FAIL: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^(?:ℹ|#) fail (\d+)$"));
    let passed = num(&PASS.captures_iter(text).last()?[1]);
    let failed = FAIL.captures_iter(text).last().map_or(0, |c| num(&c[1]));
    let failing = if failed > 0 { names_from_failures(Runner::NodeTest, text) } else { Vec::new() };
    Some(Counts { runner: "node:test", passed: Some(passed), failed, failing })
}

fn go(text: &str) -> Option<Counts> {
    static RESULT: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^\s*--- (PASS|FAIL): (\S+) \("));
    static PACKAGE: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^(?:ok|FAIL)\s+\S+\s+(?:[\d.]+s|\(cached\))"));
    static VERBOSE: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^=== RUN\s"));
    let results: Vec<(bool, String)> =
        RESULT.captures_iter(text).map(|c| (&c[1] == "PASS", c[2].to_string())).collect();
    if results.is_empty() && !PACKAGE.is_match(text) {
        return None;
    }
    let failing = unique(results.iter().filter(|(p, _)| !p).map(|(_, n)| n.clone()));
    let passed = VERBOSE.is_match(text).then(|| results.iter().filter(|(p, _)| *p).count() as u64);
    Some(Counts { runner: "go test", passed, failed: failing.len() as u64, failing })
}

fn plain(text: &str) -> Option<Counts> {
    static LINE: LazyLock<Regex> =
        LazyLock::new(|| re(r"(?m)^(?:\w+: )?(\d+) passed, (\d+) failed(?:, \d+ skipped)?\s*$"));
    let c = LINE.captures_iter(text).last()?;
    Some(Counts { runner: "plain", passed: Some(num(&c[1])), failed: num(&c[2]), failing: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn sample(name: &str) -> String {
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/excerpt").join(name)).unwrap()
    }

    fn counts(name: &str) -> Counts {
        of(&sample(name)).unwrap_or_else(|| panic!("no counts in {name}"))
    }

    #[test]
    fn pytest_counts_come_from_its_last_line_and_names_from_its_short_summary() {
        let c = counts("pytest.txt");
        assert_eq!((c.runner, c.passed, c.failed), ("pytest", Some(1), 2));
        assert_eq!(c.failing, ["tests/test_calc.py::test_add", "tests/test_calc.py::CalcTest::test_add_unittest"]);
        let c = counts("pytest-long-names.txt");
        assert_eq!((c.passed, c.failed), (Some(1), 3));
        assert_eq!(c.failing[0], "tests/test_dunder.py::TestThing::test___init__");
        assert_eq!(c.failing.len(), 3);
        // Captured output that prints a summary-like line does not count: the last one does.
        let c = counts("pytest-noisy.txt");
        assert_eq!((c.passed, c.failed), (Some(1), 2));
        // A collection error: the module is named.
        let c = counts("pytest-syntax.txt");
        assert!(c.failed >= 1 && c.failing == ["tests/test_a.py"], "{c:?}");
        let green = "....\n4 passed in 0.02s\n";
        assert_eq!(of(green).unwrap(), Counts { runner: "pytest", passed: Some(4), failed: 0, failing: vec![] });
        let colored = "\x1b[32m============ \x1b[32m\x1b[1m5 passed\x1b[0m\x1b[32m in 0.03s\x1b[0m\x1b[32m =============\x1b[0m\n";
        assert_eq!(of(colored).unwrap().passed, Some(5));
    }

    #[test]
    fn cargo_sums_every_test_binary() {
        let c = counts("cargo-nofailfast.txt");
        assert_eq!((c.runner, c.passed, c.failed), ("cargo test", Some(1), 2));
        assert_eq!(c.failing, ["tests::adds", "checked_rejects_nothing_positive"]);
        let c = counts("cargo-backtrace.txt");
        assert_eq!((c.passed, c.failed), (Some(1), 1));
        assert!(of(&sample("cargo-compile.txt")).is_none(), "a build that failed ran no test");
    }

    #[test]
    fn go_counts_passes_only_when_verbose() {
        let c = counts("gotest-v.txt");
        assert_eq!((c.runner, c.passed, c.failed), ("go test", Some(1), 3));
        assert_eq!(c.failing, ["TestAdd", "TestTable", "TestTable/negative"]);
        let c = counts("gotest.txt");
        assert_eq!((c.passed, c.failed), (None, 3), "without -v the passes are not listed");
        let c = counts("gotest-v-panic.txt");
        assert_eq!((c.passed, c.failing.clone()), (Some(1), vec!["TestGet".to_string()]));
        assert_eq!(of("ok  \texample.com/calc\t0.003s\n").unwrap().failed, 0);
    }

    #[test]
    fn mocha_and_node_runner_counts() {
        let c = counts("mocha.txt");
        assert_eq!((c.runner, c.passed, c.failed), ("mocha", Some(1), 1));
        assert_eq!(c.failing.len(), 1);
        assert!(c.failing[0].contains("adds two numbers"), "{:?}", c.failing);
        for name in ["nodetest-spec.txt", "nodetest-tap.txt"] {
            let c = counts(name);
            assert_eq!((c.runner, c.passed, c.failed), ("node:test", Some(1), 1), "{name}");
            assert_eq!(c.failing, ["adds two numbers"], "{name}");
        }
    }

    #[test]
    fn a_plain_line_counts_and_other_output_does_not() {
        let c = of("building\ntests: 7 passed, 2 failed, 1 skipped\n").unwrap();
        assert_eq!((c.runner, c.passed, c.failed), ("plain", Some(7), 2));
        assert!(of("all good\n").is_none());
        assert!(of("it said 3 passed, 1 failed somewhere in a sentence\n").is_none());
    }
}
