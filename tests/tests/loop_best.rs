//! wt-watch's best so far (`refs/wt/best/<name>`, moved only up, a regression named in the
//! feedback) on a real pytest suite with the stand-in agent, and the `--feed jsonl:PATH`
//! channel: one JSON line per round, appended, never through a link.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use wt_tests::watch::{status, venv_with_pytest, wait_for, Watch, FAST};
use wt_tests::Run;

/// Three tests, each naming the file and the value it wants, as the stand-in agent reads them.
const SUITE: &str = r#"from pathlib import Path

def val(name):
    return Path(name).read_text().strip()

def test_a():
    assert val("a.txt") == "42", "a.txt: expected 42, got " + val("a.txt")

def test_b():
    assert val("b.txt") == "7", "b.txt: expected 7, got " + val("b.txt")

def test_c():
    assert val("c.txt") == "1", "c.txt: expected 1, got " + val("c.txt")
"#;

fn best_ref(w: &Watch, name: &str) -> Option<String> {
    let mut c = std::process::Command::new("git");
    c.arg("-C").arg(&w.t.repo).args(["rev-parse", "--verify", "-q", &format!("refs/wt/best/{name}")]);
    let out = w.t.isolate(&mut c).output().unwrap();
    out.status.success().then(|| String::from_utf8(out.stdout).unwrap().trim().to_string())
}

/// Makes the commit of `tree`'s HEAD with `files` changed, in the main checkout, and moves the
/// worktree to it in one `git reset --hard`: the watch sees the change and the commit at once,
/// never a tree half changed.
fn land(w: &Watch, tree: &Path, files: &[(&str, &str)]) -> String {
    let head = w.t.git_in(tree, ["rev-parse", "HEAD"]);
    w.t.git(["checkout", "-q", "--detach", &head]);
    for (f, text) in files {
        w.t.write(f, text);
    }
    w.t.git(["commit", "-q", "-am", "by hand"]);
    let sha = w.t.git(["rev-parse", "HEAD"]);
    w.t.git(["checkout", "-q", "main"]);
    w.t.git_in(tree, ["reset", "-q", "--hard", &sha]);
    sha
}

