//! Pane logs are bounded (issue 29, item 4): a pane name started again and again keeps its
//! newest few logs, a log that passes the size cap rotates without losing what it holds, and a
//! worktree's removal takes the logs of its panes. Real panes, a real supervisor.

use std::path::{Path, PathBuf};

use wt_common::record::pane_logs::KEEP_PANE_LOGS;
use wt_tests::panes::Panes;
use wt_tests::{names_in, Run};

fn pane_logs(p: &Panes, name: &str) -> Vec<String> {
    names_in(&logs_of(p, name), |f| f.starts_with("pane-"))
}

fn logs_of(p: &Panes, name: &str) -> PathBuf {
    p.t.repo.join(".git/wt/logs").join(name)
}

/// Starts CMD in pane `pane` of worktree `wt` and waits until it has exited.
fn run_to_exit(p: &Panes, wt: &str, pane: &str, cmd: &[&str], timeout: &str) {
    let mut args = vec!["-w", wt];
    let named = format!("--pane={pane}");
    args.push(&named);
    args.push("--");
    args.extend_from_slice(cmd);
    p.wt_run(&args).expect_code(0);
    let done = p.json(&["pane", "wait", pane, "--exit", "--timeout", timeout]);
    assert_eq!(done["exit"]["code"], 0, "{done}");
}

fn tool(p: &Panes, name: &str, args: &[&str]) -> Run {
    let mut cmd = p.t.cmd(name);
    p.env(&mut cmd);
    cmd.args(args);
    Run::of(&mut cmd, "")
}

#[test]
fn twenty_starts_of_one_pane_name_keep_at_most_the_cap() {
    let p = Panes::new();
    p.t.run("wt-create", &["srv"], "").expect_code(0);
    for i in 1..=20 {
        run_to_exit(&p, "srv", "dev", &["sh", "-c", &format!("echo start-{i}")], "15s");
        let logs = pane_logs(&p, "dev");
        assert!(logs.len() <= KEEP_PANE_LOGS, "after {i} starts: {logs:?}");
    }
    let logs = pane_logs(&p, "dev");
    assert_eq!(logs.len(), KEEP_PANE_LOGS, "{logs:?}");
    // The newest are the ones kept: the last start's output is there, the first's is not.
    let text: String = logs.iter().map(|f| std::fs::read_to_string(logs_of(&p, "dev").join(f)).unwrap()).collect();
    assert!(text.contains("start-20\r\n"), "{text:?}");
    assert!(text.contains(&format!("start-{}\r\n", 21 - KEEP_PANE_LOGS)), "{text:?}");
    assert!(!text.contains(&format!("start-{}\r\n", 20 - KEEP_PANE_LOGS)), "{text:?}");
    // Batch runs' logs of the same name are not counted with them, nor dropped.
    for _ in 0..3 {
        p.wt_run(&["-w", "srv", "--", "true"]).expect_code(0);
    }
    run_to_exit(&p, "srv", "srv", &["true"], "15s");
    let runs = names_in(&logs_of(&p, "srv"), |f| !f.starts_with("pane-") && f.ends_with(".log"));
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert_eq!(pane_logs(&p, "srv").len(), 1);
}

#[test]
fn a_log_past_the_size_cap_rotates_and_keeps_every_byte_up_to_the_cap() {
    // 3,000,000 numbered lines: 23.9 MB (24.0 MB in the terminal, which ends lines with CRLF),
    // past the 16 MiB cap and under twice it: the previous part and the log hold all of it.
    let p = Panes::new();
    p.t.run("wt-create", &["big"], "").expect_code(0);
    run_to_exit(&p, "big", "big", &["seq", "1", "3000000"], "120s");
    let logs = pane_logs(&p, "big");
    assert_eq!(logs.len(), 2, "the log and its previous part: {logs:?}");
    let dir = logs_of(&p, "big");
    let (previous, log) = match logs.iter().find(|f| f.ends_with(".log.1")) {
        Some(prev) => (dir.join(prev), dir.join(prev.strip_suffix(".1").unwrap())),
        None => panic!("no rotated part: {logs:?}"),
    };
    let len = |f: &Path| std::fs::metadata(f).unwrap().len();
    assert!(len(&previous) <= 16 << 20, "a part is at most the cap: {}", len(&previous));
    let mut kept = std::fs::read(&previous).unwrap();
    kept.extend(std::fs::read(&log).unwrap());
    let mut printed = Vec::with_capacity(kept.len());
    for n in 1..=3_000_000u32 {
        printed.extend_from_slice(format!("{n}\r\n").as_bytes());
    }
    assert_eq!(kept.len(), printed.len(), "no byte lost or added");
    assert!(kept == printed, "the two parts, in order, are the output");
}

#[test]
fn removing_a_worktree_takes_its_panes_logs_and_no_other() {
    let p = Panes::new();
    for wt in ["gone", "stays"] {
        p.t.run("wt-create", &[wt], "").expect_code(0);
    }
    run_to_exit(&p, "gone", "gone", &["echo", "own pane"], "15s");
    run_to_exit(&p, "gone", "gone-dev", &["echo", "dev server"], "15s");
    run_to_exit(&p, "stays", "stays-dev", &["echo", "other"], "15s");
    p.wt_run(&["-w", "gone", "--pane=gone-tests", "--", "sleep", "60"]).expect_code(0);
    for name in ["gone", "gone-dev", "gone-tests", "stays-dev"] {
        assert_eq!(pane_logs(&p, name).len(), 1, "{name}");
    }
    let removed = tool(&p, "wt-create", &["--remove", "--force", "gone"]);
    removed.expect_code(0);
    for name in ["gone", "gone-dev", "gone-tests"] {
        assert!(!logs_of(&p, name).exists(), "{name}'s logs are gone: {removed}");
    }
    assert_eq!(pane_logs(&p, "stays-dev").len(), 1, "another worktree's pane keeps its log");
}

#[test]
fn a_purge_that_leaves_the_supervisor_running_still_takes_the_worktrees_pane_logs() {
    let p = Panes::new();
    p.t.run("wt-create", &["wk"], "").expect_code(0);
    run_to_exit(&p, "wk", "wk-dev", &["echo", "dev server"], "15s");
    // A pane in the main worktree: not wt's, so the supervisor runs on and keeps its logs.
    let main = p.t.repo.display().to_string();
    p.wt_run(&["-w", &main, "--pane=main-shell", "--", "sleep", "60"]).expect_code(0);
    let purged = tool(&p, "wt-create", &["--remove", "--all", "--purge", "--yes"]);
    purged.expect_code(0);
    assert!(purged.stderr.contains("runs on"), "{purged}");
    assert!(!logs_of(&p, "wk-dev").exists(), "{purged}");
    assert_eq!(pane_logs(&p, "main-shell").len(), 1, "the running pane's log stays");
    p.json(&["pane", "kill", "main-shell"]);
}
