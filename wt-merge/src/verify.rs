//! Verification: the merge result checked out in a worktree made like an agent's
//! (`scratch`), the verify command run there as its own process group with that worktree's
//! env and the timeout, the worktree removed again. When a shared directory could not be
//! placed from the store (its lock files differ), `[merge] prepare` installs it first; without
//! one the verification is not run: its result could not be trusted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use wt_common::git::repo::Repo;
use wt_common::proc::process::{self, Spec};
use wt_common::{proc::failpoint, Error};

use crate::scratch::{self, Like, Scratch};
use wt_common::confine::via::{self, Via};
use wt_common::record::excerpt;

/// How a verification ended.
#[derive(Debug)]
pub struct Verdict {
    pub passed: bool,
    /// `prepare` when `[merge] prepare` failed, else `verify`.
    pub stage: &'static str,
    pub exit: Option<i32>,
    pub timed_out: bool,
    /// The timeout that stopped it, when one did.
    pub stopped_after: Option<Duration>,
    pub tail: Vec<String>,
    pub log: PathBuf,
    pub duration: Duration,
    /// What the verification worktree was given (`merge.verify.env`).
    pub env: Value,
    /// With `--confine`: what the sandbox enforced (`merge.verify.confined`, wt-run's
    /// `run.confined`).
    pub confined: Option<Value>,
}

impl Verdict {
    /// The record's `verify` block: what ran, how it ended, where its output is, what the
    /// worktree it ran in was given.
    pub fn to_json(&self, cmd: &str) -> Value {
        let mut v = json!({"cmd": cmd, "passed": self.passed, "exit": self.exit, "timed_out": self.timed_out,
            "duration_ms": self.duration.as_millis() as u64, "tail": self.tail, "log": self.log, "env": self.env});
        if self.stage != "verify" {
            v["stage"] = json!(self.stage);
        }
        if let Some(c) = &self.confined {
            v["confined"] = c.clone();
        }
        if !self.passed {
            // The failing tests and their assertions, as wt-watch would feed them to an agent;
            // stopped by the timeout, that first, and then how far it got (its last lines when no
            // runner is recognised).
            let excerpt = match self.stopped_after {
                Some(after) => excerpt::of_log_timed_out(&self.log, excerpt::READ_BYTES, after),
                None => excerpt::of_log(&self.log, excerpt::READ_BYTES),
            };
            if let Some(excerpt) = excerpt {
                v["excerpt"] = json!(excerpt);
            }
        }
        v
    }
}

/// What a verification came to.
#[derive(Debug)]
pub enum Outcome {
    Ran(Verdict),
    /// Shared directories whose dependencies differ and no `[merge] prepare` to install them:
    /// not verified. `placed` is `merge.verify.env`.
    DepsDiffer {
        placed: Value,
        dirs: Vec<(String, String)>,
    },
}

/// The gate every candidate passes: the command, what installs differing dependencies, the
/// timeout.
#[derive(Debug, Clone)]
pub struct Gate {
    pub cmd: String,
    pub prepare: Option<String>,
    pub timeout: Option<Duration>,
    /// `--confine`: prepare and verify run through wt-run's sandbox in the verification worktree.
    pub confine: Option<Via>,
    /// The build governor: a verification waits for a job slot (`--no-governor`, `[governor]`).
    pub governor: wt_common::proc::governor::Settings,
}

/// Runs the verification of candidate `name` at `commit` in a worktree made like `like`.
pub fn verify(
    repo: &Repo,
    name: &str,
    commit: &str,
    like: &Like,
    gate: &Gate,
    groups: &process::Groups,
) -> Result<Outcome, Error> {
    let mut scratch = scratch::provision(repo, name, commit, like)?;
    failpoint::hit("after-scratch");
    scratch.path_dropped = foreign_path_entries(repo, &scratch.path);
    scratch.placed["path_dropped"] = json!(scratch.path_dropped);
    let outcome = run_in(repo, name, commit, &scratch, gate, groups);
    scratch::dispose(repo, &scratch.name);
    outcome
}

fn run_in(
    repo: &Repo,
    name: &str,
    commit: &str,
    scratch: &Scratch,
    gate: &Gate,
    groups: &process::Groups,
) -> Result<Outcome, Error> {
    let logs = repo.state_dir().join("logs").join(name);
    std::fs::create_dir_all(&logs).map_err(|e| Error::io(logs.display(), e))?;
    let short = &commit[..commit.len().min(12)];
    // Prepare and verify are one job, in the slot the batch took before its turn at the queue
    // (`slot::hold`), held to the end.
    let lease = crate::slot::held();
    let job = (gate, lease.as_ref());
    let started = std::time::Instant::now();
    if !scratch.not_shared.is_empty() {
        let Some(prepare) = &gate.prepare else {
            return Ok(Outcome::DepsDiffer { placed: scratch.placed.clone(), dirs: scratch.not_shared.clone() });
        };
        let log = logs.join(format!("prepare-{short}.log"));
        let ran = run_one(name, prepare, scratch, commit, &log, job, groups)?;
        if !ran.0.status.success() || ran.0.timed_out {
            return Ok(Outcome::Ran(verdict(ran, "prepare", log, started.elapsed(), scratch, gate.timeout)));
        }
    }
    let log = logs.join(format!("verify-{short}.log"));
    let ran = run_one(name, &gate.cmd, scratch, commit, &log, job, groups)?;
    Ok(Outcome::Ran(verdict(ran, "verify", log, started.elapsed(), scratch, gate.timeout)))
}

