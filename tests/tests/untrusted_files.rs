//! Files an agent or a merged branch could have placed never hang or flood a tool (issue 24,
//! items 2 and 3). Each such file is made, in turn, a symbolic link to `/dev/zero`, a FIFO, a
//! directory and a sparse file of 2 GB: `wt.toml` (every tool that reads it: all but wt-status), `.gitignore` (wt-watch),
//! `.worktreeinclude` (wt-create), `.claude/settings.local.json` (wt-run --agent-hooks), a
//! guarded file (wt-watch --guard) and `.env.wt` (wt-env --dotenv). Each tool, run under
//! `ulimit -v 1000000`, answers within 2 s: one line and a non-zero exit where it cannot go on,
//! or (where the file is optional) a one-line warning and its work done. SIGTERM ends each tool
//! within its grace while such a file is in its way.

use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wt_tests::{bin, TestRepo};

/// What tells an answer from a hang, and an end after SIGTERM from one that needed more than the
/// tools' 2 s grace to kill what they run. Far above both (the machine is noisy and tests run in
/// parallel): a trap that blocks (a FIFO opened, /dev/zero or a terabyte-sized sparse file read
/// whole) never answers, so these bounds only separate "answered" from "hung"; how fast the tools
/// answer is bench/'s to measure, not a test's to assert.
const ANSWER: Duration = Duration::from_secs(15);
const GRACE: Duration = Duration::from_secs(15);
/// Long enough that only a hang reaches it.
const HANG: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trap {
    DevZero,
    Fifo,
    Dir,
    Sparse,
}

const TRAPS: [Trap; 4] = [Trap::DevZero, Trap::Fifo, Trap::Dir, Trap::Sparse];

/// Puts `trap` at `path`, replacing what is there.
fn plant(path: &Path, trap: Trap) {
    remove(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    match trap {
        Trap::DevZero => symlink("/dev/zero", path).unwrap(),
        Trap::Fifo => nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap(),
        Trap::Dir => std::fs::create_dir(path).unwrap(),
        Trap::Sparse => std::fs::File::create(path).unwrap().set_len(2 << 30).unwrap(),
    }
}

/// A repository with one worktree, `a`, and the environment panes need.
struct Fixture {
    t: TestRepo,
    xdg: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let t = TestRepo::new();
        let xdg = t.root().join("xdg");
        std::fs::create_dir_all(&xdg).unwrap();
        std::fs::set_permissions(&xdg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        t.run("wt-create", &["a"], "").expect_code(0);
        Fixture { t, xdg }
    }

    fn wt(&self) -> PathBuf {
        self.t.wt_root().join("a")
    }

    /// `tool args…` in the repository, through `sh -c 'ulimit -v 1000000; exec …'`.
    fn limited(&self, tool: &str, args: &[&str]) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg("ulimit -v 1000000; exec \"$0\" \"$@\"").arg(bin(tool)).args(args);
        c.current_dir(&self.t.repo);
        self.t.isolate(&mut c);
        c.env("XDG_RUNTIME_DIR", &self.xdg).env("WT_PANE_IDLE", "20s").env_remove("TMUX");
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    }

    /// Runs `tool args…` under the memory limit; panics if it hangs.
    fn answer(&self, tool: &str, args: &[&str]) -> Answer {
        let started = Instant::now();
        let child = self.limited(tool, args).spawn().expect("spawn");
        let (child, code) = wait_for_exit(child, HANG, &format!("{tool} {args:?}"));
        let took = started.elapsed();
        Answer::from(child, code, took, format!("{tool} {}", args.join(" ")))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let mut c = self.t.cmd("wt-run");
        c.args(["pane", "stop"]).env("XDG_RUNTIME_DIR", &self.xdg);
        let _ = c.output();
    }
}

/// Waits for `child` at most `limit`; kills it and panics when it did not end (a hang).
fn wait_for_exit(mut child: Child, limit: Duration, what: &str) -> (Child, std::process::ExitStatus) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (child, status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?} (hung)");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

