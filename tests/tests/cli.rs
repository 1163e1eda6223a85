//! The command line as a newcomer meets it, across the tools: nothing selected is never a
//! silent success, flags mean one thing everywhere, logs appear when asked for, and every
//! error is one line naming the problem and the fix.

use std::process::Command;

use serde_json::Value;
use wt_tests::{s, Run, TestRepo};

/// Runs `line` (a shell command line) under `script`, so the tools see a terminal on stdin and
/// stdout, as when a person types it.
fn on_terminal(t: &TestRepo, line: &str) -> Run {
    let mut cmd = Command::new("script");
    cmd.current_dir(&t.repo).args(["-qec", line, "/dev/null"]);
    t.isolate(&mut cmd);
    Run::of(&mut cmd, "")
}

fn bin(tool: &str) -> String {
    format!("'{}'", wt_tests::bin(tool).display())
}

/// `script` runs the line through a shell: its exit code is the tool's.
fn terminal_code(t: &TestRepo, line: &str) -> (Option<i32>, String) {
    let run = on_terminal(t, line);
    (run.code, run.stdout.replace('\r', ""))
}

#[test]
fn naming_no_worktree_on_a_terminal_is_a_usage_error_in_every_tool() {
    let t = TestRepo::new();
    t.run("wt-create", &["-n", "2"], "").expect_code(0);
    for line in [
        format!("{} --range 26100-26199", bin("wt-env")),
        format!("{} -- true", bin("wt-run")),
        format!("{} --check", bin("wt-merge")),
        format!("{} --remove", bin("wt-create")),
        format!("{} -- true", bin("wt-watch")),
    ] {
        let (code, out) = terminal_code(&t, &line);
        assert_eq!(code, Some(2), "{line}: {out}");
        assert_eq!(out.trim().lines().count(), 1, "{line}: {out}");
        assert!(out.contains("no worktrees given (name them, -w, --all, or pipe records)"), "{line}: {out}");
    }
    // An optional value never takes the next word: `--dotenv agent-2` is agent-2 with .env.wt.
    let (code, out) = terminal_code(&t, &format!("{} --range 26100-26199 --dotenv agent-2 --json", bin("wt-env")));
    assert_eq!(code, Some(0), "{out}");
    assert!(t.wt_root().join("agent-2/.env.wt").is_file(), "{out}");
    let run = t.run("wt-env", &["--range", "26100-26199", "--dotenv=custom.env", "agent-1"], "");
    run.expect_code(0);
    assert!(t.wt_root().join("agent-1/custom.env").is_file());
    // An empty pipe is no mistake: upstream found nothing, so there is nothing to do.
    t.run("wt-run", &["--", "true"], "").expect_code(0);
}

#[test]
fn verbose_flags_and_wt_log_print_logs_in_every_tool() {
    let t = TestRepo::new();
    let logged = |run: &Run| run.stderr.lines().filter(|l| l.contains("INFO") || l.contains("DEBUG")).count();
    let run = t.run("wt-create", &["-v", "v1"], "");
    assert!(logged(run.expect_code(0)) > 0, "create: {run}");
    let run = t.run("wt-env", &["-v", "v1", "--range", "26200-26299"], "");
    assert!(logged(run.expect_code(0)) > 0, "env: {run}");
    let run = t.run("wt-merge", &["-v", "--check", "v1"], "");
    assert!(logged(run.expect_code(0)) > 0, "merge --check: {run}");
    let mut cmd = t.cmd("wt-env");
    cmd.env("WT_LOG", "debug").args(["v1", "--range", "26200-26299"]);
    let run = Run::of(&mut cmd, "");
    assert!(run.expect_code(0).stderr.contains("DEBUG"), "WT_LOG=debug: {run}");
    assert!(!run.stderr.contains('\u{1b}'), "no colours when stderr is not a terminal: {run}");
    let run = t.run("wt-create", &["-v", "--remove", "v1"], "");
    assert!(logged(run.expect_code(0)) > 0, "remove: {run}");
    // Without -v: quiet.
    let run = t.run("wt-create", &["v2"], "");
    assert_eq!(logged(run.expect_code(0)), 0, "{run}");
}

