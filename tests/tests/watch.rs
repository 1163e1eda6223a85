//! wt-watch end to end: real worktrees, real inotify, real test commands in process groups, and
//! stand-in agents in real panes (a small program in a PTY of the supervisor that shows a
//! prompt, reads what is pasted, and applies the fix it is told about). Each test has its own
//! repository, socket directory and supervisor, and stops what it started.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use wt_tests::watch::*;
use wt_tests::{bin, Run};

#[test]
fn an_agent_in_a_pane_is_led_to_green_with_no_other_input() {
    let w = Watch::new();
    w.create("fixer");
    let log = w.agent("fixer", "fix-code");
    let run = w.until_green("fixer", &["--guard", "tests/**"]);
    run.expect_code(0);
    let recs = run.records();
    assert_eq!(recs.len(), 1, "one record with --until-green\n{run}");
    let rec = &recs[0];
    assert_eq!(status(rec), "green", "{rec}");
    assert_eq!(rec["watch"]["rounds"], 3, "red (a.txt), red (b.txt), green: {rec}");
    assert_eq!(rec["watch"]["run"]["exit"], 0);
    assert!(Path::new(rec["watch"]["run"]["log"].as_str().unwrap()).is_file());
    assert!(rec["watch"]["last_failure"].as_str().unwrap().contains("b.txt: expected 7"), "{rec}");
    let agent = std::fs::read_to_string(&log).unwrap();
    assert!(!agent.contains("TYPED-WHILE-BUSY"), "typed into a busy agent:\n{agent}");
    let messages: Vec<&str> = agent.lines().filter(|l| l.starts_with("MESSAGE ")).collect();
    assert_eq!(messages.len(), 2, "{agent}");
    assert!(messages[0].contains("a.txt: expected 42, got 0") && messages[1].contains("b.txt: expected 7"), "{agent}");
    for m in &messages {
        assert!(m.contains("The tests are the specification") && m.contains("Do not change the tests"), "{m}");
    }
}

#[test]
fn an_agent_in_a_tmux_window_is_led_to_green_too() {
    let w = Watch::new();
    w.create("tmuxed");
    let log = w.agent_on("tmuxed", "fix-code", "tmux");
    let run = w.until_green("tmuxed", &[]);
    run.expect_code(0);
    let rec = &run.records()[0];
    assert_eq!((status(rec), &rec["watch"]["rounds"]), ("green", &serde_json::json!(3)), "{run}");
    let agent = std::fs::read_to_string(&log).unwrap();
    assert!(!agent.contains("TYPED-WHILE-BUSY"), "typed into a busy agent:\n{agent}");
}

/// `--test-pane`: each round runs in a pane `<name>-test` on the agent's backend; the loop
/// still reads the failure from the log, not the screen.
fn test_pane_round_trip(backend: &str) {
    let w = Watch::new();
    let name = format!("tp-{backend}");
    w.create(&name);
    let log = w.agent_on(&name, "fix-code", backend);
    let run = w.until_green(&name, &["--test-pane"]);
    run.expect_code(0);
    let rec = &run.records()[0];
    assert_eq!((status(rec), &rec["watch"]["rounds"]), ("green", &serde_json::json!(3)), "{run}");
    let round_log = std::fs::read_to_string(rec["watch"]["run"]["log"].as_str().unwrap()).unwrap();
    assert_eq!(round_log, "all good\n");
    let mut ls = w.tool("wt-run");
    ls.args(["pane", "ls"]);
    let panes = Run::of(&mut ls, "").expect_code(0).records();
    let test_pane = panes.iter().find(|p| p["name"] == format!("{name}-test")).unwrap_or_else(|| panic!("{panes:?}"));
    let agent_pane = panes.iter().find(|p| p["name"] == name.as_str()).unwrap();
    assert_eq!(test_pane["backend"].as_str().unwrap_or("native"), backend);
    assert_eq!(test_pane["cwd"], agent_pane["cwd"]);
    if backend == "tmux" {
        assert_eq!(test_pane["tmux"]["session"], agent_pane["tmux"]["session"], "a window of the agent's session");
    }
    let agent = std::fs::read_to_string(&log).unwrap();
    assert!(agent.contains("b.txt: expected 7") && !agent.contains("TYPED-WHILE-BUSY"), "{agent}");
}

#[test]
fn test_pane_rounds_run_beside_a_native_agent_pane() {
    test_pane_round_trip("native");
}

#[test]
fn test_pane_rounds_run_in_the_agents_tmux_session() {
    test_pane_round_trip("tmux");
}

#[test]
fn feedback_to_a_plain_line_reading_program_comes_as_lines_without_paste_markers() {
    // A Python input() loop never turns bracketed paste on: the feedback must reach it as the
    // lines a person pasting it would give, not wrapped in ESC[200~ … ESC[201~.
    let w = Watch::new();
    w.create("plain");
    let log = w.t.root().join("plain.lines");
    let reader = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/standins/line_reader.py");
    let mut c = w.tool("wt-run");
    c.args(["-w", "plain", "--pane", "--", "python3"]).arg(&reader).arg(&log);
    Run::of(&mut c, "").expect_code(0);
    let run = w.until_green("plain", &[]);
    run.expect_code(0);
    assert_eq!(status(&run.records()[0]), "green", "the program read and obeyed each line: {run}");
    let lines = std::fs::read_to_string(&log).unwrap();
    assert!(!lines.contains("\\x1b") && !lines.contains("200~"), "no paste markers: {lines}");
    assert!(
        lines.lines().any(|l| l.starts_with("'wt-watch: the tests of worktree plain failed (round 1")),
        "the message's first line is a line of its own: {lines}"
    );
}