struct Answer {
    what: String,
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Answer {
    fn from(mut child: Child, status: std::process::ExitStatus, took: Duration, what: String) -> Answer {
        let (mut stdout, mut stderr) = (String::new(), String::new());
        child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        Answer { what, status, stdout, stderr, took }
    }

    /// In time, ended by itself (not aborted by the memory limit or a signal).
    #[track_caller]
    fn in_time(&self) -> &Answer {
        assert!(self.took <= ANSWER, "{self}: took {:?}", self.took);
        assert!(self.status.code().is_some(), "{self}: ended by a signal");
        self
    }

    /// Refused: a non-zero exit and exactly one line on stderr naming `file` and `limit`.
    #[track_caller]
    fn refused(&self, file: &str, limit: &str) {
        self.in_time();
        assert_ne!(self.status.code(), Some(0), "{self}");
        self.one_line(file, limit);
    }

    #[track_caller]
    fn one_line(&self, file: &str, limit: &str) {
        let lines: Vec<&str> = self.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{self}");
        assert!(lines[0].contains(file) && lines[0].contains(limit), "{self}");
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} in {:?}\n--- stdout\n{}--- stderr\n{}",
            self.what, self.status, self.took, self.stdout, self.stderr
        )
    }
}

/// Every tool that reads wt.toml refuses it, in one line, when it is not a regular file of at
/// most 1 MiB.
#[test]
fn a_planted_wt_toml_is_refused_by_every_tool_at_once() {
    let f = Fixture::new();
    let runs: [(&str, &[&str]); 5] = [
        ("wt-create", &["b"]),
        ("wt-env", &["a"]),
        ("wt-run", &["-w", "a", "--", "true"]),
        ("wt-watch", &["-w", "a", "--until-green", "--feed", "none", "--", "true"]),
        ("wt-merge", &["--check", "a"]),
    ];
    for trap in TRAPS {
        plant(&f.t.repo.join("wt.toml"), trap);
        for (tool, args) in runs {
            f.answer(tool, args).refused("wt.toml", "1 MiB");
        }
    }
}

/// A `.gitignore` wt-watch cannot read safely is left out with a one-line warning (git itself
/// leaves out a `.gitignore` that is a link), and the round runs.
#[test]
fn a_planted_gitignore_is_left_out_with_a_warning_and_wt_watch_goes_on() {
    let f = Fixture::new();
    // --until-green ends on a green round of a commit ahead of the base, on a clean tree: the
    // planted file is kept out of `git status`.
    f.t.git_in(&f.wt(), ["commit", "-q", "--allow-empty", "-m", "work"]);
    std::fs::write(f.t.repo.join(".git/info/exclude"), "/.gitignore\n").unwrap();
    for trap in TRAPS {
        plant(&f.wt().join(".gitignore"), trap);
        let args = ["-w", "a", "--until-green", "--feed", "none", "--debounce", "50", "--", "true"];
        let a = f.answer("wt-watch", &args);
        a.in_time();
        assert_eq!(a.status.code(), Some(0), "{a}");
        assert!(a.stdout.contains("\"green\""), "{a}");
        a.one_line(".gitignore", "4 MiB");
    }
}

/// wt-create refuses a `.worktreeinclude` it cannot read safely (it would otherwise leave out
/// the files the worktree needs), in one line.
#[test]
fn a_planted_worktreeinclude_is_refused_by_wt_create() {
    let f = Fixture::new();
    for (i, trap) in TRAPS.into_iter().enumerate() {
        plant(&f.t.repo.join(".worktreeinclude"), trap);
        let name = format!("inc-{i}");
        let a = f.answer("wt-create", &[&name]);
        a.refused(".worktreeinclude", "4 MiB");
        assert!(!f.t.wt_root().join(&name).exists(), "nothing half-made\n{a}");
    }
}

