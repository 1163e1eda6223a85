//! Whether a worktree is in use right now, so `--gc` leaves it alone: a live pane (the pane
//! supervisor's list), a process whose working directory is inside it (a build, a server, an
//! agent started outside wt), or a port of its lease that something listens on. Read once for
//! all worktrees: every process's `cwd` link in /proc, and the listening sockets of
//! /proc/net/tcp and tcp6.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use wt_common::git::repo::Repo;
use wt_common::ledger::Entry;

#[derive(Debug, Default)]
pub struct Busy {
    /// (pid, working directory) of every process this user can see, but this one.
    cwds: Vec<(i32, PathBuf)>,
    listening: HashSet<u16>,
}

impl Busy {
    pub fn scan() -> Busy {
        let me = std::process::id() as i32;
        let mut cwds = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
            if pid == me {
                continue;
            }
            if let Ok(cwd) = std::fs::read_link(e.path().join("cwd")) {
                cwds.push((pid, cwd));
            }
        }
        let mut listening = HashSet::new();
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let Ok(text) = std::fs::read_to_string(table) else { continue };
            for line in text.lines().skip(1) {
                let f: Vec<&str> = line.split_whitespace().collect();
                // local_address is HEXIP:HEXPORT; state 0A is LISTEN.
                let (Some(local), Some("0A")) = (f.get(1), f.get(3).copied()) else { continue };
                if let Some(port) = local.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok()) {
                    listening.insert(port);
                }
            }
        }
        Busy { cwds, listening }
    }

    /// Why the worktree at `path` is in use, or `None`.
    pub fn why(&self, repo: &Repo, path: &Path, entry: Option<&Entry>) -> Option<String> {
        match wt_common::proc::panes::running_in(repo, path) {
            Ok(panes) if !panes.is_empty() => {
                return Some(format!("pane '{}' (pid {}) runs in it", panes[0].name, panes[0].pid))
            }
            Ok(_) => {}
            // The supervisor answered oddly: a pane may run there.
            Err(e) => return Some(format!("cannot tell whether a pane runs in it: {}", e.message)),
        }
        if let Some((pid, cwd)) = self.cwds.iter().find(|(_, cwd)| cwd.starts_with(path)) {
            return Some(format!("process {pid} runs in {}", cwd.display()));
        }
        let block = entry.and_then(wt_common::ledger::lease::block_of)?;
        let port = block.ports().find(|p| self.listening.contains(p))?;
        Some(format!("port {port} of its lease is listened on"))
    }
}