#[test]
fn an_invalid_wt_lock_timeout_is_one_line_and_exit_2_never_a_panic() {
    let t = TestRepo::new();
    for bad in ["abc", "-1", "", "1e300", "NaN"] {
        let mut cmd = t.cmd("wt-create");
        cmd.env("WT_LOCK_TIMEOUT", bad).arg("x");
        let run = Run::of(&mut cmd, "");
        run.expect_code(2);
        assert!(run.stderr.contains("WT_LOCK_TIMEOUT") && run.stderr.lines().count() == 1, "{bad:?}: {run}");
    }
    assert!(!t.wt_root().join("x").exists(), "nothing done");
    let mut cmd = t.cmd("wt-create");
    cmd.env("WT_LOCK_TIMEOUT", "5").arg("x");
    Run::of(&mut cmd, "").expect_code(0);
}

#[test]
fn json_scalars_on_stdin_are_malformed_lines_not_names() {
    let t = TestRepo::new();
    for line in ["42", "null", "true"] {
        let run = t.run("wt-env", &["--range", "26300-26399"], &format!("{line}\n"));
        run.expect_code(2);
        assert!(run.stderr.contains("line 1") && run.stdout.is_empty(), "{line}: {run}");
        let run = t.run("wt-create", &[line], "");
        run.expect_code(2);
        assert!(run.stderr.contains("invalid worktree name"), "{line}: {run}");
    }
}