/// wt-run --agent-hooks refuses hook settings it cannot read safely (never overwriting them).
#[test]
fn planted_hook_settings_are_refused_by_wt_run() {
    let f = Fixture::new();
    for rel in [".claude/settings.local.json", ".codex/hooks.json"] {
        for trap in TRAPS {
            let _ = std::fs::remove_dir_all(f.wt().join(".claude"));
            let _ = std::fs::remove_dir_all(f.wt().join(".codex"));
            plant(&f.wt().join(rel), trap);
            let a = f.answer("wt-run", &["-w", "a", "--pane", "--agent-hooks", "--", "sleep", "30"]);
            a.refused(Path::new(rel).file_name().unwrap().to_str().unwrap(), "4 MiB");
            let still = std::fs::symlink_metadata(f.wt().join(rel)).unwrap();
            assert!(!still.is_file() || still.len() == 2 << 30, "left as it was: {a}");
        }
    }
}

/// A guarded file is hashed streaming and capped, never through a link or a FIFO: the guard's
/// snapshot (taken at the first red round) is taken at once and the round is reported.
#[test]
fn a_planted_guarded_file_never_hangs_or_floods_wt_watch() {
    let f = Fixture::new();
    for trap in TRAPS {
        plant(&f.wt().join("tests/big.dat"), trap);
        let args = [
            "-w",
            "a",
            "--until-green",
            "--feed",
            "none",
            "--max-rounds",
            "1",
            "--guard",
            "tests/**",
            "--",
            "sh",
            "-c",
            "exit 1",
        ];
        let a = f.answer("wt-watch", &args);
        a.in_time();
        assert_eq!(a.status.code(), Some(1), "{a}");
        assert!(a.stdout.contains("\"gave-up\""), "{a}");
    }
}

/// `.env.wt` is never read, only replaced by wt-env: a FIFO or a huge file there is replaced
/// by the env file; a link or a directory is refused in one line (wt writes only real files in
/// the worktree).
#[test]
fn a_planted_env_file_is_replaced_or_refused_by_wt_env() {
    let f = Fixture::new();
    let env = f.wt().join(".env.wt");
    for trap in TRAPS {
        plant(&env, trap);
        let a = f.answer("wt-env", &["a", "--dotenv"]);
        match trap {
            Trap::DevZero | Trap::Dir => {
                a.in_time();
                assert_ne!(a.status.code(), Some(0), "{a}");
                let lines: Vec<&str> = a.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
                assert_eq!(lines.len(), 1, "{a}");
                assert!(lines[0].contains(".env.wt"), "{a}");
            }
            Trap::Fifo | Trap::Sparse => {
                a.in_time();
                assert_eq!(a.status.code(), Some(0), "{a}");
                let meta = std::fs::symlink_metadata(&env).unwrap();
                assert!(meta.is_file() && meta.len() < 4096, "replaced by the env file: {a}");
            }
        }
    }
}

/// Sends SIGTERM to `child` after `after`; asserts it ends within the grace.
#[track_caller]
fn terminated_within_grace(child: Child, after: Duration, what: &str) {
    std::thread::sleep(after);
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let sent = Instant::now();
    let (_, status) = wait_for_exit(child, HANG, what);
    assert!(sent.elapsed() <= GRACE, "{what}: ended {:?} after SIGTERM ({status})", sent.elapsed());
}

