//! wt-merge: a local merge queue. `check` finds conflicts in memory, `queue` merges record by
//! record (verified, compare-and-swap), `undo` goes back, `verify` owns the scratch worktrees.

pub mod args;
pub mod check;
pub mod checkout;
pub mod gate;
pub mod hosts;
pub mod journal;
pub mod live;
pub mod locks;
pub mod outcome;
pub mod queue;
pub mod scratch;
pub mod slot;
pub mod strategy;
pub mod turn;
pub mod undo;
pub mod verify;

use serde_json::Value;
use wt_common::git::repo::Repo;
use wt_common::ledger::LedgerFile;
use wt_common::record::jsonl::Input;
use wt_common::record::output::{core_columns, status_or_error, Column, Output};
use wt_common::record::select::{self, Target};
use wt_common::{config, git, Error, Exit, Record};

use crate::args::{Args, Config, STRATEGIES};
use crate::queue::Queue;

pub const TOOL: &str = "wt-merge";

/// How long a verification ended by Ctrl-C or SIGTERM gets between SIGTERM and SIGKILL.
const VERIFY_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

pub fn run(args: Args) -> Result<Exit, Error> {
    wt_common::record::cli::init_logging(args.global.verbose)?;
    let repo = Repo::discover(&args.global.start_dir())?;
    if let Some(host) = &args.global.host {
        // The queue of the host's repository, merging there.
        wt_common::host::quote::check_names(&args.select.worktrees)?;
        wt_common::host::quote::check_names(&args.names)?;
        let forwarded = wt_common::host::router::forwarded_args();
        let root = repo.main_worktree.as_deref();
        let router = wt_common::host::Router::at_host(
            TOOL,
            root,
            host,
            forwarded,
            args.select.from_stdin() && args.names.is_empty(),
        )?;
        return Ok(router.finish(Exit::Ok));
    }
    let config: Config = config::section(repo.main_worktree.as_deref(), "merge")?;
    let settings = Settings::of(&args, &config, repo.main_worktree.as_deref())?;
    if let Some(gate) = &settings.gate {
        gate::refuse_foreign_paths(&repo, "--verify", &gate.cmd)?;
        if let Some(prepare) = &gate.prepare {
            gate::refuse_foreign_paths(&repo, "[merge] prepare", prepare)?;
        }
    }
    // The main worktree's branch from its HEAD file when that is plain, else from git.
    let named = args.into.clone().or_else(|| config.into.clone());
    let into = match named.or_else(|| wt_common::git::refs::main_branch(&repo.common_dir)) {
        Some(b) => b,
        None => repo.main_head()?.and_then(|h| h.branch).ok_or_else(|| {
            Error::usage(
                "no-target",
                "the main worktree has no branch checked out; say which branch to merge into with --into BRANCH",
            )
        })?,
    };
    // `--check` learns whether the target exists when it reads every branch it merges, before
    // it emits anything; the others ask first.
    if !args.check && git::run(repo.git_dir(), ["rev-parse", "--verify", "-q", &format!("refs/heads/{into}")]).is_err()
    {
        return Err(unknown_target(&into));
    }
    let mut out = Output::new(TOOL, args.global.json, columns());
    if let Some(name) = &args.undo {
        // An undo moves the target as a merge does: in its turn at the queue, after what a
        // killed one left is finished (two could otherwise update one checkout at once).
        let member = turn::Member::join(&repo)?;
        let turn = tidy(&repo, &member, &[name.as_str()], None)?;
        let rec = undo::undo(&repo, &into, name).unwrap_or_else(|e| Record::failed(name, TOOL, &e));
        drop(turn);
        out.emit(&rec);
        return Ok(out.finish());
    }
    args.select.require_some(&args.names)?;
    let ledger = LedgerFile::new(&repo.state_dir());
    if args.check {
        let malformed = std::rc::Rc::new(std::cell::Cell::new(false));
        let recs: Vec<Record> = inputs(&repo, &ledger, &args, &mut out, &malformed)?.0.collect();
        if malformed.get() {
            out.fail(Exit::Usage);
        }
        check(&repo, &into, recs, &mut out)?;
        return Ok(out.finish());
    }
    // One merge at a time per repository, taken in turns (`turn`): the queue lock is held per
    // batch, so that another pipeline's wt-merge merges while this one waits for records.
    let member = turn::Member::join(&repo)?;
    // What a killed queue left is finished or swept before anything is read.
    drop(tidy(&repo, &member, &[], None)?);
    tracing::info!("in the merge queue of {}: merging records as they come", repo.root().display());
    let progress = wt_common::record::progress::Progress::new(TOOL);
    let groups = wt_common::proc::process::Groups::default();
    let interrupted = wt_common::proc::signals::on_interrupt(std::sync::Arc::clone(&groups), VERIFY_GRACE);
    let queue = Queue {
        repo: &repo,
        progress: &progress,
        ledger: &ledger,
        into,
        strategy: settings.strategy,
        gate: settings.gate,
        unverified: args.unverified,
        allow_gate_change: args.allow_gate_change,
        cleanup: settings.cleanup,
        groups,
        interrupted: std::sync::Arc::clone(&interrupted),
    };
    let hosts = wt_common::host::Hosts::load(repo.main_worktree.as_deref())?;
    let host_queue = Queue {
        cleanup: false,
        into: queue.into.clone(),
        strategy: queue.strategy.clone(),
        gate: queue.gate.clone(),
        groups: std::sync::Arc::clone(&queue.groups),
        interrupted: std::sync::Arc::clone(&queue.interrupted),
        ..queue
    };
    let malformed = std::rc::Rc::new(std::cell::Cell::new(false));
    let mut tally = std::collections::BTreeMap::<String, usize>::new();
    let (mut records, mut ready) = inputs(&repo, &ledger, &args, &mut out, &malformed)?;
    // The terminal's progress bar (OSC 9;4): records done of those named, or busy while they
    // stream in.
    let streaming = args.select.from_stdin() && args.names.is_empty();
    let mut bar = Bar { total: (!streaming).then_some(ready.given), done: 0 };
    bar.show();
    // A record of a host read while a batch was being gathered: it goes next, on its own.
    let mut pending: Option<Record> = None;
    loop {
        let Some(first) = pending.take().or_else(|| records.next().inspect(|_| ready.took_one())) else { break };
        // A batch: what is there already, up to --batch; records of hosts go one by one.
        let mut batch = vec![first];
        while batch.len() < settings.batch && wt_common::host::of(&batch[0]).is_none() && ready.now() {
            let Some(rec) = records.next() else { break };
            ready.took_one();
            if wt_common::host::of(&rec).is_some() {
                pending = Some(rec);
                break;
            }
            batch.push(rec);
        }
        let names: Vec<String> = batch.iter().map(|r| r.name.clone()).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        // The job slot before the turn (`slot`): never the turn, then a wait for a slot.
        let slot = match &queue.gate {
            Some(gate) if batch.iter().any(|r| !r.has_error()) => {
                crate::slot::hold(&gate.governor, &names.join(",")).map(Some)
            }
            _ => Ok(None),
        };
        let merged = match slot.and_then(|s| tidy(&repo, &member, &names, Some(&interrupted)).map(|t| (s, t))) {
            Ok(_turn) => merge_batch(&queue, &host_queue, &hosts, &progress, batch),
            Err(e) => {
                out.fail(e.kind.exit());
                batch
                    .into_iter()
                    .map(|mut r| {
                        if !r.has_error() {
                            r.set_error(TOOL, &e);
                        }
                        r
                    })
                    .collect()
            }
        };
        bar.done += merged.len();
        bar.show();
        if emit(&repo, merged, &mut out, &mut tally, &progress) {
            break;
        }
        if let Some(sig) = interrupted.get() {
            // What was read is reported; what was not stays unread.
            if let Some(mut rec) = pending.take() {
                let why = format!("not merged: wt-merge was interrupted (signal {sig})");
                rec.set_key("merge", serde_json::json!({"into": queue.into, "status": "skipped", "reason": why}));
                emit(&repo, vec![rec], &mut out, &mut tally, &progress);
            }
            break;
        }
    }
    wt_common::record::notify::progress_on_stderr(wt_common::record::notify::Progress::Clear);
    if malformed.get() {
        out.fail(Exit::Usage);
    }
    let counts: Vec<(usize, &str)> = tally.iter().map(|(k, n)| (*n, k.as_str())).collect();
    progress.summary(&counts);
    let status = out.finish();
    if let Some(sig) = interrupted.get() {
        // The verification was ended and its record printed; the scratch worktree is gone.
        std::process::exit(128 + sig);
    }
    Ok(status)
}