#[test]
fn a_ledger_that_would_hand_out_twice_is_refused_with_how_to_recover() {
    let t = TestRepo::new();
    t.run("wt-create", &["-n", "2"], "").expect_code(0);
    let path = t.repo.join(".git/wt/ledger.json");
    let mut ledger: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    ledger["worktrees"]["agent-1"]["index"] = 1.into();
    ledger["worktrees"]["agent-2"]["index"] = 1.into();
    let text = serde_json::to_string(&ledger).unwrap();
    std::fs::write(&path, &text).unwrap();
    let run = t.run("wt-env", &["agent-1", "--range", "26300-26399"], "");
    run.expect_code(3);
    assert!(run.stderr.contains("index 1") && run.stderr.contains("mv "), "{run}");
    ledger["worktrees"]["agent-2"]["index"] = 2.into();
    ledger["v"] = 2.into();
    let text = serde_json::to_string(&ledger).unwrap();
    std::fs::write(&path, &text).unwrap();
    let run = t.run("wt-create", &["agent-3"], "");
    run.expect_code(3);
    assert!(run.stderr.contains("version 2"), "{run}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "left as it was");
}

#[test]
fn wt_toml_sections_are_checked_and_wt_merge_reads_its_own() {
    let t = TestRepo::new();
    t.write("wt.toml", "[crate]\nprefix = \"bot\"\n");
    let run = t.run("wt-create", &["-n", "1"], "");
    run.expect_code(2);
    assert!(run.stderr.contains("unknown section [crate]") && run.stderr.lines().count() == 1, "{run}");
    t.write("wt.toml", "[create]\nprefix = = 1\n");
    let run = t.run("wt-create", &["-n", "1"], "");
    run.expect_code(2);
    assert_eq!(run.stderr.lines().count(), 1, "a TOML error in one line: {run}");
    t.write("wt.toml", "[merge]\nstrategy = \"octopus\"\n");
    let run = t.run("wt-merge", &["--check", "--all"], "");
    run.expect_code(2);
    assert!(run.stderr.contains("[merge] strategy"), "{run}");
    t.write("wt.toml", "[merge]\nstratgey = \"squash\"\n");
    t.run("wt-merge", &["--check", "--all"], "").expect_code(2);
    // [merge] is read: a squash, as wt.toml says.
    t.write("wt.toml", "[merge]\nstrategy = \"squash\"\n");
    t.commit("config");
    t.run("wt-create", &["sq"], "").expect_code(0);
    std::fs::write(t.wt_root().join("sq/new.txt"), "x\n").unwrap();
    t.git_in(&t.wt_root().join("sq"), ["add", "new.txt"]);
    t.git_in(&t.wt_root().join("sq"), ["commit", "-q", "-m", "one"]);
    std::fs::write(t.wt_root().join("sq/new.txt"), "y\n").unwrap();
    t.git_in(&t.wt_root().join("sq"), ["commit", "-q", "-am", "two"]);
    // Names as arguments, like wt-create and wt-env take them.
    let run = t.run("wt-merge", &["--unverified", "sq"], "");
    let rec = &run.expect_code(0).records()[0];
    assert_eq!((s(&rec["merge"], "status"), s(&rec["merge"], "strategy")), ("merged", "squash"), "{run}");
    assert_eq!(t.git(["rev-list", "--count", "main"]), "3", "one squashed commit on top of two");
}

#[test]
fn a_name_with_a_slash_is_refused_as_an_invalid_name() {
    let t = TestRepo::new();
    let run = t.run("wt-create", &["feature/login"], "");
    run.expect_code(2);
    assert!(
        run.stderr.contains("invalid worktree name 'feature/login'") && run.stderr.contains("feature-login"),
        "{run}"
    );
    let run = t.run("wt-create", &[], "feature/login\n");
    run.expect_code(1);
    assert_eq!(run.records()[0]["error"]["code"], "invalid-name", "{run}");
    // A name with a newline is escaped: still one line.
    let run = t.run("wt-create", &["bad\nname"], "");
    run.expect_code(2);
    assert_eq!(run.stderr.lines().count(), 1, "{run}");
    assert!(!t.wt_root().exists(), "nothing made");
}

#[test]
fn wt_run_says_the_command_goes_after_the_double_dash() {
    let t = TestRepo::new();
    t.run("wt-create", &["agent-1"], "").expect_code(0);
    let run = t.run("wt-run", &["-w", "agent-1", "pytest", "-x"], "");
    run.expect_code(2);
    assert_eq!(run.stderr.trim(), "wt-run: the command goes after `--`: wt-run -w agent-1 -- pytest -x", "{run}");
}

#[test]
fn the_worktrees_directory_finds_its_repository() {
    let t = TestRepo::new();
    t.run("wt-create", &["-n", "2"], "").expect_code(0);
    let mut cmd = t.cmd("wt-create");
    cmd.current_dir(t.wt_root()).arg("--list");
    let run = Run::of(&mut cmd, "");
    assert_eq!(run.expect_code(0).records().len(), 2, "{run}");
    let elsewhere = t.root().join("home");
    let mut cmd = t.cmd("wt-create");
    cmd.current_dir(&elsewhere).arg("--list");
    let run = Run::of(&mut cmd, "");
    run.expect_code(3);
    assert!(run.stderr.contains("-C DIR"), "says what to do: {run}");
}

/// Commits `text` to `file` in worktree `name`.
fn commit_in(t: &TestRepo, name: &str, file: &str, text: &str) {
    let dir = t.wt_root().join(name);
    std::fs::write(dir.join(file), text).unwrap();
    t.git_in(&dir, ["add", file]);
    t.git_in(&dir, ["commit", "-q", "-m", &format!("{name} changes {file}")]);
}

#[test]
fn merge_check_on_a_terminal_shows_who_conflicts_and_what_has_nothing_to_merge() {
    let t = TestRepo::new();
    t.run("wt-create", &["left", "right", "idle", "landed"], "").expect_code(0);
    commit_in(&t, "left", "README", "left\n");
    commit_in(&t, "right", "README", "right\n");
    commit_in(&t, "landed", "other.txt", "x\n");
    t.git(["merge", "-q", "--ff-only", "wt/landed"]);
    let recs = t.run("wt-merge", &["--check", "--all"], "").records();
    let status = |n: &str| recs.iter().find(|r| r["name"] == n).map(|r| r["merge"]["status"].clone()).unwrap();
    assert_eq!(status("idle"), "nothing-to-merge");
    assert_eq!(status("landed"), "up-to-date");
    assert_eq!(status("left"), "would-merge", "alone, it merges");
    let (code, table) = terminal_code(&t, &format!("{} --check --all", bin("wt-merge")));
    assert_eq!(code, Some(0), "{table}");
    let row =
        |n: &str| table.lines().find(|l| l.starts_with(n)).unwrap_or_else(|| panic!("no row {n}: {table}")).to_string();
    assert!(row("left ").contains("collides with right"), "{table}");
    assert!(row("right").contains("collides with left"), "{table}");
    assert!(row("idle").contains("nothing-to-merge") && row("landed").contains("up-to-date"), "{table}");
}

#[test]
fn a_failed_verification_row_says_how_it_failed_and_where_the_log_is() {
    let t = TestRepo::new();
    t.run("wt-create", &["good", "bad"], "").expect_code(0);
    commit_in(&t, "good", "good.txt", "ok\n");
    commit_in(&t, "bad", "bad.txt", "no\n");
    let verify = "if [ -e bad.txt ]; then echo 'test_login FAILED'; exit 3; fi; echo fine";
    let recs = t.run("wt-merge", &["good", "--verify", verify], "").expect_code(0).records();
    let v = &recs[0]["merge"]["verify"];
    assert_eq!(
        (v["passed"].clone(), v["exit"].clone(), v["cmd"].clone()),
        (true.into(), 0.into(), verify.into()),
        "merged records say verification ran: {v}"
    );
    assert!(v["log"].as_str().is_some_and(|l| std::path::Path::new(l).is_file()), "{v}");
    let (code, table) = terminal_code(&t, &format!("{} bad --verify \"{verify}\"", bin("wt-merge")));
    assert_eq!(code, Some(1), "{table}");
    let row = table.lines().find(|l| l.starts_with("bad")).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("verify-failed") && row.contains("exit 3: test_login FAILED"), "{table}");
    assert!(row.contains(".git/wt/logs/bad/verify-"), "{table}");
    // Progress and a closing summary on stderr (a terminal here: script merges it in).
    assert!(table.contains("wt-merge: bad: verifying") && table.contains("1 verify-failed,"), "{table}");
}

