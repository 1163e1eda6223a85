//! What needs the person, and why: `overview.attention`, the board's REASON column, and
//! `wt-status --inbox` across two repositories, built from real work: a stand-in agent waiting
//! in a real pane, a pane that exited with an error, a red wt-run and a red wt-watch round
//! (python's unittest, failing), a wt-merge conflict and a failed verification; then the fixes
//! that take entries out of the inbox. Terminal notifications of a new entry (under `script`,
//! through tmux's passthrough), and none in a pipe, where each new entry is one record, once.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use wt_tests::panes::Panes;
use wt_tests::{s, Run, TestRepo};

const FAILING: &str = "import unittest\n\nclass Parse(unittest.TestCase):\n    def test_empty(self):\n        self.assertEqual(len(''), 1)\n\n    def test_unicode(self):\n        self.assertEqual('a', 'b')\n";
const PASSING: &str = "import unittest\n\nclass Parse(unittest.TestCase):\n    def test_empty(self):\n        self.assertEqual(len(''), 0)\n";

/// `tool args…` in `t`'s repository, its list of repositories at `registry`.
fn run_in(t: &TestRepo, registry: &Path, tool: &str, args: &[&str]) -> Run {
    let mut c = t.cmd(tool);
    c.args(args).env("WT_REPO_REGISTRY", registry);
    Run::of(&mut c, "")
}

fn commit_in(t: &TestRepo, dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).unwrap();
    t.git_in(dir, ["add", file]);
    t.git_in(dir, ["commit", "-q", "-m", file]);
}

/// The command's stdout as a terminal shows it (run by `script`), with `env` added.
fn on_terminal(p: &Panes, words: &[&str], env: &[(&str, &str)]) -> String {
    let line = words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" ");
    let mut cmd = Command::new("script");
    cmd.current_dir(&p.t.repo).args(["-qec", &line, "/dev/null"]);
    p.env(&mut cmd);
    cmd.envs(env.iter().copied());
    Run::of(&mut cmd, "").stdout.replace('\r', "")
}

fn reasons(entries: &[Value]) -> Vec<(String, String)> {
    entries.iter().map(|e| (s(e, "name").to_string(), e["attention"]["reason"].as_str().unwrap().to_string())).collect()
}

fn pair(name: &str, reason: &str) -> (String, String) {
    (name.to_string(), reason.to_string())
}