/// Takes this wt-merge's turn at the queue (the queue lock), to merge `names`, and finishes or
/// sweeps what a killed queue left: no other wt-merge merges now, so a verification worktree
/// that exists was left by one that was killed, and a journal by one killed while it moved its
/// target.
fn tidy<'a>(
    repo: &Repo,
    member: &'a turn::Member,
    names: &[&str],
    interrupted: Option<&std::sync::OnceLock<i32>>,
) -> Result<turn::Turn<'a>, Error> {
    let turn = member.take_turn(names, interrupted)?;
    scratch::sweep(repo);
    wt_common::proc::stale_lock::sweep_repository(repo);
    journal::roll_forward(repo)?;
    Ok(turn)
}

/// Merges a batch: a record of a host alone, at its host; the rest through the queue, together.
fn merge_batch(
    queue: &Queue,
    host_queue: &Queue,
    hosts: &wt_common::host::Hosts,
    progress: &wt_common::record::progress::Progress,
    batch: Vec<Record>,
) -> Vec<Record> {
    if let [rec] = batch.as_slice() {
        if let (false, Some(h)) = (rec.has_error(), wt_common::host::of(rec).map(str::to_string)) {
            progress.step(&rec.name, &format!("merging into {} at {h}", queue.into));
            let rec = batch.into_iter().next().expect("one");
            return vec![hosts::merge(host_queue, hosts, &h, rec, queue.cleanup)];
        }
    }
    let names: Vec<&str> = batch.iter().map(|r| r.name.as_str()).collect();
    progress.step(&names.join(", "), &format!("merging into {}", queue.into));
    queue.merge_all(batch)
}

