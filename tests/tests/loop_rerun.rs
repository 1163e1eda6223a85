//! wt-watch's feedback after one run, flakiness told apart by running only the failing tests
//! again (pytest's own `--lf`), and failures that the base commit has too, on a real pytest from
//! PyPI with a stand-in agent in a real pane.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use wt_tests::watch::*;

/// A pytest suite committed in the repository (`test_math.py` is `tests`), and a conftest
/// that notes every session in a file outside it: `full` or `rerun` (pytest's `--lf`), how
/// many messages the agent of worktree `name` had then, and the arguments. With `wait_for_feed`
/// a re-run first waits (at most 30 s) until the agent has its first message. The venv and the
/// notes' path.
fn pytest_suite(w: &Watch, name: &str, tests: &str, wait_for_feed: bool) -> (PathBuf, PathBuf) {
    let venv = venv_with_pytest(&w.t);
    let runs = w.t.root().join(format!("{name}.sessions"));
    let agent_log = w.t.root().join(format!("{name}.agent.log"));
    let conftest = format!(
        r#"import os, time
RUNS, AGENT_LOG, WAIT = {runs:?}, {agent_log:?}, {wait}

def _messages():
    try:
        return open(AGENT_LOG).read().count("MESSAGE ")
    except FileNotFoundError:
        return 0

def pytest_sessionstart(session):
    args = list(session.config.invocation_params.args)
    rerun = "--lf" in args
    end = time.time() + 30
    while rerun and WAIT and _messages() == 0 and time.time() < end:
        time.sleep(0.02)
    with open(RUNS, "a") as f:
        f.write("%s messages=%d %s\n" % ("rerun" if rerun else "full", _messages(), " ".join(args)))
"#,
        runs = runs.to_str().unwrap(),
        agent_log = agent_log.to_str().unwrap(),
        wait = if wait_for_feed { "True" } else { "False" },
    );
    w.t.write("conftest.py", &conftest);
    w.t.write("test_math.py", tests);
    w.t.write(".gitignore", "build/\n__pycache__/\n");
    w.t.commit("a pytest suite");
    (venv, runs)
}

fn sessions(runs: &Path) -> Vec<String> {
    std::fs::read_to_string(runs).unwrap_or_default().lines().map(str::to_string).collect()
}

fn messages(agent_log: &Path) -> Vec<String> {
    std::fs::read_to_string(agent_log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("MESSAGE ").map(|m| m.replace("\\n", "\n")))
        .collect()
}

/// A test that fails the first time it runs and in the runs `fail_on` name (counted in a file
/// outside the repository), and passes otherwise.
fn flaky_tests(w: &Watch, fail_on: &[u32]) -> String {
    let count = w.t.root().join("flaky.count");
    format!(
        r#"import os
COUNT = {count:?}

def test_ok():
    assert 1 + 1 == 2

def test_flaky():
    n = int(open(COUNT).read()) + 1 if os.path.exists(COUNT) else 1
    open(COUNT, "w").write(str(n))
    assert n not in {fail_on:?}, "flaked on run %d" % n
"#,
        count = count.to_str().unwrap(),
    )
}

fn pytest_argv(venv: &Path) -> Vec<String> {
    vec![venv.join("bin/python").to_str().unwrap().to_string(), "-m".into(), "pytest".into(), "-q".into()]
}

