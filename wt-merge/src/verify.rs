//! Verification: the result checked out in a scratch worktree under the state dir, the verify
//! command run there as its own process group (with the worktree's env and the timeout), the
//! scratch worktree removed. A killed wt-merge leaves scratch worktrees behind only until the
//! next run, which removes them first (`sweep`): while one wt-merge holds the queue lock, every
//! scratch worktree that exists is stale.

use std::path::{Path, PathBuf};
use std::time::Duration;

use wt_common::lock::FileLock;
use wt_common::process::{self, Spec};
use wt_common::repo::Repo;
use wt_common::{failpoint, git, Error};

/// How a verification ended.
#[derive(Debug)]
pub struct Verdict {
    pub passed: bool,
    pub exit: Option<i32>,
    pub timed_out: bool,
    pub tail: Vec<String>,
    pub log: PathBuf,
    pub duration: Duration,
}

impl Verdict {
    /// The record's `verify` block: what ran, how it ended, where its output is.
    pub fn to_json(&self, cmd: &str) -> serde_json::Value {
        serde_json::json!({"cmd": cmd, "passed": self.passed, "exit": self.exit, "timed_out": self.timed_out,
            "duration_ms": self.duration.as_millis() as u64, "tail": self.tail, "log": self.log})
    }
}

pub fn scratch_dir(repo: &Repo) -> PathBuf {
    repo.state_dir().join("scratch")
}

/// Runs the verification command in a scratch worktree at `commit`. The scratch worktree is
/// registered under the worktree lock and checked out outside it, by a `git reset --hard` of our
/// own (the one `git worktree add` starts is git's child: it would outlive this process) noted
/// with the queue's lock, so the next queue waits for it before it sweeps what this one left.
#[allow(clippy::too_many_arguments)]
pub fn verify(
    repo: &Repo,
    queue: &FileLock,
    name: &str,
    commit: &str,
    cmd: &str,
    env: &[(String, String)],
    timeout: Option<Duration>,
    groups: &process::Groups,
) -> Result<Verdict, Error> {
    let dir = scratch_dir(repo).join(format!("{name}-{}", &commit[..commit.len().min(12)]));
    {
        // Killed with this process, git can still write the admin dir for a moment (the lock is
        // released before its parent-death signal is sent): noted with the lock, it is waited
        // for by the next holder, whose sweep then sees all it wrote.
        let lock = repo.worktree_lock()?;
        let mut add = git::command(repo.git_dir());
        add.args(["worktree", "add", "--detach", "--no-checkout", "--quiet"]).arg(&dir).arg(commit);
        git::output_under(&mut add, &lock)?;
    }
    let mut reset = git::command(&dir);
    reset.args(["reset", "--hard", "--no-recurse-submodules", "--quiet"]);
    let reset = git::output_under(&mut reset, queue);
    queue.forget_children(); // the reset has ended
    let checked_out = reset.and_then(|_| repo.run_post_checkout_hook(&dir, commit));
    if let Err(e) = checked_out {
        remove_scratch(repo, &dir);
        return Err(e);
    }
    failpoint::hit("after-scratch");
    let logs = repo.state_dir().join("logs").join(name);
    std::fs::create_dir_all(&logs).map_err(|e| Error::io(logs.display(), e))?;
    let log = logs.join(format!("verify-{}.log", &commit[..commit.len().min(12)]));
    let mut command = std::process::Command::new("sh");
    command.args(["-c", cmd]).current_dir(&dir);
    for (k, v) in env {
        command.env(k, v);
    }
    command.env("WT_PATH", &dir).env("WT_MERGE_COMMIT", commit);
    let spec = Spec { name, log: log.clone(), timeout, grace: Duration::from_secs(2), echo: false };
    let outcome = process::run(command, &spec, groups);
    remove_scratch(repo, &dir);
    let outcome = outcome?;
    Ok(Verdict {
        passed: outcome.status.success() && !outcome.timed_out,
        exit: outcome.status.code(),
        timed_out: outcome.timed_out,
        tail: outcome.tail,
        log,
        duration: outcome.duration,
    })
}

fn remove_scratch(repo: &Repo, dir: &Path) {
    let removed = repo.worktree_lock().and_then(|lock| {
        let mut remove = git::command(repo.git_dir());
        remove.args(["worktree", "remove", "--force"]).arg(dir);
        git::output_under(&mut remove, &lock)
    });
    if removed.is_err() {
        let _ = wt_common::fsutil::remove_any(dir);
    }
}

/// Removes every scratch worktree a killed wt-merge left: its admin dir and its directory.
/// Call only while holding the queue lock.
pub fn sweep(repo: &Repo) -> Result<(), Error> {
    let scratch = scratch_dir(repo);
    let _lock = repo.worktree_lock()?;
    if let Ok(admins) = std::fs::read_dir(repo.common_dir.join("worktrees")) {
        for admin in admins.flatten().map(|e| e.path()) {
            let stale = match std::fs::read_to_string(admin.join("gitdir")) {
                Ok(gitdir) if Path::new(gitdir.trim_end()).starts_with(&scratch) => true,
                // A `git worktree add` of a scratch worktree killed while it wrote `gitdir`
                // (git's "initializing" lock is still there), or before.
                Ok(gitdir) => {
                    is_scratch_name(&admin) && wt_common::worktree::killed_writing_gitdir(&admin, &gitdir, &scratch)
                }
                Err(_) => is_scratch_name(&admin),
            };
            if stale {
                let _ = wt_common::fsutil::remove_any(&admin);
            }
        }
    }
    let _ = wt_common::fsutil::remove_any(&scratch);
    Ok(())
}

/// Scratch worktrees are named `<name>-<12 hex digits>` (git may add a number, a digit, to the
/// admin dir's name).
fn is_scratch_name(admin: &Path) -> bool {
    let name = admin.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let hex = name.rsplit_once('-').map(|(_, h)| h).unwrap_or_default();
    hex.len() >= 12 && hex.chars().all(|c| c.is_ascii_hexdigit())
}
