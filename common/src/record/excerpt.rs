//! The failure excerpt: what a red test run comes down to, small enough for an agent's context
//! window or a record's field. The runner is recognised from its output (cargo test, pytest,
//! unittest, go test, jest, vitest, node:test, tape, mocha); for each failing test the excerpt names
//! it, gives its assertion message and the innermost frame in the project's own code, not a
//! stack of the runner's. Output of any other command gives its last 40 lines, after its first
//! error when that is further up (a SyntaxError or ImportError with the line it names, a compiler's
//! `error[E…]` with its `-->`, a panic with its `file:line`): the first error is the cause, the
//! last lines often only its echo. ANSI codes are stripped; the excerpt is at most 4 KiB, with a
//! line saying how much was cut and where the full log is. A run stopped by a timeout says so
//! first ([`timed_out`]).
//!
//! One library for two tools: wt-watch feeds the excerpt of a red round back to the agent
//! ([`excerpt`]), and wt-merge gives it as the detail of a verification that failed
//! ([`of_log`], which reads the head and the end of the log wt wrote and says nothing when it
//! recognises no runner, so the caller keeps its own tail; [`of_log_timed_out`] when a timeout
//! stopped the run, which always says that).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

/// The most an excerpt takes, in bytes, the line about a cut included.
pub const MAX_BYTES: usize = 4096;
/// Lines of output kept when the runner is not recognised.
pub const FALLBACK_LINES: usize = 40;
/// Lines of one failure's message kept; the rest is in the log.
const MESSAGE_LINES: usize = 12;

/// A test runner the excerpt recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    Cargo,
    Pytest,
    Unittest,
    GoTest,
    Jest,
    Vitest,
    NodeTest,
    /// tape and other TAP producers that write `not ok N name` (no ` - `).
    Tape,
    Mocha,
}

impl Runner {
    /// How the excerpt names the runner.
    pub fn name(self) -> &'static str {
        match self {
            Runner::Cargo => "cargo test",
            Runner::Pytest => "pytest",
            Runner::Unittest => "unittest",
            Runner::GoTest => "go test",
            Runner::Jest => "jest",
            Runner::Vitest => "vitest",
            Runner::NodeTest => "node:test",
            Runner::Tape => "tape",
            Runner::Mocha => "mocha",
        }
    }
}

/// One failing test as the runner reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub test: String,
    pub message: Vec<String>,
    /// `path:line[:col]` of the innermost frame in the project's own code.
    pub location: Option<String>,
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a valid pattern")
}

static ANSI: LazyLock<Regex> =
    LazyLock::new(|| re(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]"));

/// The text without terminal escape sequences (colours, cursor moves, titles), a carriage
/// return read as a line break (`\r\n` as one): progress redrawn in place is a line per state,
/// not one line of all of them, nor nothing when no newline ends it.
pub fn strip_ansi(text: &str) -> String {
    ANSI.replace_all(text, "").replace("\r\n", "\n").replace('\r', "\n")
}

/// The excerpt of a run's output whose full log is at `log`: the failing tests when a runner is
/// recognised, else the output's last [`FALLBACK_LINES`] lines. What wt-watch feeds the agent.
pub fn excerpt(output: &str, log: &Path) -> String {
    within(&strip_ansi(output), log, MAX_BYTES)
}

/// The excerpt of a run that was stopped after `after` without ending by itself: `timed out
/// after 2m00s` first, with the tests that were still running when the runner's output names
/// them (`… while running test_hang (tests/test_a.py:5) at app/spin.py:2`, see
/// [`running`](crate::record::running)), then what [`excerpt`] gives of its output (the failures
/// so far, else its last lines), all within [`MAX_BYTES`].
pub fn timed_out(output: &str, log: &Path, after: Duration) -> String {
    let text = strip_ansi(output);
    let lead = timeout_line(after, &crate::record::running::running(&text));
    format!("{lead}{}", within(&text, log, MAX_BYTES - lead.len()))
}

/// The first line of a timed-out run's excerpt, at most a quarter of it.
fn timeout_line(after: Duration, running: &[crate::record::running::Running]) -> String {
    let mut line = format!("{TIMED_OUT}{}", crate::record::duration::human(after));
    line.push_str(&crate::record::running::phrase(running));
    line.truncate(floor_char_boundary(&line, MAX_BYTES / 4));
    line.push('\n');
    line
}

/// How a timed-out run's excerpt begins.
pub const TIMED_OUT: &str = "timed out after ";

/// The excerpt of `text` (without ANSI codes) in at most `max` bytes.
fn within(text: &str, log: &Path, max: usize) -> String {
    recognised(text, log, max).unwrap_or_else(|| fallback(text, log, max))
}

/// The excerpt of a run's output whose full log is at `log` when a runner is recognised in it and
/// reports at least one failing test (as [`excerpt`] gives it then); `None` otherwise.
pub fn failing(output: &str, log: &Path) -> Option<String> {
    recognised(&strip_ansi(output), log, MAX_BYTES)
}

/// How many tests failed, as an excerpt of a recognised runner says in its first line (`3
/// failing tests (pytest):`, after the line of a timeout); `None` for any other excerpt.
pub fn failing_count(excerpt: &str) -> Option<u64> {
    let first = excerpt.lines().find(|l| !l.starts_with(TIMED_OUT))?;
    let (n, rest) = first.split_once(' ')?;
    (rest.starts_with("failing test") && rest.ends_with("):")).then(|| n.parse().ok()).flatten()
}

/// How much of a log an excerpt is taken from: a quarter from its head, where a runner starts
/// reporting (pytest's FAILURES come before a failing test's captured output, which can be
/// megabytes), the rest from its end, where the runners summarise. What wt-watch reads; a
/// fitting `max_bytes` for [`of_log`].
pub const READ_BYTES: u64 = 8 << 20;

/// The text of the log at `path` an excerpt is taken from: all of it up to `max_bytes`, else its
/// first quarter and the rest from its end, with a line between saying how much was not read
/// (`fs::read_ends`). `None` when it cannot be read.
///
/// The log lies in a worktree's reach, so it is read the way `fs::read_small` reads what an
/// agent could have planted: never through a symbolic link, never blocking on a FIFO, and only
/// from a regular file; no more than `max_bytes` are read even if it grows meanwhile. Bytes not
/// in UTF-8 (or a character cut by the start of the window) are read as U+FFFD.
pub fn read_log(path: &Path, max_bytes: u64) -> Option<String> {
    let head = max_bytes / 4;
    crate::fs::read_ends(path, head, max_bytes - head)
}

/// The excerpt of the failing tests in a log wt wrote (a verification's, a round's), read as
/// [`read_log`] reads it: the same text wt-watch would feed an agent for that output, with the
/// cut note naming `path`. `None` when no runner is recognised there or it reports no failing
/// test (the caller then says what it says of any other command, its tail), and when the log
/// cannot be read.
pub fn of_log(path: &Path, max_bytes: u64) -> Option<String> {
    failing(&read_log(path, max_bytes)?, path)
}

/// The excerpt of the log of a run stopped after `after` ([`timed_out`] of what [`read_log`]
/// reads): said whether or not a runner is recognised. `None` when the log cannot be read.
pub fn of_log_timed_out(path: &Path, max_bytes: u64, after: Duration) -> Option<String> {
    Some(timed_out(&read_log(path, max_bytes)?, path, after))
}

/// The rendered failures in `text` (without ANSI codes) in at most `max` bytes, when a runner is
/// recognised and reports some.
fn recognised(text: &str, log: &Path, max: usize) -> Option<String> {
    let runner = detect(text)?;
    let failures = failures(runner, text);
    let count = reported_count(runner, text).unwrap_or(failures.len());
    (!failures.is_empty()).then(|| limit_head(&render(runner, count, &failures), log, max))
}

/// How many tests failed as the runner itself sums up, where it does: pytest's last line
/// (`=== 3 failed, 1 passed, 1 error in 0.24s ===`, `-q`'s without the rules) counts failures
/// and errors. A count from the runner is not fooled by a header missed or a line of captured
/// output that looks like one.
fn reported_count(runner: Runner, text: &str) -> Option<usize> {
    static SUMMARY: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"(?m)^=*\s*(\d+ (?:failed|passed|errors?|skipped|deselected|xfailed|xpassed|warnings?)(?:, \d+ \w+)*) in [\d.]+s\b.*$",
        )
    });
    static PART: LazyLock<Regex> = LazyLock::new(|| re(r"(\d+) (failed|errors?)\b"));
    if runner != Runner::Pytest {
        return None;
    }
    let last = SUMMARY.captures_iter(text).last()?;
    let n: usize = PART.captures_iter(&last[1]).filter_map(|c| c[1].parse::<usize>().ok()).sum();
    (n > 0).then_some(n)
}

