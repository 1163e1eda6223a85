//! git's lock files (`index.lock`, `HEAD.lock`, `refs/heads/<b>.lock`, `config.lock`, …) left
//! by a git that was killed. git never removes another process's lock, and every later git that
//! needs it fails (or, for maintenance, silently skips). Only a provably stale lock is ever
//! removed, judged by who could hold it, never by what else runs on the machine:
//!
//! - **Open**: a process that has the lock among its open files (`/proc/*/fd`) holds it, be it
//!   git, libgit2 or anything else. (Another user's open files are hidden from a user who is
//!   not root; its gits are judged as below.)
//! - **A git of this repository older than the lock**: git also holds a lock it has closed (a
//!   ref transaction writes and closes each ref's lock before it renames them; `git commit`
//!   runs its hooks while its closed `index.lock` waits). So a git process (the program `git`,
//!   or `git-*`) counts when it started before the lock was last written (with a second's
//!   slack: the boot time the start is counted from is known to the second) and works on this
//!   repository: its working directory (where `git -C` takes it) is inside the common dir, the
//!   main worktree or a linked worktree, or its `GIT_DIR`, `GIT_COMMON_DIR`, `GIT_WORK_TREE`,
//!   `--git-dir` or `--work-tree` names one of them, or it has a file under one of them open.
//!   A git of another user's that wt cannot look into counts too, if that user owns the lock
//!   (only its creator's process can have made it); one of another user's that does not own
//!   it cannot have made it.
//!
//! A lock is judged as one file: if the name is found to hold another file after the look
//! (the git that held it finished and another made a new one meanwhile), or just before it is
//! removed, it is left alone (the new one's maker may not yet be among the processes looked
//! at). Only the file that was judged is ever removed, but for the few microseconds between the
//! last look at its name and the unlink.
//!
//! Not counted: processes whose name merely starts with `git` (`gitstatusd` of a shell prompt,
//! which has a lock open only while it writes it, and then counts as *open*), gits of other
//! repositories, and git's own long-lived daemons, which never hold a repository's lock files
//! (`git fsmonitor--daemon`, `git credential-cache--daemon`, `git-credential-*`). A long-lived
//! process of these never makes a lock permanent.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::git::repo::Repo;

/// A process that holds, or may hold, a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: i32,
    /// Its command line (capped), or its name in brackets when that cannot be read.
    pub command: String,
    /// It has the lock open (else: a git of this repository, started before the lock).
    pub open: bool,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.open {
            true => write!(f, "pid {} ({}) has it open", self.pid, self.command),
            false => write!(
                f,
                "pid {} ({}), a git working in this repository since before the lock was written, may hold it",
                self.pid, self.command
            ),
        }
    }
}

/// What is known about a lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// There is no such file.
    Absent,
    /// Nobody holds it: a killed git left it (this file, as first looked at).
    Stale(Identity),
    /// This process holds, or may hold, it.
    Held(Holder),
    /// Another file took its name while it was judged, each time it was: a git is at work on it.
    Replaced,
}

/// Which file a lock is, and as written when judged: another file by its name, or this one
/// written since, is not the file that was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    dev: u64,
    ino: u64,
    mtime: (i64, i64),
    size: u64,
}

impl Identity {
    fn of(meta: &std::fs::Metadata) -> Identity {
        Identity { dev: meta.dev(), ino: meta.ino(), mtime: (meta.mtime(), meta.mtime_nsec()), size: meta.size() }
    }

    /// What is at `path` now: `None` when nothing is.
    fn at(path: &Path) -> Option<Identity> {
        std::fs::symlink_metadata(path).ok().map(|m| Identity::of(&m))
    }
}

/// Why a lock was kept.
#[derive(Debug)]
pub enum Kept {
    Held(Holder),
    /// Another file took its name while it was judged.
    Replaced,
    /// Stale, but removing it failed.
    CannotRemove(std::io::Error),
}

impl std::fmt::Display for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kept::Held(holder) => holder.fmt(f),
            Kept::Replaced => write!(f, "it was replaced while wt looked at it, so a git is at work on it"),
            Kept::CannotRemove(e) => write!(f, "nothing holds it, but it cannot be removed: {e}"),
        }
    }
}

/// The lock file as processes name it.
struct Target {
    /// Its path with the directories on the way resolved, as `/proc/*/fd` shows them.
    path: PathBuf,
    uid: u32,
    written: SystemTime,
}

/// How many times a lock whose name took another file while it was judged is judged again.
const LOOKS: usize = 3;

