//! wt-watch: what counts as a change, and green means a commit (issue 26, items 4 and 5). A
//! test command's own output starts no round; a green round on uncommitted changes tells the
//! agent to commit and waits for the commit, which is what wt-merge then merges; `--until-green`
//! never ends on the untouched base. Real worktrees, real inotify, pytest from PyPI, stand-in
//! agents in real panes.

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use wt_tests::watch::*;
use wt_tests::Run;

/// pytest with `--junitxml report.xml` writes a file git does not ignore at every run: it used to
/// queue a round after every round (dozens of runs a minute, no record). Now the second run that
/// writes it finds it the run's own: a record, said once (stderr and `notes`) which file and to
/// ignore it, then quiet; the tree with it is not "uncommitted". A change by the agent (a tracked
/// file, or the report itself written outside a run) still starts a round.
#[test]
fn a_test_command_writing_an_untracked_file_does_not_run_again_for_it_and_says_to_ignore_it() {
    let w = Watch::new();
    let venv = venv_with_pytest(&w.t);
    w.t.write("test_math.py", "def test_adds():\n    assert 1 + 1 == 2\n");
    w.t.write(".gitignore", "build/\n__pycache__/\n");
    w.t.commit("a pytest suite");
    let tree = w.create("junit");
    let marker = w.t.root().join("junit.runs");
    let cmd = format!(
        "echo run >> {}; exec {}/bin/python -m pytest -q --junitxml report.xml",
        marker.display(),
        venv.display()
    );
    let mut live =
        w.spawn(&["-w", "junit", "--feed", "none", "--debounce", "100", "--", "sh", "-c", &cmd], Stdio::null());
    let rec = live.next();
    assert_eq!(status(&rec), "green", "{rec}");
    assert!(tree.join("report.xml").is_file(), "pytest wrote its report");
    let notes = rec["watch"]["notes"].to_string();
    assert!(notes.contains("report.xml") && notes.contains(".gitignore"), "said which file, and to ignore it: {rec}");
    assert_eq!(rec["watch"]["dirty"], Value::Bool(false), "the report is no uncommitted change: {rec}");
    // Two runs: the first write could have been the agent's; the second shows it is the run's.
    assert_eq!(runs(&marker), 2, "{rec}");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(runs(&marker), 2, "no round for what the run wrote itself");
    // The report written outside a run is the agent's change: a round; written again by that
    // run, it is the run's once more, and nothing is said again.
    std::fs::write(tree.join("report.xml"), "<by the agent/>").unwrap();
    let rec = live.next();
    assert_eq!((status(&rec), &rec["watch"]["dirty"]), ("green", &Value::Bool(false)), "{rec}");
    assert!(rec["watch"].get("notes").is_none(), "said once: {rec}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(runs(&marker), 3);
    assert_eq!(live.signal(nix::sys::signal::Signal::SIGINT), Some(130));
    let mut stderr = String::new();
    live.child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let told = stderr.lines().filter(|l| l.contains("writes report.xml")).count();
    assert_eq!(told, 1, "said once on stderr:\n{stderr}");
}

/// An agent that fixes the code but does not commit: its green round is not final and not
/// merged; the agent is told to commit (in its pane, as failures are), and once it commits, the
/// next round tests the commit, and `wt-watch | wt-merge` merges that commit.
#[test]
fn an_agent_that_does_not_commit_is_told_to_and_its_commit_is_what_is_merged() {
    let w = Watch::new();
    let tree = w.create("lazy");
    let log = w.agent("lazy", "fix-no-commit");
    let mut watch = w.tool("wt-watch");
    watch.args(["-w", "lazy", "--until-green", "--feed", "pane"]).args(FAST).args(["--", "sh", "tests/check.sh"]);
    watch.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut watcher = watch.spawn().unwrap();
    let mut merge = w.tool("wt-merge");
    merge.stdin(Stdio::from(watcher.stdout.take().unwrap()));
    let merged = Run::from_output(merge.output().unwrap());
    let watched = Run::from_output(watcher.wait_with_output().unwrap());
    watched.expect_code(0);
    merged.expect_code(0);
    let recs = merged.records();
    assert_eq!(recs.len(), 1, "one record with --until-green\n{merged}\n{watched}");
    let rec = &recs[0];
    let agent = std::fs::read_to_string(&log).unwrap();
    let messages: Vec<&str> = agent.lines().filter(|l| l.starts_with("MESSAGE ")).collect();
    assert_eq!(messages.len(), 3, "a.txt, b.txt, then commit:\n{agent}");
    assert!(messages[2].contains("pass") && messages[2].contains("Commit your changes"), "{agent}");
    assert!(messages[2].contains("a.txt") && messages[2].contains("b.txt"), "names what is uncommitted: {agent}");
    let head = w.t.git(["rev-parse", "wt/lazy"]);
    assert_eq!(w.t.git(["log", "-1", "--format=%s", "wt/lazy"]), "commit the fixes in lazy, as told");
    assert_eq!(
        (status(rec), &rec["watch"]["commit"], &rec["watch"]["dirty"]),
        ("green", &head.as_str().into(), &false.into()),
        "{rec}"
    );
    assert_eq!(rec["watch"]["rounds"], 4, "red, red, green uncommitted, green: {rec}");
    assert_eq!(rec["merge"]["status"], "merged", "{merged}");
    assert_eq!(rec["merge"]["verified_by"], "wt-watch", "{merged}");
    w.t.git(["merge-base", "--is-ancestor", &head, "main"]);
    assert_eq!(std::fs::read_to_string(w.t.repo.join("b.txt")).unwrap(), "7\n");
    assert_eq!(w.t.git_in(&tree, ["status", "--porcelain"]), "");
}

/// An agent that never commits is never merged: the loop gives up saying so, and wt-merge
/// skips it; the feed said to commit.
#[test]
fn an_uncommitted_fix_is_never_merged() {
    let w = Watch::new();
    let tree = w.create("never");
    std::fs::write(tree.join("a.txt"), "42\n").unwrap();
    std::fs::write(tree.join("b.txt"), "7\n").unwrap();
    let main_before = w.t.git(["rev-parse", "main"]);
    let told = w.t.root().join("told.md");
    let feed = format!("file:{}", told.display());
    let mut watch = w.tool("wt-watch");
    watch.args(["-w", "never", "--until-green", "--feed", &feed, "--agent-timeout", "2s", "--debounce", "100"]);
    watch.args(["--", "sh", "tests/check.sh"]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut watcher = watch.spawn().unwrap();
    let mut merge = w.tool("wt-merge");
    merge.stdin(Stdio::from(watcher.stdout.take().unwrap()));
    let merged = Run::from_output(merge.output().unwrap());
    let watched = Run::from_output(watcher.wait_with_output().unwrap());
    watched.expect_code(1);
    let rec = &merged.records()[0];
    assert_eq!(status(rec), "gave-up", "{merged}");
    let reason = rec["watch"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("did not commit"), "{rec}");
    assert_eq!(rec["merge"]["status"], "skipped", "{merged}");
    assert_eq!(w.t.git(["rev-parse", "main"]), main_before, "nothing merged");
    let text = std::fs::read_to_string(&told).unwrap();
    assert!(text.contains("pass") && text.contains("Commit your changes"), "{text}");
}

/// `--until-green` started before the agent's change, on a base that is green: the first round
/// is green, and the loop waits (the file the test command writes itself is no change of the
/// agent's either); the agent's change (committed) is tested, and only that round ends the
/// loop. A worktree whose branch is ahead of its base ends on its first green round.
#[test]
fn until_green_started_before_the_change_waits_for_it() {
    let w = Watch::new();
    w.t.write("a.txt", "42\n");
    w.t.write("b.txt", "7\n");
    w.t.commit("the base is green");
    let tree = w.create("early");
    let marker = w.t.root().join("early.runs");
    let cmd = format!("echo run >> {}; date +%N > report.txt; sh tests/check.sh", marker.display());
    let args = ["-w", "early", "--until-green", "--feed", "none", "--debounce", "100", "--", "sh", "-c", &cmd];
    let mut live = w.spawn(&args, Stdio::null());
    // The second run shows report.txt to be the run's own.
    wait_for("the first two rounds", || runs(&marker) == 2);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(runs(&marker), 2);
    assert!(live.rx.try_recv().is_err(), "no record for the untouched base");
    assert!(live.child.try_wait().unwrap().is_none(), "the loop waits for a change");
    std::fs::write(tree.join("c.txt"), "the agent's work\n").unwrap();
    w.t.git_in(&tree, ["add", "c.txt"]);
    w.t.git_in(&tree, ["commit", "-q", "-m", "the agent's work"]);
    let rec = live.next();
    assert_eq!(status(&rec), "green", "{rec}");
    let head = w.t.git(["rev-parse", "wt/early"]);
    assert_eq!((&rec["watch"]["commit"], &rec["watch"]["dirty"]), (&head.as_str().into(), &false.into()), "{rec}");
    assert_eq!(live.child.wait().unwrap().code(), Some(0));
    // Started again, the branch is ahead of its base: its first green round is final.
    let run = w.watch(&args);
    run.expect_code(0);
    assert_eq!(status(&run.records()[0]), "green", "{run}");
}

/// Without `--until-green`, a round green on uncommitted changes is reported green with
/// `dirty`, and wt-merge does not merge it, even with a verify command that would pass on the
/// branch's tip: the tip is not what passed.
#[test]
fn wt_merge_holds_a_green_record_of_uncommitted_changes() {
    let w = Watch::new();
    let tree = w.create("dirty");
    std::fs::write(tree.join("a.txt"), "42\n").unwrap();
    std::fs::write(tree.join("b.txt"), "7\n").unwrap();
    let told = w.t.root().join("told.md");
    let feed = format!("file:{}", told.display());
    let mut live =
        w.spawn(&["-w", "dirty", "--feed", &feed, "--debounce", "100", "--", "sh", "tests/check.sh"], Stdio::null());
    let rec = live.next();
    assert_eq!((status(&rec), &rec["watch"]["dirty"]), ("green", &Value::Bool(true)), "{rec}");
    wait_for("the agent told to commit", || {
        std::fs::read_to_string(&told).is_ok_and(|t| t.contains("Commit your changes"))
    });
    assert_eq!(live.signal(nix::sys::signal::Signal::SIGINT), Some(130));
    let main_before = w.t.git(["rev-parse", "main"]);
    let mut merge = w.tool("wt-merge");
    merge.args(["--verify", "true"]);
    let merged = Run::of(&mut merge, &format!("{rec}\n"));
    merged.expect_code(1);
    let out = &merged.records()[0];
    assert_eq!(out["merge"]["status"], "skipped", "{merged}");
    assert!(out["merge"]["reason"].as_str().unwrap_or_default().contains("uncommitted"), "{merged}");
    assert_eq!(w.t.git(["rev-parse", "main"]), main_before, "nothing merged");
}

/// With `--feed none` nobody can be asked to commit: a green round on uncommitted changes ends
/// the loop as it is (`dirty: true`, which wt-merge does not merge), instead of waiting the whole
/// --agent-timeout for a commit (a crate whose first test run writes an untracked Cargo.lock).
#[test]
fn with_no_feed_an_uncommitted_green_ends_the_loop_as_it_is() {
    let w = Watch::new();
    let tree = w.create("nf");
    std::fs::write(tree.join("a.txt"), "42\n").unwrap();
    std::fs::write(tree.join("b.txt"), "7\n").unwrap();
    let run = w.watch(&[
        "-w",
        "nf",
        "--until-green",
        "--agent-timeout",
        "60s",
        "--feed",
        "none",
        "--",
        "sh",
        "tests/check.sh",
    ]);
    run.expect_code(0);
    let rec = &run.records()[0];
    assert_eq!((status(rec), &rec["watch"]["dirty"]), ("green", &serde_json::json!(true)), "{run}");
}