/// On a terminal a verification shows a live line: the time it has run and its last line of
/// output; the merged row says who verified it.
#[test]
fn a_verification_on_a_terminal_shows_its_time_and_last_line_and_the_row_says_verified() {
    let t = TestRepo::new();
    t.run("wt-create", &["slow"], "").expect_code(0);
    commit_in(&t, "slow", "slow.txt", "ok\n");
    let verify = "echo collecting 12 items; sleep 2.5";
    let (code, table) = terminal_code(&t, &format!("{} slow --verify \"{verify}\"", bin("wt-merge")));
    assert_eq!(code, Some(0), "{table}");
    let live = table.split("wt-merge: slow: verifying ").nth(2).unwrap_or_else(|| panic!("no live line: {table}"));
    assert!(live.starts_with(['1', '2']) && live.contains("s | collecting 12 items"), "the live line: {table}");
    let row = table.lines().find(|l| l.starts_with("slow")).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("merged") && row.contains("verified (by wt-merge --verify)"), "{table}");
}

#[test]
fn the_list_table_shows_each_worktrees_state() {
    let t = TestRepo::new();
    t.run("wt-create", &["clean", "dirty", "ahead", "gone"], "").expect_code(0);
    std::fs::write(t.wt_root().join("dirty/README"), "changed\n").unwrap();
    commit_in(&t, "ahead", "a.txt", "a\n");
    commit_in(&t, "ahead", "b.txt", "b\n");
    std::fs::remove_dir_all(t.wt_root().join("gone")).unwrap();
    let plain = t.run("wt-create", &["--list"], "").expect_code(0).records();
    assert!(plain.iter().all(|r| r.get("status").is_none()), "only asked for: {plain:?}");
    let recs = t.run("wt-create", &["--list", "--status"], "").expect_code(0).records();
    let status = |n: &str| recs.iter().find(|r| r["name"] == n).map(|r| r["status"].clone()).unwrap();
    assert_eq!(status("clean")["state"], "clean");
    assert_eq!((status("dirty")["state"].clone(), status("dirty")["changed"].clone()), ("dirty".into(), 1.into()));
    assert_eq!((status("ahead")["ahead"].clone(), status("ahead")["behind"].clone()), (2.into(), 0.into()));
    assert_eq!(status("gone")["state"], "missing");
    let (code, table) = terminal_code(&t, &format!("{} --list", bin("wt-create")));
    assert_eq!(code, Some(0), "{table}");
    let row =
        |n: &str| table.lines().find(|l| l.starts_with(n)).unwrap_or_else(|| panic!("no row {n}: {table}")).to_string();
    assert!(row("clean").ends_with("clean"), "{table}");
    assert!(row("dirty").ends_with("dirty (1)"), "{table}");
    assert!(row("ahead").ends_with("clean, 2 ahead"), "{table}");
    assert!(row("gone").ends_with("missing"), "{table}");
}

