//! The merge queue: each record as it arrives. The target only ever moves to a commit whose
//! verification passed, and only from the commit the verification was built on
//! (compare-and-swap); if someone moved it meanwhile, the branch is merged again onto the new
//! tip and verified again. Before it moves, `refs/wt/backup/<name>` keeps where it was, and
//! `refs/wt/merged/<name>` where it went, so `--undo` can go back.

use serde_json::{json, Map, Value};
use wt_common::ledger::LedgerFile;
use wt_common::repo::Repo;
use wt_common::{failpoint, git, Error, Record};

use crate::strategy::{self, Built};
use crate::verify::{self, Gate};

/// How many times a merge is redone because the target moved under it.
const RETRIES: usize = 5;

#[derive(Debug)]
pub struct Queue<'a> {
    pub repo: &'a Repo,
    pub ledger: &'a LedgerFile,
    pub into: String,
    pub strategy: String,
    pub progress: &'a wt_common::progress::Progress,
    /// `--verify` (or `[merge] verify`) with what goes with it; `None`: a candidate must bring
    /// its own proof (a record of a green test of its tip), or `unverified` be set.
    pub gate: Option<Gate>,
    /// `--unverified`: merge a candidate that nothing proved green, and say so.
    pub unverified: bool,
    /// `--allow-gate-change`: a candidate may change `[merge]` or `[watch]` of wt.toml.
    pub allow_gate_change: bool,
    pub cleanup: bool,
    /// The verification's process group while it runs, for Ctrl-C and SIGTERM to end.
    pub groups: wt_common::process::Groups,
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
            if !self.allow_gate_change {
                let sections = crate::gate::changed(dir, &old, &commit)?;
                if !sections.is_empty() {
                    let what = sections.join(" and ");
                    let what = if what.starts_with('[') { format!("{what} of wt.toml") } else { what };
                    let why = format!(
                        "it changes {what}, which judges every later merge; a person merges it with --allow-gate-change"
                    );
                    return Ok((status("gate-changed", &[("reason", json!(why))]), true));
                }
            }
            let (verified_by, verified) = match &self.gate {
                Some(gate) => match self.verify(rec, &commit, gate)? {
                    Ok(v) => (json!("wt-merge --verify"), Some(v)),
                    Err(failed) => return Ok((failed, true)),
                },
                None => match proof(dir, rec, &self.into, &head, &commit) {
                    Ok(by) => (json!(by), None),
                    Err(_) if self.unverified => (Value::Null, None),
                    Err(why) => return Ok((status("untested", &[("reason", json!(why))]), true)),
                },
            };
            failpoint::hit("before-update");
            match self.move_target(&rec.name, &old, &commit)? {
                Moved::Yes => {
                    let mut done = status("merged", &[("commit", json!(commit)), ("previous", json!(old))]);
                    done.insert("verified".into(), json!(!verified_by.is_null()));
                    done.insert("verified_by".into(), verified_by);
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

    /// Verifies the merge result `commit` of `rec`: the `verify` block when it passed, else the
    /// `merge` key that says why not.
    fn verify(&self, rec: &Record, commit: &str, gate: &Gate) -> Result<Result<Value, Map<String, Value>>, Error> {
        self.progress.step(&rec.name, &format!("verifying {} with `{}`", &commit[..commit.len().min(10)], gate.cmd));
        let entry = self.ledger.read()?.worktrees.get(&rec.name).cloned();
        let like = crate::scratch::Like::of(self.repo, rec, entry.as_ref());
        Ok(match verify::verify(self.repo, &rec.name, commit, &like, gate, &self.groups)? {
            verify::Outcome::Ran(verdict) if verdict.passed => Ok(verdict.to_json(&gate.cmd)),
            verify::Outcome::Ran(verdict) => {
                Err(status("verify-failed", &[("commit", json!(commit)), ("verify", verdict.to_json(&gate.cmd))]))
            }
            verify::Outcome::DepsDiffer { placed, dirs } => {
                let what: Vec<String> = dirs.iter().map(|(d, why)| format!("{d} ({why})")).collect();
                let why = format!(
                    "its dependencies differ from the main worktree's: {}; set [merge] prepare (e.g. `npm ci`) to install them in the verification worktree",
                    what.join(", ")
                );
                Err(status("deps-differ", &[("reason", json!(why)), ("verify", json!({"env": placed}))]))
            }
        })
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

/// Why a verification worktree's record is not merged.
pub const NOT_A_CANDIDATE: &str = "a verification worktree of wt-merge, not a candidate";

/// Records that say their work failed are not merged: an error, a red watch, a failed run; and
/// a verification worktree's record.
fn skip_reason(rec: &Record) -> Option<String> {
    if crate::scratch::is_scratch_name(&rec.name) && rec.error.is_none() {
        return Some(NOT_A_CANDIDATE.into());
    }
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

/// Without `--verify`, what proves the merge result `commit` of branch tip `head` green: a
/// record of wt-run or wt-watch that tested exactly `head` on a clean tree, when the merge
/// result has the tree that was tested. The tool that proved it, or why nothing did.
fn proof(dir: &std::path::Path, rec: &Record, into: &str, head: &str, commit: &str) -> Result<&'static str, String> {
    let how = "verify it with --verify CMD (or [merge] verify), or merge it untested with --unverified";
    let short = |c: &str| c[..c.len().min(10)].to_string();
    let run = rec.key("run").filter(|r| r.get("head").is_some()).map(|r| ("wt-run", r, r.get("head")));
    let watch = rec.key("watch").filter(|w| w.get("commit").is_some()).map(|w| ("wt-watch", w, w.get("commit")));
    let Some((tool, key, tested)) = watch.or(run) else {
        return Err(format!("nothing tested it: the record names no commit that a run or a watch tested; {how}"));
    };
    let tested = tested.and_then(Value::as_str).unwrap_or_default();
    if key.get("dirty") != Some(&json!(false)) {
        return Err(format!("{tool} tested uncommitted changes on {}, not a commit; {how}", short(tested)));
    }
    if tested != head {
        return Err(format!(
            "{tool} tested {}, but the branch is at {} (committed after the test?); {how}",
            short(tested),
            short(head)
        ));
    }
    let trees = git::run(dir, ["rev-parse", &format!("{head}^{{tree}}"), &format!("{commit}^{{tree}}")])
        .map_err(|e| e.message)?;
    let mut trees = trees.lines();
    if trees.next() != trees.next() {
        return Err(format!(
            "{tool} tested the branch tip, but {into} has moved since: the merge result {} was not tested; {how}",
            short(commit)
        ));
    }
    Ok(tool)
}