/// The queue's progress as the terminal shows it.
struct Bar {
    total: Option<usize>,
    done: usize,
}

impl Bar {
    fn show(&self) {
        use wt_common::record::notify::{progress_on_stderr, Progress};
        progress_on_stderr(match self.total {
            Some(total) if total > 0 => Progress::Percent((self.done.min(total) * 100 / total) as u8),
            _ => Progress::Busy,
        });
    }
}

/// Prints the records of a batch, keeping each one's outcome for wt-status; true when stdout
/// closed and the queue should stop.
fn emit(
    repo: &Repo,
    recs: Vec<Record>,
    out: &mut Output,
    tally: &mut std::collections::BTreeMap<String, usize>,
    progress: &wt_common::record::progress::Progress,
) -> bool {
    for rec in recs {
        outcome::keep(repo, &rec);
        let outcome = merge_status(&rec).unwrap_or(if rec.has_error() { "error" } else { "skipped" }).to_string();
        progress.step(&rec.name, &outcome);
        *tally.entry(outcome).or_default() += 1;
        if failed(&rec) {
            out.fail(Exit::Failed);
        }
        out.emit(&rec);
    }
    out.closed()
}

fn merge_status(rec: &Record) -> Option<&str> {
    rec.key("merge").and_then(|m| m.get("status")).and_then(Value::as_str)
}

/// How long a verification may take unless `--timeout` or `[merge] timeout` says otherwise: a
/// suite that hangs fails after it, with its output, instead of holding the queue for ever.
const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// How the queue merges: the flags, else `[merge]` of wt.toml, else the defaults.
struct Settings {
    strategy: String,
    gate: Option<verify::Gate>,
    cleanup: bool,
    /// The most candidates verified together (`--batch`).
    batch: usize,
}