#[test]
fn the_run_table_and_its_progress_read_as_people_write() {
    let t = TestRepo::new();
    t.run("wt-create", &["a", "long-name"], "").expect_code(0);
    let line = format!("{} -w a -w long-name -- sh -c 'echo out-$WT_NAME; [ $WT_NAME = a ]'", bin("wt-run"));
    let (code, out) = terminal_code(&t, &line);
    assert_eq!(code, Some(1), "{out}");
    // Prefixes line up: `a         | …` and `long-name | …`.
    assert!(out.contains("a         | out-a") && out.contains("long-name | out-long-name"), "{out}");
    let header = out.lines().find(|l| l.starts_with("NAME")).unwrap_or_else(|| panic!("{out}"));
    assert!(header.contains("EXIT") && header.contains("TIME"), "{out}");
    let row = out.lines().find(|l| l.starts_with("long-name ") && !l.contains('|')).unwrap_or_else(|| panic!("{out}"));
    // A duration as people write it: `12ms` under a second, `1.2s` above; never `82595ms`.
    let human = |w: &str| match w.strip_suffix("ms") {
        Some(n) => n.parse::<u32>().is_ok_and(|n| n < 1000),
        None => w.strip_suffix('s').is_some_and(|n| n.parse::<f32>().is_ok()),
    };
    assert!(row.split_whitespace().any(human), "{row}");
    assert!(out.contains("wt-run: 1 passed, 1 failed, "), "a closing summary: {out}");
}

#[test]
fn undo_table_names_the_branch() {
    let t = TestRepo::new();
    t.run("wt-create", &["u"], "").expect_code(0);
    commit_in(&t, "u", "u.txt", "u\n");
    t.run("wt-merge", &["--unverified", "u"], "").expect_code(0);
    let (code, table) = terminal_code(&t, &format!("{} --undo u", bin("wt-merge")));
    assert_eq!(code, Some(0), "{table}");
    let row = table.lines().find(|l| l.starts_with("u ")).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("wt/u") && row.contains("undone"), "{table}");
}

/// `man -l PAGE` as a person reads it, 80 columns wide, in UTF-8.
fn read_man_page(page: &std::path::Path) -> String {
    let out = Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANWIDTH", "80")
        .env("LC_ALL", "C.UTF-8")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output()
        .expect("`man` runs (.ci/run installs man-db)");
    assert!(out.status.success(), "man -l {}: {}", page.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A section of a rendered page: its lines up to the next heading.
fn man_section<'a>(page: &'a str, heading: &str) -> Vec<&'a str> {
    let mut lines = page.lines().skip_while(|l| *l != heading).skip(1);
    lines.by_ref().take_while(|l| l.is_empty() || l.starts_with(' ')).collect()
}

/// The example lines of a tool's `--help` (on a terminal wide enough that clap wraps none).
fn help_examples(args: &[&str]) -> Vec<String> {
    let out =
        Command::new(wt_tests::bin(args[0])).args(&args[1..]).arg("--help").env("COLUMNS", "1000").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let examples = help.split("Examples:\n").nth(1).unwrap_or_else(|| panic!("{args:?} --help has examples"));
    examples.lines().take_while(|l| !l.trim().is_empty()).map(|l| l.trim().to_string()).collect()
}

#[test]
fn man_pages_show_value_names_in_the_synopsis_and_each_example_on_one_line() {
    if Command::new("man").arg("--version").output().is_err() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "man is not installed, and CI must read the pages");
        eprintln!("skipped: `man` is not installed here (apt-get install man-db)");
        return;
    }
    let out = tempfile::tempdir().unwrap();
    Run::of(Command::new(wt_tests::bin("wt-docgen")).arg(out.path()), "").expect_code(0);
    let page = |name: &str| read_man_page(&out.path().join(format!("man/{name}.1")));
    let pages = [
        ("wt-create", vec!["wt-create"]),
        ("wt-env", vec!["wt-env"]),
        ("wt-run", vec!["wt-run"]),
        ("wt-merge", vec!["wt-merge"]),
        ("wt-watch", vec!["wt-watch"]),
        ("wt-status", vec!["wt-status"]),
        ("wt-run-pane", vec!["wt-run", "pane"]),
        ("wt-run-logs", vec!["wt-run", "logs"]),
    ];
    for (name, args) in pages {
        let text = page(name);
        // Every example as typed, on one line of its own however long (`wt-run`'s longest is
        // over 100 characters, wider than the page).
        let examples: Vec<String> = man_section(&text, "EXAMPLES").iter().map(|l| l.trim().to_string()).collect();
        for example in help_examples(&args) {
            assert!(examples.contains(&example), "{name}(1) has `{example}` on one line: {examples:#?}");
        }
    }
    // The synopsis names each value (a flag and its value never split across lines).
    let synopsis = |name: &str| man_section(&page(name), "SYNOPSIS").join("\n");
    let run = synopsis("wt-run");
    for shown in ["[--timeout DUR]", "[-j|--jobs N]", "[--confine[=MODE]]", "[-w|--worktree NAME]...", "-- CMD..."] {
        assert!(run.contains(shown), "wt-run(1) SYNOPSIS shows `{shown}`: {run}");
    }
    let wait = synopsis("wt-run-pane-wait");
    assert!(wait.contains("[--timeout DUR]") && wait.contains("[--state STATE]..."), "{wait}");
    let merge = synopsis("wt-merge");
    assert!(merge.contains("[--verify CMD]") && merge.contains("[NAME|PATH]..."), "{merge}");
    assert!(merge.contains("[--allow-gate-change]"), "no flag is hyphenated across lines: {merge}");
    // The exit codes have a section of their own; `help` has no page.
    assert!(man_section(&page("wt-merge"), "EXIT STATUS").join(" ").contains("2 usage"));
    assert!(!out.path().join("man/wt-run-help.1").exists(), "no pages for `help`");
}

