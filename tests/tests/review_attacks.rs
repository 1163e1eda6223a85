//! What an agent controls must not reach the person's terminal as escape sequences, nor leave
//! a purge half done: findings of the review of issue 25, each reproduced with real git, real
//! binaries and a real terminal (`script`).

use std::path::Path;
use std::process::Command;

use wt_tests::{Run, TestRepo};

/// `tool args…` in `t`'s repository with its stdout a terminal (run by `script`): what the
/// person's terminal receives.
fn on_terminal(t: &TestRepo, tool: &str, args: &[&str]) -> String {
    let words: Vec<String> =
        std::iter::once(wt_tests::bin(tool).display().to_string()).chain(args.iter().map(|a| a.to_string())).collect();
    let line = words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" ");
    let mut cmd = Command::new("script");
    cmd.current_dir(&t.repo).args(["-qec", &line, "/dev/null"]);
    t.isolate(&mut cmd).env("WT_NOTIFY", "off");
    Run::of(&mut cmd, "").stdout
}

fn commit_in(t: &TestRepo, dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).unwrap();
    t.git_in(dir, ["add", "--", file]);
    t.git_in(dir, ["commit", "-q", "-m", "x"]);
}

/// A file name on the agent's branch is the agent's text: when it conflicts, wt-status shows it
/// in REASON and in the inbox. It must not arrive as an OSC 52 (writes the person's clipboard)
/// or a full reset of their terminal (`ESC c`).
#[test]
fn a_conflicting_file_name_cannot_write_escape_sequences_to_the_persons_terminal() {
    let t = TestRepo::new();
    t.run("wt-create", &["a1"], "").expect_code(0);
    let evil = "evil\x1b]52;c;ZWNobyBwd25lZA==\x07\x1bc.txt";
    commit_in(&t, &t.wt_root().join("a1"), evil, "agent\n");
    commit_in(&t, &t.repo, evil, "main\n");
    let merged = t.run("wt-merge", &["a1", "--unverified"], "");
    assert!(merged.stdout.contains("\"conflict\""), "{merged}");
    for args in [&[][..], &["--inbox"][..]] {
        let shown = on_terminal(&t, "wt-status", args);
        assert!(shown.contains("conflict: evil"), "the conflict is shown: {shown:?}");
        assert!(!shown.contains("\x1b]52") && !shown.contains("\x1bc"), "wt-status {args:?} wrote {shown:?}");
    }
}

/// A `wt/*` branch with commits of its own and no worktree (one the person made, or kept when
/// an adopted worktree was removed) is refused by `--purge` without `--force`: before anything
/// is deleted, as a refused worktree is, not once the worktrees are gone.
#[test]
fn purge_refuses_an_unmerged_branch_before_it_removes_any_worktree() {
    let t = TestRepo::new();
    t.run("wt-create", &["a1", "a2"], "").expect_code(0);
    let side = t.root().join("side");
    t.git(["worktree", "add", "-q", "-b", "wt/kept", &side.display().to_string()]);
    commit_in(&t, &side, "kept.txt", "work\n");
    t.git(["worktree", "remove", &side.display().to_string()]);
    let purge = t.run("wt-create", &["--remove", "--all", "--purge", "--yes"], "");
    purge.expect_code(1);
    assert!(purge.stderr.contains("wt/kept has 1 commit(s) not in HEAD"), "{purge}");
    assert!(purge.stderr.contains("nothing was removed"), "{purge}");
    assert_eq!(t.git_worktrees().len(), 3, "the worktrees are all there: {:?}", t.git_worktrees());
    assert_eq!(t.branches(), ["main", "wt/a1", "wt/a2", "wt/kept"]);
    // With --force it goes, and so does everything else.
    t.run("wt-create", &["--remove", "--all", "--purge", "--yes", "--force"], "").expect_code(0);
    assert_eq!((t.git_worktrees().len(), t.branches()), (1, vec!["main".to_string()]));
    assert!(!t.repo.join(".git/wt").exists() && !t.wt_root().exists());
}

/// The next step of a conflict is a command the person copies: the branch it goes into is
/// quoted like the path is. A branch named `rel&&id` made it `git -C … rebase rel&&id`, which
/// runs `id`.
#[test]
fn a_conflicts_next_step_quotes_the_branch_it_goes_into() {
    let t = TestRepo::new();
    t.git(["branch", "-m", "main", "rel&&id"]);
    t.run("wt-create", &["c"], "").expect_code(0);
    commit_in(&t, &t.wt_root().join("c"), "README", "c's\n");
    commit_in(&t, &t.repo, "README", "main's\n");
    let merged = t.run("wt-merge", &["c", "--unverified"], "");
    assert!(merged.stdout.contains("\"conflict\""), "{merged}");
    let inbox = t.run("wt-status", &["--inbox", "--json"], "");
    let entry = &inbox.records()[0];
    let next = entry["attention"]["next"].as_str().unwrap();
    assert!(next.contains("rebase 'rel&&id'"), "{next}");
    assert!(next.contains("wt-run pane send c 'rebase onto rel&&id' --enter"), "{next}");
    let table = on_terminal(&t, "wt-merge", &["c", "--unverified"]);
    assert!(table.contains("rebase 'rel&&id')"), "{table}");
}