#[test]
fn a_red_pytest_round_is_fed_after_one_run_and_then_only_its_failing_test_runs_again() {
    let w = Watch::new();
    let tests = "def test_ok():\n    assert 1 + 1 == 2\n\n\ndef test_adds():\n    assert 1 + 2 == 4\n";
    let (venv, runs) = pytest_suite(&w, "py1", tests, true);
    w.create("py1");
    let agent_log = w.agent("py1", "fix-code");
    let mut args = vec!["-w", "py1", "--feed", "pane"];
    args.extend(FAST);
    args.push("--");
    let argv = pytest_argv(&venv);
    args.extend(argv.iter().map(String::as_str));
    let mut live = w.spawn(&args, Stdio::null());
    let red = live.next();
    assert_eq!(status(&red), "red", "{red}");
    // The re-run waits in its conftest until the agent has the failure: it can only get it
    // after the first run.
    wait_for("the re-run of the failing test", || sessions(&runs).len() == 2);
    let s = sessions(&runs);
    assert_eq!(s[0], "full messages=0 -q", "{s:?}");
    assert_eq!(s[1], "rerun messages=1 -q --lf --lfnf=none", "only the failing test, after the feed: {s:?}");
    let fed = messages(&agent_log);
    assert_eq!(fed.len(), 1, "{fed:?}");
    assert!(fed[0].contains("test_adds") && fed[0].contains("test_math.py:6"), "{}", fed[0]);
    assert_eq!(live.signal(nix::sys::signal::Signal::SIGTERM), Some(143));
    let rest: Vec<Value> = live.rx.try_iter().collect();
    assert!(rest.is_empty(), "it failed again: nothing more to say: {rest:?}");
}

#[test]
fn a_failing_test_that_passes_when_run_again_is_told_to_the_agent_and_recorded_flaky() {
    let w = Watch::new();
    let tests = flaky_tests(&w, &[1]);
    let (venv, runs) = pytest_suite(&w, "py2", &tests, false);
    w.create("py2");
    let agent_log = w.agent("py2", "fix-code");
    let mut args = vec!["-w", "py2", "--feed", "pane"];
    args.extend(FAST);
    args.push("--");
    let argv = pytest_argv(&venv);
    args.extend(argv.iter().map(String::as_str));
    let mut live = w.spawn(&args, Stdio::null());
    let red = live.next();
    assert_eq!(status(&red), "red", "{red}");
    let flaky = live.next();
    assert_eq!(status(&flaky), "flaky", "{flaky}");
    assert_eq!(flaky["watch"]["flaky"], serde_json::json!(["test_flaky"]), "{flaky}");
    let cmd: Vec<String> = serde_json::from_value(flaky["watch"]["run"]["cmd"].clone()).unwrap();
    assert_eq!(cmd[cmd.len() - 3..], ["-q", "--lf", "--lfnf=none"], "the record's run is the narrow re-run");
    assert_eq!(flaky["watch"]["commit"], red["watch"]["commit"], "of the red round's commit");
    let green = live.next();
    assert_eq!(status(&green), "green", "the round runs again after a flaky one: {green}");
    assert_eq!(green["watch"]["rounds"], 2);
    let fed = messages(&agent_log);
    assert_eq!(fed.len(), 2, "{fed:?}");
    assert!(fed[0].contains("test_flaky") && fed[0].contains("flaked on run 1"), "{}", fed[0]);
    assert!(
        fed[1].contains("passed when run again") && fed[1].contains("test_flaky") && fed[1].contains("flaky"),
        "the agent is told: {}",
        fed[1]
    );
    let s: Vec<String> = sessions(&runs).iter().map(|l| l.split(' ').next().unwrap().to_string()).collect();
    assert_eq!(s, ["full", "rerun", "full"]);
    assert_eq!(live.signal(nix::sys::signal::Signal::SIGINT), Some(130));
}