impl Settings {
    fn of(args: &Args, config: &Config, root: Option<&std::path::Path>) -> Result<Settings, Error> {
        let bad = |what: String| Error::usage("bad-config", format!("wt.toml: [merge] {what}"));
        let strategy = args.strategy.clone().or_else(|| config.strategy.clone()).unwrap_or_else(|| "merge".into());
        if !STRATEGIES.contains(&strategy.as_str()) {
            return Err(bad(format!("strategy must be one of {}, not '{strategy}'", STRATEGIES.join(", "))));
        }
        let timeout = match (args.timeout, &config.timeout) {
            (Some(t), _) => Some(t),
            (None, Some(text)) => {
                Some(wt_common::record::duration::parse(text).map_err(|e| bad(format!("timeout: {e}")))?)
            }
            (None, None) => Some(DEFAULT_TIMEOUT),
        };
        let confine = wt_common::confine::via::mode(args.confine.as_deref(), config.confine.as_ref(), "merge")?;
        if confine.is_none() && (!args.allow_write.is_empty() || !args.pass_env.is_empty()) {
            return Err(Error::usage("usage", "--allow-write and --pass-env go with --confine"));
        }
        let verifies = args.verify.is_some() || config.verify.is_some();
        let confine = match confine {
            // Nothing to confine without a verify command: wt-run is not needed then.
            Some(mode) if verifies => {
                let allow = if args.allow_write.is_empty() {
                    config.allow_write.clone().unwrap_or_default()
                } else {
                    args.allow_write.clone()
                };
                Some(wt_common::confine::via::Via::new(mode, allow, args.pass_env.clone(), root)?)
            }
            _ => None,
        };
        let governor = wt_common::proc::governor::settings(root, args.no_governor)?;
        let gate = args.verify.clone().or_else(|| config.verify.clone()).map(|cmd| verify::Gate {
            cmd,
            prepare: args.prepare.clone().or_else(|| config.prepare.clone()),
            timeout,
            confine,
            governor,
        });
        let batch = match (args.batch, config.batch) {
            (Some(n), _) | (None, Some(n)) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
            (None, None) => usize::MAX,
            _ => return Err(bad("batch must be at least 1".into())),
        };
        Ok(Settings { strategy, gate, cleanup: args.cleanup || config.cleanup.unwrap_or(false), batch })
    }
}

/// Records to work on, resolved one at a time, so that each stdin record is merged as soon as
/// it arrives (`wt-watch | wt-merge`). Records of another repository get an error.
fn inputs<'a>(
    repo: &'a Repo,
    ledger: &LedgerFile,
    args: &Args,
    out: &mut Output,
    malformed: &std::rc::Rc<std::cell::Cell<bool>>,
) -> Result<(Box<dyn Iterator<Item = Record> + 'a>, Ready), Error> {
    let snapshot = ledger.read()?;
    let snapshot_for_admit = snapshot.clone();
    let mut words = args.names.clone();
    words.extend(args.select.worktrees.iter().cloned());
    let given = select::collect(TOOL, repo, &snapshot, &words, args.select.all, false, out);
    let from_args = given.into_iter().map(|t| match t {
        Target::Worktree(r) | Target::PassThrough(r) => *r,
    });
    let streaming = args.select.from_stdin() && args.names.is_empty();
    let arrivals = std::rc::Rc::new(Arrivals::start(streaming, std::rc::Rc::clone(malformed)));
    let ready = Ready { given: from_args.len(), taken: 0, arrivals: std::rc::Rc::clone(&arrivals) };
    let from_stdin = std::iter::from_fn(move || arrivals.next()).map(move |input| match input {
        Input::Record(r) => *r,
        Input::Word(w) => select::from_word(repo, &snapshot, &w).unwrap_or_else(|(n, e)| Record::failed(&n, TOOL, &e)),
    });
    let records = from_args.chain(from_stdin).map(move |mut r| {
        if !r.has_error() && wt_common::host::of(&r).is_none() {
            if let Some(other) = r.repo.as_ref().filter(|p| p.as_path() != repo.root()) {
                let e = Error::failed(
                    "other-repository",
                    format!("'{}' belongs to {}, not this repository", r.name, other.display()),
                );
                r.set_error(TOOL, &e);
            }
        }
        // A host's worktree is the host's to vouch for; here only its branch is fetched, by a
        // name checked before it is sent (`hosts::merge`).
        // A verification worktree (listed by `wt-create --list` after a killed queue) is not a
        // candidate; the sweep has removed it by now (`queue::skip_reason`).
        if r.has_error() || wt_common::host::of(&r).is_some() || scratch::is_scratch_name(&r.name) {
            return r;
        }
        match select::admitted(TOOL, repo, &snapshot_for_admit, r) {
            Target::Worktree(r) | Target::PassThrough(r) => *r,
        }
    });
    Ok((Box::new(records), ready))
}