#[test]
fn an_agent_still_starting_is_not_typed_into_before_it_shows_anything() {
    let w = Watch::new();
    w.create("sleepy");
    let log = w.start_agent("sleepy", "slow-start");
    let run = w.until_green("sleepy", &[]);
    run.expect_code(0);
    assert_eq!(status(&run.records()[0]), "green", "{run}");
    let agent = std::fs::read_to_string(&log).unwrap();
    assert_eq!(agent.lines().filter(|l| l.starts_with("MESSAGE ")).count(), 2, "{agent}");
}

#[test]
fn an_agent_that_edits_the_test_is_green_guard_touched_and_wt_merge_skips_it() {
    let w = Watch::new();
    w.create("gamer");
    w.agent("gamer", "edit-test");
    let run = w.until_green("gamer", &["--guard", "tests/**"]);
    let rec = &run.records()[0];
    assert_eq!(status(rec), "green-guard-touched", "{run}");
    assert_eq!(rec["watch"]["guard_touched"], serde_json::json!(["tests/check.sh"]));
    run.expect_code(1);
    let mut merge = w.tool("wt-merge");
    merge.args(["--verify", "true"]);
    let merged = Run::of(&mut merge, &run.stdout);
    let m = &merged.records()[0];
    assert_eq!(m["merge"]["status"], "skipped", "{merged}");
    assert!(m["merge"]["reason"].as_str().unwrap().contains("green-guard-touched"), "{merged}");
    assert!(m["merge"]["reason"].as_str().unwrap().contains("tests/check.sh"), "{merged}");
}

#[test]
fn three_worktrees_turned_green_by_their_agents_are_all_merged() {
    let w = Watch::new();
    for n in ["t1", "t2", "t3"] {
        w.create(n);
        w.agent(n, "fix-code");
    }
    let mut watch = w.tool("wt-watch");
    watch.args(["-w", "t1", "-w", "t2", "-w", "t3", "--until-green", "--feed", "pane"]);
    watch.args(FAST).args(["--", "sh", "tests/check.sh"]);
    watch.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut watcher = watch.spawn().unwrap();
    let mut merge = w.tool("wt-merge");
    merge.args(["--verify", "sh tests/check.sh"]);
    merge.stdin(Stdio::from(watcher.stdout.take().unwrap()));
    let merged = Run::from_output(merge.output().unwrap());
    let watched = Run::from_output(watcher.wait_with_output().unwrap());
    watched.expect_code(0);
    merged.expect_code(0);
    let recs = merged.records();
    assert_eq!(recs.len(), 3, "{merged}");
    for r in &recs {
        assert_eq!(r["merge"]["status"], "merged", "{merged}");
        assert_eq!(r["watch"]["status"], "green");
    }
    assert_eq!(std::fs::read_to_string(w.t.repo.join("a.txt")).unwrap(), "42\n");
    assert_eq!(std::fs::read_to_string(w.t.repo.join("b.txt")).unwrap(), "7\n");
}

#[test]
fn a_change_during_a_run_queues_exactly_one_more_round_after_it_and_sigterm_ends_the_run() {
    let w = Watch::new();
    let tree = w.create("slow");
    let (record, release) = (w.t.root().join("pids"), w.t.root().join("release"));
    // Each round: its shell and a child, then it waits until `release` exists.
    let cmd = format!(
        "echo $$ >> {0}; sleep 300 & echo $! >> {0}; while [ ! -e {1} ]; do sleep 0.05; done; kill $!",
        record.display(),
        release.display()
    );
    let mut live =
        w.spawn(&["-w", "slow", "--feed", "none", "--debounce", "100", "--", "sh", "-c", &cmd], Stdio::null());
    wait_for("the first run and its child", || pids(&record).len() == 2);
    let first = pids(&record);
    // Three changes while it runs, each settled on its own.
    for (file, text) in [("a.txt", "1\n"), ("a.txt", "2\n"), ("b.txt", "3\n")] {
        std::fs::write(tree.join(file), text).unwrap();
        std::thread::sleep(Duration::from_millis(400));
    }
    assert!(first.iter().all(|p| alive(*p)), "a change does not end the run");
    assert_eq!(pids(&record).len(), 2, "nor starts another beside it");
    std::fs::write(&release, "").unwrap();
    // The queued round tests the changes: one round, however many changes.
    assert_eq!(status(&live.next()), "green");
    assert_eq!(pids(&record).len(), 4);
    std::fs::remove_file(&release).unwrap();
    std::fs::write(tree.join("a.txt"), "4\n").unwrap();
    wait_for("the round after the next change", || pids(&record).len() == 6);
    let third = pids(&record)[4..].to_vec();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(pids(&record).len(), 6, "no round was started but the ones the changes asked for");
    assert_eq!(live.signal(nix::sys::signal::Signal::SIGTERM), Some(143));
    wait_for("the running test's processes to end", || third.iter().all(|p| !alive(*p)));
}

#[test]
fn a_worktree_that_disappears_gets_an_error_and_the_others_go_on_until_sigint() {
    let w = Watch::new();
    let gone = w.create("gone");
    let stays = w.create("stays");
    let mut live =
        w.spawn(&["-w", "gone", "-w", "stays", "--feed", "none", "--debounce", "100", "--", "true"], Stdio::null());
    let first: Vec<Value> = (0..2).map(|_| live.next()).collect();
    assert!(first.iter().all(|r| status(r) == "green"), "{first:?}");
    std::fs::remove_dir_all(&gone).unwrap();
    let err = live.next();
    assert_eq!(err["name"], "gone");
    assert_eq!(err["error"]["code"], "worktree-missing", "{err}");
    std::fs::write(stays.join("new.txt"), "x").unwrap();
    let again = live.next();
    assert_eq!((again["name"].as_str(), status(&again)), (Some("stays"), "green"));
    assert_eq!(live.signal(nix::sys::signal::Signal::SIGINT), Some(130));
}