#[test]
fn the_inbox_lists_what_needs_the_person_oldest_first_across_repositories_until_it_is_resolved() {
    let p = Panes::new();
    let a = &p.t;
    let registry = a.root().join("repo-registry");
    a.write("notes.txt", "one\n");
    a.commit("notes");
    for name in ["r", "c", "v"] {
        a.run("wt-create", &[name], "").expect_code(0);
    }
    let wt = |n: &str| a.wt_root().join(n);
    // 1. A red wt-run: two failing tests.
    std::fs::write(wt("r").join("test_parse.py"), FAILING).unwrap();
    a.run("wt-run", &["-w", "r", "--", "python3", "-m", "unittest"], "").expect_code(1);
    // 2. A merge conflict on notes.txt.
    commit_in(a, &wt("c"), "notes.txt", "c's\n");
    commit_in(a, &a.repo, "notes.txt", "main's\n");
    a.run("wt-merge", &["c", "--unverified"], "").expect_code(1);
    // 3. A verification that fails.
    commit_in(a, &wt("v"), "test_parse.py", FAILING);
    let failed = a.run("wt-merge", &["v", "--verify", "python3 -m unittest"], "");
    assert_eq!(s(&failed.records()[0]["merge"], "status"), "verify-failed", "{failed}");
    // 4. A pane that exited with an error.
    p.spawn("e", &["sh", "-c", "echo cannot bind; exit 3"]);
    p.wt_run(&["pane", "wait", "e", "--state", "exited", "--timeout", "15s"]).expect_code(0);
    // A pane the person ended with `pane kill` (killed by SIGTERM, on purpose) needs nobody.
    p.spawn("k", &["sleep", "120"]);
    p.wt_run(&["pane", "kill", "k"]).expect_code(0);
    // 5. An agent waiting for the person, and a dev server beside it in the same worktree.
    p.spawn("w", &["sleep", "120"]);
    p.wt_run(&["-w", "w", "--pane=dev-w", "--", "sleep", "120"]).expect_code(0);
    std::thread::sleep(Duration::from_millis(20));
    let question = "Allow this tool to run `cargo test`?";
    p.wt_run(&["pane", "notify", "w", "--state", "waiting", "--message", question]).expect_code(0);
    // 6. Another repository of the same person: a wt-watch loop that gave up, red.
    let b = TestRepo::new();
    run_in(&b, &registry, "wt-create", &["b1"]).expect_code(0);
    std::fs::write(b.wt_root().join("b1").join("test_parse.py"), FAILING).unwrap();
    let watch = ["-w", "b1", "--until-green", "--feed", "none", "--max-rounds", "1", "--", "python3", "-m", "unittest"];
    run_in(&b, &registry, "wt-watch", &watch).expect_code(1);

    let inbox = |p: &Panes| {
        let mut c = p.t.cmd("wt-status");
        p.env(&mut c);
        c.arg("--inbox");
        let run = Run::of(&mut c, "");
        run.expect_code(0);
        run.records()
    };
    let entries = inbox(&p);
    assert_eq!(
        reasons(&entries),
        [
            pair("r", "red"),
            pair("c", "conflict"),
            pair("v", "verify-failed"),
            pair("e", "exited"),
            pair("w", "waiting"),
            pair("b1", "gave-up")
        ],
        "{entries:#?}"
    );
    let since: Vec<u64> = entries.iter().map(|e| e["attention"]["since"].as_u64().unwrap()).collect();
    assert!(since.windows(2).all(|w| w[0] <= w[1]), "oldest first: {since:?}");
    let at = |i: usize| &entries[i]["attention"];
    assert_eq!((s(at(0), "detail"), s(at(0), "source")), ("2 failing", "run"));
    assert!(s(at(0), "next").starts_with("less ") && s(at(0), "next").contains("/logs/r/"), "{}", at(0));
    assert_eq!(s(at(1), "detail"), "notes.txt");
    assert!(s(at(1), "next").contains(&format!("git -C {} rebase main", wt("c").display())), "{}", at(1));
    assert_eq!(s(at(2), "detail"), "2 failed");
    assert_eq!(s(at(2), "next"), "wt-merge v --verify 'python3 -m unittest'");
    assert!(at(2)["tests"][0].as_str().unwrap().contains("test_empty"), "{}", at(2));
    assert_eq!((s(at(3), "detail"), s(at(3), "next")), ("e exited 3", "wt-run pane screen e --lines 50"));
    assert_eq!((s(at(4), "pane"), s(at(4), "detail")), ("w", question));
    assert_eq!(s(at(4), "next"), "wt-run pane answer w yes|no");
    assert_eq!((s(at(5), "source"), s(at(5), "detail")), ("watch", "still red after 1 round (2 failing)"));
    let (repo_a, repo_b) = (s(&entries[0], "repo"), s(&entries[5], "repo"));
    assert_eq!((Path::new(repo_a), Path::new(repo_b)), (a.repo.as_path(), b.repo.as_path()));

    // The board: what needs the person first, with the reason; every pane of a worktree.
    let mut c = a.cmd("wt-status");
    p.env(&mut c);
    let board = Run::of(c.arg("--all"), "");
    let recs = board.expect_code(0).records();
    let overview =
        |n: &str| &recs.iter().find(|r| r["name"] == n).unwrap_or_else(|| panic!("no {n}: {board}"))["overview"];
    let reasons_of = |n: &str| -> Vec<&str> {
        overview(n)["attention"].as_array().unwrap().iter().map(|e| s(e, "reason")).collect()
    };
    assert_eq!(
        ["r", "c", "v", "e", "w"].map(reasons_of),
        [["red"], ["conflict"], ["verify-failed"], ["exited"], ["waiting"]],
        "{board}"
    );
    let panes: Vec<&str> = overview("w")["panes"].as_array().unwrap().iter().map(|p| s(p, "name")).collect();
    assert_eq!(panes, ["dev-w", "w"], "every pane of the worktree, by its directory: {}", overview("w"));
    assert_eq!(s(&overview("c")["merge"], "state"), "conflict");
    assert_eq!(s(&overview("v")["merge"], "state"), "verify-failed");
    let last_run = &overview("r")["last_run"];
    assert_eq!((s(last_run, "state"), last_run["failing"].as_u64()), ("red", Some(2)));
    let table = on_terminal(&p, &[&wt_tests::bin("wt-status").display().to_string()], &[]);
    let row = |n: &str| {
        table.lines().find(|l| l.split_whitespace().next() == Some(n)).unwrap_or_else(|| panic!("no {n}: {table}"))
    };
    assert!(table.starts_with("NAME") && table.contains("REASON"), "{table}");
    let data: Vec<&str> = table.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(data[..5], ["r", "c", "v", "e", "w"], "{table}");
    assert!(row("c").contains("conflict: notes.txt"), "{table}");
    assert!(row("v").contains("verify-failed: 2 failed"), "{table}");
    assert!(row("r").contains("red ") && row("r").contains(": 2 failing"), "{table}");
    assert!(row("w").contains(&format!("waiting (w): {question}")), "{table}");
    assert!(row("w").contains("dev-w ") && row("w").contains("w waiting") && row("e").contains("exited 3"), "{table}");

    // The fixes: a green run, a verified merge. They leave the inbox; the rest stays.
    std::fs::write(wt("r").join("test_parse.py"), PASSING).unwrap();
    a.run("wt-run", &["-w", "r", "--", "python3", "-m", "unittest"], "").expect_code(0);
    commit_in(a, &wt("v"), "test_parse.py", PASSING);
    a.run("wt-merge", &["v", "--verify", "python3 -m unittest"], "").expect_code(0);
    let after = inbox(&p);
    assert_eq!(
        reasons(&after),
        [pair("c", "conflict"), pair("e", "exited"), pair("w", "waiting"), pair("b1", "gave-up")],
        "{after:#?}"
    );
    let table = on_terminal(&p, &[&wt_tests::bin("wt-status").display().to_string()], &[]);
    assert!(row_of(&table, "r").contains("pass "), "{table}");
    // The inbox on a terminal: a table with the next step.
    let table = on_terminal(&p, &[&wt_tests::bin("wt-status").display().to_string(), "--inbox"], &[]);
    assert!(table.starts_with("SINCE") && row_of(&table, "b1").contains("red"), "{table}");
    assert!(row_of(&table, "w").contains("wt-run pane answer w yes|no"), "{table}");

    // A removed worktree leaves no outcome behind; a repository that is gone leaves the list.
    let outcomes = a.repo.join(".git/wt/outcomes/r");
    assert!(outcomes.join("run.json").is_file());
    a.run("wt-create", &["--remove", "r", "--force"], "").expect_code(0);
    assert!(!outcomes.exists());
    let b_root = b.repo.clone();
    drop(b);
    let after = inbox(&p);
    assert!(after.iter().all(|e| e["name"] != "b1"), "{after:#?}");
    let listed = std::fs::read_to_string(&registry).unwrap();
    assert!(
        listed.contains(&a.repo.display().to_string()) && !listed.contains(&b_root.display().to_string()),
        "{listed}"
    );
}

