//! wt-status, end to end: one overview of every worktree from what the other tools keep.

use std::io::Read;
use std::process::{Command, Stdio};

use serde_json::Value;
use wt_tests::{Run, TestRepo};

fn find<'r>(recs: &'r [Value], name: &str) -> &'r Value {
    recs.iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("no record {name}"))
}

#[test]
fn one_overview_shows_checkout_leases_last_run_and_merge() {
    let t = TestRepo::new();
    t.run("wt-create", &["-n", "3"], "").expect_code(0);
    t.run("wt-env", &["--all", "--range", "26600-26699"], "").expect_code(0);
    std::fs::write(t.wt_root().join("agent-2/README"), "dirty\n").unwrap();
    t.run("wt-run", &["-w", "agent-1", "--", "true"], "").expect_code(0);
    let dir = t.wt_root().join("agent-3");
    std::fs::write(dir.join("new.txt"), "x\n").unwrap();
    t.git_in(&dir, ["add", "new.txt"]);
    t.git_in(&dir, ["commit", "-q", "-m", "new"]);
    t.run("wt-merge", &["agent-3", "--unverified"], "").expect_code(0);
    let run = t.run("wt-status", &["--all"], "");
    let recs = run.expect_code(0).records();
    assert_eq!(recs.len(), 3, "{run}");
    let a1 = find(&recs, "agent-1");
    assert_eq!(a1["status"]["state"], "clean");
    assert_eq!(a1["overview"]["ports"], serde_json::json!([26600, 26609]));
    assert!(a1["overview"]["last_run"]["log"].as_str().is_some_and(|l| std::path::Path::new(l).is_file()), "{a1}");
    assert_eq!(find(&recs, "agent-2")["status"]["state"], "dirty");
    assert!(find(&recs, "agent-2")["overview"]["last_run"].is_null(), "never ran");
    assert_eq!(find(&recs, "agent-3")["overview"]["merge"]["state"], "merged");
    assert_eq!(a1["overview"]["merge"]["state"], "unmerged");
    // From a script whose stdin is /dev/null: every worktree, as on a terminal.
    let out = t.cmd("wt-status").stdin(Stdio::null()).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    // Composable: records in, the same records out with the overview added.
    let piped = t.pipeline(&[("wt-create", &["--list"]), ("wt-status", &[])]);
    assert_eq!(piped.expect_code(0).records().len(), 3);
    // On a terminal, a table.
    let line = format!("'{}'", wt_tests::bin("wt-status").display());
    let mut cmd = Command::new("script");
    cmd.current_dir(&t.repo).args(["-qec", &line, "/dev/null"]);
    t.isolate(&mut cmd);
    let table = Run::of(&mut cmd, "").stdout.replace('\r', "");
    let row =
        |n: &str| table.lines().find(|l| l.starts_with(n)).unwrap_or_else(|| panic!("no {n}: {table}")).to_string();
    assert!(table.starts_with("NAME") && table.contains("CHECKOUT") && table.contains("LAST RUN"), "{table}");
    let ran = row("agent-1");
    assert!(ran.contains("26600-26609") && (ran.contains("just now") || ran.contains("s ago")), "{table}");
    assert!(!row("agent-2").contains(" ago") && !row("agent-2").contains("just now"), "never ran: {table}");
    assert!(row("agent-2").contains("dirty (1)") && row("agent-3").contains("merged"), "{table}");
}

#[test]
fn watch_redraws_the_board_until_stopped() {
    let t = TestRepo::new();
    t.run("wt-create", &["w1"], "").expect_code(0);
    let line = format!("'{}' --watch=100ms", wt_tests::bin("wt-status").display());
    let mut cmd = Command::new("script");
    cmd.current_dir(&t.repo).args(["-qec", &line, "/dev/null"]).stdin(Stdio::piped()).stdout(Stdio::piped());
    t.isolate(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    // Read until the board has been drawn three times: three headers (each draw clears the
    // screen first, then writes the table, so counting clears could stop before the third table).
    while seen.matches("NAME").count() < 3 {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "wt-status --watch ended by itself: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.matches("\x1b[2J").count() >= 3 && seen.contains("w1"), "{seen}");
    // --watch with nothing to re-read is refused; a name that is no worktree ends the board.
    t.run("wt-status", &["--watch"], "w1\n").expect_code(2);
    t.run("wt-status", &["--watch=50ms", "no-such"], "").expect_code(1);
}
