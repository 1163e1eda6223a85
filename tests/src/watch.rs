//! The fixture of wt-watch's end-to-end tests: a repository whose test fails until its agent
//! fixes it, stand-in agents in real panes, wt-watch run in the foreground or read live as it
//! goes, and a venv with pytest from PyPI.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{bin, Run, TestRepo};

/// The stand-in agent (demo/stand-in-agent.py): a prompt when idle, a spinner while it works,
/// a log of every message and of anything typed while it was busy.
pub fn stand_in_agent() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo/stand-in-agent.py")
}

/// The test the agents must turn green: a.txt must say 42, then b.txt 7.
pub const CHECK: &str = r#"for pair in a.txt:42 b.txt:7; do
  f=${pair%%:*}; want=${pair#*:}; got=$(cat "$f")
  [ "$got" = "$want" ] || { echo "assertion failed: $f: expected $want, got $got"; exit 1; }
done
echo "all good"
"#;

#[allow(missing_debug_implementations)]
pub struct Watch {
    pub t: TestRepo,
    pub xdg: PathBuf,
}

impl Default for Watch {
    fn default() -> Self {
        Watch::new()
    }
}

impl Watch {
    /// A repository whose test fails until a.txt is 42 and b.txt is 7.
    pub fn new() -> Watch {
        let t = TestRepo::new();
        t.write("a.txt", "0\n");
        t.write("b.txt", "0\n");
        t.write("tests/check.sh", CHECK);
        t.write(".gitignore", "build/\n");
        t.commit("a failing test");
        let xdg = t.root().join("xdg");
        std::fs::create_dir_all(&xdg).unwrap();
        std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).unwrap();
        Watch { t, xdg }
    }

    pub fn env(&self, c: &mut Command) {
        self.t.isolate(c);
        c.env("XDG_RUNTIME_DIR", &self.xdg).env("WT_PANE_IDLE", "20s").env("TMUX_TMPDIR", &self.xdg).env_remove("TMUX");
    }

    pub fn tool(&self, tool: &str) -> Command {
        let mut c = Command::new(bin(tool));
        c.current_dir(&self.t.repo);
        self.env(&mut c);
        c
    }

    pub fn create(&self, name: &str) -> PathBuf {
        self.t.run("wt-create", &[name], "").expect_code(0);
        self.t.wt_root().join(name)
    }

    /// A stand-in agent in a pane named like the worktree, at its prompt; its log is outside
    /// the worktree.
    pub fn agent(&self, name: &str, mode: &str) -> PathBuf {
        self.agent_on(name, mode, "native")
    }

    /// The same with the pane on `backend` (`native` or `tmux`).
    pub fn agent_on(&self, name: &str, mode: &str, backend: &str) -> PathBuf {
        let log = self.start_agent_on(name, mode, backend);
        let mut wait = self.tool("wt-run");
        wait.args(["pane", "wait", name, "--match", "agent>", "--timeout", "20s"]);
        Run::of(&mut wait, "").expect_code(0);
        log
    }

    /// A stand-in agent in a pane, not waited for.
    pub fn start_agent(&self, name: &str, mode: &str) -> PathBuf {
        self.start_agent_on(name, mode, "native")
    }

    pub fn start_agent_on(&self, name: &str, mode: &str, backend: &str) -> PathBuf {
        let log = self.t.root().join(format!("{name}.agent.log"));
        let agent = stand_in_agent();
        let mut c = self.tool("wt-run");
        c.args(["-w", name, "--pane", "--backend", backend, "--", "python3"]).arg(&agent).arg(&log).arg(mode);
        Run::of(&mut c, "").expect_code(0);
        log
    }

    /// `wt-watch -w NAME --until-green --feed pane` (fast timings, `extra` flags) over the test.
    pub fn until_green(&self, name: &str, extra: &[&str]) -> Run {
        let mut args = vec!["-w", name, "--until-green", "--feed", "pane"];
        args.extend(FAST);
        args.extend(extra);
        args.extend(["--", "sh", "tests/check.sh"]);
        self.watch(&args)
    }

    pub fn watch(&self, args: &[&str]) -> Run {
        let mut c = self.tool("wt-watch");
        c.args(args);
        Run::of(&mut c, "")
    }

    /// wt-watch in the background, its records read as they come.
    pub fn spawn(&self, args: &[&str], stdin: Stdio) -> Live {
        let mut c = self.tool("wt-watch");
        c.args(args).stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn wt-watch");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(serde_json::from_str::<Value>(&line).unwrap_or_else(|e| panic!("{e}: {line}")));
            }
        });
        Live { child, rx }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut c = self.tool("wt-run");
        c.args(["pane", "stop"]);
        let _ = Run::of(&mut c, "");
        let mut tmux = Command::new("tmux");
        tmux.arg("kill-server");
        self.env(&mut tmux);
        let _ = tmux.output();
    }
}

/// A running wt-watch.
#[allow(missing_debug_implementations)]
pub struct Live {
    pub child: Child,
    pub rx: mpsc::Receiver<Value>,
}

impl Live {
    pub fn next(&self) -> Value {
        self.rx.recv_timeout(Duration::from_secs(60)).expect("a record from wt-watch within a minute")
    }

    pub fn signal(&mut self, sig: nix::sys::signal::Signal) -> Option<i32> {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
        self.child.wait().unwrap().code()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn status(rec: &Value) -> &str {
    rec["watch"]["status"].as_str().unwrap_or_else(|| panic!("no watch.status: {rec}"))
}

pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

pub fn pids(file: &Path) -> Vec<i32> {
    std::fs::read_to_string(file).unwrap_or_default().split_whitespace().filter_map(|p| p.parse().ok()).collect()
}

pub const FAST: [&str; 6] = ["--debounce", "100", "--quiet-ms", "300", "--agent-timeout", "60s"];

#[allow(missing_debug_implementations)]
pub struct Release(pub PathBuf);

impl Drop for Release {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, "");
    }
}

pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Lines in a marker file: how many rounds ran.
pub fn runs(marker: &Path) -> usize {
    std::fs::read_to_string(marker).unwrap_or_default().lines().count()
}

/// A venv outside the repository with pytest installed from PyPI (through the tests' pip cache).
pub fn venv_with_pytest(t: &TestRepo) -> PathBuf {
    venv_with(t, "venv", "pytest")
}

/// A venv at `<test root>/<name>` with `package` installed from PyPI, through the pip cache the
/// tests share (`target/wt-test-cache/pip`); the test fails, saying so, when PyPI cannot be
/// reached.
pub fn venv_with(t: &TestRepo, name: &str, package: &str) -> PathBuf {
    let needs = format!("this test installs {package}: PyPI must be reachable");
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wt-test-cache/pip");
    std::fs::create_dir_all(&cache).unwrap();
    let venv = t.root().join(name);
    for (program, args) in [
        (PathBuf::from("python3"), vec!["-m", "venv", venv.to_str().unwrap()]),
        (venv.join("bin/pip"), vec!["install", "-q", package]),
    ] {
        let mut c = Command::new(&program);
        c.args(&args).current_dir(t.root());
        t.isolate(&mut c)
            .env("PIP_CACHE_DIR", &cache)
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .env_remove("VIRTUAL_ENV")
            .env_remove("PYTHONPATH");
        let run = Run::from_output(c.output().unwrap());
        assert_eq!(run.code, Some(0), "{} failed ({needs})\n{run}", program.display());
    }
    venv
}
