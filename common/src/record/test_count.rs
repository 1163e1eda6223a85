//! How many tests a run executed, from its runner's own summary, and which ones where the runner
//! lists them. wt-watch holds a green round to the count of the loop's first round: an agent
//! that turns its tests green by running fewer of them (deselected in a config, a `#[test]`
//! deleted, a package's tests removed) is caught whatever file it changed.
//!
//! Counted as executed: tests that passed or failed (pytest's xfailed and xpassed too), never
//! skipped, ignored, deselected or pending ones. Where the runner sums up per binary or per
//! package (cargo test, go test), the sums are added. Recognised:
//!
//! - pytest: its last line, `4 passed, 1 skipped, 1 deselected in 0.03s` (with `-q` too); the
//!   names from `-v` (`tests/t.py::test_a PASSED`) or `-rA` (`PASSED tests/t.py::test_a`).
//! - cargo test: every `test result: ok. 3 passed; 0 failed; …`; names from `test NAME ... ok`.
//! - go test: with `-v`, every `--- PASS:`/`--- FAIL:` line, subtests included, named
//!   `pkg: TestName`; without it, only packages are listed: the count is of packages that ran
//!   tests (`ok`/`FAIL` lines; `[no test files]` is none), its unit `packages`.
//! - node's runner: `# pass N`/`# fail N` (TAP) or `ℹ pass N`/`ℹ fail N` (spec); names from
//!   `ok N - name` or `✔ name (…ms)`.
//! - mocha `N passing`/`N failing`, jest `Tests: 1 failed, 5 passed, 6 total`, vitest
//!   `Tests  1 failed | 5 passed (6)`, unittest `Ran N tests` less `skipped=K`: counts only.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;

use crate::record::excerpt::{strip_ansi, Runner};

/// What a count counts: tests, or (go test without -v) packages whose tests ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Tests,
    Packages,
}

impl Unit {
    pub fn name(self) -> &'static str {
        match self {
            Unit::Tests => "tests",
            Unit::Packages => "packages",
        }
    }
}

/// The tests a run executed, as its runner summed them up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCount {
    pub runner: Runner,
    pub unit: Unit,
    pub ran: u64,
    /// The executed tests by name, where the runner listed them (else empty).
    pub names: BTreeSet<String>,
}

impl TestCount {
    /// Whether `self` (a later run) executed fewer than `base`. Counts in another unit or of
    /// another runner are not compared (the test command is the same; its output changing shape
    /// is no drop of tests).
    pub fn dropped_below(&self, base: &TestCount) -> bool {
        self.runner == base.runner && self.unit == base.unit && self.ran < base.ran
    }

    /// The tests `base` lists and `self` does not; empty when either lists none.
    pub fn missing_from(&self, base: &TestCount) -> Vec<String> {
        if self.names.is_empty() || base.names.is_empty() {
            return Vec::new();
        }
        base.names.difference(&self.names).cloned().collect()
    }
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a valid pattern")
}

/// The count of the tests in a run's output (ANSI codes are stripped here); `None` when no
/// runner's summary is recognised in it.
pub fn count(output: &str) -> Option<TestCount> {
    let text = strip_ansi(output);
    let text = text.as_str();
    cargo(text)
        .or_else(|| pytest(text))
        .or_else(|| unittest(text))
        .or_else(|| go(text))
        .or_else(|| jest(text))
        .or_else(|| vitest(text))
        .or_else(|| node(text))
        .or_else(|| mocha(text))
}

fn num(s: &str) -> u64 {
    s.parse().unwrap_or(0)
}

fn of(runner: Runner, unit: Unit, ran: u64, names: BTreeSet<String>) -> Option<TestCount> {
    Some(TestCount { runner, unit, ran, names })
}

fn cargo(text: &str) -> Option<TestCount> {
    static RESULT: LazyLock<Regex> =
        LazyLock::new(|| re(r"(?m)^test result: (?:ok|FAILED)\. (\d+) passed; (\d+) failed; "));
    static NAME: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^test (.+) \.\.\. (?:ok|FAILED)$"));
    let mut found = false;
    let mut ran = 0;
    for c in RESULT.captures_iter(text) {
        found = true;
        ran += num(&c[1]) + num(&c[2]);
    }
    if !found {
        return None;
    }
    let names = NAME.captures_iter(text).map(|c| c[1].to_string()).collect();
    of(Runner::Cargo, Unit::Tests, ran, names)
}