/// Stdin's records, read on a thread of their own, so that the queue can take what has
/// arrived while it verified (a batch) without waiting for more. A malformed line is reported
/// as every tool does (the run then exits 2) and skipped, never taken for a record that arrived.
///
/// Lines that arrive together (one write of the producer, read in one go) are handed over
/// together: "what has arrived" is then what was written, not how far the reader thread got
/// in parsing it, so a batch of records piped at once is one batch however the threads run.
struct Arrivals {
    rx: Option<std::sync::mpsc::Receiver<Vec<Result<Input, wt_common::record::jsonl::Malformed>>>>,
    pending: std::cell::RefCell<std::collections::VecDeque<Input>>,
    malformed: std::rc::Rc<std::cell::Cell<bool>>,
}

impl Arrivals {
    fn start(streaming: bool, malformed: std::rc::Rc<std::cell::Cell<bool>>) -> Arrivals {
        use std::io::IsTerminal;
        let rx = (streaming && !std::io::stdin().is_terminal()).then(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let buffered = std::io::BufReader::with_capacity(1 << 16, std::io::stdin().lock());
                let mut reader = wt_common::record::jsonl::Reader::new(buffered);
                let mut group = Vec::new();
                while let Some(input) = reader.next() {
                    group.push(input);
                    // The next line is in memory already: it came with this one.
                    if reader.get_ref().buffer().contains(&b'\n') {
                        continue;
                    }
                    if tx.send(std::mem::take(&mut group)).is_err() {
                        return;
                    }
                }
                if !group.is_empty() {
                    let _ = tx.send(group);
                }
            });
            rx
        });
        Arrivals { rx, pending: Default::default(), malformed }
    }

    /// Keeps the usable inputs of a group; a malformed line is reported.
    fn take(&self, group: Vec<Result<Input, wt_common::record::jsonl::Malformed>>) {
        for input in group {
            match input {
                Ok(input) => self.pending.borrow_mut().push_back(input),
                Err(m) => {
                    eprintln!("{TOOL}: skipped input {m}");
                    self.malformed.set(true);
                }
            }
        }
    }

    /// The next input, waiting for it; `None` at the end of stdin.
    fn next(&self) -> Option<Input> {
        loop {
            if let Some(input) = self.pending.borrow_mut().pop_front() {
                return Some(input);
            }
            let group = self.rx.as_ref()?.recv().ok()?;
            self.take(group);
        }
    }

    /// Whether an input has arrived (or stdin has ended), so that `next` will not wait.
    fn arrived(&self) -> bool {
        let Some(rx) = self.rx.as_ref() else { return true };
        loop {
            if !self.pending.borrow().is_empty() {
                return true;
            }
            match rx.try_recv() {
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return true,
                Err(std::sync::mpsc::TryRecvError::Empty) => return false,
                Ok(group) => self.take(group),
            }
        }
    }
}

/// Whether the next record is there already: one named on the command line, or one that has
/// arrived on stdin.
struct Ready {
    given: usize,
    taken: usize,
    arrivals: std::rc::Rc<Arrivals>,
}

impl Ready {
    fn took_one(&mut self) {
        self.taken += 1;
    }
    fn now(&self) -> bool {
        self.taken < self.given || self.arrivals.arrived()
    }
}