#[test]
fn until_green_a_flaky_round_runs_again_and_a_repeat_is_said_to_have_passed_before() {
    let w = Watch::new();
    // Red in the first two rounds, green when run again each time, green in the third round.
    let tests = flaky_tests(&w, &[1, 3]);
    let (venv, runs) = pytest_suite(&w, "py3", &tests, false);
    let path = w.create("py3");
    // The agent's work, committed: `--until-green` ends only on a change of the agent's.
    w.t.git_in(&path, ["commit", "-q", "--allow-empty", "-m", "the agent's work"]);
    let agent_log = w.agent("py3", "fix-code");
    let mut args = vec!["-w", "py3", "--until-green", "--feed", "pane"];
    args.extend(FAST);
    args.push("--");
    let argv = pytest_argv(&venv);
    args.extend(argv.iter().map(String::as_str));
    let run = w.watch(&args);
    run.expect_code(0);
    let recs = run.records();
    assert_eq!(recs.len(), 1, "{run}");
    assert_eq!(status(&recs[0]), "green", "flaky is never the end under --until-green: {run}");
    assert_eq!(recs[0]["watch"]["rounds"], 3);
    let fed = messages(&agent_log);
    assert_eq!(fed.len(), 4, "{fed:?}");
    assert!(!fed[0].contains("Probably flaky"), "the first failure is the agent's to read: {}", fed[0]);
    assert!(fed[1].contains("passed when run again"), "{}", fed[1]);
    assert!(
        fed[2].contains("flaked on run 3")
            && fed[2].contains("Probably flaky, not your change: test_flaky (passed when run again in round 1)"),
        "a repeat says it passed when run again before: {}",
        fed[2]
    );
    assert!(fed[3].contains("round 2") && fed[3].contains("passed when run again"), "{}", fed[3]);
    let s: Vec<String> = sessions(&runs).iter().map(|l| l.split(' ').next().unwrap().to_string()).collect();
    assert_eq!(s, ["full", "rerun", "full", "rerun", "full"]);
}

#[test]
fn no_rerun_feeds_after_one_run_and_runs_nothing_again() {
    let w = Watch::new();
    let tests = flaky_tests(&w, &[1]);
    let (venv, runs) = pytest_suite(&w, "py4", &tests, false);
    w.create("py4");
    let agent_log = w.agent("py4", "fix-code");
    let mut args = vec!["-w", "py4", "--until-green", "--no-rerun", "--feed", "pane"];
    args.extend(["--debounce", "100", "--quiet-ms", "300", "--agent-timeout", "3s", "--"]);
    let argv = pytest_argv(&venv);
    args.extend(argv.iter().map(String::as_str));
    let run = w.watch(&args);
    run.expect_code(1);
    assert_eq!(status(&run.records()[0]), "gave-up", "{run}");
    assert_eq!(messages(&agent_log).len(), 1);
    assert_eq!(sessions(&runs).len(), 1, "{:?}", sessions(&runs));
    let help = w.watch(&["--help"]).stdout;
    assert!(help.contains("--no-rerun") && help.contains("pytest `--lf`"), "--help says so: {help}");
}

#[test]
fn a_failure_that_fails_on_the_base_commit_too_is_named_pre_existing() {
    let w = Watch::new();
    // On the base, test_old fails already; the worktree's commit adds test_new, failing too.
    let tests = "def test_ok():\n    assert 1 + 1 == 2\n\n\ndef test_old():\n    assert 2 * 2 == 5, 'old'\n";
    let (venv, runs) = pytest_suite(&w, "py5", tests, false);
    let tree = w.create("py5");
    let added = format!("{tests}\n\ndef test_new():\n    assert 3 - 1 == 1, 'new'\n");
    std::fs::write(tree.join("test_math.py"), added).unwrap();
    let mut commit = std::process::Command::new("git");
    commit.args(["commit", "-qam", "the agent's test"]).current_dir(&tree);
    wt_tests::Run::of(w.t.isolate(&mut commit), "").expect_code(0);
    let agent_log = w.agent("py5", "fix-code");
    let mut args = vec!["-w", "py5", "--feed", "pane"];
    args.extend(FAST);
    args.push("--");
    let argv = pytest_argv(&venv);
    args.extend(argv.iter().map(String::as_str));
    let mut live = w.spawn(&args, Stdio::null());
    assert_eq!(status(&live.next()), "red");
    wait_for("the agent's second message", || messages(&agent_log).len() == 2);
    let fed = messages(&agent_log);
    assert!(fed[0].contains("test_old") && fed[0].contains("test_new"), "{}", fed[0]);
    let base = &w.t.git(["rev-parse", "HEAD"])[..12];
    assert!(
        fed[1].contains(&format!("also fail on the base commit {base} (pre-existing, not your change)"))
            && fed[1].contains("test_old")
            && !fed[1].contains("test_new"),
        "{}",
        fed[1]
    );
    let s: Vec<String> = sessions(&runs).iter().map(|l| l.split(' ').next().unwrap().to_string()).collect();
    assert_eq!(s, ["full", "rerun", "rerun"], "the round, its re-run, the re-run on the base");
    // The base's checkout is gone.
    let scratch = w.t.repo.join(".git/wt/watch-base");
    wait_for("the base's checkout to go", || std::fs::read_dir(&scratch).map_or(true, |mut d| d.next().is_none()));
    let list = w.t.git(["worktree", "list", "--porcelain"]);
    assert!(!list.contains("watch-base"), "{list}");
    assert_eq!(live.signal(nix::sys::signal::Signal::SIGTERM), Some(143));
}