/// Judges the lock at `path`, a lock file of `repo`'s.
pub fn judge(repo: &Repo, path: &Path) -> Verdict {
    for _ in 0..LOOKS {
        let Ok(meta) = std::fs::symlink_metadata(path) else { return Verdict::Absent };
        let verdict = judge_file(repo, path, &meta);
        match verdict {
            // A holder of the file that was looked at: the lock is in use either way.
            Verdict::Held(_) => return verdict,
            // Nobody held that file: stale if it is still there as it was.
            Verdict::Stale(judged) => match Identity::at(path) {
                Some(now) if now == judged => return verdict,
                None => return Verdict::Absent,
                Some(_) => {}
            },
            Verdict::Absent | Verdict::Replaced => {}
        }
    }
    Verdict::Replaced
}

/// Judges the file `meta` describes, as the lock at `path`.
fn judge_file(repo: &Repo, path: &Path, meta: &std::fs::Metadata) -> Verdict {
    let written = meta.modified().unwrap_or_else(|_| SystemTime::now());
    let resolved = match (path.parent().and_then(|d| d.canonicalize().ok()), path.file_name()) {
        (Some(dir), Some(name)) => dir.join(name),
        _ => path.to_path_buf(),
    };
    let target = Target { path: resolved, uid: meta.uid(), written };
    let dirs = repository_dirs(repo);
    let me = std::process::id() as i32;
    let mut git_holder = None;
    for pid in pids().filter(|p| *p != me) {
        let fds = open_files(pid);
        if fds.contains(&target.path) {
            return Verdict::Held(Holder { pid, command: command(pid), open: true });
        }
        if git_holder.is_none() && may_hold_closed(pid, &fds, &target, &dirs) {
            git_holder = Some(Holder { pid, command: command(pid), open: false });
        }
    }
    git_holder.map_or(Verdict::Stale(Identity::of(meta)), Verdict::Held)
}

/// Removes the lock if it is provably stale. `Ok` when the lock is gone (or was never there);
/// a lock a process holds or may hold is left alone, and the error names that process.
pub fn clear(repo: &Repo, path: &Path) -> Result<(), Kept> {
    match judge(repo, path) {
        Verdict::Absent => Ok(()),
        Verdict::Held(holder) => Err(Kept::Held(holder)),
        Verdict::Replaced => Err(Kept::Replaced),
        Verdict::Stale(judged) => {
            crate::proc::failpoint::hit("stale-lock-judged");
            // Only the file that was judged: a new lock by its name has a maker that was not
            // among the processes looked at.
            match Identity::at(path) {
                None => return Ok(()),
                Some(now) if now != judged => return Err(Kept::Replaced),
                Some(_) => {}
            }
            tracing::warn!("removing {}, left by a git that was killed", path.display());
            match std::fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Kept::CannotRemove(e)),
            }
        }
    }
}

/// Locks of the whole repository that a killed git leaves and git never clears: while
/// `objects/maintenance.lock` is there (left by the `git maintenance run --auto` an agent's
/// commit starts), git skips every later maintenance without a word; while `config.lock` is
/// there (`git branch -D` rewrites the config), every config write fails; `packed-refs.lock`
/// blocks deleting branches.
pub const REPOSITORY_LOCKS: &[&str] = &["objects/maintenance.lock", "config.lock", "packed-refs.lock"];

/// Removes those of `REPOSITORY_LOCKS` that are provably stale (see `clear`). Costs a `stat`
/// each when there are none.
pub fn sweep_repository(repo: &Repo) {
    for lock in REPOSITORY_LOCKS {
        if let Err(kept) = clear(repo, &repo.common_dir.join(lock)) {
            tracing::debug!("{lock} kept: {kept}");
        }
    }
}

/// The directories a git working on `repo` works in: the common dir, the main worktree and
/// every linked worktree git has registered (from `<common dir>/worktrees/*/gitdir`).
fn repository_dirs(repo: &Repo) -> Vec<PathBuf> {
    let real = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let mut dirs = vec![real(&repo.common_dir)];
    dirs.extend(repo.main_worktree.as_deref().map(real));
    if let Ok(admins) = std::fs::read_dir(repo.common_dir.join("worktrees")) {
        for admin in admins.flatten() {
            let Some(gitdir) = crate::fs::read_small(&admin.path().join("gitdir")).text() else { continue };
            let dot_git = PathBuf::from(gitdir.trim_end_matches(['\n', '\r']));
            if let Some(worktree) = dot_git.parent().filter(|w| w.is_absolute()) {
                dirs.push(real(worktree));
            }
        }
    }
    dirs
}