/// Which runner wrote `text`, from the marks each one leaves.
pub fn detect(text: &str) -> Option<Runner> {
    let has = |re: &Regex| re.is_match(text);
    static CARGO: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^---- \S.* stdout ----$|^test result: FAILED\."));
    static PYTEST: LazyLock<Regex> =
        LazyLock::new(|| re(r"(?m)^=+ (FAILURES|ERRORS) =+$|^=+ short test summary info =+$"));
    static UNITTEST: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^(FAIL|ERROR): \S+ \(.+\)$"));
    static GO: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^\s*--- FAIL: \S+ \(\d"));
    static VITEST: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^\s*FAIL\s+\S.* > .+$"));
    static JEST: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^\s*● .+$"));
    static NODE: LazyLock<Regex> =
        LazyLock::new(|| re(r"(?m)^not ok \d+ - |^✖ failing tests:$|^ℹ fail \d+$|^# fail \d+$"));
    static TAPE: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^not ok \d+ [^-\s]"));
    static MOCHA: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^\s+\d+ failing$"));
    [
        (Runner::Cargo, &CARGO),
        (Runner::Pytest, &PYTEST),
        (Runner::Unittest, &UNITTEST),
        (Runner::GoTest, &GO),
        (Runner::Vitest, &VITEST),
        (Runner::Jest, &JEST),
        (Runner::NodeTest, &NODE),
        (Runner::Tape, &TAPE),
        (Runner::Mocha, &MOCHA),
    ]
    .into_iter()
    .find(|(_, r)| has(r))
    .map(|(runner, _)| runner)
}

/// The failing tests in `text`, as `runner` reports them.
pub fn failures(runner: Runner, text: &str) -> Vec<Failure> {
    let lines: Vec<&str> = text.lines().collect();
    match runner {
        Runner::Cargo => cargo(&lines),
        Runner::Pytest => pytest(&lines),
        Runner::Unittest => unittest(&lines),
        Runner::GoTest => go(&lines),
        Runner::Jest => jest(&lines),
        Runner::Vitest => vitest(&lines),
        Runner::NodeTest => node_test(&lines),
        Runner::Tape => node_tap(&lines),
        Runner::Mocha => mocha(&lines),
    }
}

/// A frame in code the project owns, not in a toolchain, a dependency or the runtime.
pub fn project_frame(location: &str) -> bool {
    const FOREIGN: [&str; 12] = [
        "/rustc/",
        "/.cargo/registry/",
        "/.rustup/",
        "site-packages",
        "dist-packages",
        "/lib/python",
        "<frozen",
        "node_modules",
        "node:",
        "/usr/lib/go",
        "/usr/local/go",
        "/go/pkg/mod/",
    ];
    !FOREIGN.iter().any(|f| location.contains(f))
}

fn push_message(f: &mut Failure, line: &str) {
    let t = line.trim();
    if !t.is_empty() && f.message.len() < MESSAGE_LINES {
        f.message.push(t.to_string());
    }
}

fn failure(test: impl Into<String>) -> Failure {
    Failure { test: test.into(), message: Vec::new(), location: None }
}

/// `---- NAME stdout ----` blocks: the panic message; where it panicked, or the first project
/// frame of the backtrace when it panicked in a library.
fn cargo(lines: &[&str]) -> Vec<Failure> {
    static HEAD: LazyLock<Regex> = LazyLock::new(|| re(r"^---- (\S.*) stdout ----$"));
    static PANIC: LazyLock<Regex> = LazyLock::new(|| re(r"^thread '.*' (?:\(\d+\) )?panicked at (.+):$"));
    static AT: LazyLock<Regex> = LazyLock::new(|| re(r"^\s+at (\S+:\d+(?::\d+)?)$"));
    let mut out: Vec<Failure> = Vec::new();
    let mut in_backtrace = false;
    for line in lines {
        if let Some(c) = HEAD.captures(line) {
            out.push(failure(&c[1]));
            in_backtrace = false;
            continue;
        }
        let Some(f) = out.last_mut() else { continue };
        if *line == "failures:" || line.starts_with("test result:") {
            in_backtrace = true; // the summary: nothing more of this failure
            continue;
        }
        if line.starts_with("stack backtrace:") || line.starts_with("note: ") {
            in_backtrace = line.starts_with("stack");
            continue;
        }
        if in_backtrace {
            let frame = AT.captures(line).map(|c| c[1].trim_start_matches("./").to_string());
            if let (Some(frame), true) = (frame, f.location.as_deref().is_none_or(|l| !project_frame(l))) {
                if project_frame(&frame) {
                    f.location = Some(frame);
                }
            }
            continue;
        }
        match PANIC.captures(line) {
            Some(c) => f.location = Some(c[1].to_string()),
            None => push_message(f, line),
        }
    }
    out
}

/// The FAILURES section: `___ name ___` blocks, their `E` lines, the innermost `path.py:N:`;
/// then the tests the short summary names (`FAILED path::test - message`) that no block did
/// (a block in the part of a huge log not read).
fn pytest(lines: &[&str]) -> Vec<Failure> {
    static SECTION: LazyLock<Regex> = LazyLock::new(|| re(r"^=+ (FAILURES|ERRORS) =+$"));
    static END: LazyLock<Regex> = LazyLock::new(|| re(r"^=+ .* =+$"));
    static FRAME: LazyLock<Regex> = LazyLock::new(|| re(r"^(\S+\.py:\d+): \w+"));
    static SHORT: LazyLock<Regex> = LazyLock::new(|| re(r"^(FAILED|ERROR) (\S+)(?: - (.*))?$"));
    static PLACE: LazyLock<Regex> = LazyLock::new(|| re(r#"^\s*File "([^"]+)", line (\d+)$"#));
    let mut out: Vec<Failure> = Vec::new();
    let mut short: Vec<(String, Option<String>)> = Vec::new();
    let (mut inside, mut in_summary) = (false, false);
    for line in lines {
        if SECTION.is_match(line) {
            (inside, in_summary) = (true, false);
            continue;
        }
        if END.is_match(line) {
            in_summary = line.contains(" short test summary info ");
            inside = false;
            continue;
        }
        if in_summary {
            if let Some(c) = SHORT.captures(line) {
                short.push((c[2].to_string(), c.get(3).map(|m| m.as_str().to_string())));
            }
            continue;
        }
        if !inside {
            continue;
        }
        if let Some(name) = pytest_head(line) {
            out.push(failure(name));
            continue;
        }
        let Some(f) = out.last_mut() else { continue };
        if let Some(rest) = line.strip_prefix("E ") {
            // A SyntaxError's place, in the error pytest prints (an import's, deep in a chain):
            // further in than any frame.
            match PLACE.captures(rest).filter(|c| project_frame(&c[1])) {
                Some(c) => f.location = Some(format!("{}:{}", &c[1], &c[2])),
                None => push_message(f, rest),
            }
        } else if let Some(c) = FRAME.captures(line) {
            if project_frame(&c[1]) {
                f.location = Some(c[1].to_string());
            }
        }
    }
    // Each block's header is looked up by the forms a node id can name it by, not compared
    // with every block: pairwise, 10,000 `FAILED` lines (output the agent writes, excerpted
    // under wt-merge's queue lock) took 10 s. The excerpt shows a few of them anyway.
    let mut heads: HashSet<String> = out.iter().map(|f| pytest_block_name(&f.test).to_string()).collect();
    for (id, message) in short.into_iter().take(SHORT_SUMMARY_MAX) {
        if !pytest_id_names(&id).iter().any(|name| heads.contains(name.as_str())) {
            heads.insert(id.clone());
            let mut f = failure(id);
            f.message.extend(message);
            out.push(f);
        }
    }
    out
}

/// How many short-summary lines are matched against the blocks.
const SHORT_SUMMARY_MAX: usize = 1000;

/// The name in a failure's header line. pytest centres it in underscores as wide as the
/// terminal (`____ test_x ____`, one more on the right when the width is odd), and a name too
/// wide for that gets one on each side (`_ test_long[…] _`). Not the rule between traceback
/// entries (`_ _ _ _`).
fn pytest_head(line: &str) -> Option<&str> {
    let left = line.len() - line.trim_start_matches('_').len();
    let right = line.len() - line.trim_end_matches('_').len();
    if left == 0 || right < left || right > left + 1 || left + right + 2 >= line.len() {
        return None;
    }
    let name = line[left..line.len() - right].strip_prefix(' ')?.strip_suffix(' ')?;
    (!name.is_empty() && !name.starts_with(' ') && !name.chars().all(|c| c == '_' || c == ' ')).then_some(name)
}

/// The test a block's header names (`TestX.test_y[p]`; `ERROR collecting t.py`: `t.py`;
/// `ERROR at setup of test_y`: `test_y`).
fn pytest_block_name(head: &str) -> &str {
    head.strip_prefix("ERROR collecting ")
        .or_else(|| head.split_once(" of ").filter(|(e, _)| e.starts_with("ERROR at ")).map(|(_, t)| t))
        .unwrap_or(head)
}

/// Every block name that stands for the short summary's node id `t.py::TestX::test_y[p]`: the
/// id itself, `TestX::test_y[p]`, `TestX.test_y[p]`, and (for a file's tests) each tail of
/// that after a `.`: `test_y[p]`.
fn pytest_id_names(id: &str) -> Vec<String> {
    let (file, rest) = id.split_once("::").unwrap_or((id, ""));
    let in_id = rest.replace("::", ".");
    let mut names = vec![id.to_string(), rest.to_string()];
    if file.ends_with(".py") {
        names.extend(in_id.match_indices('.').map(|(i, _)| in_id[i + 1..].to_string()));
    }
    names.push(in_id);
    names
}

/// `FAIL: test (module.Class.test)` blocks: the exception lines after the traceback and the
/// innermost `File "…", line N` in the project.
fn unittest(lines: &[&str]) -> Vec<Failure> {
    static HEAD: LazyLock<Regex> = LazyLock::new(|| re(r"^(?:FAIL|ERROR): (\S+) \((.+)\)$"));
    static FRAME: LazyLock<Regex> = LazyLock::new(|| re(r#"^\s+File "([^"]+)", line (\d+)"#));
    let mut out: Vec<Failure> = Vec::new();
    let (mut in_exception, mut closed) = (false, false);
    for line in lines {
        if let Some(c) = HEAD.captures(line) {
            let test = if c[2].ends_with(&c[1]) { c[2].to_string() } else { format!("{} ({})", &c[1], &c[2]) };
            out.push(failure(test));
            (in_exception, closed) = (false, false);
            continue;
        }
        let Some(f) = out.last_mut() else { continue };
        if closed {
            continue;
        }
        if line.starts_with("----------") || line.starts_with("==========") {
            // The first rule opens the traceback; one after it closes the failure.
            closed = in_exception || f.location.is_some();
            in_exception = false;
            continue;
        }
        if let Some(c) = FRAME.captures(line) {
            if project_frame(&c[1]) {
                f.location = Some(format!("{}:{}", &c[1], &c[2]));
            }
            in_exception = false;
            continue;
        }
        if !line.starts_with(' ') && !line.is_empty() && !line.starts_with("Traceback") {
            in_exception = true;
        }
        if in_exception && !line.starts_with("Traceback (most recent call last)") {
            push_message(f, line);
        }
    }
    out
}

/// `--- FAIL: TestX` lines, and the `file_test.go:N: message` lines logged by each test (after
/// its `=== RUN` with -v, under its `--- FAIL` without). A parent that failed only through its
/// subtests is not listed again.
///
/// Linear in the output: an agent can write megabytes of `--- FAIL` lines, and wt-merge
/// excerpts them under its queue lock. Each test's logs are kept in a map (at most what its
/// message shows), and a parent is found by a search in the sorted names, not by comparing every
/// pair (8 MiB of `--- FAIL` lines took 107 s that way).
fn go(lines: &[&str]) -> Vec<Failure> {
    static RUN: LazyLock<Regex> = LazyLock::new(|| re(r"^=== (?:RUN|CONT)\s+(\S+)"));
    static FAIL: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*--- FAIL: (\S+) \("));
    static LOG: LazyLock<Regex> = LazyLock::new(|| re(r"^\s+(\S+\.go:\d+): (.*)$"));
    static FRAME: LazyLock<Regex> = LazyLock::new(|| re(r"^\t(\S+\.go:\d+)(?: \+0x[0-9a-f]+)?$"));
    // Per test: the first location logged and its messages, as many as a failure shows.
    let mut logs: HashMap<&str, Failure> = HashMap::new();
    let mut failed: Vec<&str> = Vec::new();
    let mut current: Option<&str> = None;
    // The test whose panic's goroutine trace is being read: its `file:line` is the first frame
    // there in the project (below the runtime's and the testing package's).
    let mut panicked: Option<&str> = None;
    for line in lines {
        if let (Some(test), Some(c)) = (panicked, FRAME.captures(line)) {
            if project_frame(&c[1]) {
                let f = logs.entry(test).or_insert_with(|| failure(test));
                f.location.get_or_insert_with(|| c[1].to_string());
                panicked = None;
            }
            continue;
        }
        if let Some(c) = RUN.captures(line) {
            current = c.get(1).map(|m| m.as_str());
        } else if let Some(c) = FAIL.captures(line) {
            let test = c.get(1).map_or("", |m| m.as_str());
            failed.push(test);
            current = Some(test);
        } else if let (Some(c), Some(test)) = (LOG.captures(line), current) {
            let f = logs.entry(test).or_insert_with(|| failure(test));
            if f.location.is_none() {
                f.location = Some(c[1].to_string());
            }
            push_message(f, &c[2]);
        } else if line.starts_with("panic: ") {
            if let Some(test) = current {
                let f = logs.entry(test).or_insert_with(|| failure(test));
                push_message(f, line);
                panicked = Some(test);
            }
        }
    }
    let mut sorted = failed.clone();
    sorted.sort_unstable();
    // Names under `t/` sort together, right after `t/` itself.
    let is_parent = |t: &str| {
        let under = format!("{t}/");
        let i = sorted.partition_point(|o| *o < under.as_str());
        sorted.get(i).is_some_and(|o| o.starts_with(&under))
    };
    let mut out = Vec::new();
    for test in failed {
        let f = logs.get(test).cloned().unwrap_or_else(|| failure(test));
        if !(f.message.is_empty() && is_parent(test)) {
            out.push(f);
        }
    }
    out
}

/// A stack line's `path:line:col`, from `at fn (path:l:c)` or `at path:l:c`.
fn js_frame(line: &str) -> Option<String> {
    static AT: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*at (?:.*\()?((?:file://)?[^\s()]+:\d+:\d+)\)?$"));
    AT.captures(line).map(|c| c[1].trim_start_matches("file://").to_string())
}

fn js_location(f: &mut Failure, line: &str) -> bool {
    match js_frame(line) {
        Some(frame) => {
            if f.location.is_none() && project_frame(&frame) {
                f.location = Some(frame);
            }
            true
        }
        None => false,
    }
}

/// `● Suite › test` blocks: the message up to the code frame, the first project `at` frame.
fn jest(lines: &[&str]) -> Vec<Failure> {
    static HEAD: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*● (.+)$"));
    static CODE: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*>?\s*\d+ \||^\s+\|"));
    let mut out: Vec<Failure> = Vec::new();
    let mut in_code = false;
    for line in lines {
        if let Some(c) = HEAD.captures(line) {
            out.push(failure(&c[1]));
            in_code = false;
            continue;
        }
        let Some(f) = out.last_mut() else { continue };
        if line.starts_with("Test Suites:") || line.starts_with("Tests:") {
            break;
        }
        if js_location(f, line) {
            continue;
        }
        in_code |= CODE.is_match(line);
        if !in_code {
            push_message(f, line);
        }
    }
    out
}

/// `FAIL  file > suite > test` blocks: the message up to `❯ file:line:col`.
fn vitest(lines: &[&str]) -> Vec<Failure> {
    static HEAD: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*FAIL\s+(\S.* > .+)$"));
    static AT: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*❯ (?:.* )?(\S+:\d+:\d+)$"));
    let mut out: Vec<Failure> = Vec::new();
    let mut done = false;
    for line in lines {
        if let Some(c) = HEAD.captures(line) {
            out.push(failure(c[1].trim()));
            done = false;
            continue;
        }
        let Some(f) = out.last_mut() else { continue };
        if done || line.contains("⎯⎯⎯") {
            done = true;
            continue;
        }
        if let Some(c) = AT.captures(line) {
            if f.location.is_none() && project_frame(&c[1]) {
                f.location = Some(c[1].to_string());
            }
            done = true;
            continue;
        }
        push_message(f, line);
    }
    out
}

/// TAP (`not ok N - name` with a YAML block) or the spec reporter (`✖ name (…ms)` under
/// `✖ failing tests:`).
fn node_test(lines: &[&str]) -> Vec<Failure> {
    if lines.iter().any(|l| l.starts_with("not ok ")) {
        return node_tap(lines);
    }
    static HEAD: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*✖ (.+?)(?: \([\d.]+m?s\))?$"));
    let start = lines.iter().position(|l| *l == "✖ failing tests:").map_or(0, |i| i + 1);
    let mut out: Vec<Failure> = Vec::new();
    for line in &lines[start..] {
        if line.starts_with("test at ") || line.trim() == "}" || line.starts_with("ℹ ") {
            continue;
        }
        if let Some(c) = HEAD.captures(line) {
            out.push(failure(&c[1]));
            continue;
        }
        let Some(f) = out.last_mut() else { continue };
        if !js_location(f, line) && f.location.is_none() {
            push_message(f, line);
        }
    }
    out
}

/// node:test's TAP (`not ok N - name`, `error:`, `location:`, `stack:`) and tape's (`not ok N
/// name`, `expected:`/`actual:` blocks, `at: fn (file:line:col)`).
fn node_tap(lines: &[&str]) -> Vec<Failure> {
    static HEAD: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*not ok \d+ (?:- )?(.+?)(?: # .*)?$"));
    static LOCATION: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*location: '(.+)'$"));
    static KEY: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*[a-zA-Z]+: "));
    let mut out: Vec<Failure> = Vec::new();
    let (mut in_error, mut in_stack, mut declared) = (false, false, None);
    // tape's `expected:`/`actual:` (node:test writes them too, after its `error:`, which says
    // it better), and the key whose value is the block a `|-` opened.
    let (mut values, mut pending) = (false, None::<String>);
    for line in lines {
        if let Some(c) = HEAD.captures(line) {
            out.push(failure(&c[1]));
            (in_error, in_stack, declared, values, pending) = (false, false, None, false, None);
            continue;
        }
        let Some(f) = out.last_mut() else { continue };
        let t = line.trim();
        if t == "..." {
            if f.location.is_none() {
                f.location = declared.take();
            }
            (in_error, in_stack) = (false, false);
        } else if let Some(c) = LOCATION.captures(line) {
            declared = Some(c[1].to_string());
        } else if t.starts_with("error: ") {
            in_error = true;
            let rest = t.trim_start_matches("error: ").trim_start_matches(['|', '>', '-']).trim().trim_matches('\'');
            push_message(f, rest);
        } else if (t.starts_with("expected: ") || t.starts_with("actual: ")) && (values || f.message.is_empty()) {
            // tape: the value inline, or in the indented block a `|-` opens.
            (values, in_error) = (true, true);
            let (key, value) = t.split_once(": ").unwrap_or((t, ""));
            match value.trim_start_matches(['|', '>', '-']).trim() {
                "" => pending = Some(key.to_string()),
                v => push_message(f, &format!("{key}: {v}")),
            }
        } else if let Some(at) = t.strip_prefix("at: ") {
            // tape: where the assertion is.
            in_error = false;
            if f.location.is_none() {
                f.location = js_frame(&format!("at {at}")).filter(|fr| project_frame(fr));
            }
        } else if t.starts_with("stack: ") {
            (in_error, in_stack) = (false, true);
        } else if KEY.is_match(line) && !in_stack {
            in_error = false;
        } else if in_error {
            match pending.take() {
                Some(key) => push_message(f, &format!("{key}: {}", line.trim())),
                None => push_message(f, line),
            }
        } else if in_stack && f.location.is_none() {
            let frame = js_frame(&format!("at {t}"));
            if let Some(frame) = frame.filter(|fr| project_frame(fr)) {
                f.location = Some(frame);
            }
        }
    }
    // A suite whose subtests failed repeats them: keep the tests that carry a message.
    out.retain(|f| !f.message.iter().all(|m| m.contains("subtest")) || f.message.is_empty());
    out
}

/// After `N failing`: `N) suite` + the test's name lines up to one ending in `:`, the message,
/// the first project `at` frame.
fn mocha(lines: &[&str]) -> Vec<Failure> {
    static HEAD: LazyLock<Regex> = LazyLock::new(|| re(r"^\s+\d+\) (.+)$"));
    let Some(start) = lines.iter().position(|l| l.trim_end().ends_with(" failing")) else { return Vec::new() };
    let mut out: Vec<Failure> = Vec::new();
    let mut naming = false;
    for line in &lines[start + 1..] {
        if let Some(c) = HEAD.captures(line) {
            let name = c[1].trim_end_matches(':').to_string();
            naming = !c[1].ends_with(':');
            out.push(failure(name));
            continue;
        }
        let Some(f) = out.last_mut() else { continue };
        if naming {
            let part = line.trim();
            if !part.is_empty() {
                f.test = format!("{} {}", f.test, part.trim_end_matches(':'));
                naming = !part.ends_with(':');
            }
            continue;
        }
        if !js_location(f, line) && f.location.is_none() {
            push_message(f, line);
        }
    }
    out
}

/// The failures as the agent reads them.
fn render(runner: Runner, n: usize, failures: &[Failure]) -> String {
    let mut out = format!("{n} failing test{} ({}):\n", if n == 1 { "" } else { "s" }, runner.name());
    for f in failures {
        out.push_str(&format!("\n✗ {}\n", f.test));
        for m in &f.message {
            out.push_str(&format!("    {m}\n"));
        }
        if let Some(loc) = &f.location {
            out.push_str(&format!("    at {loc}\n"));
        }
    }
    out
}

/// The excerpt of output no runner is recognised in, in at most `max` bytes: its last
/// [`FALLBACK_LINES`] lines, and before them its first error ([`first_error`]) when that is
/// further up, with a line saying how many lines lie between (`[… 52 lines …]`).
fn fallback(text: &str, log: &Path, max: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let mut from = lines.len().saturating_sub(FALLBACK_LINES);
    let mut head = String::new();
    if let Some(error) = first_error(&lines).filter(|e| e.start < from) {
        if error.end >= from {
            from = error.start; // it runs into the last lines: they start with it
        } else {
            for line in &lines[error.clone()] {
                if head.len() + line.len() + 1 > max / 4 {
                    break;
                }
                head.push_str(line);
                head.push('\n');
            }
            head.push_str(&format!("[… {} lines …]\n", from - error.end));
        }
    }
    let mut tail = lines[from..].join("\n");
    tail.push('\n');
    format!("{head}{}", limit_tail(&tail, log, max - head.len()))
}

/// The lines of the first error in `lines` that a runner's report does not hold: a
/// `SyntaxError` (or `IndentationError`) with the line before it naming where (Python's `File
/// "…", line N`, node's `path.js:N` over the code and its caret), an `ImportError` /
/// `ModuleNotFoundError` / node's `Cannot find module` with the frame or require stack naming
/// where, a compiler's error (rustc's `error[E…]:` with its `-->` and code, go's
/// `file.go:L:C: …`), a panic with its `file:line` (Rust's `panicked at`, Go's `panic:` and the
/// first frame of its goroutine in the project).
fn first_error(lines: &[&str]) -> Option<std::ops::Range<usize>> {
    static SYNTAX: LazyLock<Regex> =
        LazyLock::new(|| re(r"^\s*(?:E\s+)?(?:Uncaught )?(?:SyntaxError|IndentationError|TabError)\b"));
    static IMPORT: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"^\s*(?:E\s+)?(?:ImportError|ModuleNotFoundError)\b|^\s*(?:Uncaught )?Error: Cannot find (?:module|package) |\bERR_MODULE_NOT_FOUND\b",
        )
    });
    static PLACE: LazyLock<Regex> = LazyLock::new(|| {
        re(r#"^\s*File "[^"]+", line \d+|^\s*(?:Exception during run: )?(?:file://)?\S+:\d+$|^\S+\.py:\d+: "#)
    });
    static RUSTC: LazyLock<Regex> = LazyLock::new(|| re(r"^error(?:\[E\d+\])?: "));
    static RUSTC_AFTER: LazyLock<Regex> =
        LazyLock::new(|| re(r"^error: (?:could not compile|test failed|build failed|aborting due to)"));
    static GO_BUILD: LazyLock<Regex> = LazyLock::new(|| re(r"^(?:\./)?\S+\.go:\d+:\d+: "));
    static RUST_PANIC: LazyLock<Regex> = LazyLock::new(|| re(r"^thread '.*' (?:\(\d+\) )?panicked at \S+:\d+:\d+:$"));
    static GO_FRAME: LazyLock<Regex> = LazyLock::new(|| re(r"^\t(\S+\.go:\d+)(?: \+0x[0-9a-f]+)?$"));
    // Up to how many lines before an error may name its place, after it may carry it.
    const BEFORE: usize = 5;
    const AFTER: usize = 8;
    let looking_back = |i: usize| (i.saturating_sub(BEFORE)..i).rev().find(|&j| PLACE.is_match(lines[j])).unwrap_or(i);
    let until_blank = |i: usize| {
        (i + 1..lines.len().min(i + 1 + AFTER))
            .find(|&j| lines[j].trim().is_empty())
            .unwrap_or(lines.len().min(i + 1 + AFTER))
    };
    // Most lines of a long log are none of these: a word every one of them holds rules them
    // out before any pattern is tried.
    let maybe = |l: &str| l.contains("rror") || l.contains("pani") || l.contains(".go:") || l.contains("ERR_MODULE");
    for (i, line) in lines.iter().enumerate().filter(|(_, l)| maybe(l)) {
        if SYNTAX.is_match(line) {
            return Some(looking_back(i)..i + 1);
        }
        if IMPORT.is_match(line) {
            // node's require stack follows the error; Python's frames precede it.
            let end = if line.contains("Cannot find") { until_blank(i) } else { i + 1 };
            return Some(looking_back(i)..end);
        }
        if (RUSTC.is_match(line) && !RUSTC_AFTER.is_match(line)) || RUST_PANIC.is_match(line) {
            return Some(i..until_blank(i));
        }
        if GO_BUILD.is_match(line) {
            let start = if i > 0 && lines[i - 1].starts_with("# ") { i - 1 } else { i };
            return Some(start..i + 1);
        }
        if line.starts_with("panic: ") {
            // The goroutine's first frame in the project, and its function on the line above.
            let frame = (i + 1..lines.len().min(i + 80))
                .find(|&j| GO_FRAME.captures(lines[j]).is_some_and(|c| project_frame(&c[1])));
            return Some(match frame {
                Some(j) => i..j + 1,
                None => i..i + 1,
            });
        }
    }
    None
}

fn cut_note(cut: usize, log: &Path, place: &str) -> String {
    format!("[… {cut} bytes cut {place}; the full log: {}]\n", log.display())
}

/// Keeps the beginning (the first failures) within `max` bytes, cutting at a line.
fn limit_head(text: &str, log: &Path, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let room = max.saturating_sub(cut_note(text.len(), log, "below").len());
    // A byte count can fall inside a character (`✗` is three bytes): back to its start.
    let end = text[..floor_char_boundary(text, room)].rfind('\n').map_or(0, |i| i + 1);
    format!("{}{}", &text[..end], cut_note(text.len() - end, log, "below"))
}

/// The largest index at most `i` that starts a character of `text` (or is its end).
fn floor_char_boundary(text: &str, i: usize) -> usize {
    let mut i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Keeps the end (where a command says why it failed) within `max` bytes, cutting at a line.
fn limit_tail(text: &str, log: &Path, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let room = max.saturating_sub(cut_note(text.len(), log, "above").len());
    let mut start = text.len() - room;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    start = text[start..].find('\n').map_or(text.len(), |i| start + i + 1);
    format!("{}{}", cut_note(start, log, "above"), &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cutting to `MAX_BYTES` never splits a character, at either end, wherever the limit
    /// falls (found on itsdangerous: 246 failures, each line starting with `✗`).
    #[test]
    fn limits_cut_between_characters() {
        let log = Path::new("/x.log");
        for pad in 0..4 {
            let text = format!("{}{}", "a".repeat(pad), "✗ test_x failed here\n".repeat(400));
            let head = limit_head(&text, log, MAX_BYTES);
            let tail = limit_tail(&text, log, MAX_BYTES);
            assert!(head.len() <= MAX_BYTES && tail.len() <= MAX_BYTES);
            assert!(head.starts_with(&text[..10.min(text.len())]) && tail.contains("✗ test_x failed here"));
        }
    }

    fn sample(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/excerpt").join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn parsed(name: &str) -> (Runner, Vec<Failure>) {
        let text = strip_ansi(&sample(name));
        let runner = detect(&text).unwrap_or_else(|| panic!("{name}: runner not recognised"));
        (runner, failures(runner, &text))
    }

    fn one(test: &str, message: &[&str], location: &str) -> Failure {
        Failure {
            test: test.into(),
            message: message.iter().map(|s| s.to_string()).collect(),
            location: Some(location.into()),
        }
    }

    #[test]
    fn cargo_test_with_a_backtrace() {
        let (runner, f) = parsed("cargo-backtrace.txt");
        assert_eq!(runner, Runner::Cargo);
        assert_eq!(
            f,
            vec![one("tests::adds", &["assertion `left == right` failed", "left: -1", "right: 5"], "src/lib.rs:16:9")]
        );
    }

    #[test]
    fn cargo_test_no_fail_fast_over_two_targets() {
        let (_, f) = parsed("cargo-nofailfast.txt");
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[1], one("checked_rejects_nothing_positive", &["a must be positive, got -1"], "src/lib.rs:6:5"));
    }

    #[test]
    fn pytest_names_assertions_and_the_project_frame() {
        let (runner, f) = parsed("pytest.txt");
        assert_eq!(runner, Runner::Pytest);
        assert_eq!(
            f,
            vec![
                one("test_add", &["assert -1 == 5", "+  where -1 = add(2, 3)"], "tests/test_calc.py:5"),
                one("CalcTest.test_add_unittest", &["AssertionError: -1 != 5"], "tests/test_calc.py:12"),
            ]
        );
    }

    #[test]
    fn unittest_takes_the_exception_after_the_traceback() {
        let (runner, f) = parsed("unittest.txt");
        assert_eq!(runner, Runner::Unittest);
        assert_eq!(
            f,
            vec![one(
                "tests.test_calc.CalcTest.test_add_unittest",
                &["AssertionError: -1 != 5"],
                "/tmp/wsamples/py/tests/test_calc.py:12"
            )]
        );
    }

    #[test]
    fn go_test_plain_and_verbose_agree() {
        for name in ["gotest.txt", "gotest-v.txt"] {
            let (runner, f) = parsed(name);
            assert_eq!(runner, Runner::GoTest);
            assert_eq!(
                f,
                vec![
                    one("TestAdd", &["Add(2, 3) = -1, want 5"], "calc_test.go:7"),
                    one("TestTable/negative", &["Add(-1, -1) = 0, want -2"], "calc_test.go:20"),
                ],
                "{name}"
            );
        }
    }

    #[test]
    fn jest_stops_the_message_at_the_code_frame() {
        let (runner, f) = parsed("jest.txt");
        assert_eq!(runner, Runner::Jest);
        assert_eq!(
            f,
            vec![one(
                "calc › adds two numbers",
                &["expect(received).toBe(expected) // Object.is equality", "Expected: 5", "Received: -1"],
                "jest/calc.test.js:4:23"
            )]
        );
    }

    #[test]
    fn vitest_in_colour() {
        let raw = sample("vitest.txt");
        assert!(raw.contains('\x1b'), "the sample keeps its colours");
        let (runner, f) = parsed("vitest.txt");
        assert_eq!(runner, Runner::Vitest);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].test, "vit/calc.test.mjs > calc > adds two numbers");
        assert_eq!(f[0].message[0], "AssertionError: expected -1 to be 5 // Object.is equality");
        assert_eq!(f[0].location.as_deref(), Some("vit/calc.test.mjs:5:23"));
        assert!(!excerpt(&raw, Path::new("/l")).contains('\x1b'));
    }

    #[test]
    fn node_test_tap_and_spec() {
        let (runner, f) = parsed("nodetest-tap.txt");
        assert_eq!(runner, Runner::NodeTest);
        assert_eq!(
            f,
            vec![one(
                "adds two numbers",
                &["Expected values to be strictly equal:", "-1 !== 5"],
                "/tmp/wsamples/js/nt/calc.test.mjs:5:10"
            )]
        );
        let (runner, spec) = parsed("nodetest-spec.txt");
        assert_eq!(runner, Runner::NodeTest);
        assert_eq!(
            spec,
            vec![one(
                "adds two numbers",
                &["AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:", "-1 !== 5"],
                "/tmp/wsamples/js/nt/calc.test.mjs:5:10"
            )]
        );
    }

    #[test]
    fn mocha_joins_the_suite_and_test_names() {
        let (runner, f) = parsed("mocha.txt");
        assert_eq!(runner, Runner::Mocha);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].test, "calc adds two numbers");
        assert_eq!(f[0].message[0], "AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:");
        assert_eq!(f[0].location.as_deref(), Some("test/calc.test.js:5:12"));
    }

    #[test]
    fn anything_else_gives_its_last_40_lines() {
        let text: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        let e = excerpt(&text, Path::new("/logs/x.log"));
        assert_eq!(e.lines().count(), 40);
        assert!(e.starts_with("line 61\n") && e.ends_with("line 100\n"), "{e}");
    }

    #[test]
    fn never_over_4_kib_and_says_what_was_cut_and_where_the_log_is() {
        let long: String = (0..200).map(|i| format!("{i}: {}\n", "x".repeat(120))).collect();
        let e = excerpt(&long, Path::new("/logs/run.log"));
        assert!(e.len() <= MAX_BYTES, "{}", e.len());
        assert!(e.starts_with("[… ") && e.lines().next().unwrap().contains("/logs/run.log"), "{e}");
        assert!(e.ends_with(&format!("199: {}\n", "x".repeat(120))));
        // Many failures: the first ones are kept.
        let many: String = (0..300)
            .map(|i| format!("---- t{i} stdout ----\nthread 't{i}' panicked at src/a.rs:{i}:1:\nboom {i}\n\n"))
            .collect();
        let e = excerpt(&many, Path::new("/logs/run.log"));
        assert!(e.len() <= MAX_BYTES, "{}", e.len());
        assert!(e.contains("✗ t0\n") && !e.contains("✗ t299\n"));
        assert!(e.trim_end().ends_with("the full log: /logs/run.log]"), "{e}");
    }

    /// `text` in a temp file: the directory (kept while the test runs) and the log's path.
    fn log_of(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("verify.log");
        std::fs::write(&log, text).unwrap();
        (dir, log)
    }

    #[test]
    fn of_log_gives_what_wt_watch_feeds_for_pytest_and_mocha() {
        let (_dir, log) = log_of(&sample("pytest.txt"));
        let e = of_log(&log, READ_BYTES).expect("pytest recognised");
        assert_eq!(e, excerpt(&sample("pytest.txt"), &log));
        assert_eq!(
            e,
            "2 failing tests (pytest):\n\
             \n✗ test_add\n    assert -1 == 5\n    +  where -1 = add(2, 3)\n    at tests/test_calc.py:5\n\
             \n✗ CalcTest.test_add_unittest\n    AssertionError: -1 != 5\n    at tests/test_calc.py:12\n"
        );
        let (_dir, log) = log_of(&sample("mocha.txt"));
        let e = of_log(&log, READ_BYTES).expect("mocha recognised");
        assert_eq!(e, excerpt(&sample("mocha.txt"), &log));
        assert!(e.starts_with("1 failing test (mocha):\n\n✗ calc adds two numbers\n"), "{e}");
        assert!(e.contains("    AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:\n"), "{e}");
        assert!(e.ends_with("    at test/calc.test.js:5:12\n"), "{e}");
        assert!(!e.contains("node:internal"), "not the runtime's frame: {e}");
    }

    #[test]
    fn of_log_reads_the_head_and_the_end() {
        // Noise, then pytest's report: a window too small for all of it reads a quarter from
        // the head, the rest from the end.
        let text = format!("{}\n{}", "noise\n".repeat(10_000), sample("pytest.txt"));
        let (_dir, log) = log_of(&text);
        let read = read_log(&log, 4 * 1024).unwrap();
        assert!(read.starts_with("noise\nnoise\n") && read.ends_with(&sample("pytest.txt")), "{read}");
        assert!(read.len() <= 4 * 1024 + 40 && read.contains(" bytes not read …]\n"), "{read}");
        assert_eq!(read_log(&log, READ_BYTES).unwrap(), text, "all of a log that fits");
        assert!(of_log(&log, 4 * 1024).unwrap().starts_with("2 failing tests (pytest):\n"));
        // Only the end's short summary left: its tests and messages, from pytest's own lines.
        let summary = of_log(&log, 400).unwrap();
        assert_eq!(
            summary,
            "2 failing tests (pytest):\n\n✗ tests/test_calc.py::test_add\n    assert -1 == 5\n\
             \n✗ tests/test_calc.py::CalcTest::test_add_unittest\n    AssertionError: -1 != 5\n"
        );
    }

    /// 10 MB of pytest output: a failing test printed 200,000 lines, which pytest shows as its
    /// captured stdout after the failure's header and assertion. Reading only the last 8 MiB
    /// lost the FAILURES header, and the excerpt was the summary's test ids. The log is pytest's
    /// real output (`common/testdata/excerpt/pytest-noisy.txt`, the test printing 5 lines) with
    /// its captured stdout grown to what the test prints with its default 200,000.
    #[test]
    fn ten_megabytes_of_pytest_output_keep_the_failures_details() {
        let real = sample("pytest-noisy.txt");
        let line = |i: usize| format!("progress line {i:07} of the noisy fixture output\n");
        let five: String = (0..5).map(line).collect();
        assert!(real.contains(&five), "the sample's captured stdout");
        let text = real.replace(&five, &(0..200_000).map(line).collect::<String>());
        assert!(text.len() > 10_000_000);
        let (_dir, log) = log_of(&text);
        let e = of_log(&log, READ_BYTES).expect("pytest recognised");
        assert!(e.starts_with("2 failing tests (pytest):\n\n✗ test_noisy_fails\n"), "{e}");
        assert!(
            e.contains(
                "    AssertionError: noisy arithmetic is wrong\n    assert (2 + 2) == 5\n    at tests/test_big.py:4\n"
            ),
            "{e}"
        );
        assert!(e.contains("✗ test_quiet_fails\n    AssertionError: assert 'ABC' == 'ABD'\n"), "{e}");
        assert!(e.contains("    at tests/test_big.py:7\n"), "{e}");
    }

    /// pytest centres a failure's name in underscores as wide as the terminal; a name wider
    /// than that (a long parametrized id) gets one underscore each side and was not counted.
    /// Names with double underscores are names, not rules. The count is pytest's own.
    #[test]
    fn pytest_headers_with_underscores_in_and_around_names_count_as_pytest_does() {
        let (_, f) = parsed("pytest-long-names.txt");
        let names: Vec<&str> = f.iter().map(|f| f.test.as_str()).collect();
        assert_eq!(
            names,
            [
                "TestThing.test___init__",
                "test__private__",
                "test_long_parametrized_name_here[a_very_long_parameter_value_that_makes_the_header_wider_than_the_terminal_x]"
            ]
        );
        assert_eq!(f[2].message, ["assert 0 == 4", "+  where 0 = add(2, 2)"]);
        assert_eq!(f[2].location.as_deref(), Some("tests/test_dunder.py:15"));
        let e = excerpt(&sample("pytest-long-names.txt"), Path::new("/l"));
        assert_eq!(failing_count(&e), Some(3), "pytest's `3 failed`: {e}");
        // Not the rule between traceback entries.
        assert_eq!(pytest_head("_ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _"), None);
        assert_eq!(pytest_head("____ __init__ _____"), Some("__init__"));
        // A line of captured output that looks like a header does not change pytest's count.
        let spurious = sample("pytest.txt")
            .replace("tests/test_calc.py:5: AssertionError", "tests/test_calc.py:5: AssertionError\n___ x ___");
        assert_eq!(failing_count(&excerpt(&spurious, Path::new("/l"))), Some(2));
    }

    /// pytest's collection error for an import deep in a chain: the module that is missing and
    /// the last frame of the chain in the project.
    #[test]
    fn pytest_import_error_names_the_missing_module_and_where() {
        let (_, f) = parsed("pytest-import.txt");
        assert_eq!(
            f,
            vec![one(
                "ERROR collecting tests/test_a.py",
                &["ModuleNotFoundError: No module named 'app.missing_helper'"],
                "app/m6.py:1"
            )]
        );
    }

    /// A syntax error in a module four imports deep: where it is, not the import that reached it.
    #[test]
    fn a_python_syntax_error_deep_in_imports_names_its_line() {
        let (_, f) = parsed("pytest-syntax.txt");
        assert_eq!(
            f,
            vec![one(
                "ERROR collecting tests/test_a.py",
                &["def thing(:", "^", "SyntaxError: invalid syntax"],
                "/tmp/exs/syn/app/m4.py:1"
            )]
        );
        let (_, f) = parsed("unittest-syntax.txt");
        assert_eq!(
            f[0],
            one(
                "unittest.loader._FailedTest.tests.test_a",
                &["ImportError: Failed to import test module: tests.test_a", "SyntaxError: invalid syntax"],
                "/tmp/exs/syn/app/m4.py:1"
            )
        );
    }

    /// `npm test` running mocha, where a module six requires deep has a syntax error: mocha
    /// ends before any test with the error, then 60 frames of the require chain. The last 40
    /// lines were only frames.
    #[test]
    fn a_syntax_error_deep_in_a_require_chain_is_kept() {
        let e = excerpt(&sample("mocha-syntax.txt"), Path::new("/l/x.log"));
        assert!(
            e.starts_with(" Exception during run: /tmp/exs/js/lib/m7.js:2\n  return 1;\n         ^\n\nSyntaxError: Unexpected number\n[… "),
            "{e}"
        );
        assert!(e.ends_with("(/tmp/exs/js/node_modules/mocha/lib/cli/run.cjs:143:5)\n"), "then the last lines: {e}");
        assert!(e.len() <= MAX_BYTES);
    }

    /// cargo test that does not compile: nine errors, the first one's place 70 lines up.
    #[test]
    fn the_first_compile_error_is_kept() {
        let e = excerpt(&sample("cargo-compile.txt"), Path::new("/l/x.log"));
        assert!(e.starts_with("error[E0308]: mismatched types\n --> src/lib.rs:1:25\n"), "{e}");
        assert!(e.contains("expected `u32`, found `&str`\n"), "{e}");
        assert!(e.ends_with("error: could not compile `rc` (lib) due to 9 previous errors\n"), "{e}");
    }

    /// go test, a test that indexes out of range: the panic and where, the first frame of its
    /// goroutine in the project (not the runtime's, not the testing package's).
    #[test]
    fn a_go_panic_keeps_its_file_and_line() {
        for name in ["gotest-panic.txt", "gotest-v-panic.txt"] {
            let (runner, f) = parsed(name);
            assert_eq!(runner, Runner::GoTest);
            assert_eq!(
                f,
                vec![one(
                    "TestGet",
                    &["panic: runtime error: index out of range [5] with length 3 [recovered]"],
                    "/tmp/exs/gp/calc.go:4"
                )],
                "{name}"
            );
        }
        // A panic outside a test (`go run`): the first error, with the frame.
        let text = sample("gotest-panic.txt").replace("--- FAIL: TestGet (0.00s)\n", "");
        let text = format!("{text}{}", "more output\n".repeat(50));
        let e = excerpt(&text, Path::new("/l"));
        assert!(e.starts_with("panic: runtime error: index out of range [5] with length 3 [recovered]\n"), "{e}");
        assert!(e.contains("example.com/calc.Get(...)\n\t/tmp/exs/gp/calc.go:4\n[… "), "{e}");
    }

    /// 8 MiB of go test's `--- FAIL` lines, subtests under parents, each with a line it logged:
    /// output an agent writes, which wt-merge excerpts under its queue lock. Collecting them
    /// compared every failure with every other (107 s). The excerpt of all of it now takes about
    /// sixteen times what a sixteenth of it takes, as a linear pass does (measured here, each the
    /// best of a few runs; quadratic, it took 256 times); no wall-clock limit.
    #[test]
    fn go_failures_by_the_megabyte_are_excerpted_in_linear_time() {
        let output = |bytes: usize| {
            let mut text = String::with_capacity(bytes + 200);
            let mut i = 0;
            while text.len() < bytes {
                text.push_str(&format!(
                    "    --- FAIL: TestP{i}/case (0.00s)\n        p_test.go:{i}: got {i}, want 0\n--- FAIL: TestP{i} (0.00s)\n"
                ));
                i += 1;
            }
            text
        };
        let best = |text: &str, runs: usize| {
            (0..runs)
                .map(|_| {
                    let t = std::time::Instant::now();
                    let e = excerpt(text, Path::new("/l"));
                    (t.elapsed(), e)
                })
                .min_by_key(|(d, _)| *d)
                .unwrap()
        };
        let (part, _) = best(&output(512 << 10), 5);
        let (whole, e) = best(&output(8 << 20), 2);
        assert!(
            e.starts_with("76665 failing tests (go test):\n\n✗ TestP0/case\n    got 0, want 0\n    at p_test.go:0\n"),
            "{}",
            &e[..200]
        );
        assert!(!e.contains("✗ TestP0\n"), "a parent that failed through its subtest: {e}");
        eprintln!("8 MiB: {whole:?}, a sixteenth of it: {part:?}");
        assert!(whole < part * 16 * 4, "8 MiB took {whole:?}, a sixteenth of it {part:?}");
    }

    #[test]
    fn a_timed_out_excerpt_says_so_first() {
        let after = Duration::from_secs(90);
        let e = timed_out(&sample("mocha.txt"), Path::new("/l"), after);
        assert_eq!(e, format!("timed out after 1m30s\n{}", excerpt(&sample("mocha.txt"), Path::new("/l"))));
        assert_eq!(failing_count(&e), Some(1), "the count still reads: {e}");
        // pytest -q hanging: its dots, after the timeout.
        let long: String = (0..200).map(|i| format!("{i}: {}\n", ".".repeat(120))).collect();
        let e = timed_out(&long, Path::new("/l/run.log"), Duration::from_secs(120));
        assert!(e.starts_with("timed out after 2m00s\n[… ") && e.len() <= MAX_BYTES, "{e}");
        assert!(e.ends_with(&format!("199: {}\n", ".".repeat(120))));
        let (_dir, log) = log_of("....");
        assert_eq!(of_log_timed_out(&log, READ_BYTES, after).unwrap(), "timed out after 1m30s\n....\n");
    }

    /// pytest -q stopped in a test that spins: the first line names it and where it spun (the
    /// stack pytest's `faulthandler_timeout` dumped), not only dots. cargo and go -v likewise.
    #[test]
    fn a_timed_out_excerpt_names_the_tests_still_running() {
        let e = timed_out(&sample("pytest-q-hang.txt"), Path::new("/l"), Duration::from_secs(2));
        assert!(
            e.starts_with(
                "timed out after 2.0s while running test_hang (/tmp/exr/py/tests/test_a.py:5) at /tmp/exr/py/app/spin.py:2\n"
            ),
            "{e}"
        );
        let e = timed_out(&sample("cargo-hang.txt"), Path::new("/l"), Duration::from_secs(70));
        assert!(e.starts_with("timed out after 1m10s while running tests::hangs, tests::sleeps\n"), "{e}");
        let e = timed_out(&sample("gotest-v-hang.txt"), Path::new("/l"), Duration::from_secs(8));
        assert!(e.starts_with("timed out after 8.0s while running TestHang/inner\n=== RUN   TestOK\n"), "{e}");
        // The count of a recognised runner's failures still reads after it.
        let failed =
            format!("{}test tests::hangs has been running for over 60 seconds\n", sample("cargo-nofailfast.txt"));
        let e = timed_out(&failed, Path::new("/l"), Duration::from_secs(70));
        assert!(e.starts_with("timed out after 1m10s while running tests::hangs\n2 failing tests"), "{e}");
        assert_eq!(failing_count(&e), Some(2));
        // A name as long as the excerpt: the line keeps to a quarter of it.
        let long = format!("test {} has been running for over 60 seconds\n", "x".repeat(10_000));
        let e = timed_out(&long, Path::new("/l"), Duration::from_secs(70));
        assert!(e.len() <= MAX_BYTES && e.lines().next().unwrap().len() <= MAX_BYTES / 4, "{}", e.len());
    }

    /// A download's progress redrawn with `\r`, no newline, then killed by the timeout: the
    /// last states, a line each, not nothing.
    #[test]
    fn a_log_of_carriage_return_progress_excerpts_its_last_states() {
        let progress: String = (0..200_000).map(|i| format!("fetching {i:06}\r")).collect();
        let (_dir, log) = log_of(&progress);
        let e = of_log_timed_out(&log, 64 << 10, Duration::from_secs(120)).unwrap();
        assert!(e.starts_with("timed out after 2m00s\n"), "{e}");
        assert!(e.ends_with("fetching 199998\nfetching 199999\n"), "{e}");
        assert_eq!(e.lines().count(), 1 + FALLBACK_LINES, "{e}");
    }

    #[test]
    fn of_log_says_nothing_of_other_output_or_what_is_not_a_log() {
        let (dir, log) = log_of("make: *** [all] Error 1\n");
        assert_eq!(of_log(&log, READ_BYTES), None, "no runner: the caller keeps its own tail");
        assert_eq!(of_log(&dir.path().join("missing.log"), READ_BYTES), None);
        assert_eq!(of_log(dir.path(), READ_BYTES), None, "a directory");
        // A link is not followed, even to a log that would be recognised.
        let (_real_dir, real) = log_of(&sample("pytest.txt"));
        let link = dir.path().join("link.log");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(of_log(&real, READ_BYTES).is_some());
        assert_eq!(of_log(&link, READ_BYTES), None);
        // A FIFO neither hangs the reader nor counts as a log.
        let fifo = dir.path().join("fifo.log");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(of_log(&fifo, READ_BYTES), None);
    }

    #[test]
    fn failing_is_the_excerpt_when_a_runner_is_recognised() {
        let raw = sample("jest.txt");
        assert_eq!(failing(&raw, Path::new("/l")), Some(excerpt(&raw, Path::new("/l"))));
        assert_eq!(failing("just text\n", Path::new("/l")), None);
        // A runner's marks without a failure it can name: not recognised.
        assert_eq!(failing("test result: FAILED. 0 passed; 1 failed\n", Path::new("/l")), None);
    }

    #[test]
    fn tapes_tap_names_the_assertion_its_values_and_where() {
        let out = "TAP version 13\n# parse\nok 20 parses a simple string\nnot ok 21 should be deeply equivalent\n  ---\n    operator: deepEqual\n    expected: |-\n      { a: 'b', c: 'd' }\n    actual: |-\n      { a: 'b' }\n    at: Test.<anonymous> (/w/app/test/parse.js:33:12)\n    stack: |-\n      Error: should be deeply equivalent\n          at Test.assert [as _assert] (/w/app/node_modules/tape/lib/test.js:548:48)\n  ...\nok 22 x\n\n1..22\n# tests 22\n# pass  21\n# fail  1\n";
        let got = excerpt(out, Path::new("/l/x.log"));
        assert_eq!(
            got,
            "1 failing test (tape):\n\n✗ should be deeply equivalent\n    expected: { a: 'b', c: 'd' }\n    actual: { a: 'b' }\n    at /w/app/test/parse.js:33:12\n",
            "{got}"
        );
    }

    #[test]
    fn failing_count_reads_the_first_line_of_a_recognised_excerpt() {
        assert_eq!(failing_count("40 failing tests (pytest):\n\n✗ a\n"), Some(40));
        assert_eq!(failing_count("1 failing test (cargo test):\n"), Some(1));
        assert_eq!(failing_count("3 failing: not ours\n"), None);
    }

    #[test]
    fn ansi_sequences_go() {
        assert_eq!(strip_ansi("\x1b[1m\x1b[31mred\x1b[39m\x1b[22m \x1b]0;title\x07ok\r\n"), "red ok\n");
        assert_eq!(strip_ansi("10%\r20%\r\x1b[K30%"), "10%\n20%\n30%");
    }
}