#[test]
fn a_test_command_that_does_not_exist_is_an_error_and_no_loop() {
    let w = Watch::new();
    w.create("nocmd");
    let run = w.watch(&["-w", "nocmd", "--feed", "none", "--", "no-such-test-runner-xyz"]);
    run.expect_code(2);
    assert!(run.stdout.is_empty());
    assert_eq!(run.stderr.lines().count(), 1, "{run}");
    assert!(run.stderr.contains("test command not found: no-such-test-runner-xyz"), "{run}");
    // A path is looked up in the worktree: an error record for it, and the watch ends.
    let run = w.watch(&["-w", "nocmd", "--feed", "none", "--", "./missing.sh"]);
    run.expect_code(1);
    let rec = &run.records()[0];
    assert_eq!(rec["error"]["code"], "not-found", "{run}");
}

#[test]
fn no_test_command_anywhere_is_a_usage_error_and_wt_toml_can_give_one() {
    let w = Watch::new();
    w.create("conf");
    let run = w.watch(&["-w", "conf"]);
    run.expect_code(2);
    assert!(run.stderr.contains("[watch] test"), "{run}");
    w.t.write("wt.toml", "[watch]\ntest = \"sh tests/check.sh\"\nfeed = \"none\"\nmax_rounds = 1\n");
    let run = w.watch(&["-w", "conf", "--until-green"]);
    run.expect_code(1);
    let rec = &run.records()[0];
    assert_eq!(status(rec), "gave-up", "{run}");
    assert_eq!(rec["watch"]["reason"], "still red after 1 round");
    assert!(rec["watch"]["last_failure"].as_str().unwrap().contains("a.txt: expected 42"));
    w.t.write("wt.toml", "[watch]\ntset = \"x\"\n");
    w.watch(&["-w", "conf"]).expect_code(2);
}

#[test]
fn a_missing_agent_pane_is_an_error_for_its_worktree() {
    let w = Watch::new();
    w.create("lonely");
    let run = w.until_green("lonely", &[]);
    run.expect_code(1);
    let rec = &run.records()[0];
    assert_eq!(rec["error"]["code"], "no-such-pane", "{run}");
    assert!(rec["error"]["message"].as_str().unwrap().contains("lonely"), "{run}");
}

#[test]
fn an_agent_whose_pane_exits_makes_the_loop_give_up_saying_why() {
    let w = Watch::new();
    w.create("quitter");
    let log = w.agent("quitter", "quit");
    let run = w.until_green("quitter", &[]);
    run.expect_code(1);
    let rec = &run.records()[0];
    assert_eq!(status(rec), "gave-up", "{run}");
    let reason = rec["watch"]["reason"].as_str().unwrap();
    assert!(reason.contains("exited") && reason.contains("exit code 3"), "{reason}");
    assert!(std::fs::read_to_string(log).unwrap().contains("MESSAGE "));
}

#[test]
fn an_agent_that_never_answers_times_out() {
    let w = Watch::new();
    w.create("silent");
    let run = w.watch(&[
        "-w",
        "silent",
        "--until-green",
        "--feed",
        "none",
        "--agent-timeout",
        "300ms",
        "--",
        "sh",
        "tests/check.sh",
    ]);
    run.expect_code(1);
    let rec = &run.records()[0];
    assert_eq!(status(rec), "gave-up");
    assert!(rec["watch"]["reason"].as_str().unwrap().contains("did not change anything within 300ms"), "{rec}");
}

/// A round stopped by `--timeout`: its excerpt says so first, then how far the tests got.
#[test]
fn a_timed_out_round_says_so_first_in_its_excerpt() {
    let w = Watch::new();
    w.create("hang");
    let cmd = "echo collecting 3 items; exec sleep 60";
    let args = ["-w", "hang", "--until-green", "--feed", "none", "--max-rounds", "1", "--timeout", "1s"];
    let run = w.watch(&[&args[..], &["--", "sh", "-c", cmd]].concat());
    run.expect_code(1);
    let rec = &run.records()[0];
    assert_eq!(rec["watch"]["run"]["timed_out"], true, "{run}");
    let failure = rec["watch"]["last_failure"].as_str().unwrap_or_default();
    assert_eq!(failure, "timed out after 1.0s\ncollecting 3 items\n", "{rec}");
}

#[test]
fn feedback_goes_to_a_file_or_a_command() {
    let w = Watch::new();
    let tree = w.create("files");
    let got = w.t.root().join("from-cmd.txt");
    let live = w.spawn(
        &["-w", "files", "--feed", "file:../feedback.md", "--debounce", "100", "--", "sh", "tests/check.sh"],
        Stdio::null(),
    );
    assert_eq!(status(&live.next()), "red");
    let fed = w.t.wt_root().join("feedback.md");
    wait_for("the feedback file", || fed.is_file());
    let text = std::fs::read_to_string(&fed).unwrap();
    assert!(text.contains("a.txt: expected 42, got 0") && text.contains("Do not change the tests"), "{text}");
    std::fs::write(tree.join("a.txt"), "42\n").unwrap();
    assert_eq!(status(&live.next()), "red");
    wait_for("the next feedback", || std::fs::read_to_string(&fed).unwrap().contains("b.txt: expected 7"));
    drop(live);
    let cmd = format!("cmd:cat > {}", got.display());
    let run = w.watch(&[
        "-w",
        "files",
        "--until-green",
        "--agent-timeout",
        "1s",
        "--feed",
        &cmd,
        "--",
        "sh",
        "tests/check.sh",
    ]);
    assert_eq!(status(&run.records()[0]), "gave-up", "{run}");
    assert!(std::fs::read_to_string(&got).unwrap().contains("b.txt: expected 7"));
}

