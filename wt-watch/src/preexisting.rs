//! Pre-existing failures: a red round's failing tests, run on the worktree's base commit (its
//! ledger `base_commit`), the runner's own narrow way (`narrow::Plan`), in a scratch checkout
//! of the base that is removed afterwards. A test that fails there too is named pre-existing
//! in the feedback, not the agent's bug. Only a run that ended by itself and names the test
//! failing, as the excerpt library reads it, says so; anything else (a checkout that lacks what
//! the suite needs, a run cancelled) says nothing.
//!
//! The scratch checkout is `git worktree add --detach` under `<state>/watch-base/`, with no
//! hooks run; pytest is given the worktree's record of what failed (`.pytest_cache/v/cache/
//! lastfailed`, read as untrusted) so that its `--lf` selects the same tests there. Crash
//! safety: what a killed wt-watch left under that directory is removed by the next one
//! ([`sweep`]), which knows it by the process id in its name.

use std::path::{Path, PathBuf};

use wt_common::git::repo::Repo;
use wt_common::proc::process::Groups;
use wt_common::record::excerpt::Runner;
use wt_common::Error;

use crate::narrow::{self, Plan};
use crate::round::{self, RoundSpec};

/// What to check: `plan`'s tests on `base`.
#[derive(Debug, Clone)]
pub struct Check {
    pub repo: Repo,
    pub name: String,
    pub base: String,
    pub plan: Plan,
    /// The agent's worktree (pytest's record of what failed is copied from it).
    pub worktree: PathBuf,
    pub env: Vec<(String, String)>,
    pub timeout: std::time::Duration,
}

/// For each of the plan's tests, whether it fails on the base too; empty when the run on the
/// base says nothing wt can read.
pub type Results = Vec<(String, bool)>;

fn scratch_root(repo: &Repo) -> PathBuf {
    repo.state_dir().join("watch-base")
}

/// Removes the scratch checkouts a killed wt-watch left behind: those whose name
/// (`<millis>-<pid>-<n>`) names a process that is gone. Another loop's, on the same
/// repository, is its own.
pub fn sweep(repo: &Repo) {
    let root = scratch_root(repo);
    let Ok(entries) = std::fs::read_dir(&root) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let owner = name.split('-').nth(1).and_then(|p| p.parse::<i32>().ok()).filter(|p| *p > 0);
        let alive = owner.is_some_and(|p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok());
        if !alive {
            remove(repo, &e.path());
        }
    }
}

/// Checks out the base in a scratch worktree, runs the plan there, removes the checkout.
pub fn run(check: &Check, groups: &Groups) -> Result<Results, Error> {
    let root = scratch_root(&check.repo);
    std::fs::create_dir_all(&root).map_err(|e| Error::io(root.display(), e))?;
    let dir = root.join(wt_common::record::runlog::unique_stem());
    let result = checkout(&check.repo, &dir, &check.base).and_then(|()| run_in(check, &dir, groups));
    remove(&check.repo, &dir);
    result
}

fn checkout(repo: &Repo, dir: &Path, base: &str) -> Result<(), Error> {
    let _lock = repo.worktree_lock()?;
    let out = wt_common::git::command(repo.root())
        .args(["-c", "core.hooksPath=/dev/null", "worktree", "add", "--detach", "-q"])
        .arg(dir)
        .arg(base)
        .output()
        .map_err(|e| Error::io("git worktree add", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::failed(
            "base-checkout",
            format!("cannot check out the base {base}: {}", String::from_utf8_lossy(&out.stderr).trim()),
        ))
    }
}

fn run_in(check: &Check, dir: &Path, groups: &Groups) -> Result<Results, Error> {
    if check.plan.runner == Runner::Pytest {
        copy_lastfailed(&check.worktree, dir);
    }
    let log_dir = wt_common::record::runlog::log_dir(&check.repo, &check.name)?;
    let spec = RoundSpec {
        name: check.name.clone(),
        cwd: dir.to_path_buf(),
        argv: check.plan.argv.clone(),
        env: check.env.clone(),
        log: log_dir.join(format!("watch-base-{}.log", wt_common::record::runlog::unique_stem())),
        timeout: Some(check.timeout),
        confine: None,
    };
    let fin = round::run(&spec, groups)?;
    let exited = fin.run.get("exit").is_some_and(|e| e.as_i64().is_some_and(|c| c != 0));
    if fin.passed {
        return Ok(check.plan.tests.iter().map(|t| (t.clone(), false)).collect());
    }
    if !exited || fin.timed_out.is_some() {
        return Ok(Vec::new()); // cancelled, killed: nothing known
    }
    let output = narrow::read_run_log(&fin.run);
    Ok(narrow::failing_again(&check.plan, &output)
        .map(|failing| check.plan.tests.iter().map(|t| (t.clone(), failing.contains(t))).collect())
        .unwrap_or_default())
}

/// pytest's record of the tests that failed, from the agent's worktree into the checkout.
fn copy_lastfailed(worktree: &Path, dir: &Path) {
    let rel = Path::new(".pytest_cache/v/cache/lastfailed");
    let Ok(Some(text)) = wt_common::fs::read_untrusted_in(worktree, rel, 4 << 20) else { return };
    let to = dir.join(rel);
    if let Some(parent) = to.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::write(to, text);
}

fn remove(repo: &Repo, dir: &Path) {
    if let Ok(_lock) = repo.worktree_lock() {
        let _ = wt_common::git::command(repo.root()).args(["worktree", "remove", "--force"]).arg(dir).output();
        let _ = std::fs::remove_dir_all(dir);
        let _ = wt_common::git::command(repo.root()).args(["worktree", "prune"]).output();
    } else {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The line a failure's feedback starts with when tests `pre` among its failures are known to
/// fail on the base commit too.
pub fn note(pre: &[String], base: &str) -> Option<String> {
    (!pre.is_empty()).then(|| {
        format!(
            "Pre-existing, not your change: {} also fail{} on the base commit {}.\n\n",
            pre.join(", "),
            if pre.len() == 1 { "s" } else { "" },
            &base[..base.len().min(12)]
        )
    })
}

/// The second message when the check finds pre-existing failures.
pub fn message(name: &str, round: u32, pre: &[String], base: &str) -> String {
    let list = pre.iter().map(|t| format!("  {t}")).collect::<Vec<_>>().join("\n");
    format!(
        "wt-watch: worktree {name}, round {round}: these failing tests also fail on the base commit {} (pre-existing, not your change):\n{list}",
        &base[..base.len().min(12)]
    )
}