fn verdict(
    (ran, confined): (process::Outcome, Option<Value>),
    stage: &'static str,
    log: PathBuf,
    took: Duration,
    scratch: &Scratch,
    timeout: Option<Duration>,
) -> Verdict {
    // Confined, wt-run's record says how the command ended (wt-run exits with its code).
    let theirs = confined.as_ref().and_then(|run| run.get("exit")).and_then(Value::as_i64).map(|c| c as i32);
    Verdict {
        passed: ran.status.success() && !ran.timed_out,
        stage,
        exit: theirs.or(ran.status.code()),
        timed_out: ran.timed_out,
        stopped_after: timeout.filter(|_| ran.timed_out),
        tail: ran.tail,
        log,
        duration: took,
        env: scratch.placed.clone(),
        confined: confined.and_then(|run| run.get("confined").cloned()),
    }
}

/// The entries of this process's `PATH` that lie inside the main worktree or another worktree
/// (an activated `.venv/bin`): the verify command runs without them, and the record says so.
fn foreign_path_entries(repo: &Repo, scratch: &Path) -> Vec<String> {
    let roots: Vec<PathBuf> = repo
        .worktrees()
        .unwrap_or_default()
        .into_iter()
        .filter(|w| w.path != scratch)
        .flat_map(|w| [std::fs::canonicalize(&w.path).ok(), Some(w.path)])
        .flatten()
        .collect();
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .filter(|entry| entry.is_absolute() && roots.iter().any(|r| entry.starts_with(r)))
        .map(|entry| entry.to_string_lossy().into_owned())
        .collect()
}

/// `sh -c CMD` in the verification worktree with its lease's env, as its own process group;
/// with `--confine`, through `wt-run --confine --passthrough` there (its output, exit code,
/// timeout and group stay ours), and then wt-run's `run` (with `confined`) comes back too.
fn run_one(
    name: &str,
    cmd: &str,
    scratch: &Scratch,
    commit: &str,
    log: &Path,
    (gate, lease): (&Gate, Option<&wt_common::proc::governor::Lease>),
    groups: &process::Groups,
) -> Result<(process::Outcome, Option<Value>), Error> {
    let mut env: Vec<(String, String)> = scratch.vars.clone();
    // An activated virtualenv of another worktree would run that worktree's code.
    let dropped = &scratch.path_dropped;
    if !dropped.is_empty() {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let kept = std::env::split_paths(&path).filter(|p| !dropped.iter().any(|d| Path::new(d) == p));
        let kept = std::env::join_paths(kept).unwrap_or_default();
        env.push(("PATH".into(), kept.to_string_lossy().into_owned()));
    }
    env.push(("WT_PATH".into(), scratch.path.display().to_string()));
    env.push(("WT_MERGE_NAME".into(), name.to_string()));
    env.push(("WT_MERGE_COMMIT".into(), commit.to_string()));
    // A hang under pytest names its test (`record::running`).
    wt_common::record::running::asking_pytest(&mut env, gate.timeout);
    let argv = ["sh", "-c", cmd].map(String::from);
    let record = PathBuf::from(format!("{}.run.json", log.display()));
    let mut command = match &gate.confine {
        Some(via) => via.command(&via.argv(&scratch.path, &scratch.name, &record, &env, &argv), &env),
        None => {
            let mut c = std::process::Command::new("sh");
            c.args(&argv[1..]).envs(env.iter().map(|(k, v)| (k, v)));
            c
        }
    };
    command.current_dir(&scratch.path);
    if !dropped.is_empty() {
        command.env_remove("VIRTUAL_ENV");
    }
    match (lease, &gate.confine) {
        (Some(lease), None) => lease.apply(&mut command),
        // The confined run's wt-run lets the FIFO through its sandbox, by path.
        (Some(lease), Some(_)) => drop(command.envs(lease.env().iter().map(|(k, v)| (k, v)))),
        (None, _) => {}
    }
    let spec = Spec { name, log: log.to_path_buf(), timeout: gate.timeout, grace: Duration::from_secs(2), echo: false };
    let live = crate::live::Line::start(name, log);
    let outcome = process::run(command, &spec, groups);
    live.stop();
    let outcome = outcome?;
    let confined = match &gate.confine {
        Some(_) => match via::finish(&record)? {
            Some(run) => Some(run),
            None if outcome.timed_out => None,
            None => {
                return Err(Error::failed(
                    "confine-failed",
                    format!("wt-run --confine ended without a record ({}); see {}", outcome.status, log.display()),
                ))
            }
        },
        None => None,
    };
    Ok((outcome, confined))
}