#[test]
fn wt_run_logs_prints_the_last_runs_log_and_follows_it() {
    let t = TestRepo::new();
    t.run("wt-create", &["lg"], "").expect_code(0);
    let run = t.run("wt-run", &["logs", "lg"], "");
    run.expect_code(1);
    assert!(run.stderr.contains("no run of 'lg'"), "{run}");
    t.run("wt-run", &["-w", "lg", "--", "sh", "-c", "echo first-run"], "").expect_code(0);
    t.run("wt-run", &["-w", "lg", "--", "sh", "-c", "echo second-run"], "").expect_code(0);
    let run = t.run("wt-run", &["logs", "lg"], "");
    assert_eq!(run.expect_code(0).stdout, "second-run\n", "the newest log: {run}");
    t.run("wt-run", &["logs", "../x"], "").expect_code(2);
    // --follow: what the run writes next appears, until the reader stops it.
    let marker = t.root().join("go");
    let script =
        format!("echo before; while [ ! -e '{}' ]; do sleep 0.05; done; echo after-$((6*7))", marker.display());
    let mut runner = t.cmd("wt-run");
    runner.args(["-w", "lg", "--", "sh", "-c", &script]).stdout(std::process::Stdio::null());
    let mut running = runner.spawn().unwrap();
    let mut follow = t.cmd("wt-run");
    follow.args(["logs", "lg", "--follow"]).stdout(std::process::Stdio::piped());
    // Wait until the new run's log is the newest one (it holds `before`).
    let mut follower = loop {
        let mut f = t.cmd("wt-run");
        if Run::of(f.args(["logs", "lg"]), "").stdout.contains("before") {
            break follow.spawn().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    std::fs::write(&marker, "").unwrap();
    let mut out = follower.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    while !seen.contains("after-42") {
        let n = std::io::Read::read(&mut out, &mut buf).unwrap();
        assert!(n > 0, "follow ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let _ = follower.kill();
    let _ = follower.wait();
    assert!(running.wait().unwrap().success());
    assert!(seen.starts_with("before\n"), "{seen}");
}

#[test]
fn a_mistyped_flag_is_one_line_naming_it_and_where_help_is() {
    let t = TestRepo::new();
    for (tool, args) in [
        ("wt-env", vec!["--bogus"]),
        ("wt-merge", vec!["--strategy", "octopus", "--all"]),
        ("wt-run", vec!["pane", "wait"]),
        ("wt-create", vec!["-n", "many"]),
        ("wt-status", vec!["--watch=soon"]),
    ] {
        let run = t.run(tool, &args, "");
        run.expect_code(2);
        assert_eq!(run.stderr.lines().count(), 1, "{tool} {args:?}: {run}");
        assert!(run.stderr.starts_with(&format!("{tool}: ")) && run.stderr.contains("--help"), "{run}");
    }
    // Help itself is as clap prints it, exit 0.
    let run = t.run("wt-merge", &["--help"], "");
    assert!(run.expect_code(0).stdout.contains("Examples:"), "{run}");
}