#[test]
fn the_best_commit_is_kept_moved_only_up_a_regression_is_named_to_the_agent_and_removal_forgets_it() {
    let w = Watch::new();
    let venv = venv_with_pytest(&w.t);
    w.t.write("b.txt", "7\n");
    w.t.write("c.txt", "1\n");
    w.t.write("tests/test_x.py", SUITE);
    w.t.write(".gitignore", "build/\n__pycache__/\n");
    w.t.commit("three tests, one failing");
    let base = w.t.git(["rev-parse", "HEAD"]);
    let tree = w.create("best");
    let log = w.agent("best", "fix-code");
    let python = venv.join("bin/python");
    let python = python.to_str().unwrap();
    let mut args = vec!["-w", "best", "--feed", "pane", "--no-rerun"];
    args.extend(FAST);
    args.extend(["--", python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_x.py"]);
    let live = w.spawn(&args, Stdio::null());

    // Red, 2 of 3 passing on the base: the base is the best so far.
    let rec = live.next();
    assert_eq!(status(&rec), "red", "{rec}");
    assert_eq!(rec["watch"]["best"], serde_json::json!({"commit": base, "passed": 2}), "{rec}");
    assert_eq!(best_ref(&w, "best").as_deref(), Some(base.as_str()));
    // The agent fixes a.txt and commits: 3 pass, the best moves up.
    let rec = live.next();
    assert_eq!(status(&rec), "green", "{rec}");
    let fixed = w.t.git_in(&tree, ["rev-parse", "HEAD"]);
    assert_ne!(fixed, base);
    assert_eq!(rec["watch"]["best"], serde_json::json!({"commit": fixed, "passed": 3}), "{rec}");
    assert_eq!(best_ref(&w, "best").as_deref(), Some(fixed.as_str()));

    // A change breaks two tests that passed: the round says which, to the agent.
    let broken = land(&w, &tree, &[("b.txt", "0\n"), ("c.txt", "0\n")]);
    let rec = live.next();
    assert_eq!(status(&rec), "red", "{rec}");
    assert_eq!(rec["watch"]["commit"], broken.as_str());
    let short = &fixed[..7];
    let line = format!(
        "round 1: 2 tests that passed at {short} (best so far) now fail: tests/test_x.py::test_b, tests/test_x.py::test_c"
    );
    assert_eq!(rec["watch"]["regressed"], line.as_str(), "{rec}");
    assert_eq!(rec["watch"]["best"]["commit"], fixed.as_str(), "not moved down: {rec}");
    wait_for("the agent to be told of the regression", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("MESSAGE ") && l.contains(&line))
    });
    // The agent fixes b.txt (one failure per message): still one fewer than the best.
    let rec = live.next();
    assert_eq!(status(&rec), "red", "{rec}");
    let one = format!("round 2: 1 test that passed at {short} (best so far) now fails: tests/test_x.py::test_c");
    assert_eq!(rec["watch"]["regressed"], one.as_str(), "{rec}");
    // Then c.txt: green again, as many as the best, which stays where it was.
    let rec = live.next();
    assert_eq!(status(&rec), "green", "{rec}");
    assert_ne!(w.t.git_in(&tree, ["rev-parse", "HEAD"]), fixed);
    assert_eq!(rec["watch"]["best"]["commit"], fixed.as_str(), "{rec}");
    assert_eq!(best_ref(&w, "best").as_deref(), Some(fixed.as_str()));
    drop(live);

    // Removed with the worktree: the ref and what it counted.
    let state = w.t.repo.join(".git/wt/best/best.json");
    assert!(state.is_file());
    let mut stop = w.tool("wt-run");
    stop.args(["pane", "stop"]);
    Run::of(&mut stop, "");
    w.t.run("wt-create", &["--remove", "--force", "best"], "").expect_code(0);
    assert_eq!(best_ref(&w, "best"), None);
    assert!(!state.exists());
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn the_jsonl_feed_appends_one_parsable_line_per_round_to_a_private_file() {
    let w = Watch::new();
    let tree = w.create("lines");
    let base = w.t.git_in(&tree, ["rev-parse", "HEAD"]);
    let feed: PathBuf = w.t.root().join("lines.feed.jsonl");
    let spec = format!("jsonl:{}", feed.display());
    let mut args = vec!["-w", "lines", "--until-green", "--no-rerun", "--feed", &spec];
    args.extend(FAST);
    args.extend(["--", "sh", "tests/check.sh"]);
    let mut live = w.spawn(&args, Stdio::null());
    wait_for("the first line", || lines(&feed).len() == 1);
    let first = &lines(&feed)[0];
    assert_eq!(
        (first["name"].as_str(), first["round"].as_u64(), first["status"].as_str()),
        (Some("lines"), Some(1), Some("red"))
    );
    assert_eq!((first["commit"].as_str(), first["dirty"].as_bool()), (Some(base.as_str()), Some(false)), "{first}");
    assert!(first["excerpt"].as_str().unwrap().contains("a.txt: expected 42, got 0"), "{first}");
    let message = first["message"].as_str().unwrap();
    assert!(message.contains("a.txt: expected 42, got 0") && message.contains("Do not change the tests"), "{message}");
    assert!(Path::new(first["log"].as_str().unwrap()).is_file(), "{first}");
    assert_eq!(std::fs::metadata(&feed).unwrap().permissions().mode() & 0o777, 0o600);

    let one = land(&w, &tree, &[("a.txt", "42\n")]);
    wait_for("the second line", || lines(&feed).len() == 2);
    let second = &lines(&feed)[1];
    assert_eq!((second["round"].as_u64(), second["status"].as_str()), (Some(2), Some("red")), "{second}");
    assert_eq!(second["commit"], one.as_str());
    assert!(second["message"].as_str().unwrap().contains("b.txt: expected 7"), "{second}");

    let two = land(&w, &tree, &[("b.txt", "7\n")]);
    let rec = live.next();
    assert_eq!(status(&rec), "green", "{rec}");
    assert_eq!(live.child.wait().unwrap().code(), Some(0));
    let all = lines(&feed);
    assert_eq!(all.len(), 3, "one line per round, each whole: {all:?}");
    assert_eq!((all[2]["round"].as_u64(), all[2]["status"].as_str()), (Some(3), Some("green")));
    assert_eq!(all[2]["commit"], two.as_str());
    assert!(all[2].get("message").is_none() && all[2].get("excerpt").is_none(), "{}", all[2]);
}

#[test]
fn a_link_at_the_jsonl_path_is_refused_before_any_round() {
    let w = Watch::new();
    let tree = w.create("linked");
    let victim = w.t.root().join("victim.txt");
    std::fs::write(&victim, "keep\n").unwrap();
    let link = w.t.root().join("feed.jsonl");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let marker = w.t.root().join("ran");
    let cmd = format!("touch {}", marker.display());
    let spec = format!("jsonl:{}", link.display());
    let run = w.watch(&["-w", "linked", "--until-green", "--feed", &spec, "--", "sh", "-c", &cmd]);
    run.expect_code(1);
    let rec = &run.records()[0];
    assert_eq!(rec["error"]["code"], "feed-refused", "{run}");
    assert!(rec["error"]["message"].as_str().unwrap().contains("symbolic link"), "{run}");
    // A directory in the worktree that is a link to elsewhere: a relative path never leaves it.
    let outside = w.t.root().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, tree.join("out")).unwrap();
    let run = w.watch(&["-w", "linked", "--until-green", "--feed", "jsonl:out/feed.jsonl", "--", "sh", "-c", &cmd]);
    run.expect_code(1);
    assert_eq!(run.records()[0]["error"]["code"], "outside-worktree", "{run}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep\n");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert!(!marker.exists(), "no round ran");
}