#[test]
fn a_go_test_that_passes_when_run_again_alone_is_flaky_and_the_round_runs_again() {
    let w = Watch::new();
    let count = w.t.root().join("go.count");
    w.t.write("go.mod", "module example.com/flaky\n\ngo 1.19\n");
    let tests = format!(
        r#"package flaky

import (
	"os"
	"strconv"
	"testing"
)

func TestOK(t *testing.T) {{}}

func TestFlaky(t *testing.T) {{
	b, _ := os.ReadFile({count:?})
	n, _ := strconv.Atoi(string(b))
	n++
	os.WriteFile({count:?}, []byte(strconv.Itoa(n)), 0o644)
	if n == 1 {{
		t.Fatalf("flaked on run %d", n)
	}}
}}
"#,
        count = count.to_str().unwrap()
    );
    w.t.write("flaky_test.go", &tests);
    w.t.commit("a go suite");
    w.create("go1");
    let args = ["-w", "go1", "--feed", "none", "--debounce", "100", "--", "go", "test", "./..."];
    let mut live = w.spawn(&args, Stdio::null());
    let red = live.next();
    assert_eq!(status(&red), "red", "{red}");
    assert!(red["watch"]["last_failure"].as_str().unwrap().contains("TestFlaky"), "{red}");
    let flaky = live.next();
    assert_eq!(status(&flaky), "flaky", "{flaky}");
    assert_eq!(flaky["watch"]["flaky"], serde_json::json!(["TestFlaky"]));
    assert_eq!(
        flaky["watch"]["run"]["cmd"],
        serde_json::json!(["go", "test", "./...", "-count=1", "-v", "-run", "^(TestFlaky)$"]),
        "only the failing test, go's own way"
    );
    let green = live.next();
    assert_eq!(status(&green), "green", "{green}");
    assert_eq!(std::fs::read_to_string(&count).unwrap(), "3", "round, re-run, round");
    assert_eq!(live.signal(nix::sys::signal::Signal::SIGINT), Some(130));
}

#[test]
fn a_checkout_of_the_base_left_by_a_killed_watch_is_removed_by_the_next() {
    let w = Watch::new();
    let path = w.create("sw");
    w.t.git_in(&path, ["commit", "-q", "--allow-empty", "-m", "the agent's work"]);
    // What a wt-watch killed during a check on the base leaves: a registered checkout, named
    // with the process id of a process that is gone; a live one's (this test's) is its own.
    let left = w.t.repo.join(".git/wt/watch-base/1-999999999-3");
    w.t.git(["worktree", "add", "--detach", "-q", left.to_str().unwrap(), "HEAD"]);
    let live_one = w.t.repo.join(format!(".git/wt/watch-base/1-{}-3", std::process::id()));
    w.t.git(["worktree", "add", "--detach", "-q", live_one.to_str().unwrap(), "HEAD"]);
    assert!(w.t.git(["worktree", "list", "--porcelain"]).contains("watch-base"));
    let run = w.watch(&["-w", "sw", "--until-green", "--feed", "none", "--", "true"]);
    run.expect_code(0);
    assert!(!left.exists(), "the checkout is gone");
    let list = w.t.git(["worktree", "list", "--porcelain"]);
    assert!(!list.contains("1-999999999-3"), "and git forgot it: {list}");
    assert!(live_one.is_dir() && list.contains(live_one.to_str().unwrap()), "a live process's stays: {list}");
}