fn pytest(text: &str) -> Option<TestCount> {
    // The same last line the excerpt reads (`=== 2 failed, 1 passed in 0.27s ===`, or bare).
    static SUMMARY: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"(?m)^=*\s*(\d+ (?:failed|passed|errors?|skipped|deselected|xfailed|xpassed|warnings?)(?:, \d+ \w+)*) in [\d.]+s\b.*$",
        )
    });
    static PART: LazyLock<Regex> = LazyLock::new(|| re(r"(\d+) (failed|passed|xfailed|xpassed)\b"));
    static VERBOSE: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^(\S+?::.*?) (?:PASSED|FAILED|XFAIL|XPASS)(?: |$)"));
    static SHORT: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^(?:PASSED|FAILED|XFAIL|XPASS) (\S+?::.*?)(?: - .*)?$"));
    let last = SUMMARY.captures_iter(text).last()?;
    let ran = PART.captures_iter(&last[1]).map(|c| num(&c[1])).sum();
    let names = VERBOSE.captures_iter(text).chain(SHORT.captures_iter(text)).map(|c| c[1].trim().to_string()).collect();
    of(Runner::Pytest, Unit::Tests, ran, names)
}

fn unittest(text: &str) -> Option<TestCount> {
    static RAN: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^Ran (\d+) tests? in [\d.]+s$"));
    static SKIPPED: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^(?:OK|FAILED) \(.*\bskipped=(\d+)"));
    let ran = num(&RAN.captures_iter(text).last()?[1]);
    let skipped = SKIPPED.captures_iter(text).last().map_or(0, |c| num(&c[1]));
    of(Runner::Unittest, Unit::Tests, ran.saturating_sub(skipped), BTreeSet::new())
}

fn go(text: &str) -> Option<TestCount> {
    static TEST: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*--- (?:PASS|FAIL): (\S+) \("));
    static PACKAGE: LazyLock<Regex> = LazyLock::new(|| re(r"^(?:ok  |FAIL)\t(\S+)\t"));
    static VERBOSE: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^=== RUN\s"));
    let verbose = VERBOSE.is_match(text);
    let (mut tests, mut packages) = (Vec::new(), 0u64);
    let mut pending: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some(c) = TEST.captures(line) {
            pending.push(c[1].to_string());
        } else if let Some(c) = PACKAGE.captures(line) {
            // A package's tests come before its `ok`/`FAIL` line: they are named with it.
            packages += 1;
            tests.extend(pending.drain(..).map(|t| format!("{}: {t}", &c[1])));
        }
    }
    tests.append(&mut pending);
    if packages == 0 && tests.is_empty() {
        return None;
    }
    if verbose {
        let ran = tests.len() as u64;
        of(Runner::GoTest, Unit::Tests, ran, tests.into_iter().collect())
    } else {
        of(Runner::GoTest, Unit::Packages, packages, BTreeSet::new())
    }
}

fn jest(text: &str) -> Option<TestCount> {
    static TESTS: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^Tests:\s+(.*\d+ total)$"));
    static PART: LazyLock<Regex> = LazyLock::new(|| re(r"(\d+) (failed|passed)\b"));
    let line = TESTS.captures_iter(text).last()?;
    let ran = PART.captures_iter(&line[1]).map(|c| num(&c[1])).sum();
    of(Runner::Jest, Unit::Tests, ran, BTreeSet::new())
}

fn vitest(text: &str) -> Option<TestCount> {
    static TESTS: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^\s*Tests\s+(.*)\(\d+\)\s*$"));
    static PART: LazyLock<Regex> = LazyLock::new(|| re(r"(\d+) (failed|passed)\b"));
    let line = TESTS.captures_iter(text).last()?;
    let ran = PART.captures_iter(&line[1]).map(|c| num(&c[1])).sum();
    of(Runner::Vitest, Unit::Tests, ran, BTreeSet::new())
}

fn node(text: &str) -> Option<TestCount> {
    static PASS: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^(?:# |ℹ )pass (\d+)$"));
    static FAIL: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^(?:# |ℹ )fail (\d+)$"));
    static TAP: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^\s*(?:not )?ok \d+ - (.*?)\s*$"));
    static SPEC: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^\s*[✔✖] (.*) \([\d.]+m?s\)\s*$"));
    let pass = num(&PASS.captures_iter(text).last()?[1]);
    let fail = FAIL.captures_iter(text).last().map_or(0, |c| num(&c[1]));
    let names = TAP
        .captures_iter(text)
        .chain(SPEC.captures_iter(text))
        .map(|c| c[1].to_string())
        .filter(|n| !n.contains("# SKIP") && !n.contains("# TODO"))
        .collect();
    of(Runner::NodeTest, Unit::Tests, pass + fail, names)
}

fn mocha(text: &str) -> Option<TestCount> {
    static PASSING: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^\s+(\d+) passing \("));
    static FAILING: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^\s+(\d+) failing$"));
    let passing = PASSING.captures_iter(text).last().map(|c| num(&c[1]));
    let failing = FAILING.captures_iter(text).last().map(|c| num(&c[1]));
    if passing.is_none() && failing.is_none() {
        return None;
    }
    of(Runner::Mocha, Unit::Tests, passing.unwrap_or(0) + failing.unwrap_or(0), BTreeSet::new())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn sample(name: &str) -> TestCount {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/excerpt").join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        count(&text).unwrap_or_else(|| panic!("no count in {name}"))
    }

    fn names(c: &TestCount) -> Vec<&str> {
        c.names.iter().map(String::as_str).collect()
    }

    #[test]
    fn pytest_counts_passed_and_failed_not_skipped_or_deselected() {
        let q = sample("count-pytest-q-pass.txt");
        assert_eq!((q.runner, q.ran), (Runner::Pytest, 4));
        assert!(q.names.is_empty(), "-q lists no test");
        let v = sample("count-pytest-v-pass.txt");
        assert_eq!(v.ran, 4);
        assert_eq!(
            names(&v),
            [
                "tests/test_a.py::test_one",
                "tests/test_a.py::test_param[1]",
                "tests/test_a.py::test_param[2]",
                "tests/test_a.py::test_two"
            ]
        );
        let ra = sample("count-pytest-rA-deselected.txt");
        assert_eq!(ra.ran, 3);
        assert!(ra.dropped_below(&v));
        assert_eq!(ra.missing_from(&v), ["tests/test_a.py::test_two"]);
        let red = sample("pytest.txt");
        assert_eq!(red.ran, 3, "2 failed, 1 passed");
        assert!(red.names.contains("tests/test_calc.py::test_add"), "{:?}", red.names);
    }

    #[test]
    fn cargo_adds_up_every_binary_and_names_the_tests() {
        let c = sample("count-cargo-pass.txt");
        assert_eq!((c.runner, c.ran), (Runner::Cargo, 3), "the ignored test did not run");
        assert_eq!(names(&c), ["again", "from_outside", "tests::adds"]);
        let red = sample("cargo-nofailfast.txt");
        assert_eq!(red.ran, 3);
    }

    #[test]
    fn go_counts_tests_with_v_and_packages_without() {
        let v = sample("count-go-v-pass.txt");
        assert_eq!((v.runner, v.unit, v.ran), (Runner::GoTest, Unit::Tests, 5), "{:?}", v.names);
        assert!(v.names.contains("example.com/g: TestSub/one") && v.names.contains("example.com/g/sub2: TestX"));
        assert!(!v.names.iter().any(|n| n.contains("TestSkip")));
        let p = sample("count-go-pass.txt");
        assert_eq!((p.unit, p.ran), (Unit::Packages, 2), "the package without tests is none");
        assert!(!p.dropped_below(&v), "packages and tests are not compared");
        let red = sample("gotest-v.txt");
        assert_eq!(red.unit, Unit::Tests);
    }

    #[test]
    fn node_mocha_jest_and_vitest_counts() {
        let tap = sample("count-node-tap-pass.txt");
        assert_eq!((tap.runner, tap.ran), (Runner::NodeTest, 4));
        assert!(tap.names.contains("inner two") && !tap.names.contains("skipped"), "{:?}", tap.names);
        let spec = sample("count-node-spec-pass.txt");
        assert_eq!(spec.ran, 4);
        assert!(spec.names.contains("inner one") && !spec.names.iter().any(|n| n.contains("skipped")));
        assert_eq!(sample("nodetest-tap.txt").ran, 2);
        let m = sample("count-mocha-pass.txt");
        assert_eq!((m.runner, m.ran), (Runner::Mocha, 3), "pending is not run");
        assert_eq!(sample("mocha.txt").ran, 2);
        assert_eq!((sample("jest.txt").runner, sample("jest.txt").ran), (Runner::Jest, 2));
        assert_eq!((sample("vitest.txt").runner, sample("vitest.txt").ran), (Runner::Vitest, 2));
    }

    #[test]
    fn output_without_a_summary_has_no_count() {
        assert_eq!(count("make: *** [test] Error 1\n"), None);
        assert_eq!(count(""), None);
    }
}
