//! The merge queue: each record as it arrives. The target only ever moves to a commit whose
//! verification passed, and only from the commit the verification was built on
//! (compare-and-swap); if someone moved it meanwhile, the branch is merged again onto the new
//! tip and verified again. Before it moves, `refs/wt/backup/<name>` keeps where it was, and
//! `refs/wt/merged/<name>` where it went, so `--undo` can go back.

use std::time::Duration;

use serde_json::{json, Map, Value};
use wt_common::ledger::LedgerFile;
use wt_common::repo::Repo;
use wt_common::{failpoint, git, Error, Record};

use crate::strategy::{self, Built};
use crate::verify;
use wt_common::lock::FileLock;

/// How many times a merge is redone because the target moved under it.
const RETRIES: usize = 5;

#[derive(Debug)]
pub struct Queue<'a> {
    pub repo: &'a Repo,
    pub ledger: &'a LedgerFile,
    pub into: String,
    pub strategy: String,
    pub progress: &'a wt_common::progress::Progress,
    pub verify: Option<String>,
    pub timeout: Option<Duration>,
    pub cleanup: bool,
    /// The verification's process group while it runs, for Ctrl-C and SIGTERM to end.
    pub groups: wt_common::process::Groups,
    /// The queue's lock (one merge queue per repository), held for the whole run: the scratch
    /// worktree's checkout is noted with it (`verify::verify`).
    pub lock: &'a FileLock,
}

/// What a merge came to: the `merge` key, and whether the run should count it a failure.
type Outcome = (Map<String, Value>, bool);

impl Queue<'_> {
    /// Merges one record; returns it with `merge` (or `error`) set.
    pub fn merge(&self, mut rec: Record) -> Record {
        let mut m = Map::new();
        m.insert("into".into(), json!(self.into));
        m.insert("strategy".into(), json!(self.strategy));
        match self.merge_inner(&rec) {
            Ok((more, _)) => m.extend(more),
            Err(e) => {
                rec.set_error(crate::TOOL, &e);
                m.insert("status".into(), json!("error"));
            }
        }
        rec.set_key("merge", Value::Object(m));
        rec
    }

    fn merge_inner(&self, rec: &Record) -> Result<Outcome, Error> {
        if let Some(reason) = skip_reason(rec) {
            return Ok((status("skipped", &[("reason", json!(reason))]), false));
        }
        let branch = rec
            .branch
            .clone()
            .ok_or_else(|| Error::failed("no-branch", format!("'{}' has no branch to merge", rec.name)))?;
        let dir = self.repo.git_dir();
        // A confined run's commits reach its branch when published: before reading it.
        wt_common::confine_store::publish(&self.repo.common_dir, &rec.name)?;
        let head = git::run(dir, ["rev-parse", "--verify", "-q", &format!("refs/heads/{branch}")])
            .map_err(|_| Error::failed("no-such-branch", format!("branch {branch} no longer exists")))?;
        for _ in 0..RETRIES {
            crate::locks::clear_stale(self.repo, &self.into)?;
            let old = git::run(dir, ["rev-parse", "--verify", &format!("refs/heads/{}", self.into)])?;
            // A rebased or squashed branch is not an ancestor of the target once merged, but
            // replaying it again would only add empty commits: it is already in (as after a
            // crash). A merge commit records the branch's history, so only ancestry counts there.
            let copies = matches!(self.strategy.as_str(), "rebase" | "squash");
            if strategy::is_ancestor(dir, &head, &old) || (copies && strategy::brings_nothing(dir, &old, &head)) {
                return Ok((
                    status("skipped", &[("reason", json!(format!("{branch} is already in {}", self.into)))]),
                    false,
                ));
            }
            let commit = match strategy::build(dir, &self.strategy, &self.into, &branch, &old, &head)? {
                Built::Conflict(paths) => return Ok((status("conflict", &[("conflicts", json!(paths))]), true)),
                Built::NotFastForward => {
                    let why = format!(
                        "{} has commits {branch} lacks; a fast-forward is impossible (use --strategy merge or rebase)",
                        self.into
                    );
                    return Ok((status("skipped", &[("reason", json!(why))]), true));
                }
                Built::Commit(c) => c,
            };
            let mut verified = None;
            if let Some(cmd) = &self.verify {
                self.progress.step(&rec.name, &format!("verifying {} with `{cmd}`", &commit[..commit.len().min(10)]));
                let verdict = verify::verify(
                    self.repo,
                    self.lock,
                    &rec.name,
                    &commit,
                    cmd,
                    &verify_env(rec),
                    self.timeout,
                    &self.groups,
                )?;
                let v = verdict.to_json(cmd);
                if !verdict.passed {
                    return Ok((status("verify-failed", &[("commit", json!(commit)), ("verify", v)]), true));
                }
                verified = Some(v);
            }
            failpoint::hit("before-update");
            match self.move_target(&rec.name, &old, &commit)? {
                Moved::Yes => {
                    let mut done = status("merged", &[("commit", json!(commit)), ("previous", json!(old))]);
                    if let Some(v) = verified {
                        done.insert("verify".into(), v);
                    }
                    if self.cleanup {
                        done.insert("cleanup".into(), self.clean_up(rec, &branch));
                    }
                    return Ok((done, false));
                }
                Moved::Dirty(why) => return Ok((status("skipped", &[("reason", json!(why))]), true)),
                Moved::Raced => tracing::info!("{} moved during the merge of {}; merging again", self.into, rec.name),
            }
        }
        Err(Error::failed("target-busy", format!("{} kept moving; gave up after {RETRIES} tries", self.into)))
    }

    /// Moves the target from `old` to `new`, or reports why not. When the target is checked out
    /// in a worktree, that worktree is updated with it, and only when it is clean.
    fn move_target(&self, name: &str, old: &str, new: &str) -> Result<Moved, Error> {
        let dir = self.repo.git_dir();
        let checked_out = crate::checkout::of(self.repo, &self.into)?;
        if let Some(wt) = &checked_out {
            if crate::checkout::is_dirty(self.repo, wt)? {
                return Ok(Moved::Dirty(format!(
                    "{} is checked out at {} with uncommitted changes; commit or stash them, then merge again",
                    self.into,
                    wt.display()
                )));
            }
        }
        git::run(dir, ["update-ref", &format!("refs/wt/backup/{name}"), old])?;
        // Said before the ref moves, so a run killed between the ref and the files can be
        // finished by the next one (`journal::roll_forward`).
        let journal = checked_out.as_ref().map(|wt| crate::journal::write(self.repo, wt, old, new)).transpose()?;
        let msg = format!("wt-merge: {name} into {}", self.into);
        let cas = git::run(dir, ["update-ref", "-m", &msg, &format!("refs/heads/{}", self.into), new, old]);
        if let Err(e) = cas {
            crate::journal::clear(self.repo);
            // Only a target that moved is a race worth merging again; any other refusal would
            // fail the same way every time.
            let now = git::run(dir, ["rev-parse", "--verify", &format!("refs/heads/{}", self.into)])?;
            return if now == old { Err(e) } else { Ok(Moved::Raced) };
        }
        failpoint::hit("after-update");
        git::run(dir, ["update-ref", &format!("refs/wt/merged/{name}"), new])?;
        if let (Some(wt), Some(_)) = (checked_out, journal) {
            // The branch moved under a clean checkout: bring its index and files along, as a
            // fast-forward would.
            crate::checkout::follow(self.repo, &wt, old, new)?;
            crate::journal::clear(self.repo);
        }
        Ok(Moved::Yes)
    }

    /// `--cleanup`: the merged worktree and its branch go, and its leases with them; not while
    /// an agent's pane still runs in it.
    fn clean_up(&self, rec: &Record, branch: &str) -> Value {
        let result = (|| {
            let lock = self.repo.worktree_lock()?;
            if let Some(path) = &rec.path {
                wt_common::panes::end_or_refuse(self.repo, path, false)?;
            }
            wt_common::worktree::remove(
                &lock,
                self.repo,
                self.ledger,
                &rec.name,
                rec.path.as_deref(),
                Some(branch),
                false,
            )
        })();
        match result {
            Ok(()) => json!({"removed": true}),
            Err(e) => json!({"removed": false, "error": e.message}),
        }
    }
}