#[test]
fn a_cargo_test_that_passes_when_run_again_alone_is_flaky_and_the_round_runs_again() {
    let w = Watch::new();
    let count = w.t.root().join("cargo.count");
    w.t.write("Cargo.toml", "[package]\nname = \"flaky\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n");
    let lib = format!(
        r#"pub fn two() -> u32 {{
    2
}}

#[cfg(test)]
mod tests {{
    #[test]
    fn ok() {{
        assert_eq!(super::two(), 2);
    }}

    #[test]
    fn flaky() {{
        let path = {count:?};
        let n: u32 = std::fs::read_to_string(path).ok().and_then(|s| s.parse().ok()).unwrap_or(0) + 1;
        std::fs::write(path, n.to_string()).unwrap();
        assert!(n != 1, "flaked on run {{n}}");
    }}
}}
"#,
        count = count.to_str().unwrap()
    );
    w.t.write("src/lib.rs", &lib);
    w.t.write(".gitignore", "build/\n/target/\nCargo.lock\n");
    w.t.commit("a cargo suite");
    w.create("rs1");
    // Its own target directory: not the one this test was built in.
    let mut c = w.tool("wt-watch");
    c.env("CARGO_TARGET_DIR", w.t.root().join("cargo-target")).env_remove("RUSTFLAGS");
    c.args(["-w", "rs1", "--feed", "none", "--debounce", "100", "--", "cargo", "test", "-q"]);
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str::<Value>(&line).unwrap());
        }
    });
    let mut live = Live { child, rx };
    let red = live.next();
    assert_eq!(status(&red), "red", "{red}");
    let flaky = live.next();
    assert_eq!(status(&flaky), "flaky", "{flaky}");
    assert_eq!(flaky["watch"]["flaky"], serde_json::json!(["tests::flaky"]));
    assert_eq!(
        flaky["watch"]["run"]["cmd"],
        serde_json::json!(["cargo", "test", "-q", "--", "--exact", "tests::flaky"]),
        "only the failing test, libtest's own way"
    );
    let green = live.next();
    assert_eq!(status(&green), "green", "{green}");
    assert_eq!(std::fs::read_to_string(&count).unwrap(), "3", "round, re-run, round");
    assert_eq!(live.signal(nix::sys::signal::Signal::SIGINT), Some(130));
}

/// The re-run writes what the round writes (`--junitxml`, coverage): that is the test command's
/// output, not the agent's change. Taken for a change, it started round after round with nobody
/// at the keyboard (red ×4, then gave up), and under `--until-green` ended green on the base.
#[test]
fn what_the_rerun_writes_is_no_change_of_the_agents() {
    let w = Watch::new();
    let (venv, runs) =
        pytest_suite(&w, "jx", "def test_ok():\n    pass\n\ndef test_bad():\n    assert 1 == 2\n", false);
    w.create("jx");
    let feed = w.t.root().join("jx.feed");
    let spec = format!("cmd:cat >> '{}'", feed.display());
    let mut args = vec!["-w", "jx", "--feed", &spec, "--debounce", "100", "--agent-timeout", "5s", "--"];
    let argv = pytest_argv(&venv);
    args.extend(argv.iter().map(String::as_str));
    args.push("--junitxml=report.xml");
    let run = w.watch(&args);
    run.expect_code(1);
    let recs = run.records();
    let statuses: Vec<&str> = recs.iter().map(status).collect();
    assert_eq!(statuses, ["red", "gave-up"], "{run}");
    assert!(recs[1]["watch"]["reason"].as_str().unwrap().contains("did not change anything"), "{run}");
    // The first run's new report.xml may be the agent's: one more round shows it is the run's.
    let full = sessions(&runs).iter().filter(|l| l.starts_with("full")).count();
    assert!(full <= 2, "no round for the re-run's writes: {:?}", sessions(&runs));
}

