//! Whether a worktree is in use right now, so `--gc` leaves it alone: a live pane (the pane
//! supervisor's list), a process whose working directory, executable or an open file is inside
//! it (a build, an agent started outside wt, a server running `target/debug/server` from `/`),
//! or a port of its lease that something listens on. Read for all worktrees at once: every
//! process's `cwd`, `exe` and `fd/*` links in /proc (those of processes this user may read),
//! and the listening sockets of /proc/net/tcp and tcp6.
//!
//! Not seen: the same directory reached through a bind mount or another path (paths are
//! compared, not inodes), files a process has mapped but closed, other users' processes, UDP
//! and unix sockets, and database leases.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use wt_common::git::repo::Repo;
use wt_common::ledger::Entry;

/// How a process uses a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Cwd,
    Exe,
    Open,
}

#[derive(Debug, Default)]
pub struct Busy {
    /// (pid, how, path) for every process this user can see, but this one.
    uses: Vec<(i32, Use, PathBuf)>,
    listening: HashSet<u16>,
}

impl Busy {
    pub fn scan() -> Busy {
        let uses = Self::uses();
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
        Busy { uses, listening }
    }

    /// Every process's working directory, executable and open files (links read, never
    /// followed), but this process's.
    fn uses() -> Vec<(i32, Use, PathBuf)> {
        let me = std::process::id() as i32;
        let mut uses = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
            if pid == me {
                continue;
            }
            let proc = e.path();
            for (link, how) in [("cwd", Use::Cwd), ("exe", Use::Exe)] {
                if let Ok(to) = std::fs::read_link(proc.join(link)) {
                    uses.push((pid, how, to));
                }
            }
            for fd in std::fs::read_dir(proc.join("fd")).into_iter().flatten().flatten() {
                if let Ok(to) = std::fs::read_link(fd.path()) {
                    // Sockets, pipes and the like read `socket:[123]`: no path.
                    if to.is_absolute() {
                        uses.push((pid, Use::Open, to));
                    }
                }
            }
        }
        uses
    }

    /// A process using something at or under `path` (its working directory, executable or an
    /// open file), as a `why`; `None` when there is none. Read afresh from /proc.
    pub fn user_of(path: &Path) -> Option<String> {
        Self::uses().iter().find(|(_, _, p)| p.starts_with(path)).map(describe)
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
        if let Some(u) = self.uses.iter().find(|(_, _, p)| p.starts_with(path)) {
            return Some(describe(u));
        }
        let block = entry.and_then(wt_common::ledger::lease::block_of)?;
        let port = block.ports().find(|p| self.listening.contains(p))?;
        Some(format!("port {port} of its lease is listened on"))
    }
}

fn describe((pid, how, p): &(i32, Use, PathBuf)) -> String {
    match how {
        Use::Cwd => format!("process {pid} runs in {}", p.display()),
        Use::Exe => format!("process {pid} runs {}", p.display()),
        Use::Open => format!("process {pid} has {} open", p.display()),
    }
}