fn unknown_target(into: &str) -> Error {
    Error::usage("unknown-target", format!("there is no branch '{into}' to merge into (list them with `git branch`)"))
}

fn failed(rec: &Record) -> bool {
    let status = rec.key("merge").and_then(|m| m.get("status")).and_then(Value::as_str);
    matches!(status, Some("conflict" | "verify-failed" | "error" | "untested" | "gate-changed" | "deps-differ"))
        || (status == Some("skipped")
            && rec
                .key("merge")
                .and_then(|m| m.get("reason"))
                .and_then(Value::as_str)
                .is_some_and(|r| r.contains("uncommitted") || r.contains("fast-forward")))
}

fn check(repo: &Repo, into: &str, recs: Vec<Record>, out: &mut Output) -> Result<(), Error> {
    let mut published = Vec::new();
    for mut rec in recs {
        if rec.has_error() {
            out.emit(&rec);
            continue;
        }
        if scratch::is_scratch_name(&rec.name) {
            rec.set_key(
                "merge",
                serde_json::json!({"into": into, "status": "skipped", "reason": queue::NOT_A_CANDIDATE}),
            );
            out.emit(&rec);
            continue;
        }
        // A confined run's commits reach its branch when published: before reading it.
        if let Err(e) = wt_common::confine::store::publish(&repo.common_dir, &rec.name) {
            rec.set_error(TOOL, &e);
            out.emit(&rec);
            continue;
        }
        published.push(rec);
    }
    // Every branch's commit at once, the target's and the records', from the ref files.
    let wanted = published.iter().filter_map(|r| r.branch.as_deref());
    let heads = git::branch_heads(repo.git_dir(), &repo.common_dir, std::iter::once(into).chain(wanted))?;
    let target = heads.get(into).cloned().ok_or_else(|| unknown_target(into))?;
    let mut ready = Vec::new();
    for mut rec in published {
        let head = rec.branch.as_ref().and_then(|b| heads.get(b).cloned());
        match head {
            Some(h) => ready.push((rec, h)),
            None => {
                let e = Error::failed("no-such-branch", format!("'{}' has no branch that exists", rec.name));
                rec.set_error(TOOL, &e);
                out.emit(&rec);
            }
        }
    }
    let unchanged = check::matrix(repo.git_dir(), into, &target, &mut ready)?;
    check::mark_nothing_to_merge(repo.git_dir(), &target, &mut ready, &unchanged);
    for (rec, _) in ready {
        if rec.key("merge").and_then(|m| m.get("status")) == Some(&Value::from("conflict")) {
            out.fail(Exit::Failed);
        }
        out.emit(&rec);
    }
    Ok(())
}

fn columns() -> Vec<Column> {
    let mut cols = core_columns();
    cols.truncate(2);
    cols.push(Column { title: "MERGE", value: |r| merge_status(r).unwrap_or_default().to_string() });
    cols.push(Column { title: "DETAIL", value: detail });
    cols.push(Column { title: "STATUS", value: |r| status_or_error(r, "") });
    cols
}

