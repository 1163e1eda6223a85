//! The failure excerpt: what a red test run comes down to, small enough for an agent's context
//! window or a record's field. The runner is recognised from its output (cargo test, pytest,
//! unittest, go test, jest, vitest, node:test, tape, mocha); for each failing test the excerpt names
//! it, gives its assertion message and the innermost frame in the project's own code, not a
//! stack of the runner's. Output of any other command gives its last 40 lines. ANSI codes are
//! stripped; the excerpt is at most 4 KiB, with a line saying how much was cut and where the full
//! log is.
//!
//! One library for two tools: wt-watch feeds the excerpt of a red round back to the agent
//! ([`excerpt`]), and wt-merge gives it as the detail of a verification that failed
//! ([`of_log`], which reads the end of the log wt wrote and says nothing when it recognises no
//! runner, so the caller keeps its own tail).

use std::path::Path;
use std::sync::LazyLock;

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

/// The text without terminal escape sequences (colours, cursor moves, titles) and carriage
/// returns.
pub fn strip_ansi(text: &str) -> String {
    ANSI.replace_all(text, "").replace('\r', "")
}

/// The excerpt of a run's output whose full log is at `log`: the failing tests when a runner is
/// recognised, else the output's last [`FALLBACK_LINES`] lines. What wt-watch feeds the agent.
pub fn excerpt(output: &str, log: &Path) -> String {
    let text = strip_ansi(output);
    recognised(&text, log).unwrap_or_else(|| limit_tail(&last_lines(&text, FALLBACK_LINES), log))
}

/// The excerpt of a run's output whose full log is at `log` when a runner is recognised in it and
/// reports at least one failing test (as [`excerpt`] gives it then); `None` otherwise.
pub fn failing(output: &str, log: &Path) -> Option<String> {
    recognised(&strip_ansi(output), log)
}

/// How many tests failed, as an excerpt of a recognised runner says in its first line (`3
/// failing tests (pytest):`); `None` for any other excerpt.
pub fn failing_count(excerpt: &str) -> Option<u64> {
    let first = excerpt.lines().next()?;
    let (n, rest) = first.split_once(' ')?;
    (rest.starts_with("failing test") && rest.ends_with("):")).then(|| n.parse().ok()).flatten()
}

/// How much of a log an excerpt is taken from: its end, where the runners summarise. What
/// wt-watch reads; a fitting `max_bytes` for [`of_log`].
pub const READ_BYTES: u64 = 8 << 20;

/// The excerpt of the failing tests in a log wt wrote (a verification's, a round's), read from
/// its last `max_bytes` bytes (see [`READ_BYTES`]): the same text wt-watch would feed an agent
/// for that output, with the cut note naming `path`. `None` when no runner is recognised there
/// or it reports no failing test (the caller then says what it says of any other command, its
/// tail), and when the log cannot be read.
///
/// The log lies in a worktree's reach, so it is read the way `fs::read_small` reads what an
/// agent could have planted: never through a symbolic link, never blocking on a FIFO, and only
/// from a regular file; no more than `max_bytes` are read even if it grows meanwhile. Bytes not
/// in UTF-8 (or a character cut by the start of the window) are read as U+FFFD.
pub fn of_log(path: &Path, max_bytes: u64) -> Option<String> {
    failing(&crate::fs::read_end(path, max_bytes)?, path)
}

