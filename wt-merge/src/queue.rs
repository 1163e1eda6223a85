//! The merge queue: each record as it arrives. The target only ever moves to a commit whose
//! verification passed, and only from the commit the verification was built on
//! (compare-and-swap); if someone moved it meanwhile, the branch is merged again onto the new
//! tip and verified again. Before it moves, `refs/wt/backup/<name>` keeps where it was, and
//! `refs/wt/merged/<name>` where it went, so `--undo` can go back.

use serde_json::{json, Map, Value};
use wt_common::git::repo::Repo;
use wt_common::ledger::LedgerFile;
use wt_common::{git, proc::failpoint, Error, Record};

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
    pub progress: &'a wt_common::record::progress::Progress,
    /// `--verify` (or `[merge] verify`) with what goes with it; `None`: a candidate must bring
    /// its own proof (a record of a green test of its tip), or `unverified` be set.
    pub gate: Option<Gate>,
    /// `--unverified`: merge a candidate that nothing proved green, and say so.
    pub unverified: bool,
    /// `--allow-gate-change`: a candidate may change `[merge]` or `[watch]` of wt.toml.
    pub allow_gate_change: bool,
    pub cleanup: bool,
    /// The verification's process group while it runs, for Ctrl-C and SIGTERM to end.
    pub groups: wt_common::proc::process::Groups,
    /// Set once Ctrl-C or SIGTERM arrived: nothing more is verified or landed.
    pub interrupted: std::sync::Arc<std::sync::OnceLock<i32>>,
}

/// What a merge came to: the `merge` key, and whether the run should count it a failure.
type Outcome = (Map<String, Value>, bool);

/// A record that passed the checks that need no merge: its branch exists, at `head`.
#[derive(Debug)]
struct Candidate {
    rec: Record,
    branch: String,
    head: String,
}

/// A record admitted to the queue, or judged without a merge (skipped, or its branch unreadable).
enum Admitted {
    Ready(Candidate),
    Judged(Record, Result<Outcome, Error>),
}

/// What one candidate makes on top of a tip: a commit to verify, or its outcome already.
enum Step {
    Built(String),
    /// Judged without a verification: a branch already in (fine), a conflict, a fast-forward
    /// that is impossible, a changed gate (failures).
    Done(Outcome),
}

/// A candidate of a batch with the commit it built: `(index, the tip it was built on, commit)`.
type Member = (usize, String, String);