/// The processes running now.
fn pids() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
}

/// What the open files of `pid` link to (a file's path; `<path> (deleted)` once it is
/// unlinked, its new path once renamed); empty when they cannot be read (another user's
/// process, or one gone). So an open file that links to a lock's path is the file by that name.
fn open_files(pid: i32) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    entries.flatten().filter_map(|e| std::fs::read_link(e.path()).ok()).collect()
}

/// Whether `pid` is a git that may hold the lock without having it open: a git of this
/// repository that started before the lock was last written.
fn may_hold_closed(pid: i32, fds: &[PathBuf], target: &Target, dirs: &[PathBuf]) -> bool {
    let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else { return false };
    let comm = comm.trim_end();
    if !(comm == "git" || comm.starts_with("git-")) || comm.starts_with("git-credential") {
        return false;
    }
    let Some(started) = crate::proc::process::started_at(pid) else { return false };
    if started > target.written + Duration::from_secs(1) {
        return false; // started after the lock was made: it did not make it
    }
    if fsuid(pid).is_some_and(|uid| uid != target.uid) {
        return false; // only its creator's process can have made it
    }
    let args = cmdline(pid);
    if args.iter().any(|a| matches!(a.as_bytes(), b"fsmonitor--daemon" | b"credential-cache--daemon")) {
        return false;
    }
    let cwd = match std::fs::read_link(format!("/proc/{pid}/cwd")) {
        Ok(cwd) => cwd,
        // Not ours to look into, but owned by the lock's owner: it may work anywhere.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return true,
        Err(_) => return false, // gone
    };
    let inside = |p: &Path| dirs.iter().any(|d| p.starts_with(d));
    if inside(&cwd) || fds.iter().any(|link| inside(link)) {
        return true;
    }
    named_dirs(pid, &args).iter().map(|d| cwd.join(d)).any(|d| inside(&crate::fs::lexical(&d)))
}

/// The directories a git is pointed at by its environment and its options.
fn named_dirs(pid: i32, args: &[OsString]) -> Vec<PathBuf> {
    let mut named = Vec::new();
    if let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) {
        for var in environ.split(|b| *b == 0) {
            for key in [&b"GIT_DIR="[..], b"GIT_COMMON_DIR=", b"GIT_WORK_TREE="] {
                if let Some(value) = var.strip_prefix(key).filter(|v| !v.is_empty()) {
                    named.push(PathBuf::from(std::ffi::OsStr::from_bytes(value)));
                }
            }
        }
    }
    let mut args = args.iter().skip(1).map(|a| a.as_bytes());
    while let Some(arg) = args.next() {
        for option in [&b"--git-dir"[..], b"--work-tree"] {
            if arg == option {
                named.extend(args.clone().next().map(|v| PathBuf::from(std::ffi::OsStr::from_bytes(v))));
            } else if let Some(value) = arg.strip_prefix(option).and_then(|r| r.strip_prefix(b"=")) {
                named.push(PathBuf::from(std::ffi::OsStr::from_bytes(value)));
            }
        }
    }
    named
}

/// The file-system user id of `pid`, which owns the files it creates.
fn fsuid(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uids = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    uids.split_whitespace().nth(3)?.parse().ok()
}

fn cmdline(pid: i32) -> Vec<OsString> {
    let bytes = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    bytes.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| std::ffi::OsStr::from_bytes(a).to_owned()).collect()
}

/// `pid`'s command line as a person reads it, at most 120 characters.
fn command(pid: i32) -> String {
    let args = cmdline(pid);
    let text = match args.is_empty() {
        true => {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            format!("[{}]", comm.trim_end())
        }
        false => args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "),
    };
    let text: String = text.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
    match text.char_indices().nth(120) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_environment_name_the_directories_a_git_works_on() {
        let args: Vec<OsString> = ["git", "--git-dir", "/r/.git", "--work-tree=../w", "status"].map(Into::into).into();
        let named = named_dirs(-1, &args);
        assert_eq!(named, [PathBuf::from("/r/.git"), PathBuf::from("../w")]);
        assert_eq!(crate::fs::lexical(&Path::new("/a/b").join("../w")), PathBuf::from("/a/w"));
    }

    #[test]
    fn a_holder_is_named_by_pid_and_command() {
        let holder = Holder { pid: 42, command: "git commit -m x".into(), open: true };
        assert_eq!(holder.to_string(), "pid 42 (git commit -m x) has it open");
        let long = command(std::process::id() as i32);
        assert!(long.chars().count() <= 121, "{long}");
    }
}