/// SIGTERM ends each tool that handles it while a FIFO is where it reads: wt.toml for every
/// tool, hook settings for wt-run, and `.gitignore` files (and a guarded FIFO) that appear in a
/// worktree wt-watch is watching.
#[test]
fn sigterm_ends_each_tool_while_a_fifo_is_in_its_way() {
    let f = Fixture::new();
    plant(&f.t.repo.join("wt.toml"), Trap::Fifo);
    let runs: [(&str, &[&str]); 5] = [
        ("wt-create", &["b"]),
        ("wt-env", &["a"]),
        ("wt-run", &["-w", "a", "--", "sleep", "30"]),
        ("wt-watch", &["-w", "a", "--feed", "none", "--", "true"]),
        ("wt-merge", &["--check", "a"]),
    ];
    for (tool, args) in runs {
        let child = f.limited(tool, args).spawn().unwrap();
        terminated_within_grace(child, Duration::from_millis(300), &format!("{tool} with a FIFO wt.toml"));
    }
    std::fs::remove_file(f.t.repo.join("wt.toml")).unwrap();

    plant(&f.wt().join(".claude/settings.local.json"), Trap::Fifo);
    let child = f.limited("wt-run", &["-w", "a", "--pane", "--agent-hooks", "--", "sleep", "30"]).spawn().unwrap();
    terminated_within_grace(child, Duration::from_millis(300), "wt-run --agent-hooks with a FIFO settings file");

    // wt-watch is watching when the FIFOs appear: a new directory with one (scanned when it
    // appears), the root's .gitignore replaced by one (rules reloaded), a guarded one.
    // (A --guard glob must match something when wt-watch starts.)
    std::fs::create_dir_all(f.wt().join("tests")).unwrap();
    std::fs::write(f.wt().join("tests/check.sh"), "exit 1\n").unwrap();
    let mut watch = f.limited(
        "wt-watch",
        &["-w", "a", "--feed", "none", "--debounce", "50", "--guard", "tests/**", "--", "sh", "-c", "exit 1"],
    );
    let mut child = watch.spawn().unwrap();
    let mut first = [0u8; 1];
    child.stdout.as_mut().unwrap().read_exact(&mut first).expect("a first record");
    plant(&f.wt().join("sub/.gitignore"), Trap::Fifo);
    plant(&f.wt().join(".gitignore"), Trap::Fifo);
    plant(&f.wt().join("tests/t.fifo"), Trap::Fifo);
    std::fs::write(f.wt().join("touched"), "a change").unwrap();
    terminated_within_grace(child, Duration::from_secs(1), "wt-watch with FIFOs appearing in the worktree");
}

/// wt's own state in the common dir (`.git/wt/`, where an unconfined agent can write too) and
/// git's `config.worktree`: each file made a trap in turn never hangs or floods a tool. The
/// ledger is refused in one line that names it; the others are passed over (or, for the
/// supervisor's log, refused) and the work is done.
#[test]
fn planted_state_files_never_hang_a_tool() {
    let f = Fixture::new();
    let state = f.t.repo.join(".git/wt");
    let ledger = state.join("ledger.json");
    let kept = std::fs::read(&ledger).unwrap();
    for trap in TRAPS {
        plant(&ledger, trap);
        for (tool, args) in [("wt-create", &["--list"][..]), ("wt-status", &["--json"][..])] {
            f.answer(tool, args).refused("ledger.json", "64 MiB");
        }
        remove(&ledger);
        std::fs::write(&ledger, &kept).unwrap();
    }
    let mut made = 0;
    let mut create = |f: &Fixture, what: &str| {
        made += 1;
        let name = format!("n{made}");
        let a = f.answer("wt-create", &[&name]);
        a.in_time();
        assert_eq!(a.status.code(), Some(0), "{what}: {a}");
        assert!(f.t.wt_root().join(&name).join(".git").is_file(), "{what}: made\n{a}");
    };
    for trap in TRAPS {
        let children = state.join("worktrees.lock.children");
        plant(&children, trap);
        create(&f, &format!("{trap:?} worktrees.lock.children"));
        remove(&children);

        let marker = state.join("pending/zz.json");
        plant(&marker, trap);
        create(&f, &format!("{trap:?} pending marker"));
        assert!(std::fs::symlink_metadata(&marker).is_err(), "{trap:?}: the planted marker is dropped");

        let config = f.t.repo.join(".git/config.worktree");
        plant(&config, trap);
        create(&f, &format!("{trap:?} config.worktree"));
        remove(&config);

        let journal = state.join("merge-journal");
        plant(&journal, trap);
        f.answer("wt-merge", &["a", "--verify", "true"]).in_time();
        remove(&journal);
    }
    // A log is printed as `cat` would (a regular file of 2 GB is printed whole, so not that).
    for trap in [Trap::DevZero, Trap::Fifo, Trap::Dir] {
        let log = state.join("logs/a/99-planted.log");
        plant(&log, trap);
        let a = f.answer("wt-run", &["logs", "a"]);
        a.in_time();
        assert_ne!(a.status.code(), Some(0), "{trap:?}: {a}");
        remove(&log);
    }
    // The supervisor's log is refused unless it is a regular file (never written through a
    // link, never blocking on a FIFO); a big one is appended to.
    for trap in TRAPS {
        let log = state.join("logs/supervisor.log");
        plant(&log, trap);
        let a = f.answer("wt-run", &["-w", "a", "--pane", "--", "sleep", "30"]);
        a.in_time();
        match trap {
            Trap::Sparse => assert_eq!(a.status.code(), Some(0), "{a}"),
            _ => assert_ne!(a.status.code(), Some(0), "{trap:?}: {a}"),
        }
    }
}