/// The row of `name` in a table (its first cell).
fn row_of<'t>(table: &'t str, name: &str) -> &'t str {
    // The name is the first cell of the board, the third of the inbox (after `2s ago REPO`).
    let is_row = |l: &&str| l.split_whitespace().take(4).any(|w| w == name);
    table.lines().find(is_row).unwrap_or_else(|| panic!("no {name}: {table}"))
}

#[test]
fn wt_merge_rows_give_a_conflicts_next_step_and_a_verifications_failing_tests() {
    let p = Panes::new();
    let a = &p.t;
    a.write("notes.txt", "one\n");
    a.commit("notes");
    a.run("wt-create", &["c", "v"], "").expect_code(0);
    commit_in(a, &a.wt_root().join("c"), "notes.txt", "c's\n");
    commit_in(a, &a.wt_root().join("v"), "test_parse.py", FAILING);
    commit_in(a, &a.repo, "notes.txt", "main's\n");
    let merge = wt_tests::bin("wt-merge").display().to_string();
    let table = on_terminal(&p, &[&merge, "c", "v", "--verify", "python3 -m unittest"], &[]);
    let c = row_of(&table, "c");
    assert!(c.contains("conflicts: notes.txt") && c.contains("next: rebase it onto main"), "{table}");
    assert!(c.contains(&format!("git -C {} rebase main", a.wt_root().join("c").display())), "{table}");
    let v = row_of(&table, "v");
    assert!(
        v.contains("2 failing tests (unittest)") && v.contains("test_empty") && v.contains("test_unicode"),
        "{table}"
    );
    // The queue's progress went to the terminal (OSC 9;4, cleared at the end); a pipe gets none.
    assert!(table.contains("\x1b]9;4;1;") && table.contains("\x1b]9;4;0;0\x07"), "{table:?}");
    let piped = a.run("wt-merge", &["c", "--unverified"], "");
    assert!(!piped.stderr.contains("\x1b]") && !piped.stdout.contains("\x1b]"), "{piped}");
}