#[derive(Debug)]
enum Moved {
    Yes,
    Raced,
    Dirty(String),
}

fn status(s: &str, more: &[(&str, Value)]) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("status".into(), json!(s));
    for (k, v) in more {
        m.insert((*k).to_string(), v.clone());
    }
    m
}

/// Records that say their work failed are not merged: an error, a red watch, a failed run.
fn skip_reason(rec: &Record) -> Option<String> {
    if let Some(e) = &rec.error {
        return Some(format!("it carries an error from {}: {}", e.tool, e.message));
    }
    let watch = rec.key("watch");
    if let Some(s) = watch.and_then(|w| w.get("status")).and_then(Value::as_str) {
        if s != "green" {
            // Say what the watch saw: the guarded files an agent changed, or why it gave up.
            let files = watch
                .and_then(|w| w.get("guard_touched"))
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "));
            let why = watch.and_then(|w| w.get("reason")).and_then(Value::as_str);
            return Some(match (files, why) {
                (Some(f), _) => format!("wt-watch says {s}: the agent changed {f}"),
                (None, Some(why)) => format!("wt-watch says {s}: {why}"),
                (None, None) => format!("wt-watch says {s}"),
            });
        }
    }
    let run = rec.key("run");
    if let Some(code) = run.and_then(|r| r.get("exit")).and_then(Value::as_i64) {
        if code != 0 {
            return Some(format!("its run exited {code}"));
        }
    }
    if run.is_some_and(|r| r.get("signal").is_some() || r.get("timed_out") == Some(&json!(true))) {
        return Some("its run did not finish".into());
    }
    None
}

/// The worktree's env for the verify command: WT_* and what wt-env leased it.
fn verify_env(rec: &Record) -> Vec<(String, String)> {
    let mut env = vec![("WT_NAME".to_string(), rec.name.clone())];
    if let Some(b) = &rec.branch {
        env.push(("WT_BRANCH".into(), b.clone()));
    }
    if let Some(vars) = rec.key("env").and_then(|e| e.get("vars")).and_then(Value::as_object) {
        for (k, v) in vars {
            if let (Some(v), false) = (v.as_str(), k == "WT_PATH") {
                env.push((k.clone(), v.to_string()));
            }
        }
    }
    env
}
