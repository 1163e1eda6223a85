//! Panes in end-to-end tests: a repository whose wt-run calls share a private socket directory
//! (XDG_RUNTIME_DIR) and tmux server (TMUX_TMPDIR), and stop them when it goes.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::{Run, TestRepo};

/// A repository whose wt-run calls share a private socket directory.
#[derive(Debug)]
pub struct Panes {
    pub t: TestRepo,
    pub xdg: PathBuf,
}

impl Panes {
    pub fn new() -> Panes {
        let t = TestRepo::new();
        let xdg = t.root().join("xdg");
        std::fs::create_dir_all(&xdg).unwrap();
        std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).unwrap();
        Panes { t, xdg }
    }

    pub fn cmd(&self) -> Command {
        let mut c = self.t.cmd("wt-run");
        self.env(&mut c);
        c
    }

    /// The test's isolation: git config, socket dir, tmux server.
    pub fn env(&self, c: &mut Command) {
        self.t.isolate(c);
        c.env("XDG_RUNTIME_DIR", &self.xdg).env("WT_PANE_IDLE", "20s").env("TMUX_TMPDIR", &self.xdg).env_remove("TMUX");
    }

    /// The test's own tmux server (TMUX_TMPDIR is its socket directory).
    pub fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux").args(args).env("TMUX_TMPDIR", &self.xdg).env_remove("TMUX").output().unwrap();
        assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn wt_run(&self, args: &[&str]) -> Run {
        let mut c = self.cmd();
        c.args(args);
        Run::of(&mut c, "")
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let run = self.wt_run(args);
        run.expect_code(0);
        serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {run}"))
    }

    /// Starts CMD in a pane of a new worktree NAME.
    pub fn spawn(&self, name: &str, cmd: &[&str]) -> Value {
        self.t.run("wt-create", &[name], "").expect_code(0);
        let mut args = vec!["-w", name, "--pane", "--"];
        args.extend_from_slice(cmd);
        let run = self.wt_run(&args);
        run.expect_code(0);
        run.records().remove(0)
    }

    pub fn wait_match(&self, pane: &str, re: &str) -> Value {
        self.json(&["pane", "wait", pane, "--match", re, "--timeout", "15s"])
    }

    /// The supervisor's socket.
    pub fn socket(&self) -> PathBuf {
        let dir = self.xdg.join("wt");
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "sock") && !is_pane_socket(p) && !is_governor(p))
            .unwrap()
    }
}

/// The build governor's socket, in the same directory when panes are governed.
fn is_governor(path: &std::path::Path) -> bool {
    path.file_name().is_some_and(|n| n == "governor.sock")
}

/// A confined pane's own socket (`<hash>.pane-<hash>.sock`), not the supervisor's.
fn is_pane_socket(path: &std::path::Path) -> bool {
    path.file_name().is_some_and(|n| n.to_string_lossy().contains(".pane-"))
}

impl Default for Panes {
    fn default() -> Panes {
        Panes::new()
    }
}

impl Drop for Panes {
    fn drop(&mut self) {
        let _ = self.wt_run(&["pane", "stop"]);
        let _ = Command::new("tmux").arg("kill-server").env("TMUX_TMPDIR", &self.xdg).env_remove("TMUX").output();
    }
}

pub fn raw_call(stream: &mut UnixStream, line: &[u8]) -> Value {
    stream.write_all(line).unwrap();
    let mut answer = String::new();
    BufReader::new(stream.try_clone().unwrap()).read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap()
}