#[test]
fn ignored_files_do_not_start_a_run_and_a_changed_gitignore_is_obeyed() {
    let w = Watch::new();
    let tree = w.create("ign");
    let mut live = w.spawn(&["-w", "ign", "--feed", "none", "--debounce", "100", "--", "true"], Stdio::null());
    assert_eq!(status(&live.next()), "green");
    std::fs::create_dir_all(tree.join("build")).unwrap();
    std::fs::write(tree.join("build/out.o"), "x").unwrap();
    std::fs::write(tree.join("scratch.tmp"), "x").unwrap(); // not ignored yet: one run
    assert_eq!(status(&live.next()), "green");
    std::fs::write(tree.join(".gitignore"), "build/\n*.tmp\n").unwrap(); // a change: one run
    assert_eq!(status(&live.next()), "green");
    std::thread::sleep(Duration::from_millis(400));
    std::fs::write(tree.join("scratch.tmp"), "y").unwrap();
    std::fs::write(tree.join("build/out.o"), "y").unwrap();
    std::thread::sleep(Duration::from_millis(400));
    std::fs::create_dir_all(tree.join("src/deep")).unwrap(); // an empty directory: git sees nothing
    std::thread::sleep(Duration::from_millis(400));
    std::fs::write(tree.join("src/deep/x.rs"), "y").unwrap();
    assert_eq!(status(&live.next()), "green"); // a file in it: the directory is watched
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(live.signal(nix::sys::signal::Signal::SIGINT), Some(130));
    // The ignored writes started nothing.
    let rest: Vec<Value> = live.rx.try_iter().collect();
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn worktrees_arriving_on_stdin_are_watched_while_others_run() {
    let w = Watch::new();
    w.create("first");
    w.create("second");
    let mut live = w.spawn(&["--feed", "none", "--debounce", "100", "--", "true"], Stdio::piped());
    let mut stdin = live.child.stdin.take().unwrap();
    writeln!(stdin, "first").unwrap();
    let a = live.next();
    assert_eq!((a["name"].as_str(), status(&a)), (Some("first"), "green"));
    writeln!(stdin, "second").unwrap();
    writeln!(stdin, "{{broken").unwrap();
    let b = live.next();
    assert_eq!((b["name"].as_str(), status(&b)), (Some("second"), "green"));
    drop(stdin);
    assert_eq!(live.signal(nix::sys::signal::Signal::SIGINT), Some(130));
}

#[test]
fn the_inotify_watch_limit_is_a_clear_error() {
    let w = Watch::new();
    let tree = w.create("many");
    for i in 0..40 {
        std::fs::create_dir_all(tree.join(format!("d{i}"))).unwrap();
    }
    // A user namespace has its own limit, so this test does not starve anything else.
    let mut c = Command::new("unshare");
    c.args(["-U", "-r", "sh", "-c", "echo 8 > /proc/sys/user/max_inotify_watches && exec \"$0\" \"$@\""]);
    c.arg(bin("wt-watch")).args(["-w", "many", "--feed", "none", "--", "true"]).current_dir(&w.t.repo);
    w.env(&mut c);
    let run = Run::of(&mut c, "");
    run.expect_code(3);
    assert!(run.stderr.contains("fs.inotify.max_user_watches"), "{run}");
    assert!(run.stderr.contains("sysctl fs.inotify.max_user_watches="), "{run}");
}

/// An agent that reports its turn through hooks and thinks silently after each fix: its screen
/// is quiet then, but it said it is working, so nothing is typed until it says it is idle.
#[test]
fn an_agent_that_says_it_is_working_is_not_typed_into_while_its_screen_is_quiet() {
    let w = Watch::new();
    w.create("thinker");
    let log = w.agent("thinker", "quiet-busy");
    let run = w.until_green("thinker", &[]);
    run.expect_code(0);
    let rec = &run.records()[0];
    assert_eq!((status(rec), &rec["watch"]["rounds"]), ("green", &serde_json::json!(3)), "{run}");
    let agent = std::fs::read_to_string(&log).unwrap();
    assert!(!agent.contains("TYPED-WHILE-BUSY"), "typed into an agent that said it was working:\n{agent}");
    assert_eq!(agent.lines().filter(|l| l.starts_with("MESSAGE ")).count(), 2, "{agent}");
}

/// `watch.commit` and `watch.dirty` of a record.
fn tested(rec: &Value) -> (&Value, &Value) {
    (&rec["watch"]["commit"], &rec["watch"]["dirty"])
}

#[test]
fn each_record_names_the_commit_its_round_tested_and_whether_the_tree_was_clean() {
    let w = Watch::new();
    let tree = w.create("proof");
    let tip = w.t.git(["rev-parse", "wt/proof"]);
    let (tip_v, clean, dirty) = (Value::from(tip.as_str()), Value::Bool(false), Value::Bool(true));
    // The first round's record (without --until-green, which waits for a change).
    let first = |args: &[&str]| {
        let mut all = vec!["-w", "proof", "--feed", "none", "--debounce", "100"];
        all.extend(args);
        let mut live = w.spawn(&all, Stdio::null());
        let rec = live.next();
        assert_eq!(live.signal(nix::sys::signal::Signal::SIGINT), Some(130));
        rec
    };
    let rec = first(&["--", "true"]);
    assert_eq!(status(&rec), "green", "{rec}");
    assert_eq!(tested(&rec), (&tip_v, &clean), "{rec}");
    // A tracked file changed: dirty (and without --until-green still reported green, with
    // `dirty`, which wt-merge does not merge); an ignored one is no change.
    std::fs::create_dir_all(tree.join("build")).unwrap();
    std::fs::write(tree.join("build/out.o"), "x").unwrap();
    assert_eq!(tested(&first(&["--", "true"])), (&tip_v, &clean));
    std::fs::write(tree.join("b.txt"), "7\n").unwrap();
    let rec = first(&["--", "true"]);
    assert_eq!((status(&rec), tested(&rec)), ("green", (&tip_v, &dirty)), "{rec}");
    w.t.git_in(&tree, ["checkout", "--", "b.txt"]);
    // A round that gave up says what it tested too.
    let green = |args: &[&str]| {
        let mut all = vec!["-w", "proof", "--until-green", "--feed", "none", "--debounce", "100"];
        all.extend(args);
        let run = w.watch(&all);
        let rec = run.records().remove(0);
        (run, rec)
    };
    let (run, rec) = green(&["--max-rounds", "1", "--", "false"]);
    run.expect_code(1);
    assert_eq!((status(&rec), tested(&rec)), ("gave-up", (&tip_v, &clean)), "{rec}");
    // Red, then a fix is committed: the green record names the commit of the round that
    // turned green. The feed commits first (objects, index, branch: nothing in the worktree
    // changes) and only then writes the files, so no round sees the change uncommitted.
    let fix = "cat >/dev/null; a=$(printf '42\\n' | git hash-object -w --stdin); b=$(printf '7\\n' | git hash-object -w --stdin); \
        git update-index --cacheinfo 100644,$a,a.txt --cacheinfo 100644,$b,b.txt && git commit -q -m fix && \
        printf '42\\n' > a.txt && printf '7\\n' > b.txt";
    let feed = format!("cmd:{fix}");
    let mut watch = w.tool("wt-watch");
    watch.args(["-w", "proof", "--until-green", "--feed", &feed, "--debounce", "300", "--", "sh", "tests/check.sh"]);
    let run = Run::of(&mut watch, "");
    run.expect_code(0);
    let rec = &run.records()[0];
    let fixed = w.t.git(["rev-parse", "wt/proof"]);
    assert_ne!(fixed, tip, "the feed committed");
    assert_eq!(w.t.git(["log", "-1", "--format=%s", "wt/proof"]), "fix");
    assert_eq!((status(rec), &rec["watch"]["rounds"]), ("green", &Value::from(2)), "{run}");
    assert_eq!(tested(rec), (&Value::from(fixed.as_str()), &clean), "{rec}");
    assert_eq!(w.t.git_in(&tree, ["rev-parse", "HEAD"]), fixed);
}

/// A Makefile the agent edited that tries to get out: write beside the worktree and into the
/// main worktree, move `main` with git and by writing its ref file; then it runs the real test.
fn escaping_makefile(w: &Watch) -> String {
    let (outside, main, common) = (w.t.root(), w.t.repo.clone(), w.t.repo.join(".git"));
    let (outside, main, common) = (outside.display(), main.display(), common.display());
    format!(
        "test:\n\
         \t-echo escaped > {outside}/escaped.txt && echo WROTE-OUTSIDE\n\
         \t-echo planted > {main}/planted.txt && echo WROTE-MAIN\n\
         \t-c=$$(git commit-tree -m evil HEAD^{{tree}}) && git update-ref refs/heads/main $$c && echo MOVED-MAIN\n\
         \t-c=$$(git commit-tree -m evil2 HEAD^{{tree}}) && echo $$c > {common}/refs/heads/main && echo WROTE-MAIN-REF\n\
         \tsh tests/check.sh\n"
    )
}

const ESCAPES: [&str; 4] = ["WROTE-OUTSIDE", "WROTE-MAIN", "MOVED-MAIN", "WROTE-MAIN-REF"];

#[test]
fn a_makefile_the_agent_edited_cannot_escape_a_confined_watch_and_rounds_still_judge_it() {
    let w = Watch::new();
    let tree = w.create("boxed");
    std::fs::write(tree.join("Makefile"), escaping_makefile(&w)).unwrap();
    let main_before = w.t.git(["rev-parse", "main"]);
    let escaped = w.t.root().join("escaped.txt");
    let planted = w.t.repo.join("planted.txt");
    let watch = |extra: &[&str]| {
        let mut args = vec!["-w", "boxed", "--until-green", "--feed", "none", "--max-rounds", "1", "--debounce", "100"];
        args.extend(extra);
        args.extend(["--", "make", "test"]);
        w.watch(&args)
    };
    // Red: every escape refused, the failure still judged by the test and cut for the agent.
    let run = watch(&["--confine"]);
    run.expect_code(1);
    let rec = &run.records()[0];
    assert_eq!(status(rec), "gave-up", "{run}");
    assert_eq!(rec["watch"]["run"]["exit"], 2, "make's own exit code: {rec}");
    assert_eq!(rec["watch"]["run"]["cmd"], serde_json::json!(["make", "test"]), "{rec}");
    let confined = &rec["watch"]["run"]["confined"];
    assert_eq!((&confined["mode"], &confined["enforced"]), (&"strict".into(), &"full".into()), "{rec}");
    assert_eq!(confined["git"], "private-store", "{rec}");
    let failure = rec["watch"]["last_failure"].as_str().unwrap_or_default();
    assert!(failure.contains("a.txt: expected 42, got 0"), "the excerpt reached the record: {rec}");
    let log = std::fs::read_to_string(rec["watch"]["run"]["log"].as_str().unwrap()).unwrap();
    assert!(log.contains("assertion failed: a.txt"), "the round's output is in its log:\n{log}");
    for marker in ESCAPES {
        assert!(!log.lines().any(|l| l == marker), "{marker} got through:\n{log}");
    }
    assert!(!escaped.exists() && !planted.exists(), "nothing written outside the worktree");
    assert_eq!(w.t.git(["rev-parse", "main"]), main_before, "main did not move");
    assert_eq!(std::fs::read_to_string(w.t.repo.join(".git/refs/heads/main")).unwrap().trim(), main_before);
    // Green: the same Makefile passes once the code is fixed (and committed: green is a
    // commit), still confined.
    std::fs::write(tree.join("a.txt"), "42\n").unwrap();
    std::fs::write(tree.join("b.txt"), "7\n").unwrap();
    w.t.git_in(&tree, ["add", "-A"]);
    w.t.git_in(&tree, ["commit", "-q", "-m", "the fix, and the Makefile"]);
    let run = watch(&["--confine"]);
    run.expect_code(0);
    let rec = &run.records()[0];
    assert_eq!((status(rec), &rec["watch"]["run"]["exit"]), ("green", &serde_json::json!(0)), "{run}");
    assert_eq!(rec["watch"]["run"]["confined"]["enforced"], "full", "{rec}");
    assert!(!escaped.exists() && !planted.exists());
    assert_eq!(w.t.git(["rev-parse", "main"]), main_before);
    // The control: unconfined, the same Makefile does get out (so the checks above can fail).
    let run = watch(&[]);
    run.expect_code(0);
    assert!(run.records()[0]["watch"]["run"].get("confined").is_none(), "{run}");
    assert!(escaped.exists() && planted.exists(), "unconfined, the Makefile wrote outside");
    assert_ne!(w.t.git(["rev-parse", "main"]), main_before, "unconfined, the Makefile moved main");
}

#[test]
fn a_confined_round_keeps_its_leases_env_and_nothing_else_of_the_callers() {
    let w = Watch::new();
    let tree = w.create("leased");
    // --until-green ends on a green round of a commit ahead of the base.
    w.t.git_in(&tree, ["commit", "-q", "--allow-empty", "-m", "work"]);
    w.t.run("wt-env", &["--ports", "web", "--dotenv", "leased"], "").expect_code(0);
    let dotenv = std::fs::read_to_string(tree.join(".env.wt")).unwrap();
    let from_file = |key: &str| {
        let line = dotenv.lines().find(|l| l.starts_with(&format!("{key}="))).unwrap_or_else(|| panic!("{dotenv}"));
        line.split_once('=').unwrap().1.trim_matches(['"', '\'']).to_string()
    };
    let round = |extra: &[&str]| {
        let mut c = w.tool("wt-watch");
        c.env("AGENT_TEST_SECRET", "hush")
            .args(["-w", "leased", "--until-green", "--feed", "none", "--confine"])
            .args(extra)
            .args(["--", "sh", "-c", "env | sort"]);
        let run = Run::of(&mut c, "");
        run.expect_code(0);
        let rec = run.records().remove(0);
        assert_eq!(status(&rec), "green", "{run}");
        let log = std::fs::read_to_string(rec["watch"]["run"]["log"].as_str().unwrap()).unwrap();
        (rec, log)
    };
    let (rec, log) = round(&[]);
    let has = |log: &str, k: &str, v: &str| log.lines().any(|l| l == format!("{k}={v}"));
    assert!(has(&log, "WT_NAME", "leased"), "{log}");
    assert!(has(&log, "WT_PATH", &tree.display().to_string()), "{log}");
    assert!(has(&log, "WT_BRANCH", "wt/leased"), "{log}");
    for key in ["PORT", "WT_PORT_WEB", "WT_PORT_FIRST", "WT_PORT_LAST"] {
        assert!(has(&log, key, &from_file(key)), "{key} as in the env file:\n{log}\n{dotenv}");
    }
    assert!(!log.contains("AGENT_TEST_SECRET"), "a variable of the caller's stays out:\n{log}");
    let first: u64 = from_file("WT_PORT_FIRST").parse().unwrap();
    assert_eq!(rec["watch"]["run"]["confined"]["ports"][0], first, "binds only its leased ports: {rec}");
    let (_, log) = round(&["--pass-env", "AGENT_TEST_SECRET"]);
    assert!(has(&log, "AGENT_TEST_SECRET", "hush"), "passed by name:\n{log}");
}

#[test]
fn a_confined_test_pane_runs_the_round_sandboxed_and_still_logs_it() {
    let w = Watch::new();
    w.create("tpc");
    let mut agent = w.tool("wt-run");
    agent.args(["-w", "tpc", "--pane", "--", "sleep", "600"]);
    Run::of(&mut agent, "").expect_code(0);
    let escaped = w.t.root().join("escaped.txt");
    let script = format!("echo x > {} && echo WROTE-OUTSIDE; sh tests/check.sh", escaped.display());
    let run = w.watch(&[
        "-w",
        "tpc",
        "--until-green",
        "--feed",
        "none",
        "--max-rounds",
        "1",
        "--test-pane",
        "--confine",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    run.expect_code(1);
    let rec = &run.records()[0];
    assert_eq!(status(rec), "gave-up", "{run}");
    assert_eq!(rec["watch"]["run"]["exit"], 1, "{rec}");
    assert_eq!(rec["watch"]["run"]["confined"]["enforced"], "full", "{rec}");
    assert!(rec["watch"]["last_failure"].as_str().unwrap().contains("a.txt: expected 42"), "{rec}");
    let log = std::fs::read_to_string(rec["watch"]["run"]["log"].as_str().unwrap()).unwrap();
    assert!(log.contains("assertion failed: a.txt") && !log.contains("WROTE-OUTSIDE"), "{log}");
    assert!(!escaped.exists(), "nothing written outside the worktree");
}

#[test]
fn a_kernel_that_cannot_confine_is_an_error_and_best_effort_says_what_is_missing() {
    let w = Watch::new();
    let tree = w.create("weak");
    // --until-green ends on a green round of a commit ahead of the base.
    w.t.git_in(&tree, ["commit", "-q", "--allow-empty", "-m", "work"]);
    let watch = |mode: &str| {
        let mut c = w.tool("wt-watch");
        c.env("WT_LANDLOCK_ABI_MAX", "5").args([
            "-w",
            "weak",
            "--until-green",
            "--feed",
            "none",
            mode,
            "--",
            "sh",
            "-c",
            "echo RAN-$0",
            mode,
        ]);
        Run::of(&mut c, "")
    };
    let strict = watch("--confine");
    strict.expect_code(1);
    let rec = &strict.records()[0];
    assert_eq!(rec["error"]["code"], "confine-unsupported", "{strict}");
    let logs = w.t.repo.join(".git/wt/logs/weak");
    for log in wt_tests::names_in(&logs, |n| n.ends_with(".log")) {
        let text = std::fs::read_to_string(logs.join(&log)).unwrap();
        assert!(!text.contains("RAN-"), "the command ran, unconfined: {log}: {text}");
    }
    let best = watch("--confine=best-effort");
    best.expect_code(0);
    let rec = &best.records()[0];
    assert_eq!(rec["watch"]["run"]["confined"]["enforced"], "partial", "{best}");
    assert_eq!(
        rec["watch"]["run"]["confined"]["missing"],
        serde_json::json!(["scope-signal", "scope-abstract-unix-socket"])
    );
    let log = std::fs::read_to_string(rec["watch"]["run"]["log"].as_str().unwrap()).unwrap();
    assert_eq!(log, "RAN---confine=best-effort\n");
}

/// The pids (as this machine sees them, whatever namespace they run in) whose command line is
/// `sleep <secs>`.
fn sleeping(secs: u32) -> Vec<i32> {
    let want = format!("sleep\0{secs}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want.as_bytes()))
        .collect()
}

#[test]
fn a_confined_round_goes_on_through_a_change_and_is_ended_by_sigterm_with_what_it_started() {
    let w = Watch::new();
    let tree = w.create("slowc");
    let n = 200_000 + std::process::id() % 100_000;
    let cmd = format!("sleep {n} & sleep {}; wait", n + 1);
    let args = ["-w", "slowc", "--feed", "none", "--debounce", "100", "--confine", "--", "sh", "-c", &cmd];
    let mut live = w.spawn(&args, Stdio::null());
    wait_for("the first round's processes", || sleeping(n).len() == 1 && sleeping(n + 1).len() == 1);
    let first = [sleeping(n), sleeping(n + 1)].concat();
    std::fs::write(tree.join("a.txt"), "1\n").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(first.iter().all(|p| alive(*p)), "a change does not end the round; it queues the next");
    assert_eq!(live.signal(nix::sys::signal::Signal::SIGTERM), Some(143));
    wait_for("every process of the round to end", || sleeping(n).is_empty() && sleeping(n + 1).is_empty());
}

#[test]
fn the_status_line_says_a_round_runs_and_its_timer_counts() {
    // A test that runs until the test says GO: while it runs, the status line on the terminal
    // says so, and its timer must pass 0s, 1s, 2s.
    let w = Watch::new();
    let path = w.create("tick");
    // The agent's work, committed: the loop ends on the green round that tests it.
    w.t.git_in(&path, ["commit", "-q", "--allow-empty", "-m", "the agent's work"]);
    let go = w.t.root().join("go");
    let cmd = format!("while [ ! -e {go} ]; do sleep 0.05; done", go = go.display());
    let watch = format!(
        "{} -w tick --until-green --feed none --debounce 50 -- sh -c {} >/dev/null",
        bin("wt-watch").display(),
        shell_quote(&cmd)
    );
    let mut c = Command::new("script");
    c.args(["-qfec", &watch, "/dev/null"]).current_dir(&w.t.repo);
    w.env(&mut c);
    let mut child =
        wt_tests::Reaped(c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap());
    // However the test ends, the test command is let go, so wt-watch ends with it.
    let _release = Release(go.clone());
    let mut stdout = child.0.stdout.take().unwrap();
    let screen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let seen = std::sync::Arc::clone(&screen);
    // The terminal's bytes as they come: the status line is redrawn in place, without a newline.
    let reader = std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = std::io::Read::read(&mut stdout, &mut chunk) {
            seen.lock().unwrap().push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    let line = "round 1: running";
    for secs in 0..=2 {
        let shown = format!("{line}  ({secs}s)");
        wait_for(&shown, || screen.lock().unwrap().contains(&shown));
    }
    std::fs::write(&go, "").unwrap();
    let code = child.0.wait().unwrap().code();
    reader.join().unwrap();
    let text = screen.lock().unwrap().clone();
    assert!(text.contains("done: green"), "{code:?} {text:?}");
}

#[test]
fn pytest_writing_its_cache_starts_no_second_run_on_an_unchanged_tree() {
    let w = Watch::new();
    let venv = venv_with_pytest(&w.t);
    w.t.write("test_math.py", "def test_adds():\n    assert 1 + 1 == 2\n");
    w.t.write(".gitignore", "build/\n__pycache__/\n");
    w.t.commit("a pytest suite");
    w.create("py");
    let marker = w.t.root().join("py.runs");
    let cmd = format!("echo run >> {}; exec {}/bin/python -m pytest -q", marker.display(), venv.display());
    let mut live = w.spawn(&["-w", "py", "--feed", "none", "--debounce", "100", "--", "sh", "-c", &cmd], Stdio::null());
    assert_eq!(status(&live.next()), "green");
    assert!(w.t.wt_root().join("py/.pytest_cache/.gitignore").is_file(), "pytest wrote its cache");
    // pytest renamed its cache into place at the end of the run; nothing git sees changed.
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(runs(&marker), 1, "one run on an unchanged tree");
    assert_eq!(live.signal(nix::sys::signal::Signal::SIGINT), Some(130));
    let rest: Vec<Value> = live.rx.try_iter().collect();
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn what_git_ignores_in_a_self_ignoring_directory_renamed_into_place_or_by_excludes_starts_nothing() {
    let w = Watch::new();
    let tree = w.create("ign2");
    // The user's excludes file, named in the (isolated) global config, and the repository's
    // info/exclude.
    let global = w.t.root().join("global-ignore");
    std::fs::write(&global, "*.scratch\n").unwrap();
    let mut c = Command::new("git");
    c.args(["config", "--global", "core.excludesFile", global.to_str().unwrap()]).current_dir(&w.t.repo);
    Run::of(w.t.isolate(&mut c), "").expect_code(0);
    let info = w.t.repo.join(".git/info");
    std::fs::create_dir_all(&info).unwrap();
    let mut exclude = std::fs::read_to_string(info.join("exclude")).unwrap_or_default();
    exclude.push_str("/local-notes/\n");
    std::fs::write(info.join("exclude"), exclude).unwrap();
    let marker = w.t.root().join("ign2.runs");
    let cmd = format!("echo run >> {}", marker.display());
    let mut live =
        w.spawn(&["-w", "ign2", "--feed", "none", "--debounce", "100", "--", "sh", "-c", &cmd], Stdio::null());
    assert_eq!(status(&live.next()), "green");
    // As pytest makes its cache, one level down: a temporary directory, its files first, its
    // self-ignoring .gitignore after, then renamed into place.
    let tmp = tree.join("tests/cache-files-x1");
    std::fs::create_dir_all(tmp.join("v/cache")).unwrap();
    std::fs::write(tmp.join("README.md"), "a cache\n").unwrap();
    std::fs::write(tmp.join("v/cache/nodeids"), "[]\n").unwrap();
    std::fs::write(tmp.join(".gitignore"), "# made by a tool\n*\n").unwrap();
    std::fs::rename(&tmp, tree.join("tests/.cache")).unwrap();
    std::fs::write(tree.join("tests/.cache/v/cache/lastfailed"), "{}\n").unwrap();
    std::fs::write(tree.join("notes.scratch"), "x").unwrap();
    std::fs::create_dir_all(tree.join("local-notes")).unwrap();
    std::fs::write(tree.join("local-notes/todo"), "x").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(runs(&marker), 1, "nothing git sees changed");
    let status_now = w.t.git_in(&tree, ["status", "--porcelain"]);
    assert!(status_now.trim().is_empty(), "git agrees: {status_now}");
    std::fs::write(tree.join("a.txt"), "1\n").unwrap(); // a change git sees: one round
    assert_eq!(status(&live.next()), "green");
    assert_eq!(runs(&marker), 2);
    assert_eq!(live.signal(nix::sys::signal::Signal::SIGINT), Some(130));
}

#[test]
fn a_hanging_round_with_no_timeout_given_times_out_red_once_and_the_feedback_says_so() {
    let w = Watch::new();
    w.create("hang");
    let marker = w.t.root().join("hang.runs");
    let fed = w.t.root().join("hang.feedback");
    let cmd = format!("echo run >> {}; echo started; sleep 600", marker.display());
    let feed = format!("file:{}", fed.display());
    let mut c = w.tool("wt-watch");
    // The floor is 2 minutes; before any green round the timeout is 5 floors: 5s here.
    c.env("WT_WATCH_TIMEOUT_FLOOR", "1s");
    c.args(["-w", "hang", "--until-green", "--feed", &feed, "--agent-timeout", "1s", "--debounce", "100"]);
    c.args(["--", "sh", "-c", &cmd]);
    let run = Run::of(&mut c, "");
    run.expect_code(1);
    let rec = &run.records()[0];
    assert_eq!(status(rec), "gave-up", "{run}");
    let failure = rec["watch"]["last_failure"].as_str().unwrap();
    assert!(failure.starts_with("timed out after 5.0s\n"), "{failure}");
    let text = std::fs::read_to_string(&fed).unwrap();
    assert!(text.contains("timed out after 5.0s"), "the agent is told: {text}");
    assert_eq!(runs(&marker), 1, "a round that timed out is not run again as the flaky check");
    // `[watch] timeout` gives it too, no floor needed.
    w.t.write("wt.toml", "[watch]\ntimeout = \"1s\"\n");
    let run = w.watch(&["-w", "hang", "--until-green", "--feed", "none", "--max-rounds", "1", "--", "sh", "-c", &cmd]);
    run.expect_code(1);
    let failure = run.records()[0]["watch"]["last_failure"].as_str().unwrap().to_string();
    assert!(failure.starts_with("timed out after 1.0s\n"), "{failure}");
    assert_eq!(runs(&marker), 2, "one more run, not two");
}