/// The rendered failures in `text` (without ANSI codes), when a runner is recognised and reports
/// some.
fn recognised(text: &str, log: &Path) -> Option<String> {
    let runner = detect(text)?;
    let failures = failures(runner, text);
    (!failures.is_empty()).then(|| limit_head(&render(runner, &failures), log))
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
    const FOREIGN: [&str; 11] = [
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

/// The FAILURES section: `___ name ___` blocks, their `E` lines, the innermost `path.py:N:`.
fn pytest(lines: &[&str]) -> Vec<Failure> {
    static SECTION: LazyLock<Regex> = LazyLock::new(|| re(r"^=+ (FAILURES|ERRORS) =+$"));
    static END: LazyLock<Regex> = LazyLock::new(|| re(r"^=+ .* =+$"));
    static HEAD: LazyLock<Regex> = LazyLock::new(|| re(r"^_{3,} (.+?) _{3,}$"));
    static FRAME: LazyLock<Regex> = LazyLock::new(|| re(r"^(\S+\.py:\d+): \w+"));
    let mut out: Vec<Failure> = Vec::new();
    let mut inside = false;
    for line in lines {
        if SECTION.is_match(line) {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        if END.is_match(line) {
            inside = false;
            continue;
        }
        if let Some(c) = HEAD.captures(line) {
            out.push(failure(&c[1]));
            continue;
        }
        let Some(f) = out.last_mut() else { continue };
        if let Some(rest) = line.strip_prefix("E ") {
            push_message(f, rest);
        } else if let Some(c) = FRAME.captures(line) {
            if project_frame(&c[1]) {
                f.location = Some(c[1].to_string());
            }
        }
    }
    out
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
        if in_exception {
            push_message(f, line);
        }
    }
    out
}

/// `--- FAIL: TestX` lines, and the `file_test.go:N: message` lines logged by each test (after
/// its `=== RUN` with -v, under its `--- FAIL` without). A parent that failed only through its
/// subtests is not listed again.
fn go(lines: &[&str]) -> Vec<Failure> {
    static RUN: LazyLock<Regex> = LazyLock::new(|| re(r"^=== (?:RUN|CONT)\s+(\S+)"));
    static FAIL: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*--- FAIL: (\S+) \("));
    static LOG: LazyLock<Regex> = LazyLock::new(|| re(r"^\s+(\S+\.go:\d+): (.*)$"));
    let mut logs: Vec<(String, String, String)> = Vec::new(); // (test, location, message)
    let mut failed: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for line in lines {
        if let Some(c) = RUN.captures(line) {
            current = Some(c[1].to_string());
        } else if let Some(c) = FAIL.captures(line) {
            failed.push(c[1].to_string());
            current = Some(c[1].to_string());
        } else if let (Some(c), Some(test)) = (LOG.captures(line), &current) {
            logs.push((test.clone(), c[1].to_string(), c[2].to_string()));
        } else if line.starts_with("panic: ") {
            if let Some(test) = &current {
                logs.push((test.clone(), String::new(), line.to_string()));
            }
        }
    }
    let is_parent =
        |t: &str| failed.iter().any(|o| o.len() > t.len() && o.starts_with(t) && o[t.len()..].starts_with('/'));
    let mut out = Vec::new();
    for test in &failed {
        let mut f = failure(test.clone());
        for (_, loc, msg) in logs.iter().filter(|(t, _, _)| t == test) {
            if f.location.is_none() && !loc.is_empty() {
                f.location = Some(loc.clone());
            }
            push_message(&mut f, msg);
        }
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
fn render(runner: Runner, failures: &[Failure]) -> String {
    let n = failures.len();
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

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let from = lines.len().saturating_sub(n);
    let mut out = lines[from..].join("\n");
    out.push('\n');
    out
}

fn cut_note(cut: usize, log: &Path, place: &str) -> String {
    format!("[… {cut} bytes cut {place}; the full log: {}]\n", log.display())
}

/// Keeps the beginning (the first failures) within `MAX_BYTES`, cutting at a line.
fn limit_head(text: &str, log: &Path) -> String {
    if text.len() <= MAX_BYTES {
        return text.to_string();
    }
    let room = MAX_BYTES - cut_note(text.len(), log, "below").len();
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

/// Keeps the end (where a command says why it failed) within `MAX_BYTES`, cutting at a line.
fn limit_tail(text: &str, log: &Path) -> String {
    if text.len() <= MAX_BYTES {
        return text.to_string();
    }
    let room = MAX_BYTES - cut_note(text.len(), log, "above").len();
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
            let head = limit_head(&text, log);
            let tail = limit_tail(&text, log);
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
    fn of_log_reads_only_the_end() {
        // A cargo failure early in the log, then noise, then pytest's: only the end is read.
        let text = format!("{}{}\n{}", sample("cargo-backtrace.txt"), "noise\n".repeat(10_000), sample("pytest.txt"));
        let (_dir, log) = log_of(&text);
        let tail = sample("pytest.txt").len() as u64 + 1000;
        assert!(of_log(&log, tail).unwrap().starts_with("2 failing tests (pytest):\n"));
        assert!(of_log(&log, READ_BYTES).unwrap().starts_with("1 failing test (cargo test):\n"));
        // The window cuts the FAILURES header off: nothing recognisable is left.
        assert_eq!(of_log(&log, 200), None);
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
        assert_eq!(strip_ansi("\x1b[1m\x1b[31mred\x1b[39m\x1b[22m \x1b]0;title\x07ok\r"), "red ok");
    }
}
