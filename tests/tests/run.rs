//! wt-run, end to end: real process groups, real signals, real Landlock, through real pipes
//! from wt-create and wt-env.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use wt_tests::{s, Run, TestRepo};

fn tail(rec: &Value) -> Vec<String> {
    rec["run"]["tail"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect()
}

/// Whether a process whose command line contains `marker` is still alive.
fn alive(marker: &str) -> bool {
    Command::new("pgrep").args(["-f", marker]).stdout(Stdio::null()).status().unwrap().success()
}

#[test]
fn runs_in_the_worktree_with_its_env_logs_and_passes_the_exit_code() {
    let t = TestRepo::new();
    let script = "echo \"$WT_NAME $PORT $WT_PORT_WEB $(pwd)\"; echo oops >&2; exit 7";
    let run = t.pipeline(&[
        ("wt-create", &["one"]),
        ("wt-env", &["--range", "22700-22799", "--ports", "web"]),
        ("wt-run", &["--", "sh", "-c", script]),
    ]);
    run.expect_code(7);
    let rec = &run.records()[0];
    let path = s(rec, "path");
    assert_eq!(tail(rec), [format!("one 22700 22700 {path}"), "oops".to_string()]);
    assert_eq!(rec["run"]["exit"], 7);
    assert_eq!(rec["env"]["block"]["start"], 22700, "upstream keys pass through");
    let log = std::fs::read_to_string(s(&rec["run"], "log")).unwrap();
    assert_eq!(log, format!("one 22700 22700 {path}\noops\n"));
    assert!(rec["run"]["duration_ms"].as_u64().is_some());
    // By name, the leases come from the ledger.
    let rec = &t.run("wt-run", &["-w", "one", "--", "sh", "-c", "echo $PORT"], "").expect_code(0).records()[0];
    assert_eq!(tail(rec), ["22700"]);
}

/// A command that prints megabytes on one line (a bundle, a minified diff) leaves a record the
/// next tool reads: the record keeps the start of such a line, the log all of it.
#[test]
fn a_line_of_megabytes_is_cut_in_the_record_and_whole_in_the_log() {
    let t = TestRepo::new();
    t.run("wt-create", &["one"], "").expect_code(0);
    let script = "head -c 3000000 /dev/zero | tr '\\0' x; echo; printf 'é%.0s' $(seq 2000); echo; printf end";
    let run = t.run("wt-run", &["-w", "one", "--", "sh", "-c", script], "");
    run.expect_code(0);
    assert!(run.stdout.len() < 8 << 10, "the record stays small: {} bytes", run.stdout.len());
    let rec = &run.records()[0];
    let kept = tail(rec);
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert_eq!(kept[0], format!("{}…", "x".repeat(1024)));
    assert_eq!(kept[1], format!("{}…", "é".repeat(512)), "cut on a character's boundary");
    assert_eq!(kept[2], "end", "a last line without a newline is not cut");
    let log = std::fs::read(s(&rec["run"], "log")).unwrap();
    assert_eq!(log.len(), 3_000_000 + 1 + 4000 + 1 + 3, "the log has every byte");
}

#[test]
fn many_worktrees_run_in_parallel_and_exit_one_if_any_failed() {
    let t = TestRepo::new();
    t.run("wt-create", &["-n", "4"], "").expect_code(0);
    let run = t.run("wt-run", &["--all", "-j", "4", "--shell", "--", "sleep 0.5; test $WT_NAME != agent-3"], "");
    run.expect_code(1);
    let recs = run.records();
    assert_eq!(recs.len(), 4);
    let failed: Vec<&str> = recs.iter().filter(|r| r["run"]["exit"] != 0).map(|r| s(r, "name")).collect();
    assert_eq!(failed, ["agent-3"]);
    let longest = recs.iter().map(|r| r["run"]["duration_ms"].as_u64().unwrap()).max().unwrap();
    assert!(longest >= 500);
    let ok = t.run("wt-run", &["--all", "--", "true"], "");
    ok.expect_code(0);
}

#[test]
fn no_process_of_a_run_outlives_it() {
    let t = TestRepo::new();
    t.run("wt-create", &["bg"], "").expect_code(0);
    let marker = format!("sleep 311.{}", std::process::id());
    let script = format!("{marker} & echo started");
    let run = t.run("wt-run", &["-w", "bg", "--", "sh", "-c", &script], "");
    run.expect_code(0);
    assert_eq!(tail(&run.records()[0]), ["started"]);
    assert!(!alive(&marker), "the background grandchild was ended with its group");
}

#[test]
fn a_timeout_ends_the_whole_group_and_exits_124() {
    let t = TestRepo::new();
    t.run("wt-create", &["slow"], "").expect_code(0);
    let marker = format!("sleep 312.{}", std::process::id());
    let script = format!("{marker} & {marker}");
    let started = Instant::now();
    let run = t.run("wt-run", &["-w", "slow", "--timeout", "300ms", "--", "sh", "-c", &script], "");
    run.expect_code(124);
    assert!(started.elapsed() < Duration::from_secs(20));
    let rec = &run.records()[0];
    assert_eq!(
        (rec["run"]["timed_out"].clone(), rec["run"]["signal"].clone()),
        (Value::Bool(true), Value::from("TERM"))
    );
    assert!(!alive(&marker));
}

#[test]
fn sigterm_to_wt_run_ends_every_group_and_still_prints_the_records() {
    let t = TestRepo::new();
    t.run("wt-create", &["-n", "2"], "").expect_code(0);
    let marker = format!("sleep 313.{}", std::process::id());
    let mut cmd = t.cmd("wt-run");
    cmd.args(["--all", "-j", "2", "--", "sh", "-c", &format!("echo up; {marker}")]);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !alive(&marker) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let run = Run::from_output(child.wait_with_output().unwrap());
    run.expect_code(143);
    let recs = run.records();
    assert_eq!(recs.len(), 2);
    assert!(recs.iter().all(|r| r["run"]["signal"] == "TERM"), "{run}");
    assert!(!alive(&marker));
}

#[test]
fn bad_input_missing_command_vanished_worktree_and_bad_duration() {
    let t = TestRepo::new();
    t.run("wt-create", &["-n", "2"], "").expect_code(0);
    let run = t.run("wt-run", &["-w", "agent-1", "--", "no-such-command-wt"], "");
    run.expect_code(1);
    let rec = &run.records()[0];
    assert_eq!(rec["error"]["code"], "not-found");
    assert!(rec["error"]["message"].as_str().unwrap().contains("no-such-command-wt"));
    std::fs::remove_dir_all(t.wt_root().join("agent-2")).unwrap();
    let run = t.run("wt-run", &["--all", "--", "true"], "");
    run.expect_code(1);
    let recs = run.records();
    let by_name = |n: &str| recs.iter().find(|r| r["name"] == n).unwrap().clone();
    assert_eq!(by_name("agent-2")["error"]["code"], "worktree-missing");
    assert_eq!(by_name("agent-1")["run"]["exit"], 0, "the others still run");
    for bad in ["5x", "-1s", "abc"] {
        let run = t.run("wt-run", &["-w", "agent-1", &format!("--timeout={bad}"), "--", "true"], "");
        run.expect_code(2);
        assert!(run.stderr.contains("not a duration"), "{run}");
    }
}

#[test]
fn confine_keeps_a_command_inside_its_worktree_and_its_ports() {
    let t = TestRepo::new();
    let recs =
        t.pipeline(&[("wt-create", &["-n", "2"]), ("wt-env", &["--range", "22800-22899"])]).expect_code(0).records();
    let other = PathBuf::from(s(&recs[1], "path"));
    let bind = |port: u16| {
        format!("python3 -c \"import socket; socket.socket().bind(('127.0.0.1', {port}))\" 2>/dev/null && echo bind-{port}-ok || echo bind-{port}-denied")
    };
    let script = [
        "echo mine > mine.txt && echo write-own-ok".to_string(),
        format!(
            "(echo x > '{}/evil.txt') 2>/dev/null && echo write-other-ok || echo write-other-denied",
            other.display()
        ),
        format!(
            "(echo x > '{}/evil.txt') 2>/dev/null && echo write-main-ok || echo write-main-denied",
            t.repo.display()
        ),
        "echo t > \"$TMPDIR/t\" && echo tmp-ok".into(),
        "git add mine.txt && git commit -q -m confined 2>/dev/null && echo commit-ok".into(),
        bind(22805),
        bind(22950),
    ]
    .join("; ");
    let run = t.run("wt-run", &["-w", "agent-1", "--confine", "--", "sh", "-c", &script], "");
    run.expect_code(0);
    let rec = &run.records()[0];
    assert_eq!(
        tail(rec),
        [
            "write-own-ok",
            "write-other-denied",
            "write-main-denied",
            "tmp-ok",
            "commit-ok",
            "bind-22805-ok",
            "bind-22950-denied"
        ]
    );
    assert_eq!(rec["run"]["confined"]["enforced"], "full");
    assert_eq!(rec["run"]["confined"]["ports"], serde_json::json!([22800, 22809]));
    assert!(!other.join("evil.txt").exists() && !t.repo.join("evil.txt").exists());
    assert_eq!(t.git(["log", "-1", "--format=%s", "wt/agent-1"]), "confined", "the commit landed on its branch");
    // Unconfined, the same write goes through: the test above can fail.
    let free =
        t.run("wt-run", &["-w", "agent-1", "--shell", "--", &format!("echo x > '{}/evil.txt'", other.display())], "");
    free.expect_code(0);
    assert!(other.join("evil.txt").exists());
}

#[test]
fn a_terminal_sees_prefixed_output_lines() {
    let t = TestRepo::new();
    t.run("wt-create", &["tty"], "").expect_code(0);
    let line = format!("'{}' -w tty -- sh -c 'echo hello' >/dev/null", wt_tests::bin("wt-run").display());
    let mut cmd = Command::new("script");
    cmd.current_dir(&t.repo).args(["-qec", &line, "/dev/null"]);
    t.isolate(&mut cmd);
    let run = Run::of(&mut cmd, "");
    run.expect_code(0);
    assert!(run.stdout.contains("tty | hello"), "{run}");
}

/// What a person sees of `wt-run ARGS` typed at a terminal (stdout and stderr both on it).
fn on_a_terminal(t: &TestRepo, args: &str) -> String {
    let line = format!("'{}' {args}", wt_tests::bin("wt-run").display());
    let mut cmd = Command::new("script");
    cmd.current_dir(&t.repo).args(["-qec", &line, "/dev/null"]);
    t.isolate(&mut cmd);
    Run::of(&mut cmd, "").stdout.replace('\r', "")
}

#[test]
fn each_runs_line_says_its_time_once_and_quiet_leaves_the_output_in_the_log() {
    let t = TestRepo::new();
    t.run("wt-create", &["ok", "bad"], "").expect_code(0);
    let cmd = "-- sh -c 'echo said-$WT_NAME; [ $WT_NAME = ok ]'";
    let loud = on_a_terminal(&t, &format!("-w ok -w bad {cmd}"));
    assert!(loud.contains("ok  | said-ok"), "without --quiet the output is echoed: {loud}");
    // `wt-run: bad: exit 1 after 12ms`: the run's own time, and not the time since wt-run
    // started after it (`[15ms]`) as well.
    for (name, words) in [("ok", "passed in "), ("bad", "exit 1 after ")] {
        let line =
            loud.lines().find(|l| l.starts_with(&format!("wt-run: {name}: "))).unwrap_or_else(|| panic!("{loud}"));
        let time = line.strip_prefix(&format!("wt-run: {name}: {words}")).unwrap_or_else(|| panic!("{line}"));
        assert!(!time.contains(' ') && !time.contains('['), "one time on the line: {line}");
    }
    assert!(loud.contains("wt-run: 1 passed, 1 failed, "), "{loud}");

    let quiet = on_a_terminal(&t, &format!("-w ok -w bad --quiet {cmd}"));
    assert!(!quiet.contains("said-"), "--quiet echoes none of the output: {quiet}");
    assert!(quiet.contains("wt-run: ok: passed in ") && quiet.contains("wt-run: bad: exit 1 after "), "{quiet}");
    assert!(quiet.contains("wt-run: 1 passed, 1 failed, "), "{quiet}");
    assert!(quiet.lines().any(|l| l.starts_with("NAME ") && l.contains("EXIT")), "and the table: {quiet}");
    let log =
        quiet.lines().find_map(|l| l.split_whitespace().find(|w| w.ends_with(".log") && w.contains("/ok/"))).unwrap();
    assert_eq!(std::fs::read_to_string(log).unwrap(), "said-ok\n", "the output is in the run's log");
}

#[test]
fn logs_live_in_the_state_dir() {
    let t = TestRepo::new();
    t.run("wt-create", &["l"], "").expect_code(0);
    let rec = &t.run("wt-run", &["-w", "l", "--", "echo", "logged"], "").expect_code(0).records()[0];
    let log = PathBuf::from(s(&rec["run"], "log"));
    assert!(log.starts_with(t.repo.join(".git/wt/logs/l")), "{}", log.display());
    assert!(Path::new(&log).is_file());
}

/// `run.head` and `run.dirty` of a run in worktree `name` (running `script` with `sh -c`).
fn tested(t: &TestRepo, name: &str, extra: &[&str], script: &str) -> (Value, Value, Value) {
    let mut args = vec!["-w", name, "--json"];
    args.extend(extra);
    args.extend(["--", "sh", "-c", script]);
    let run = t.run("wt-run", &args, "");
    run.expect_code(0);
    let rec = run.records().remove(0);
    (rec["run"]["head"].clone(), rec["run"]["dirty"].clone(), rec)
}

#[test]
fn a_run_records_the_commit_it_started_from_and_whether_the_tree_was_clean() {
    let t = TestRepo::new();
    t.run("wt-create", &["proof"], "").expect_code(0);
    let tree = t.wt_root().join("proof");
    let tip = t.git(["rev-parse", "wt/proof"]);
    assert_eq!(tip.len(), 40);
    let (head, dirty, rec) = tested(&t, "proof", &[], "true");
    assert_eq!((head, dirty), (Value::from(tip.as_str()), Value::Bool(false)), "{rec}");
    // A tracked file modified, a change staged, an untracked file: dirty; an ignored one: not.
    std::fs::write(tree.join("README"), "changed\n").unwrap();
    let (head, dirty, rec) = tested(&t, "proof", &[], "true");
    assert_eq!((head, dirty), (Value::from(tip.as_str()), Value::Bool(true)), "{rec}");
    t.git_in(&tree, ["add", "README"]);
    assert_eq!(tested(&t, "proof", &[], "true").1, Value::Bool(true));
    t.git_in(&tree, ["reset", "-q", "--hard"]);
    std::fs::write(tree.join("new.txt"), "x\n").unwrap();
    assert_eq!(tested(&t, "proof", &[], "true").1, Value::Bool(true));
    std::fs::write(tree.join("scratch.log"), "x\n").unwrap();
    std::fs::remove_file(tree.join("new.txt")).unwrap();
    std::fs::write(t.repo.join(".git/info/exclude"), "scratch.log\n").unwrap();
    assert_eq!(tested(&t, "proof", &[], "true").1, Value::Bool(false), "ignored files are no change");
    // A command that commits: the record names the commit it started from, not the new tip.
    let (head, dirty, rec) =
        tested(&t, "proof", &[], "echo c > c.txt && git add c.txt && git commit -q -m during && echo committed");
    assert_eq!(tail(&rec), ["committed"]);
    let new_tip = t.git(["rev-parse", "wt/proof"]);
    assert_ne!(new_tip, tip, "the command committed");
    assert_eq!((head, dirty), (Value::from(tip.as_str()), Value::Bool(false)), "{rec}");
    assert_eq!(tested(&t, "proof", &[], "true").0, Value::from(new_tip.as_str()), "the next run starts from it");
    // Detached, the commit checked out is HEAD's own.
    t.git_in(&tree, ["checkout", "-q", "--detach", &tip]);
    assert_eq!(tested(&t, "proof", &[], "true").0, Value::from(tip.as_str()));
}

#[test]
fn a_confined_run_records_the_commit_it_started_from_and_a_confined_panes_commit_is_published_first() {
    let t = TestRepo::new();
    t.run("wt-create", &["boxed"], "").expect_code(0);
    let tip = t.git(["rev-parse", "wt/boxed"]);
    let (head, dirty, rec) =
        tested(&t, "boxed", &["--confine"], "git commit -q --allow-empty -m confined && echo committed");
    assert!(tail(&rec).iter().any(|l| l == "committed"), "{rec}");
    assert_eq!(rec["run"]["confined"]["git"], "private-store", "{rec}");
    let published = t.git(["rev-parse", "wt/boxed"]);
    assert_eq!(rec["run"]["confined"]["published"]["to"], published.as_str(), "{rec}");
    assert_eq!((head, dirty), (Value::from(tip.as_str()), Value::Bool(false)), "{rec}");
    // A confined pane's commit sits in its private store while the pane runs; a batch run in
    // the same worktree publishes it before it reads the branch, so it names that commit.
    let p = wt_tests::panes::Panes::new();
    p.t.run("wt-create", &["pane"], "").expect_code(0);
    let before = p.t.git(["rev-parse", "wt/pane"]);
    let mut spawn = p.cmd();
    spawn.args(["-w", "pane", "--pane", "--confine", "--json", "--", "bash", "--norc", "--noprofile", "-i"]);
    Run::of(&mut spawn, "").expect_code(0);
    p.json(&["pane", "send", "pane", "git commit -q --allow-empty -m live && echo commit-done", "--enter"]);
    p.json(&["pane", "wait", "pane", "--match", "(?m)^commit-done", "--timeout", "20s"]);
    assert_eq!(p.t.git(["rev-parse", "wt/pane"]), before, "not published yet while the pane runs");
    let mut batch = p.cmd();
    batch.args(["-w", "pane", "--json", "--", "true"]);
    let rec = Run::of(&mut batch, "").expect_code(0).records().remove(0);
    let live = p.t.git(["rev-parse", "wt/pane"]);
    assert_ne!(live, before);
    assert_eq!(p.t.git(["log", "-1", "--format=%s", "wt/pane"]), "live");
    assert_eq!(
        (&rec["run"]["head"], &rec["run"]["dirty"]),
        (&Value::from(live.as_str()), &Value::Bool(false)),
        "{rec}"
    );
}
