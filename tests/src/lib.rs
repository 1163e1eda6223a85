//! Fixtures for end-to-end tests of the wt binaries: throwaway repositories with isolated git
//! configuration and fixed dates, helpers that find the built binaries, and a runner that
//! feeds stdin through a real pipe and parses the records that come out.
//!
//! The binaries of the tool packages cannot be reached through `CARGO_BIN_EXE_*` from this
//! package, so they are looked up in the target directory. `make test` builds them first; a
//! missing binary fails the test with the command that builds it.

pub mod panes;
pub mod watch;

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

/// The path of a built wt binary (`wt-create`, …).
pub fn bin(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("debug").join(name);
    assert!(path.is_file(), "{} is not built: run `cargo build --workspace` first (`make test` does)", path.display());
    path
}

/// A temporary directory holding a repository (`repo/`), an isolated HOME and git config.
#[derive(Debug)]
pub struct TestRepo {
    pub dir: tempfile::TempDir,
    pub repo: PathBuf,
}

impl TestRepo {
    /// A repository with one commit of a few files, on branch `main`.
    pub fn new() -> TestRepo {
        let t = Self::empty();
        t.write("README", "hello\n");
        t.write("src/lib.rs", "pub fn f() {}\n");
        t.commit("initial");
        t
    }

    /// Like `new`, in a temp dir under `parent` instead of the system temp dir.
    pub fn new_in(parent: &Path) -> TestRepo {
        let dir = tempfile::Builder::new().prefix("wt-test-").tempdir_in(parent).expect("temp dir");
        let t = Self::in_dir(dir);
        t.write("README", "hello\n");
        t.write("src/lib.rs", "pub fn f() {}\n");
        t.commit("initial");
        t
    }

    /// A repository with no commits.
    pub fn empty() -> TestRepo {
        Self::in_dir(tempfile::Builder::new().prefix("wt-test-").tempdir().expect("temp dir"))
    }

    fn in_dir(dir: tempfile::TempDir) -> TestRepo {
        let root = dir.path().canonicalize().expect("canonical temp dir");
        std::fs::create_dir_all(root.join("home")).unwrap();
        std::fs::write(
            root.join("gitconfig"),
            "[user]\n\tname = Test\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n",
        )
        .unwrap();
        let t = TestRepo { repo: root.join("repo"), dir };
        std::fs::create_dir_all(&t.repo).unwrap();
        t.git(["init", "-q"]);
        t
    }

    /// The temp dir root (canonical).
    pub fn root(&self) -> PathBuf {
        self.repo.parent().unwrap().to_path_buf()
    }

    /// Where wt-create puts worktrees by default.
    pub fn wt_root(&self) -> PathBuf {
        self.root().join("repo.wt")
    }