/// What a person needs to act on a merge's outcome: the conflicting paths and with whom, why a
/// verification failed and where its log is, why a record was skipped, what was merged.
fn detail(r: &Record) -> String {
    let m = r.key("merge");
    let get = |k: &str| m.and_then(|m| m.get(k));
    let names = |k: &str| -> Vec<String> {
        get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let mut parts = Vec::new();
    let paths = names("conflicts");
    if !paths.is_empty() {
        parts.push(format!("conflicts: {}", paths.join(", ")));
    }
    let with = names("conflicts_with");
    if !with.is_empty() {
        parts.push(format!("collides with {}", with.join(", ")));
    }
    if merge_status(r) == Some("conflict") {
        parts.push(conflict_next(r, get("into").and_then(Value::as_str).unwrap_or("its base")));
    }
    if let Some(v) = get("verify").filter(|_| merge_status(r) == Some("verify-failed")) {
        parts.push(verify_failure(v));
    } else if let Some(reason) = get("reason").and_then(Value::as_str) {
        parts.push(reason.to_string());
    } else if let Some(c) = get("commit").and_then(Value::as_str) {
        let took = get("verify").and_then(|v| v["duration_ms"].as_u64());
        let verified = match (get("verified_by").and_then(Value::as_str), took) {
            (Some(by), Some(ms)) => format!(", verified (by {by}) in {}", wt_common::record::duration::human_ms(ms)),
            (Some(by), None) => format!(", verified (by {by})"),
            (None, _) if get("verified") == Some(&Value::Bool(false)) => ", unverified".to_string(),
            (None, _) => String::new(),
        };
        parts.push(format!("{}{verified}", &c[..c.len().min(10)]));
    }
    parts.join("; ")
}

/// The next step after a conflict: the worktree's branch is rebased onto the target there, by
/// the person or by its agent.
fn conflict_next(r: &Record, into: &str) -> String {
    match &r.path {
        Some(path) => format!(
            "next: rebase it onto {into} in its worktree (git -C {} rebase {}) or tell its agent to",
            wt_common::host::quote::quote(&path.to_string_lossy()),
            wt_common::host::quote::quote(into)
        ),
        None => format!("next: rebase its branch onto {into}, or tell its agent to"),
    }
}

/// `verify exit 1: 2 failing tests (pytest): ✗ <test>, ✗ <test>; log <path>`: the excerpt's
/// failing tests, else the output's last line (`prepare …` when `[merge] prepare` failed).
fn verify_failure(v: &Value) -> String {
    let how = match (v["timed_out"].as_bool(), v["exit"].as_i64()) {
        // With the tests still running, when the excerpt's first line names them.
        (Some(true), _) => {
            let first = v["excerpt"].as_str().and_then(|e| e.lines().next()).unwrap_or_default();
            let running = first.split_once(" while running ").map(|(_, r)| format!(" while running {r}"));
            format!("timed out{}", running.unwrap_or_default())
        }
        (_, Some(code)) => format!("exit {code}"),
        _ => "killed".to_string(),
    };
    // Not the excerpt's `timed out after …` line: `how` says that.
    let first = |text: &str| {
        let said = text.lines().map(str::trim).filter(|l| !l.starts_with(wt_common::record::excerpt::TIMED_OUT));
        said.into_iter().find(|l| !l.is_empty()).map(str::to_string)
    };
    let tail = v["tail"].as_array().map(Vec::as_slice).unwrap_or_default();
    let last = tail.iter().rev().filter_map(Value::as_str).find(|l| !l.trim().is_empty()).map(|l| l.trim().to_string());
    let tests = |text: &str| {
        let names = wt_common::ledger::outcome::key_lines(text);
        let named = names.iter().any(|l| l.starts_with("✗ "));
        named.then(|| format!("{} {}", first(text).unwrap_or_default().trim_end_matches(':'), names.join(", ")))
    };
    let excerpt = v["excerpt"].as_str();
    let said = excerpt.and_then(tests).or_else(|| excerpt.and_then(first)).or(last);
    let said = said.map(|l| format!(": {l}")).unwrap_or_default();
    let stage = v["stage"].as_str().unwrap_or("verify");
    format!("{stage} {how}{said}; log {}", v["log"].as_str().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    /// A verification its timeout stopped in a test: the table's line names the test, as the
    /// excerpt's first line does.
    #[test]
    fn a_verification_stopped_in_a_test_says_which() {
        let excerpt = "timed out after 1.0s while running TestHang/inner\n=== RUN   TestHang\n";
        let v = json!({"timed_out": true, "excerpt": excerpt, "log": "/l"});
        assert_eq!(
            super::verify_failure(&v),
            "verify timed out while running TestHang/inner: === RUN   TestHang; log /l"
        );
        let v = json!({"timed_out": true, "excerpt": "timed out after 1.0s\ncollecting\n", "log": "/l"});
        assert_eq!(super::verify_failure(&v), "verify timed out: collecting; log /l");
    }
}