/// Lines read from `child`'s stdout on a thread, so a test can wait for one with a limit.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn a_new_entry_is_notified_on_a_terminal_through_tmux_and_streamed_once_in_a_pipe() {
    let p = Panes::new();
    let t = &p.t;
    t.run("wt-create", &["x", "y"], "").expect_code(0);
    // The board on a terminal, inside tmux, whose terminal takes OSC 777.
    let line = format!("'{}' --watch=100ms", wt_tests::bin("wt-status").display());
    let mut board = Command::new("script");
    board.current_dir(&t.repo).args(["-qec", &line, "/dev/null"]).stdin(Stdio::piped()).stdout(Stdio::piped());
    p.env(&mut board);
    board.env("TMUX", "/tmp/tmux-0/default,1,0").env("WT_NOTIFY", "osc777");
    let mut board = board.spawn().unwrap();
    let mut screen = board.stdout.take().unwrap();
    // The inbox in a pipe, as a stream.
    let mut stream = t.cmd("wt-status");
    p.env(&mut stream);
    stream.args(["--inbox", "--watch=100ms"]).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut stream = stream.spawn().unwrap();
    let records = lines_of(&mut stream);
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let mut read_until = |seen: &mut String, what: &str| {
        while !seen.contains(what) {
            let n = screen.read(&mut buf).unwrap();
            assert!(n > 0, "the board ended: {seen:?}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    };
    read_until(&mut seen, "NAME");
    // Nothing needed the person: no notification at the first draw.
    assert!(!seen.contains("\x1b]777") && !seen.contains("tmux;"), "{seen:?}");
    t.run("wt-run", &["-w", "x", "--", "sh", "-c", "echo boom; exit 1"], "").expect_code(1);
    read_until(&mut seen, "\x1bPtmux;\x1b\x1b]777;notify;wt;");
    let from = seen.find("\x1bPtmux;").unwrap();
    let note = &seen[from..];
    assert!(note.starts_with("\x1bPtmux;\x1b\x1b]777;notify;wt;repo/x red "), "{note:?}");
    assert!(note.contains(": boom\x07\x1b\\"), "{note:?}");
    let first: Value = serde_json::from_str(&records.recv_timeout(Duration::from_secs(30)).unwrap()).unwrap();
    assert_eq!((s(&first, "name"), s(&first["attention"], "reason")), ("x", "red"));
    t.run("wt-run", &["-w", "y", "--", "false"], "").expect_code(1);
    let second: Value = serde_json::from_str(&records.recv_timeout(Duration::from_secs(30)).unwrap()).unwrap();
    assert_eq!(s(&second, "name"), "y", "x's entry is streamed once: {second}");
    let _ = board.kill();
    let _ = board.wait();
    let _ = stream.kill();
    let _ = stream.wait();
    let rest: Vec<String> = records.try_iter().collect();
    assert!(rest.iter().all(|l| !l.contains("\x1b") && !l.contains("\"x\"")), "{rest:?}");
}