impl Queue<'_> {
    /// Merges one record; returns it with `merge` (or `error`) set.
    pub fn merge(&self, rec: Record) -> Record {
        self.merge_all(vec![rec]).remove(0)
    }

    /// Merges the records of one batch, in order, and returns them with `merge` (or `error`)
    /// set. With a verify command the candidates are merged one on top of the other and the
    /// last result verified once; if that fails the batch is split in halves, each landed (or
    /// split) in turn, until the culprit is alone: the target only ever moves to a verified
    /// commit. Without one, each needs its own proof (`proof`).
    pub fn merge_all(&self, recs: Vec<Record>) -> Vec<Record> {
        // Every record keeps its place; those that need no merge to judge have their outcome.
        let mut cands: Vec<Candidate> = Vec::with_capacity(recs.len());
        let mut results: Vec<Option<Result<Outcome, Error>>> = Vec::with_capacity(recs.len());
        let mut ready = Vec::new();
        for rec in recs {
            if ready.iter().any(|&i: &usize| cands[i].rec.name == rec.name) {
                // Its branch is in this batch already: merged once, reported once as such.
                let why = format!("'{}' is in this batch already", rec.name);
                cands.push(Candidate { rec, branch: String::new(), head: String::new() });
                results.push(Some(Ok((status("skipped", &[("reason", json!(why))]), false))));
                continue;
            }
            let (cand, judged) = match self.candidate(rec) {
                Admitted::Ready(c) => {
                    ready.push(cands.len());
                    (c, None)
                }
                Admitted::Judged(rec, outcome) => {
                    (Candidate { rec, branch: String::new(), head: String::new() }, Some(outcome))
                }
            };
            cands.push(cand);
            results.push(judged);
        }
        match &self.gate {
            Some(gate) => self.land(&ready, &cands, gate, &mut results),
            None => {
                for &i in &ready {
                    results[i] = Some(self.merge_proven(&cands[i]));
                }
            }
        }
        cands
            .into_iter()
            .zip(results)
            .map(|(c, outcome)| self.finish(c.rec, outcome.unwrap_or_else(|| Err(self.busy()))))
            .collect()
    }

    /// The record with its `merge` key (or `error`).
    fn finish(&self, mut rec: Record, outcome: Result<Outcome, Error>) -> Record {
        let mut m = Map::new();
        m.insert("into".into(), json!(self.into));
        m.insert("strategy".into(), json!(self.strategy));
        match outcome {
            Ok((more, _)) => m.extend(more),
            Err(e) => {
                rec.set_error(crate::TOOL, &e);
                m.insert("status".into(), json!("error"));
            }
        }
        rec.set_key("merge", Value::Object(m));
        rec
    }

    fn busy(&self) -> Error {
        Error::failed("target-busy", format!("{} kept moving; gave up after {RETRIES} tries", self.into))
    }

    /// The candidate a record names; or the record back with its outcome, when it is skipped
    /// (`skip_reason`) or its branch cannot be read.
    fn candidate(&self, rec: Record) -> Admitted {
        if let Some(why) = skip_reason(&rec) {
            return Admitted::Judged(rec, Ok((status("skipped", &[("reason", json!(why))]), false)));
        }
        let head = (|| {
            let branch = rec
                .branch
                .clone()
                .ok_or_else(|| Error::failed("no-branch", format!("'{}' has no branch to merge", rec.name)))?;
            // A confined run's commits reach its branch when published: before reading it.
            wt_common::confine::store::publish(&self.repo.common_dir, &rec.name)?;
            let head = git::run(self.repo.git_dir(), ["rev-parse", "--verify", "-q", &format!("refs/heads/{branch}")])
                .map_err(|_| Error::failed("no-such-branch", format!("branch {branch} no longer exists")))?;
            Ok((branch, head))
        })();
        match head {
            Ok((branch, head)) => Admitted::Ready(Candidate { rec, branch, head }),
            Err(e) => Admitted::Judged(rec, Err(e)),
        }
    }

    /// What `c` makes on top of `tip`: nothing when it is in already, a conflict, a fast-forward
    /// that is impossible, a change of the gate; else the commit to verify.
    fn step(&self, c: &Candidate, tip: &str) -> Result<Step, Error> {
        let dir = self.repo.git_dir();
        // A rebased or squashed branch is not an ancestor of the target once merged, but
        // replaying it again would only add empty commits: it is already in (as after a
        // crash). A merge commit records the branch's history, so only ancestry counts there.
        let copies = matches!(self.strategy.as_str(), "rebase" | "squash");
        if strategy::is_ancestor(dir, &c.head, tip) || (copies && strategy::brings_nothing(dir, tip, &c.head)) {
            let why = format!("{} is already in {}", c.branch, self.into);
            return Ok(Step::Done((status("skipped", &[("reason", json!(why))]), false)));
        }
        let commit = match strategy::build(dir, &self.strategy, &self.into, &c.branch, tip, &c.head)? {
            Built::Conflict(paths) => {
                return Ok(Step::Done((status("conflict", &[("conflicts", json!(paths))]), true)))
            }
            Built::NotFastForward => {
                let why = format!(
                    "{} has commits {} lacks; a fast-forward is impossible (use --strategy merge or rebase)",
                    self.into, c.branch
                );
                return Ok(Step::Done((status("skipped", &[("reason", json!(why))]), true)));
            }
            Built::Commit(c) => c,
        };
        if !self.allow_gate_change {
            let sections = crate::gate::changed(dir, tip, &commit)?;
            if !sections.is_empty() {
                let what = sections.join(" and ");
                let what = if what.starts_with('[') { format!("{what} of wt.toml") } else { what };
                let why = format!(
                    "it changes {what}, which judges every later merge; a person merges it with --allow-gate-change"
                );
                return Ok(Step::Done((status("gate-changed", &[("reason", json!(why))]), true)));
            }
        }
        Ok(Step::Built(commit))
    }

    /// Without a verify command: `c` lands when a record proves its tip (`proof`), or with
    /// `--unverified`.
    fn merge_proven(&self, c: &Candidate) -> Result<Outcome, Error> {
        let dir = self.repo.git_dir();
        for _ in 0..RETRIES {
            crate::locks::clear_stale(self.repo, &self.into)?;
            let old = git::run(dir, ["rev-parse", "--verify", &format!("refs/heads/{}", self.into)])?;
            let commit = match self.step(c, &old)? {
                Step::Done(outcome) => return Ok(outcome),
                Step::Built(commit) => commit,
            };
            let by = match proof(dir, &c.rec, &self.into, &c.head, &commit) {
                Ok(by) => json!(by),
                Err(_) if self.unverified => Value::Null,
                Err(why) => return Ok((status("untested", &[("reason", json!(why))]), true)),
            };
            failpoint::hit("before-update");
            match self.move_target(&[(c.rec.name.as_str(), old.as_str(), commit.as_str())], &old, &commit)? {
                Moved::Yes => {
                    let mut done = status("merged", &[("commit", json!(commit)), ("previous", json!(old))]);
                    done.insert("verified".into(), json!(!by.is_null()));
                    done.insert("verified_by".into(), by);
                    if self.cleanup {
                        done.insert("cleanup".into(), self.clean_up(&c.rec, &c.branch, &c.head));
                    }
                    return Ok((done, false));
                }
                Moved::Dirty(why) => return Ok((status("skipped", &[("reason", json!(why))]), true)),
                Moved::Raced => tracing::info!("{} moved during the merge of {}; merging again", self.into, c.rec.name),
            }
        }
        Err(self.busy())
    }

    /// Lands the candidates `which` (indices into `cands`, in order) with a verification: the
    /// chain of their merges verified once; on failure, each half landed in turn.
    fn land(&self, which: &[usize], cands: &[Candidate], gate: &Gate, results: &mut [Option<Result<Outcome, Error>>]) {
        if which.is_empty() {
            return;
        }
        let dir = self.repo.git_dir();
        let mut members: Vec<Member> = Vec::new();
        for _ in 0..RETRIES {
            if let Some(sig) = self.interrupted.get() {
                let why = format!("not merged: wt-merge was interrupted (signal {sig})");
                let held = (status("skipped", &[("reason", json!(why))]), true);
                return which.iter().for_each(|&i| results[i] = Some(Ok(held.clone())));
            }
            let old = match crate::locks::clear_stale(self.repo, &self.into)
                .and_then(|_| git::run(dir, ["rev-parse", "--verify", &format!("refs/heads/{}", self.into)]))
            {
                Ok(old) => old,
                Err(e) => return which.iter().for_each(|&i| results[i] = Some(Err(e.clone()))),
            };
            let mut tip = old.clone();
            members.clear();
            for &i in which {
                match self.step(&cands[i], &tip) {
                    Ok(Step::Built(commit)) => {
                        members.push((i, tip.clone(), commit.clone()));
                        tip = commit;
                    }
                    Ok(Step::Done(outcome)) => results[i] = Some(Ok(outcome)),
                    Err(e) => results[i] = Some(Err(e)),
                }
            }
            if members.is_empty() {
                return;
            }
            // Those judged after the first member met the chain: if it does not land, neither
            // does their verdict, and they share the batch's.
            let from_first: Vec<usize> = which.iter().copied().skip_while(|&i| i != members[0].0).collect();
            let names: Vec<&str> = members.iter().map(|(i, _, _)| cands[*i].rec.name.as_str()).collect();
            let verdict = match self.verify(&members, cands, &tip, gate) {
                Ok(v) => v,
                Err(e) => return from_first.iter().for_each(|&i| results[i] = Some(Err(e.clone()))),
            };
            let passed = match verdict {
                Ok(v) => v,
                Err(failed) if self.interrupted.get().is_some() => {
                    // Ended by Ctrl-C or SIGTERM: the record says how, and nothing more runs.
                    return from_first.iter().for_each(|&i| results[i] = Some(Ok((failed.clone(), true))));
                }
                Err(_) if members.len() > 1 => {
                    // Someone in the batch broke it: find who, half by half, each half with
                    // a member of the batch. Those judged on the way (a conflict with a branch
                    // of the batch) are judged again: the chain they met will not land as it was.
                    let middle = members[members.len() / 2].0;
                    let at = which.iter().position(|&i| i == middle).expect("a member is in which");
                    let (first, second) = which.split_at(at);
                    self.progress.step(&names.join(", "), "the batch failed its verification; splitting it");
                    self.land(first, cands, gate, results);
                    self.land(second, cands, gate, results);
                    return;
                }
                Err(failed) => {
                    // The culprit, alone. Those judged after it met a chain that held it: they
                    // are judged again without it.
                    results[members[0].0] = Some(Ok((failed, true)));
                    self.land(&from_first[1..], cands, gate, results);
                    return;
                }
            };
            failpoint::hit("before-update");
            // Each member's undo goes back to before the batch: the target never pointed between.
            let moves: Vec<(&str, &str, &str)> =
                members.iter().map(|(i, _, _)| (cands[*i].rec.name.as_str(), old.as_str(), tip.as_str())).collect();
            match self.move_target(&moves, &old, &tip) {
                Err(e) => return from_first.iter().for_each(|&i| results[i] = Some(Err(e.clone()))),
                Ok(Moved::Dirty(why)) => {
                    let held = (status("skipped", &[("reason", json!(why))]), true);
                    return from_first.iter().for_each(|&i| results[i] = Some(Ok(held.clone())));
                }
                Ok(Moved::Raced) => {
                    tracing::info!("{} moved during the merge of {}; merging again", self.into, names.join(", "))
                }
                Ok(Moved::Yes) => {
                    for (i, before, after) in &members {
                        let mut done = status("merged", &[("commit", json!(after)), ("previous", json!(before))]);
                        done.insert("verified".into(), json!(true));
                        done.insert("verified_by".into(), json!("wt-merge --verify"));
                        done.insert("verify".into(), passed.clone());
                        if members.len() > 1 {
                            done.insert(
                                "batch".into(),
                                json!({"size": members.len(), "members": names, "verified": tip}),
                            );
                        }
                        if self.cleanup {
                            done.insert(
                                "cleanup".into(),
                                self.clean_up(&cands[*i].rec, &cands[*i].branch, &cands[*i].head),
                            );
                        }
                        results[*i] = Some(Ok((done, false)));
                    }
                    return;
                }
            }
        }
        members.iter().for_each(|(i, _, _)| results[*i] = Some(Err(self.busy())));
    }

    /// Verifies `commit`, the merge of `members` on the target: the `verify` block when it
    /// passed, else the `merge` key that says why not. The verification worktree is named after
    /// the last member and has what any of them shares.
    fn verify(
        &self,
        members: &[Member],
        cands: &[Candidate],
        commit: &str,
        gate: &Gate,
    ) -> Result<Result<Value, Map<String, Value>>, Error> {
        let last = &cands[members.last().expect("a member").0].rec;
        let names: Vec<&str> = members.iter().map(|(i, _, _)| cands[*i].rec.name.as_str()).collect();
        let short = &commit[..commit.len().min(10)];
        self.progress.step(&names.join(", "), &format!("verifying {short} with `{}`", gate.cmd));
        let ledger = self.ledger.read()?;
        let mut like = crate::scratch::Like::of(self.repo, last, ledger.worktrees.get(&last.name));
        for (i, _, _) in members {
            let other = crate::scratch::Like::of(self.repo, &cands[*i].rec, ledger.worktrees.get(&cands[*i].rec.name));
            like.shares.extend(other.shares.into_iter().filter(|d| !like.shares.contains(d)).collect::<Vec<_>>());
        }
        Ok(match verify::verify(self.repo, &last.name, commit, &like, gate, &self.groups)? {
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

    /// Moves the target from `old` to `new`, or reports why not. `moves` are the candidates
    /// that land with it, each with the commit before and after it (for `--undo`). When the
    /// target is checked out in a worktree, that worktree is updated with it, and only when it
    /// is clean.
    fn move_target(&self, moves: &[(&str, &str, &str)], old: &str, new: &str) -> Result<Moved, Error> {
        let dir = self.repo.git_dir();
        let checked_out = crate::checkout::of(self.repo, &self.into)?;
        if let Some(wt) = &checked_out {
            let changed = crate::checkout::changed_paths(self.repo, wt)?;
            if !changed.is_empty() {
                return Ok(Moved::Dirty(format!(
                    "{} is checked out at {} with {}; commit or stash them, then merge again",
                    self.into,
                    wt.display(),
                    wt_common::git::checkout_state::changes_named(&changed)
                )));
            }
        }
        for (name, before, _) in moves {
            git::run(dir, ["update-ref", &format!("refs/wt/backup/{name}"), before])?;
        }
        // Said before the ref moves, so a run killed between the ref and the files can be
        // finished by the next one (`journal::roll_forward`).
        let journal = checked_out.as_ref().map(|wt| crate::journal::write(self.repo, wt, old, new)).transpose()?;
        let names: Vec<&str> = moves.iter().map(|(n, _, _)| *n).collect();
        let msg = format!("wt-merge: {} into {}", names.join(", "), self.into);
        let cas = git::run(dir, ["update-ref", "-m", &msg, &format!("refs/heads/{}", self.into), new, old]);
        if let Err(e) = cas {
            crate::journal::clear(self.repo);
            // Only a target that moved is a race worth merging again; any other refusal would
            // fail the same way every time.
            let now = git::run(dir, ["rev-parse", "--verify", &format!("refs/heads/{}", self.into)])?;
            return if now == old { Err(e) } else { Ok(Moved::Raced) };
        }
        failpoint::hit("after-update");
        for (name, _, after) in moves {
            git::run(dir, ["update-ref", &format!("refs/wt/merged/{name}"), after])?;
        }
        if let (Some(wt), Some(_)) = (checked_out, journal) {
            // The branch moved under a clean checkout: bring its index and files along, as a
            // fast-forward would.
            crate::checkout::follow(self.repo, &wt, old, new)?;
            crate::journal::clear(self.repo);
        }
        Ok(Moved::Yes)
    }

    /// `--cleanup`: the merged worktree and its branch go, and its leases with them; not while
    /// an agent's pane still runs in it, nor once the branch has moved past `merged` (the agent
    /// committed while the merge was verified: that work is not merged, and stays).
    fn clean_up(&self, rec: &Record, branch: &str, merged: &str) -> Value {
        let result = (|| {
            let lock = self.repo.worktree_lock()?;
            let now = git::run(self.repo.git_dir(), ["rev-parse", "--verify", "-q", &format!("refs/heads/{branch}")])?;
            if now != merged {
                return Err(Error::failed(
                    "branch-moved",
                    format!(
                        "kept: {branch} moved from {} to {} after it was merged (new commits, not merged yet)",
                        wt_common::git::refs::short(merged),
                        wt_common::git::refs::short(&now)
                    ),
                ));
            }
            if let Some(path) = &rec.path {
                wt_common::proc::panes::end_or_refuse(self.repo, path, false)?;
            }
            let branch = wt_common::git::worktree::Branch { name: branch, judged_at: Some(merged) };
            wt_common::git::worktree::remove(
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
            Ok(None) => json!({"removed": true}),
            Ok(Some(kept)) => json!({"removed": true, "branch_kept": kept}),
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

/// Records that say their work failed are not merged: an error, a red watch, a watch green on
/// uncommitted changes (not a commit), a failed run; and a verification worktree's record.
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
        if watch.and_then(|w| w.get("dirty")) == Some(&json!(true)) {
            // What passed is not a commit: the branch's tip is not what was tested. wt-watch
            // told the agent to commit; the green round of that commit is what merges.
            return Some("wt-watch's tests passed on uncommitted changes, not on a commit: the agent is told to commit them, and the green round of its commit is merged".into());
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