#[test]
fn a_plain_summary_line_counts_and_purge_takes_the_best_ref_with_everything_else() {
    let w = Watch::new();
    let path = w.create("plain");
    // The agent's work, committed: the loop ends on the green round that tests it.
    w.t.git_in(&path, ["commit", "-q", "--allow-empty", "-m", "the agent's work"]);
    let run = w.watch(&[
        "-w",
        "plain",
        "--until-green",
        "--feed",
        "none",
        "--",
        "sh",
        "-c",
        "echo 'tests: 4 passed, 0 failed'",
    ]);
    run.expect_code(0);
    let rec = &run.records()[0];
    let head = w.t.git_in(&w.t.wt_root().join("plain"), ["rev-parse", "HEAD"]);
    assert_eq!(rec["watch"]["best"], serde_json::json!({"commit": head, "passed": 4}), "{run}");
    assert_eq!(best_ref(&w, "plain").as_deref(), Some(head.as_str()));
    // --force: the agent's commit is not merged.
    w.t.run("wt-create", &["--remove", "--all", "--purge", "--yes", "--force"], "").expect_code(0);
    assert_eq!(best_ref(&w, "plain"), None);
    assert!(!w.t.repo.join(".git/wt").exists());
}

#[test]
fn a_jsonl_file_in_the_worktree_that_git_sees_is_refused_and_one_it_ignores_is_fine() {
    let w = Watch::new();
    let tree = w.create("inside");
    w.t.git_in(&tree, ["commit", "-q", "--allow-empty", "-m", "the agent's work"]);
    // Each line would be a change, and start the next round: refused, nothing left behind.
    let run = w.watch(&["-w", "inside", "--until-green", "--feed", "jsonl:rounds.jsonl", "--", "true"]);
    run.expect_code(1);
    assert_eq!(run.records()[0]["error"]["code"], "feed-in-worktree", "{run}");
    assert!(!tree.join("rounds.jsonl").exists());
    // build/ is ignored (the fixture's .gitignore): fine.
    let run = w.watch(&["-w", "inside", "--until-green", "--feed", "jsonl:build/rounds.jsonl", "--", "true"]);
    run.expect_code(0);
    assert_eq!(status(&run.records()[0]), "green", "{run}");
    assert_eq!(lines(&tree.join("build/rounds.jsonl")).len(), 1);
}

/// The request to commit (a green round on uncommitted changes) reaches a jsonl feed as a line
/// of its own: an agent on that feed was never told, and the loop gave up on it.
#[test]
fn a_jsonl_feed_gets_the_request_to_commit() {
    let w = Watch::new();
    let tree = w.create("cr");
    std::fs::write(tree.join("a.txt"), "42\n").unwrap();
    std::fs::write(tree.join("b.txt"), "7\n").unwrap();
    let feed = w.t.root().join("cr.jsonl");
    let spec = format!("jsonl:{}", feed.display());
    let run =
        w.watch(&["-w", "cr", "--until-green", "--agent-timeout", "3s", "--feed", &spec, "--", "sh", "tests/check.sh"]);
    run.expect_code(1);
    let got = lines(&feed);
    let statuses: Vec<&str> = got.iter().map(|l| l["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["commit-requested", "gave-up"], "{got:?}");
    assert!(got[0]["message"].as_str().unwrap().contains("Commit your changes"), "{got:?}");
}