/// A test that fails in the whole suite and passes alone every time depends on what another
/// test leaves behind: after two such re-runs it is told to the agent as its to fix, and the
/// loop waits for the agent, where it went red, flaky, red until it gave up.
#[test]
fn a_test_that_always_fails_in_the_suite_and_passes_alone_is_the_agents_to_fix() {
    let w = Watch::new();
    let tests = "STATE = []\n\ndef test_a_sets():\n    STATE.append(1)\n\ndef test_b_expects_clean():\n    assert STATE == []\n";
    let (venv, _runs) = pytest_suite(&w, "od", tests, false);
    let path = w.create("od");
    w.t.git_in(&path, ["commit", "-q", "--allow-empty", "-m", "the agent's work"]);
    let feed = w.t.root().join("od.feed");
    let spec = format!("cmd:cat >> '{}'", feed.display());
    let mut args = vec!["-w", "od", "--until-green", "--no-guard", "--feed", &spec];
    args.extend(["--debounce", "100", "--agent-timeout", "5s", "--max-rounds", "6", "--"]);
    let argv = pytest_argv(&venv);
    args.extend(argv.iter().map(String::as_str));
    let run = w.watch(&args);
    run.expect_code(1);
    let last = run.records().pop().unwrap();
    assert!(last["watch"]["reason"].as_str().unwrap().contains("did not change anything"), "{run}");
    let fed = std::fs::read_to_string(&feed).unwrap();
    assert!(fed.contains("not flaky, but depending on what other tests leave behind"), "{fed}");
}

/// The re-run of a red round's failing tests gets the build governor's jobserver, like the
/// round (its builds wait for tokens instead of fighting for cores), though it waits for no job
/// slot. Before, re-runs went ungoverned.
#[test]
fn a_rerun_of_the_failing_tests_gets_the_governors_jobserver() {
    let w = Watch::new();
    let venv = venv_with_pytest(&w.t);
    let runs = w.t.root().join("gov.sessions");
    let conftest = format!(
        r#"import os

def pytest_sessionstart(session):
    rerun = "--lf" in session.config.invocation_params.args
    flags = os.environ.get("CARGO_MAKEFLAGS", "")
    with open({runs:?}, "a") as f:
        f.write("%s %s\n" % ("rerun" if rerun else "full", "governed" if "--jobserver-auth=fifo:" in flags else "ungoverned"))
"#,
        runs = runs.to_str().unwrap()
    );
    w.t.write("conftest.py", &conftest);
    w.t.write("test_math.py", "def test_adds():\n    assert 1 + 2 == 4\n");
    w.t.write(".gitignore", "build/\n__pycache__/\n");
    w.t.commit("a pytest suite");
    w.create("pyg");
    w.agent("pyg", "fix-code");
    let mut c = w.tool("wt-watch");
    // The test's own governor (in its runtime dir), which ends itself soon after.
    c.env_remove("WT_GOVERNOR").env("WT_GOVERNOR_TOKENS", "2").env("WT_GOVERNOR_IDLE", "3s");
    c.args(["-w", "pyg", "--feed", "pane"]).args(FAST).arg("--").args(pytest_argv(&venv));
    let mut watch = c.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for("the re-run", || sessions(&runs).len() >= 2);
    let _ = watch.kill();
    let _ = watch.wait();
    let s = sessions(&runs);
    assert_eq!(s[..2], ["full governed", "rerun governed"], "{s:?}");
}