/// Removes the trap at `path`, whatever it is (a file, a link, a FIFO or a directory).
fn remove(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).unwrap(),
        Ok(_) => std::fs::remove_file(path).unwrap(),
        Err(_) => {}
    }
}

/// A marker planted in `.git/wt/pending/` that names another worktree (its path, its branch)
/// is dropped, never rolled back: the worktree, its uncommitted work and its branch stay.
#[test]
fn a_planted_marker_never_rolls_back_another_worktree() {
    let f = Fixture::new();
    std::fs::write(f.wt().join("notes.txt"), "work\n").unwrap();
    let tip = f.t.git(["rev-parse", "wt/a"]);
    let pending = f.t.repo.join(".git/wt/pending");
    std::fs::create_dir_all(&pending).unwrap();
    let victim = f.t.root().join("victim");
    std::fs::write(format!("{}.lock", victim.display()), "").unwrap();
    // Another's path; a branch that leaves refs/heads/; and one exactly as wt-create writes it
    // for `a`, but with an id the ledger's entry (made by another wt-create) does not carry.
    let plants = [
        ("zz", "zz", f.wt(), "wt/a".to_string()),
        ("yy", "yy", f.t.wt_root().join("yy"), format!("../../../../../../../../..{}", victim.display())),
        ("a", "a", f.wt(), "wt/a".to_string()),
    ];
    for (file, name, path, branch) in plants {
        let marker = serde_json::json!({"name": name, "path": path, "branch": branch, "branch_created": true, "start_commit": tip, "id": "planted"});
        std::fs::write(pending.join(format!("{file}.json")), marker.to_string()).unwrap();
    }
    let a = f.answer("wt-create", &["b"]);
    a.in_time();
    assert_eq!(a.status.code(), Some(0), "{a}");
    assert_eq!(std::fs::read_to_string(f.wt().join("notes.txt")).unwrap(), "work\n", "{a}");
    assert_eq!(f.t.git(["rev-parse", "wt/a"]), tip, "the branch stays");
    assert!(Path::new(&format!("{}.lock", victim.display())).exists(), "no file outside is removed");
    assert!(std::fs::read_dir(&pending).unwrap().next().is_none(), "the planted markers are dropped");
}

/// A marker for a worktree wt-create adopted (its ledger entry names no maker) is rolled back
/// without losing anything: the directory is moved aside with every file, the branch kept.
#[test]
fn a_marker_for_an_adopted_worktree_loses_nothing() {
    let t = TestRepo::new();
    let path = t.wt_root().join("h");
    t.git(["worktree", "add", "-q", "-b", "wt/h", path.to_str().unwrap()]);
    t.run("wt-create", &["h"], "").expect_code(0);
    std::fs::write(path.join("notes.txt"), "work\n").unwrap();
    let tip = t.git(["rev-parse", "wt/h"]);
    let pending = t.repo.join(".git/wt/pending");
    std::fs::create_dir_all(&pending).unwrap();
    let marker = serde_json::json!({"name": "h", "path": path, "branch": "wt/h", "branch_created": true, "start_commit": tip, "id": "planted"});
    std::fs::write(pending.join("h.json"), marker.to_string()).unwrap();
    t.run("wt-create", &["i"], "").expect_code(0);
    assert_eq!(t.git(["rev-parse", "wt/h"]), tip, "the branch stays");
    let aside: Vec<String> = wt_tests::names_in(&t.wt_root(), |n| n.starts_with(".h.rolled-back-"));
    let kept = if path.exists() { path.clone() } else { t.wt_root().join(&aside[0]) };
    assert_eq!(std::fs::read_to_string(kept.join("notes.txt")).unwrap(), "work\n");
}