    /// Applies the isolated environment to any command.
    pub fn isolate<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        let root = self.root();
        for var in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "WT_LOG", "WT_FAILPOINT", "XDG_CONFIG_HOME"] {
            cmd.env_remove(var);
        }
        // The machine's port registry of this test alone (a test of it shares one on purpose).
        cmd.env("WT_PORT_REGISTRY", root.join("port-registry"));
        // The person's list of repositories (`wt-status --inbox`): this test's alone.
        cmd.env("WT_REPO_REGISTRY", root.join("repo-registry"));
        // The build governor is per user: tests that do not test it go without it, so parallel
        // tests never queue behind each other's runs (tests/tests/governor.rs turns it on).
        cmd.env("WT_GOVERNOR", "off");
        cmd.env("HOME", root.join("home"))
            .env("GIT_CONFIG_GLOBAL", root.join("gitconfig"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
            .env("LC_ALL", "C")
    }

    /// `git -C repo args…`, asserting success; stdout trimmed.
    pub fn git<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&self, args: I) -> String {
        self.git_in(&self.repo, args)
    }

    /// `git -C dir args…`, asserting success; stdout trimmed.
    pub fn git_in<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&self, dir: &Path, args: I) -> String {
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(dir).args(args);
        let out = self.isolate(&mut cmd).output().expect("run git");
        assert!(out.status.success(), "git failed: {:?}\n{}", cmd, String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim_end().to_string()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.repo.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn commit(&self, msg: &str) {
        self.git(["add", "-A"]);
        self.git(["commit", "-q", "-m", msg]);
    }

    /// Makes worktree `v` with one commit on its branch, to merge; returns `wt-create --list`'s
    /// records.
    pub fn worktree_with_a_commit_to_merge(&self) -> String {
        self.run("wt-create", &["v"], "").expect_code(0);
        let wt = self.wt_root().join("v");
        std::fs::write(wt.join("v.txt"), "v\n").unwrap();
        self.git_in(&wt, ["add", "-A"]);
        self.git_in(&wt, ["commit", "-q", "-m", "v work"]);
        self.run("wt-create", &["--list"], "").stdout
    }

    /// A wt tool run in the repository with the isolated environment.
    pub fn cmd(&self, tool: &str) -> Command {
        let mut cmd = Command::new(bin(tool));
        cmd.current_dir(&self.repo);
        self.isolate(&mut cmd);
        cmd
    }

    /// Runs a wt tool with `args`, `stdin` through a pipe, and collects what it printed.
    pub fn run(&self, tool: &str, args: &[&str], stdin: &str) -> Run {
        let mut cmd = self.cmd(tool);
        cmd.args(args);
        Run::of(&mut cmd, stdin)
    }

    /// Runs tools connected by real pipes (`a | b | c`) and returns what the last printed.
    /// Every stage but the last must exit 0.
    pub fn pipeline(&self, stages: &[(&str, &[&str])]) -> Run {
        let mut children = Vec::new();
        let mut upstream: Option<std::process::ChildStdout> = None;
        for (i, (tool, args)) in stages.iter().enumerate() {
            let mut cmd = self.cmd(tool);
            cmd.args(*args).stderr(Stdio::piped()).stdout(Stdio::piped());
            match upstream.take() {
                Some(out) => cmd.stdin(Stdio::from(out)),
                None => cmd.stdin(Stdio::null()),
            };
            let mut child = cmd.spawn().expect("spawn stage");
            if i + 1 < stages.len() {
                upstream = child.stdout.take();
            }
            children.push(child);
        }
        let last = children.pop().expect("at least one stage");
        let run = Run::from_output(last.wait_with_output().expect("wait"));
        for (child, (tool, _)) in children.into_iter().zip(stages) {
            let out = Run::from_output(child.wait_with_output().expect("wait"));
            assert_eq!(out.code, Some(0), "{tool} in the pipeline failed\n{out}");
        }
        run
    }

    /// `git worktree list --porcelain` as (path, branch) pairs, main first.
    pub fn git_worktrees(&self) -> Vec<(PathBuf, Option<String>)> {
        let text = self.git(["worktree", "list", "--porcelain", "-z"]);
        wt_common::git::repo::parse_worktree_list(&text).into_iter().map(|w| (w.path, w.branch)).collect()
    }

    /// Fails unless nothing of a verification worktree of wt-merge is left: no registration, no
    /// directory beside the worktrees, no branch, no ledger entry (its leases), no journal.
    pub fn assert_no_verification_worktree(&self, what: &str) {
        let is_scratch = |n: &str| n.contains("-verify-");
        let registered = self.git(["worktree", "list", "--porcelain"]);
        assert!(!registered.contains("-verify-"), "{what}: a verification worktree is registered:\n{registered}");
        assert_eq!(names_in(&self.wt_root(), is_scratch), Vec::<String>::new(), "{what}: its directory is left");
        assert!(!self.branches().iter().any(|b| is_scratch(b)), "{what}: its branch is left: {:?}", self.branches());
        let ledger = std::fs::read_to_string(self.repo.join(".git/wt/ledger.json")).unwrap_or_default();
        assert!(!ledger.contains("-verify-"), "{what}: its ledger entry is left:\n{ledger}");
        assert!(!self.repo.join(".git/wt/merge-scratch").exists(), "{what}: its journal is left");
    }

    pub fn branches(&self) -> Vec<String> {
        let out = self.git(["for-each-ref", "--format=%(refname:short)", "refs/heads/"]);
        out.lines().map(str::to_string).collect()
    }
}

/// What one run of a tool did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Spawns `cmd` with piped stdio, writes `stdin`, closes it and waits.
    pub fn of(cmd: &mut Command, stdin: &str) -> Run {
        let mut child =
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn tool");
        Self::feed(&mut child, stdin);
        Self::from_output(child.wait_with_output().expect("wait for tool"))
    }

    pub fn feed(child: &mut Child, stdin: &str) {
        let mut pipe = child.stdin.take().expect("piped stdin");
        let text = stdin.to_string();
        std::thread::spawn(move || {
            let _ = pipe.write_all(text.as_bytes());
        });
    }

    pub fn from_output(out: Output) -> Run {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Every stdout line parsed as JSON; panics (showing the output) on a line that is not.
    pub fn records(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\n{self}")))
            .collect()
    }

    /// Asserts the exit code, showing everything the tool printed when it differs.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, Some(code), "unexpected exit code\n{self}");
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit: {:?}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// The URL of the PostgreSQL server the tests use (`tests/pg-server.sh` starts one; `make test`
/// and CI set `WT_TEST_PG`). Without it the test fails, saying how to get one: a database test
/// that silently skips would prove nothing.
pub fn pg_url() -> String {
    std::env::var("WT_TEST_PG").unwrap_or_else(|_| {
        panic!("WT_TEST_PG is not set: run `make test` (it starts a PostgreSQL server), or export WT_TEST_PG=$(tests/pg-server.sh)")
    })
}

/// The server URL with the database `db` instead of the one it names.
pub fn pg_url_for(db: &str) -> String {
    let url = pg_url();
    let (head, query) = url.split_once('?').unwrap_or((&url, ""));
    let base = head.rsplit_once('/').map(|(b, _)| b).unwrap_or(head);
    format!("{base}/{db}?{query}")
}

/// Runs SQL with psql against database `db`; returns its unaligned, tuples-only output.
pub fn psql(db: &str, sql: &str) -> Result<String, String> {
    psql_url(&pg_url_for(db), sql)
}

/// Runs SQL with psql through a full connection URL (a worktree's `DATABASE_URL`, say).
pub fn psql_url(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([url, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("run psql");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// A template database unique to one test, dropped with every clone of it at the end.
#[derive(Debug)]
pub struct PgTemplate {
    pub name: String,
}

impl PgTemplate {
    /// Creates the database and runs `setup` (SQL) in it.
    pub fn new(setup: &str) -> PgTemplate {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("wt_t{}_{n}", std::process::id());
        psql("postgres", &format!("CREATE DATABASE {name}")).expect("create template");
        psql(&name, setup).expect("set up template");
        PgTemplate { name }
    }

    /// Databases whose names start with this template's.
    pub fn clones(&self) -> Vec<String> {
        let list = psql(
            "postgres",
            &format!("SELECT datname FROM pg_database WHERE datname LIKE '{}\\_wt%' ORDER BY 1", self.name),
        )
        .unwrap();
        list.lines().map(str::to_string).collect()
    }
}

impl Drop for PgTemplate {
    fn drop(&mut self) {
        for db in self.clones().into_iter().chain([self.name.clone()]) {
            let _ = psql("postgres", &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
        }
        // wt-env gives each clone a role of its own, named like it.
        let roles = psql("postgres", &format!("SELECT rolname FROM pg_roles WHERE rolname LIKE '{}\\_wt%'", self.name));
        for role in roles.unwrap_or_default().lines() {
            let _ = psql("postgres", &format!("DROP ROLE IF EXISTS {role}"));
        }
    }
}

/// Waits up to 5 s for process `pid` to end; whether it did (a zombie waiting to be reaped
/// counts as ended).
pub fn ended(pid: i32) -> bool {
    for _ in 0..500 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
        if stat.is_none_or(|s| s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

/// A tool stopped by itself at a failpoint (`WT_FAILPOINT=<point>:stop`), so that a test can
/// make another process act in exactly that window; `resume` lets it go on and returns its run.
/// Dropped unresumed, it is killed.
#[derive(Debug)]
pub struct StoppedAt(Option<Child>);

impl StoppedAt {
    pub fn spawn(cmd: &mut Command, point: &str) -> StoppedAt {
        cmd.env("WT_FAILPOINT", format!("{point}:stop"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = cmd.spawn().expect("spawn the tool");
        let pid = child.id();
        let stopped = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('T')))
        };
        let mut me = StoppedAt(Some(child));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !stopped() {
            if let Some(Ok(Some(_))) = me.0.as_mut().map(Child::try_wait) {
                let out = me.0.take().unwrap().wait_with_output().unwrap();
                panic!("it ended before its failpoint {point}\n{}", Run::from_output(out));
            }
            assert!(std::time::Instant::now() < deadline, "it never reached its failpoint {point}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        me
    }

    pub fn resume(mut self) -> Run {
        let child = self.0.take().expect("resumed once");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
        Run::from_output(child.wait_with_output().unwrap())
    }
}

impl Drop for StoppedAt {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A child process that is killed and reaped when the guard goes, so that a failed assertion
/// leaves no process behind.
#[derive(Debug)]
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The names of the entries of `dir` that `keep` selects, in directory order.
pub fn names_in(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| keep(n))
        .collect()
}

/// A lock on `refs/heads/<branch>` that a running git may hold: wt never takes such a lock
/// (it is not provably stale), since a `git cat-file` that started before it still runs. Keep
/// the returned process as long as the lock should be held; it is ended when dropped.
pub fn branch_lock_held_by_a_running_git(t: &TestRepo, branch: &str) -> (Reaped, PathBuf) {
    let holder = Reaped(
        Command::new("git")
            .args(["cat-file", "--batch"])
            .current_dir(&t.repo)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let lock = t.repo.join(format!(".git/refs/heads/{branch}.lock"));
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(&lock, "").unwrap();
    (holder, lock)
}

/// The string value of `key` in a record.
pub fn s<'v>(rec: &'v Value, key: &str) -> &'v str {
    rec[key].as_str().unwrap_or_else(|| panic!("record has no string '{key}': {rec}"))
}

impl Default for TestRepo {
    fn default() -> Self {
        Self::new()
    }
}
