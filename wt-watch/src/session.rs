//! The loop: every watched worktree's state, driven by messages (file changes, finished runs,
//! delivered feedback, new worktrees on stdin, signals) and by time (debounce, agent timeout).
//! One thread decides; runs, feeds and the watcher work on threads of their own and report here.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use wt_common::git::repo::Repo;
use wt_common::git::tested::Tested;
use wt_common::ledger::Ledger;
use wt_common::proc::process::Groups;
use wt_common::record::jsonl::{Input, Malformed};
use wt_common::record::notify;
use wt_common::record::output::Output;
use wt_common::record::select::{self, Target};
use wt_common::record::test_count::TestCount;
use wt_common::{Error, Record};

use crate::args::Settings;
use crate::feed::{self, Undelivered};
use crate::green_means_commit::{self as commit, Green};
use crate::guard::{self, Guard, Snapshot};
use crate::live::Live;
use crate::narrow::{self, Plan, Verdict};
use crate::noticed::{self, Noticed};
use crate::own_writes::{self, OwnWrites};
use crate::preexisting;
use crate::round::{self, Finished, RoundSpec};
use crate::watcher::{Change, Watcher};
use crate::TOOL;

/// What the loop hears.
#[derive(Debug)]
pub enum Msg {
    Fs(Change),
    WatchFailed(Error),
    /// A line of stdin (its number), read on the reader's thread.
    Line(Result<Input, Malformed>, usize),
    InputEnd,
    RunDone {
        id: usize,
        seq: u64,
        result: Result<Finished, Error>,
        /// The commit the round tested and whether the tree was clean, taken at its start.
        tested: Tested,
        /// A red round's failing tests, run again the runner's own way (`narrow`).
        narrow: Option<Plan>,
        /// The paths `git status` listed then.
        changed: Vec<String>,
    },
    /// The narrow re-run of a fed round's failing tests ended.
    Reran {
        id: usize,
        seq: u64,
        result: Result<Finished, Error>,
    },
    /// The failing tests ran on the worktree's base commit (`preexisting`).
    BaseChecked {
        id: usize,
        /// The failure it was started for (`Wt::fed_failures`).
        failure: u64,
        base: String,
        results: preexisting::Results,
    },
    /// The branch of worktree `id` moved while the loop waited for a commit.
    Committed {
        id: usize,
        seq: u64,
    },
    /// Round `seq` of worktree `id` waits for a job slot, `ahead` asks before it.
    Queued {
        id: usize,
        seq: u64,
        ahead: usize,
    },
    /// Round `seq` of worktree `id` has its job slot and starts now (at `at`): what changed
    /// while it waited, it tests.
    SlotTaken {
        id: usize,
        seq: u64,
        at: std::time::SystemTime,
    },
    Fed {
        id: usize,
        seq: u64,
        result: Result<(), Undelivered>,
    },
    PaneExited {
        id: usize,
        seq: u64,
        why: String,
    },
    Signal(i32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A change waits for its debounce.
    Pending,
    Running,
    /// The failure is on its way to the agent.
    Feeding,
    /// The agent has the failure; its next change starts the next round.
    Waiting,
    /// Green, watching for the next change (without --until-green).
    Idle,
    Done,
}

/// One watched worktree.
#[derive(Debug)]
struct Wt {
    rec: Record,
    root: PathBuf,
    target: feed::Target,
    env: Vec<(String, String)>,
    phase: Phase,
    /// When the last change not yet tested happened. Set while a round runs, it queues the
    /// next round for when this one ends (a run is never killed for a change).
    dirty: Option<Instant>,
    /// Paths touched since the last decision, judged once they settle.
    noticed: Noticed,
    /// Paths once judged a change git can see (so that their removal is one too).
    visible: HashSet<PathBuf>,
    /// How long the last green round took: the default timeout is derived from it.
    last_green: Option<Duration>,
    /// Numbers the current run or feed; messages of an older one are stale.
    seq: u64,
    rounds: u32,
    /// The fed round's failing tests, running again while the agent reads.
    rerun: Option<Rerun>,
    /// Tests that failed and then passed when run again with no change: the round they did so in.
    flaky: BTreeMap<String, u32>,
    /// How many times each test failed in a round and passed alone: past `FLAKY_RERUNS`, it is
    /// the agent's to fix, not run again.
    flaky_times: BTreeMap<String, u32>,
    /// A second message that waits for the first to reach the agent; `true`: a round follows it.
    note: Option<(String, bool)>,
    /// The message on its way says the round's failures were flaky: a round follows it.
    then_run: bool,
    /// The failing tests are running on the base commit.
    checking_base: bool,
    /// Counts the failures fed: a base check's answer is news only for the one it was
    /// started for (the feed's `seq` moves on with each message of the same failure).
    fed_failures: u64,
    /// The guarded files at the first red round.
    guard_base: Option<Snapshot>,
    /// The tests the runner executed in the first round that counted them.
    count_base: Option<TestCount>,
    last_failure: Option<String>,
    waiting_since: Option<Instant>,
    groups: Groups,
    /// With --test-pane: the pane the rounds run in.
    test_pane: Option<round::TestPane>,
    /// Stops the current feed or pane watch.
    stop: Arc<AtomicBool>,
    /// The files the test command writes itself (they start no round).
    own: OwnWrites,
    /// Said to the person once, for the next record's `notes`.
    notes: Vec<String>,
    /// A change came since the loop started; `round_after_change`: the current round started
    /// after one (with --until-green, only such a round, or a commit ahead of the base, ends it).
    /// `maybe_runs`: untracked files a run wrote the first time it was seen writing them, a
    /// change of the agent's unless a later run shows them the test command's own.
    changed_since_start: bool,
    round_after_change: bool,
    maybe_runs: HashSet<PathBuf>,
    /// A finished run, decided once the events of its own writes are in (`DRAIN`).
    ended: Option<Ended>,
    /// The agent was told to commit (not that the tests fail).
    asked_commit: bool,
    /// The commit whose tests passed most (`refs/wt/best/<name>`), and this round's line when
    /// it passed fewer.
    best: crate::best::Best,
    regressed: Option<String>,
}

/// A run that ended, waiting for its decision.
#[derive(Debug)]
struct Ended {
    at: Instant,
    result: Result<Finished, Error>,
    tested: Tested,
    narrow: Option<Plan>,
    changed: Vec<String>,
}

/// How many times a test that fails in the whole suite and passes alone starts another round;
/// the next time it is told to the agent as a failure that depends on other tests.
const FLAKY_RERUNS: u32 = 2;

/// How long a finished run's decision waits for the file events of what it wrote last (they are
/// queued when it writes, and read on notify's thread, which a busy machine may run late).
const DRAIN: Duration = Duration::from_millis(100);

/// What every worktree shares.
#[derive(Debug)]
pub struct Ctx {
    pub repo: Repo,
    pub ledger: std::sync::Arc<Ledger>,
    pub settings: Settings,
    pub guard: Guard,
    pub socket: PathBuf,
    pub exclude: Option<PathBuf>,
    /// `--confine`: how each round runs through wt-run's sandbox.
    pub confine: Option<wt_common::confine::via::Via>,
    /// The build governor: a round waits for a job slot (`--no-governor`, `[governor]`).
    pub governor: wt_common::proc::governor::Settings,
}

#[derive(Debug)]
pub struct Session {
    ctx: Ctx,
    wts: Vec<Wt>,
    watcher: Watcher,
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
    out: Output,
    live: Live,
    input_open: bool,
    /// A worktree gave up (or, with --until-green, ended other than green).
    not_green: bool,
    /// Whether a test fails on a base commit too: by base commit and test.
    on_base: HashMap<(String, String), bool>,
}

impl Session {
    pub fn new(ctx: Ctx, out: Output, tx: Sender<Msg>, rx: Receiver<Msg>, input_open: bool) -> Result<Session, Error> {
        let watcher = Watcher::new(tx.clone(), ctx.exclude.clone())?;
        preexisting::sweep(&ctx.repo);
        let on_base = HashMap::new();
        Ok(Session {
            ctx,
            wts: Vec::new(),
            watcher,
            tx,
            rx,
            out,
            live: Live::new(),
            input_open,
            not_green: false,
            on_base,
        })
    }

    /// Starts on a worktree, or passes a record through.
    pub fn take(&mut self, target: Target) -> Result<(), Error> {
        let rec = match target {
            Target::PassThrough(r) => {
                self.out.emit(&r);
                return Ok(());
            }
            Target::Worktree(r) => *r,
        };
        if let Err(e) = select::check(&rec) {
            return self.fail_record(rec, &e);
        }
        let root = rec.path.clone().unwrap_or_default();
        let root = root.canonicalize().unwrap_or(root);
        if self.wts.iter().any(|w| w.root == root && w.phase != Phase::Done) {
            return Ok(()); // already watched
        }
        let id = self.wts.len();
        self.watcher.add(id, &root)?;
        let env = wt_common::ledger::lease::worktree_env(&rec, &self.ctx.ledger);
        let s = &self.ctx.settings;
        let target = feed::Target::resolve(&s.feed, &rec.name, &root, &self.ctx.socket, s.quiet, &env);
        if let Err(e) = crate::feed_lines::prepare(&target, self.ctx.exclude.as_deref()) {
            self.watcher.remove(id);
            return self.fail_record(rec, &e);
        }
        let debounce = s.debounce;
        let test_pane = s.test_pane.then(|| round::TestPane {
            socket: self.ctx.socket.clone(),
            pane: format!("{}-test", rec.name),
            agent: match &s.feed {
                crate::args::Feed::Pane(Some(p)) => p.clone(),
                _ => rec.name.clone(),
            },
        });
        let name = rec.name.clone();
        self.wts.push(Wt {
            rec,
            root,
            target,
            env,
            phase: Phase::Pending,
            // It runs once at start.
            dirty: Some(Instant::now().checked_sub(debounce).unwrap_or_else(Instant::now)),
            noticed: Noticed::default(),
            visible: HashSet::new(),
            last_green: None,
            seq: 0,
            rounds: 0,
            rerun: None,
            flaky: BTreeMap::new(),
            flaky_times: BTreeMap::new(),
            note: None,
            then_run: false,
            checking_base: false,
            fed_failures: 0,
            guard_base: None,
            count_base: None,
            last_failure: None,
            waiting_since: None,
            groups: Arc::new(Mutex::new(Default::default())),
            test_pane,
            stop: Arc::new(AtomicBool::new(false)),
            own: OwnWrites::default(),
            notes: Vec::new(),
            changed_since_start: false,
            round_after_change: false,
            maybe_runs: HashSet::new(),
            ended: None,
            asked_commit: false,
            best: crate::best::Best::load(&self.ctx.repo, &name),
            regressed: None,
        });
        Ok(())
    }

    fn fail_record(&mut self, mut rec: Record, e: &Error) -> Result<(), Error> {
        rec.set_error(TOOL, e);
        self.out.emit(&rec);
        Ok(())
    }

    /// Runs until every worktree is done and stdin has ended, or a signal: the exit code.
    pub fn run(mut self) -> Result<u8, Error> {
        // The terminal's progress bar (OSC 9;4) is busy while a round runs.
        let mut busy = false;
        loop {
            let running = self.wts.iter().any(|w| w.phase == Phase::Running);
            if running != busy {
                busy = running;
                notify::progress_on_stderr(if busy { notify::Progress::Busy } else { notify::Progress::Clear });
            }
            if !self.input_open && self.wts.iter().all(|w| w.phase == Phase::Done) {
                break;
            }
            // The status lines' timers count whole seconds: wake for each, even with nothing due.
            let due = [self.next_deadline(), self.live.next_tick()].into_iter().flatten().min();
            let wait = due.map_or(Duration::from_secs(3600), |d| d.saturating_duration_since(Instant::now()));
            match self.rx.recv_timeout(wait) {
                Ok(Msg::Signal(sig)) => {
                    if busy {
                        notify::progress_on_stderr(notify::Progress::Clear);
                    }
                    self.terminate_all();
                    let _ = self.out.finish();
                    return Ok(128u8.saturating_add(sig as u8));
                }
                Ok(msg) => self.handle(msg)?,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.tick();
            self.live.refresh();
        }
        if busy {
            notify::progress_on_stderr(notify::Progress::Clear);
        }
        let not_green = self.not_green;
        let status = self.out.finish();
        Ok(match status {
            wt_common::Exit::Ok if not_green => 1,
            s => s as u8,
        })
    }

    fn handle(&mut self, msg: Msg) -> Result<(), Error> {
        match msg {
            Msg::Fs(change) => self.changed(change)?,
            Msg::WatchFailed(e) => return Err(e),
            Msg::Line(Ok(input), line) => {
                match select::target_of_input(TOOL, &self.ctx.repo, &self.ctx.ledger, input, line) {
                    Ok(t) => self.take(t)?,
                    Err(m) => self.out.malformed(&m),
                }
            }
            Msg::Line(Err(m), _) => self.out.malformed(&m),
            Msg::InputEnd => self.input_open = false,
            Msg::RunDone { id, seq, result, tested, narrow, changed } => {
                let w = &mut self.wts[id];
                if w.seq == seq && w.phase == Phase::Running {
                    w.own.run_ended();
                    w.ended = Some(Ended { at: Instant::now(), result, tested, narrow, changed });
                }
            }
            Msg::Queued { id, seq, ahead } => {
                let w = &self.wts[id];
                if w.seq == seq && w.phase == Phase::Running {
                    let text = format!("round {}: queued ({ahead} ahead)", w.rounds + 1);
                    let name = w.rec.name.clone();
                    self.live.set(&name, text);
                }
            }
            Msg::SlotTaken { id, seq, at } => {
                let w = &mut self.wts[id];
                if w.seq == seq && w.phase == Phase::Running {
                    // Changes made while it waited are in the tree it tests: coalesced into
                    // this round, not queued as another.
                    w.dirty = None;
                    w.own.started_at(at);
                    let text = format!("round {}: running", w.rounds + 1);
                    let name = w.rec.name.clone();
                    self.live.set(&name, text);
                }
            }
            Msg::Committed { id, seq } => {
                if self.wts[id].seq == seq
                    && matches!(self.wts[id].phase, Phase::Feeding | Phase::Waiting | Phase::Idle)
                {
                    self.wts[id].changed_since_start = true;
                    let now = Instant::now();
                    self.mark_changed(id, now.checked_sub(self.ctx.settings.debounce).unwrap_or(now));
                }
            }
            Msg::Reran { id, seq, result } => {
                if self.wts[id].seq == seq && matches!(self.wts[id].phase, Phase::Feeding | Phase::Waiting) {
                    self.reran(id, result);
                }
            }
            Msg::BaseChecked { id, failure, base, results } => self.base_checked(id, failure, base, results),
            Msg::Fed { id, seq, result } => {
                if self.wts[id].seq == seq && self.wts[id].phase == Phase::Feeding {
                    self.fed(id, result);
                }
            }
            Msg::PaneExited { id, seq, why } => {
                if self.wts[id].seq == seq && self.wts[id].phase == Phase::Waiting {
                    self.give_up(id, &why);
                }
            }
            Msg::Signal(_) => {}
        }
        Ok(())
    }

    fn changed(&mut self, change: Change) -> Result<(), Error> {
        let ids: Vec<usize> = match change {
            Change::File { id, path, is_dir } => {
                if self.wts[id].phase != Phase::Done {
                    self.wts[id].noticed.add(path, is_dir);
                }
                vec![]
            }
            Change::Dir { id, path } => {
                self.watcher.add_dir(id, &path)?;
                vec![]
            }
            Change::Rules { id, .. } => {
                self.watcher.reload(id)?;
                vec![]
            }
            Change::Rescan => {
                let live: Vec<usize> = (0..self.wts.len()).filter(|i| self.wts[*i].phase != Phase::Done).collect();
                for id in &live {
                    self.wts[*id].changed_since_start = true;
                    let root = self.wts[*id].root.clone();
                    if root.is_dir() {
                        self.watcher.add(*id, &root)?;
                    }
                }
                live
            }
        };
        for id in ids {
            self.mark_changed(id, Instant::now());
        }
        Ok(())
    }

    /// The paths noticed in worktree `id` have settled: a round follows if git sees a change
    /// among them, at once (the debounce is behind them).
    fn settle(&mut self, id: usize) {
        let w = &mut self.wts[id];
        let noticed = w.noticed.take();
        if w.phase == Phase::Done {
            return;
        }
        let seen = noticed::seen(&w.root, self.ctx.exclude.as_deref(), &noticed, &mut w.visible);
        let sorted = w.own.sort(&w.root, &seen.files);
        for path in &sorted.found {
            let note = own_writes::note(&w.root, path);
            eprintln!("{TOOL}: {}: {note}", w.rec.name);
            w.notes.push(note);
        }
        w.changed_since_start |= seen.other || sorted.agents;
        w.maybe_runs.extend(sorted.maybe_runs);
        if !seen.other && !sorted.counts {
            return;
        }
        let settled = Instant::now().checked_sub(self.ctx.settings.debounce).unwrap_or_else(Instant::now);
        self.mark_changed(id, settled);
    }

    /// A change that matters, made at `at`: a run in progress goes on and the next round is
    /// queued for when it ends (one, however many changes come); a feed not yet delivered is
    /// dropped; the next round waits for the debounce after `at`.
    fn mark_changed(&mut self, id: usize, at: Instant) {
        let w = &mut self.wts[id];
        match w.phase {
            Phase::Done => return,
            Phase::Running => {
                w.dirty = Some(at);
                return;
            }
            Phase::Feeding | Phase::Waiting | Phase::Idle => {
                // Ends a feed, the watch on the agent's pane, the wait for a commit.
                w.stop.store(true, Ordering::SeqCst);
                w.seq += 1;
                w.fed_failures += 1;
                // The agent's change outranks the re-run of the old failure: it ends now.
                drop_rerun(w);
            }
            Phase::Pending => {}
        }
        w.phase = Phase::Pending;
        w.dirty = Some(at);
        w.waiting_since = None;
    }

    /// The next moment something is due: a debounce ending, an agent timing out.
    fn next_deadline(&self) -> Option<Instant> {
        let s = &self.ctx.settings;
        self.wts
            .iter()
            .filter(|w| w.phase != Phase::Done)
            .flat_map(|w| {
                let due = match w.phase {
                    Phase::Pending => w.dirty.map(|d| d + s.debounce),
                    Phase::Running => w.ended.as_ref().map(|e| e.at + DRAIN),
                    Phase::Waiting => w.waiting_since.map(|t| t + s.agent_timeout),
                    _ => None,
                };
                [due, w.noticed.last.map(|t| t + s.debounce)]
            })
            .flatten()
            .min()
    }

    fn tick(&mut self) {
        let now = Instant::now();
        let s = &self.ctx.settings;
        let (debounce, timeout) = (s.debounce, s.agent_timeout);
        for id in 0..self.wts.len() {
            if self.wts[id].noticed.last.is_some_and(|t| now >= t + debounce) {
                self.settle(id);
            }
            if self.wts[id].ended.as_ref().is_some_and(|e| now >= e.at + DRAIN) {
                // What the run wrote is in: judged now (its own output queues nothing).
                self.settle(id);
                if let Some(e) = self.wts[id].ended.take() {
                    self.finished(id, e.result, e.tested, e.narrow, e.changed);
                }
            }
            let w = &self.wts[id];
            match w.phase {
                Phase::Pending if w.dirty.is_some_and(|d| now >= d + debounce) => self.start_run(id),
                Phase::Waiting if w.waiting_since.is_some_and(|t| now >= t + timeout) => {
                    let why = match (w.asked_commit, &w.last_failure) {
                        (true, _) => format!("the agent did not commit within {} of being told to", human(timeout)),
                        (false, Some(_)) => format!(
                            "the agent did not change anything within {} of being told the tests fail",
                            human(timeout)
                        ),
                        // Green on the untouched base, and nothing came.
                        (false, None) => format!(
                            "nothing changed within {}: the tests pass on the base, and the agent made no change",
                            human(timeout)
                        ),
                    };
                    self.give_up(id, &why);
                }
                _ => {}
            }
        }
    }

    fn start_run(&mut self, id: usize) {
        let w = &mut self.wts[id];
        if !w.root.is_dir() {
            let e = Error::failed(
                "worktree-missing",
                format!("the worktree {} disappeared while it was watched", w.root.display()),
            );
            return self.error(id, &e);
        }
        let log = match wt_common::record::runlog::log_dir(&self.ctx.repo, &w.rec.name) {
            Ok(dir) => dir.join(format!("watch-{}.log", wt_common::record::runlog::unique_stem())),
            Err(e) => return self.error(id, &e),
        };
        w.seq += 1;
        w.phase = Phase::Running;
        w.dirty = None;
        w.round_after_change = w.changed_since_start;
        w.own.run_started();
        let s = &self.ctx.settings;
        let spec = RoundSpec {
            name: w.rec.name.clone(),
            cwd: w.root.clone(),
            argv: s.command.clone(),
            env: w.env.clone(),
            log,
            timeout: Some(s.timeout.unwrap_or_else(|| round::default_timeout(w.last_green))),
            confine: self.ctx.confine.clone(),
        };
        let (tx, groups, seq, test_pane) = (self.tx.clone(), Arc::clone(&w.groups), w.seq, w.test_pane.clone());
        let text = format!("round {}: running", w.rounds + 1);
        let name = w.rec.name.clone();
        let repo = self.ctx.repo.clone();
        let rerun = s.rerun;
        let governor = self.ctx.governor;
        std::thread::spawn(move || {
            // Every round waits for a job slot; one in a test pane hands its jobserver to the pane.
            let lease = crate::slot::take(&governor, &spec.name, &mut |ahead| {
                let _ = tx.send(Msg::Queued { id, seq, ahead });
            });
            let lease = match lease {
                Ok(lease) => lease,
                Err(e) => {
                    let (tested, changed) = wt_common::git::tested::with_changes(&repo, &spec.name, &spec.cwd);
                    let _ = tx.send(Msg::RunDone { id, seq, result: Err(e), tested, narrow: None, changed });
                    return;
                }
            };
            let _ = tx.send(Msg::SlotTaken { id, seq, at: std::time::SystemTime::now() });
            // Taken off the loop's thread: it costs a `git status`.
            let (tested, changed) = wt_common::git::tested::with_changes(&repo, &spec.name, &spec.cwd);
            let result = match &test_pane {
                Some(pane) => pane.run(&spec, lease.as_ref()),
                None => round::run_with(&spec, &groups, lease.as_ref()),
            };
            drop(lease);
            // Read here too: the log can be megabytes.
            let narrow = result.as_ref().ok().filter(|_| rerun).and_then(|f| narrow::of_round(&spec.argv, f));
            let _ = tx.send(Msg::RunDone { id, seq, result, tested, narrow, changed });
        });
        self.live.set(&name, text);
    }

    fn finished(
        &mut self,
        id: usize,
        result: Result<Finished, Error>,
        tested: Tested,
        narrow: Option<Plan>,
        changed: Vec<String>,
    ) {
        let fin = match result {
            Ok(f) => f,
            Err(e) => return self.error(id, &e),
        };
        if fin.passed {
            return self.green(id, fin, tested, changed);
        }
        let w = &mut self.wts[id];
        if w.dirty.is_some() {
            // A change came while it ran: the queued round tests it; this one is not fed.
            w.phase = Phase::Pending;
            let name = w.rec.name.clone();
            self.live.set(&name, "red, but changed while it ran: running again".to_string());
            return;
        }
        w.rounds += 1;
        w.regressed = w.best.judge(&self.ctx.repo, w.rounds, &tested, &round_log(&fin.run));
        if w.guard_base.is_none() && !self.ctx.guard.is_empty() {
            w.guard_base = Some(self.ctx.guard.snapshot(&w.root, self.ctx.exclude.as_deref()));
        }
        if w.count_base.is_none() {
            w.count_base = fin.count.clone();
        }
        w.last_failure = fin.excerpt.clone();
        let (rounds, max) = (w.rounds, self.ctx.settings.max_rounds);
        if rounds >= max {
            let why = format!("still red after {max} round{}", if max == 1 { "" } else { "s" });
            self.emit(id, "gave-up", Some((&fin.run, &tested)), &[("reason", json!(why))]);
            return self.done(id, false, &why);
        }
        let (pre, base) = self.known_on_base(id, narrow.as_ref());
        let extra: Vec<(&str, Value)> = if pre.is_empty() { Vec::new() } else { vec![("pre_existing", json!(pre))] };
        self.emit(id, "red", Some((&fin.run, &tested)), &extra);
        // Fed after one run; a failure that passed on a re-run before, or fails on the base
        // too, is said to be so.
        let w = &self.wts[id];
        let seen = narrow.as_ref().and_then(|p| narrow::known_flaky_note(&p.tests, &w.flaky));
        let on_base = base.and_then(|b| preexisting::note(&pre, &b));
        let mut text = feed::message(
            &w.rec.name,
            w.rounds,
            &self.ctx.settings.command,
            &format!(
                "{}{}{}",
                on_base.unwrap_or_default(),
                seen.unwrap_or_default(),
                w.last_failure.as_deref().unwrap_or_default()
            ),
        );
        // Fewer tests pass than at the best commit so far: said first.
        if let Some(regressed) = &w.regressed {
            text = format!("{regressed}\n\n{text}");
        }
        let line = format!("round {}: red, telling the agent", w.rounds);
        self.wts[id].fed_failures += 1;
        self.start_feed(id, text, line);
        if let Some(plan) = narrow {
            self.start_rerun(id, plan, tested);
        }
    }

    /// Runs the fed round's failing tests again (`narrow`), while the agent reads: in the
    /// round's process groups, so that a change, the end of the loop or a signal ends it.
    fn start_rerun(&mut self, id: usize, plan: Plan, tested: Tested) {
        let w = &mut self.wts[id];
        let Ok(dir) = wt_common::record::runlog::log_dir(&self.ctx.repo, &w.rec.name) else { return };
        let s = &self.ctx.settings;
        let spec = RoundSpec {
            name: w.rec.name.clone(),
            cwd: w.root.clone(),
            argv: plan.argv.clone(),
            env: w.env.clone(),
            log: dir.join(format!("watch-rerun-{}.log", wt_common::record::runlog::unique_stem())),
            timeout: Some(s.timeout.unwrap_or_else(|| round::default_timeout(w.last_green))),
            confine: self.ctx.confine.clone(),
        };
        let (tx, groups, seq, governor) = (self.tx.clone(), Arc::clone(&w.groups), w.seq, self.ctx.governor);
        let n = plan.tests.len();
        // What the re-run writes (a report, coverage) is the test command's, as a round's is:
        // taken for the agent's, it started the next round with nobody at the keyboard.
        w.own.run_started();
        std::thread::spawn(move || {
            // Its builds get the jobserver, but it waits for no slot (short, and run while the
            // agent reads: a queued re-run would only be stale by the time it ran).
            let label = format!("wt-watch {} re-run", spec.name);
            let result = wt_common::proc::governor::lease(
                &governor,
                wt_common::proc::governor::Slot::Covered,
                &label,
                &mut |_| {},
            )
            .and_then(|lease| round::run_with(&spec, &groups, lease.as_ref()));
            let _ = tx.send(Msg::Reran { id, seq, result });
        });
        w.rerun = Some(Rerun { plan, tested, round: w.rounds });
        let name = w.rec.name.clone();
        let what = if n == 1 { "its failing test".to_string() } else { format!("its {n} failing tests") };
        self.live.set(&name, format!("round {}: red, telling the agent; running {what} again", self.wts[id].rounds));
    }

    /// The re-run ended: failing tests that passed are told to the agent as probably flaky (a
    /// `flaky` record when all did, and the round runs again once the agent has heard).
    fn reran(&mut self, id: usize, result: Result<Finished, Error>) {
        let w = &mut self.wts[id];
        let Some(rerun) = w.rerun.take() else { return };
        w.own.run_ended();
        let Ok(fin) = result else { return }; // the re-run could not run: nothing to tell
        let output = narrow::read_run_log(&fin.run);
        let (passed, all) = match narrow::verdict(&rerun.plan, fin.passed, &output) {
            Verdict::Nothing => return,
            Verdict::AllPassed => (rerun.plan.tests.clone(), true),
            Verdict::Failing { passed, still } => {
                self.check_base(id, &rerun, still);
                (passed, false)
            }
        };
        if passed.is_empty() {
            return;
        }
        let w = &mut self.wts[id];
        // Passed alone before, and failed in the whole suite again: not flaky but dependent on
        // what other tests leave behind. Run again each time, it went red, flaky, red until the
        // loop gave up, and the agent never had its turn: it is the agent's to fix.
        let before = passed.iter().filter_map(|t| w.flaky.get(t).copied()).filter(|r| *r < rerun.round).min();
        let times = |t: &String| w.flaky_times.get(t).copied().unwrap_or(0);
        if all && passed.iter().all(|t| times(t) >= FLAKY_RERUNS) {
            let text = format!(
                "wt-watch: {}: {} passed when run alone again, but failed in the whole suite again (as in round {}): not flaky, but depending on what other tests leave behind (order, shared state). Fix it like any failure.",
                w.rec.name,
                passed.join(", "),
                before.unwrap_or(rerun.round)
            );
            return self.tell(id, text, false);
        }
        for t in &passed {
            w.flaky.insert(t.clone(), rerun.round);
            *w.flaky_times.entry(t.clone()).or_default() += 1;
        }
        let text = narrow::message(&w.rec.name, rerun.round, &passed, all);
        if all {
            self.emit(id, "flaky", Some((&fin.run, &rerun.tested)), &[("flaky", json!(passed))]);
        }
        self.tell(id, text, all);
    }

    /// A second message for the agent: after the first, if that is still on its way.
    fn tell(&mut self, id: usize, text: String, then_run: bool) {
        let w = &mut self.wts[id];
        if w.phase == Phase::Feeding {
            w.note = Some(match w.note.take() {
                Some((before, run)) => (format!("{before}\n\n{text}"), run || then_run),
                None => (text, then_run),
            });
        } else {
            self.start_note(id, text, then_run);
        }
    }

    /// The tests of `plan` known to fail on the worktree's base commit too, and that commit.
    fn known_on_base(&self, id: usize, plan: Option<&Plan>) -> (Vec<String>, Option<String>) {
        let base = self.wts[id].rec.base_commit.clone();
        let (Some(plan), Some(b)) = (plan, &base) else { return (Vec::new(), base) };
        let pre = plan
            .tests
            .iter()
            .filter(|t| self.on_base.get(&(b.clone(), (*t).clone())) == Some(&true))
            .cloned()
            .collect();
        (pre, base)
    }

    /// Runs the tests that failed again on the worktree's base commit, in a scratch checkout
    /// on a thread (`preexisting`), unless known already. A round that tested the base itself,
    /// unchanged, needs no run: its failures are the base's.
    fn check_base(&mut self, id: usize, rerun: &Rerun, still: Vec<String>) {
        let w = &self.wts[id];
        let Some(base) = w.rec.base_commit.clone() else { return };
        let unknown: Vec<String> =
            still.into_iter().filter(|t| !self.on_base.contains_key(&(base.clone(), t.clone()))).collect();
        if unknown.is_empty() || w.checking_base {
            return;
        }
        let failure = w.fed_failures;
        if rerun.tested.commit.as_deref() == Some(base.as_str()) && !rerun.tested.dirty {
            let results = unknown.into_iter().map(|t| (t, true)).collect();
            return self.base_checked(id, failure, base, results);
        }
        let s = &self.ctx.settings;
        let check = preexisting::Check {
            repo: self.ctx.repo.clone(),
            name: w.rec.name.clone(),
            base: base.clone(),
            plan: Plan { tests: unknown, ..rerun.plan.clone() },
            worktree: w.root.clone(),
            env: w.env.clone(),
            timeout: s.timeout.unwrap_or_else(|| round::default_timeout(w.last_green)),
        };
        let (tx, groups) = (self.tx.clone(), Arc::clone(&w.groups));
        self.wts[id].checking_base = true;
        std::thread::spawn(move || {
            let results = preexisting::run(&check, &groups).unwrap_or_default();
            let _ = tx.send(Msg::BaseChecked { id, failure, base, results });
        });
    }

    /// The failing tests ran on the base: kept, whatever the agent did meanwhile; those that
    /// fail there too are told to the agent as pre-existing if its failure is still the news.
    fn base_checked(&mut self, id: usize, failure: u64, base: String, results: preexisting::Results) {
        self.wts[id].checking_base = false;
        for (test, fails) in &results {
            self.on_base.insert((base.clone(), test.clone()), *fails);
        }
        let w = &self.wts[id];
        if w.fed_failures != failure || !matches!(w.phase, Phase::Feeding | Phase::Waiting) {
            return;
        }
        let pre: Vec<String> = results.into_iter().filter(|(_, f)| *f).map(|(t, _)| t).collect();
        if !pre.is_empty() {
            let text = preexisting::message(&w.rec.name, w.rounds, &pre, &base);
            self.tell(id, text, false);
        }
    }

    /// Tells the agent what the re-run or the base found of its failure (flaky, pre-existing);
    /// `then_run`: a round follows once it has heard.
    fn start_note(&mut self, id: usize, text: String, then_run: bool) {
        let w = &mut self.wts[id];
        w.stop.store(true, Ordering::SeqCst); // the watch on the agent's pane restarts after it
        w.then_run = then_run;
        let found = if then_run { "its failing tests passed when run again (flaky)" } else { "what its re-run found" };
        let line = format!("round {}: red, telling the agent {found}", w.rounds);
        if let Err(e) = crate::feed_lines::append_message(&w.target, &w.rec.name, "note", &text) {
            eprintln!("wt-watch: {}: {}", w.rec.name, e.message);
        }
        self.start_feed(id, text, line);
    }

    fn green(&mut self, id: usize, fin: Finished, tested: Tested, changed: Vec<String>) {
        let w = &mut self.wts[id];
        w.last_green = Some(fin.duration);
        if w.dirty.is_some() {
            // A change came while it ran: the queued round tests it, and decides.
            w.phase = Phase::Pending;
            let name = w.rec.name.clone();
            self.live.set(&name, "green, but changed while it ran: running again".to_string());
            return;
        }
        // The files the test command writes itself are no uncommitted change.
        let tested = match tested.dirty && w.own.only_outputs(&w.root, &changed) {
            true => Tested { dirty: false, ..tested },
            false => tested,
        };
        w.rounds += 1;
        w.regressed = w.best.judge(&self.ctx.repo, w.rounds, &tested, &round_log(&fin.run));
        let touched = match &w.guard_base {
            Some(base) => guard::touched(base, &self.ctx.guard.snapshot(&w.root, self.ctx.exclude.as_deref())),
            None => Vec::new(),
        };
        let dropped = guard::fewer_tests(w.count_base.as_ref(), fin.count.as_ref());
        let status = if !touched.is_empty() || dropped.is_some() { "green-guard-touched" } else { "green" };
        let until_green = self.ctx.settings.until_green;
        // A change before the round that no run since has shown to be the test command's own.
        let after_change = w.round_after_change || w.maybe_runs.iter().any(|p| !w.own.is_output(p));
        let verdict = match status {
            "green" => commit::judge(&self.ctx.repo, &w.rec, &tested, &changed, after_change, until_green),
            _ => Green::Final,
        };
        let round = w.rounds;
        match verdict {
            Green::Untouched => {
                // The base as it was, with nothing of the agent's yet: wait for its change, as
                // long as for an answer to a failure (an agent that died early ends the loop).
                (w.rounds, w.phase, w.waiting_since, w.asked_commit) = (0, Phase::Waiting, Some(Instant::now()), false);
                let name = w.rec.name.clone();
                return self.live.rest(&name, "green, but nothing changed yet: waiting for a change".into());
            }
            // Not final: no record, the agent is told to commit.
            // With `--feed none` nobody can be told: the green round is reported as it is, with
            // `dirty: true` (which wt-merge does not merge), rather than waiting for a commit
            // nobody was asked for (a crate whose first test run writes an untracked Cargo.lock
            // waited the whole --agent-timeout).
            Green::Uncommitted if until_green && !matches!(w.target, feed::Target::None) => {
                return self.ask_commit(id, round, tested, &changed)
            }
            _ => {}
        }
        let mut extra: Vec<(&str, Value)> =
            if touched.is_empty() { Vec::new() } else { vec![("guard_touched", json!(touched))] };
        extra.extend(dropped.map(|d| ("tests_dropped", d)));
        self.emit(id, status, Some((&fin.run, &tested)), &extra);
        if until_green {
            return self.done(id, status == "green", status);
        }
        let w = &mut self.wts[id];
        (w.rounds, w.last_failure, w.phase) = (0, None, Phase::Idle);
        // A guarded green keeps what it was judged against: else the next round, on the same
        // edited tests with no red in between, was a plain green that wt-merge would merge.
        if status == "green" {
            (w.guard_base, w.count_base) = (None, None);
        }
        let name = w.rec.name.clone();
        self.live.rest(&name, format!("{status}; watching"));
        if verdict == Green::Uncommitted {
            // Reported green with `dirty`, which wt-merge does not merge: the commit is.
            self.ask_commit(id, round, tested, &changed);
        }
    }

    /// Green on uncommitted changes: the agent is told to commit, and its commit (the branch
    /// moving) starts the round that tests it.
    fn ask_commit(&mut self, id: usize, round: u32, tested: Tested, changed: &[String]) {
        let w = &self.wts[id];
        let text = commit::message(&w.rec.name, round, &self.ctx.settings.command, changed);
        let live = format!("round {round}: green on uncommitted changes, telling the agent to commit");
        if let Err(e) = crate::feed_lines::append_message(&w.target, &w.rec.name, "commit-requested", &text) {
            eprintln!("wt-watch: {}: {}", w.rec.name, e.message);
        }
        self.feed_text(id, text, live);
        let w = &mut self.wts[id];
        w.asked_commit = true;
        let at = (self.ctx.repo.clone(), w.rec.name.clone(), w.root.clone());
        commit::await_commit(self.tx.clone(), id, w.seq, Arc::clone(&w.stop), at, tested);
    }

    /// Hands a failure's `text` to the agent on a thread; `line` is the status line meanwhile.
    fn start_feed(&mut self, id: usize, text: String, line: String) {
        self.wts[id].asked_commit = false;
        self.feed_text(id, text, line);
    }

    /// Hands `text` to the agent on a thread; `Msg::Fed` says how it went.
    fn feed_text(&mut self, id: usize, text: String, live: String) {
        let w = &mut self.wts[id];
        w.seq += 1;
        w.stop = Arc::new(AtomicBool::new(false));
        let s = &self.ctx.settings;
        let (tx, seq, stop, target, patience) =
            (self.tx.clone(), w.seq, Arc::clone(&w.stop), w.target.clone(), s.agent_timeout);
        w.phase = Phase::Feeding;
        let name = w.rec.name.clone();
        self.live.set(&name, live);
        std::thread::spawn(move || {
            let result = feed::deliver(&target, &text, patience, &stop);
            let _ = tx.send(Msg::Fed { id, seq, result });
        });
    }

    fn fed(&mut self, id: usize, result: Result<(), Undelivered>) {
        let w = &mut self.wts[id];
        if w.asked_commit && !self.ctx.settings.until_green && !matches!(result, Err(Undelivered::Cancelled)) {
            // Watching on (no --until-green): asked or not, nothing is waited for but a change
            // or the commit.
            w.phase = Phase::Idle;
            let name = w.rec.name.clone();
            return self.live.set(&name, "green on uncommitted changes; watching for the commit".into());
        }
        match result {
            Ok(()) => {}
            Err(Undelivered::Cancelled) => return,
            Err(Undelivered::Exited(why)) => return self.give_up(id, &why),
            Err(Undelivered::Busy(d)) => {
                return self.give_up(id, &format!("the agent was never idle within {}", human(d)))
            }
            Err(Undelivered::Failed(e)) => return self.error(id, &e),
        }
        let w = &mut self.wts[id];
        if let Some((text, then_run)) = w.note.take() {
            return self.start_note(id, text, then_run);
        }
        if std::mem::take(&mut w.then_run) {
            // Its failures were flaky, and it has heard: the tests run again, not its turn.
            w.phase = Phase::Pending;
            w.dirty = Some(Instant::now().checked_sub(self.ctx.settings.debounce).unwrap_or_else(Instant::now));
            let name = w.rec.name.clone();
            self.live.set(&name, "flaky: running the tests again".to_string());
            return;
        }
        w.phase = Phase::Waiting;
        w.waiting_since = Some(Instant::now());
        if let feed::Target::Pane { socket, pane, .. } = &w.target {
            // An agent that exits while it should be fixing things ends the loop, with why.
            let (tx, seq, stop, socket, pane) =
                (self.tx.clone(), w.seq, Arc::clone(&w.stop), socket.clone(), pane.clone());
            std::thread::spawn(move || {
                if let Some(why) = feed::watch_exit(&socket, &pane, &stop) {
                    let _ = tx.send(Msg::PaneExited { id, seq, why });
                }
            });
        }
        let name = w.rec.name.clone();
        let rounds = w.rounds;
        let what = if w.asked_commit {
            "green on uncommitted changes, waiting for the commit".to_string()
        } else {
            let again = if w.rerun.is_some() { " (its failing tests run again meanwhile)" } else { "" };
            format!("red, waiting for the agent{again}")
        };
        self.live.set(&name, format!("round {rounds}: {what}"));
    }

    fn give_up(&mut self, id: usize, why: &str) {
        self.emit(id, "gave-up", None, &[("reason", json!(why))]);
        self.done(id, false, why);
    }

    fn error(&mut self, id: usize, e: &Error) {
        let mut rec = self.wts[id].rec.clone();
        rec.set_error(TOOL, e);
        self.out.emit(&rec);
        self.done(id, false, &e.message);
    }

    fn done(&mut self, id: usize, green: bool, text: &str) {
        self.not_green |= !green;
        let w = &mut self.wts[id];
        w.phase = Phase::Done;
        w.stop.store(true, Ordering::SeqCst);
        cancel_round(w);
        let name = w.rec.name.clone();
        self.watcher.remove(id);
        self.live.rest(&name, format!("done: {text}"));
    }

    /// Writes the worktree's record with `watch`: at every round, or with --until-green only
    /// when the worktree is done. `round`: the round's run and what it tested (`commit`,
    /// `dirty`); none when the loop gave up between runs.
    fn emit(&mut self, id: usize, status: &str, round: Option<(&Value, &Tested)>, extra: &[(&str, Value)]) {
        // Not final: a red round goes to the agent, a flaky one runs again.
        let final_status = !matches!(status, "red" | "flaky");
        let w = &self.wts[id];
        // A flaky record's run is the narrow re-run's: the round itself stays red for wt-status.
        if (round.is_some() && status != "flaky") || status == "gave-up" {
            self.keep_outcome(&w.rec, status, round, w.last_failure.as_deref(), extra);
        }
        let mut watch = Map::new();
        watch.insert("status".into(), json!(status));
        watch.insert("rounds".into(), json!(w.rounds));
        watch.insert("guard".into(), self.ctx.guard.describe());
        if let Some((_, tested)) = round {
            tested.insert_into(&mut watch, "commit");
        }
        for (k, v) in extra {
            watch.insert((*k).to_string(), v.clone());
        }
        if let Some(f) = &w.last_failure {
            watch.insert("last_failure".into(), json!(f));
        }
        if let Some(best) = w.best.field() {
            watch.insert("best".into(), best);
        }
        if let Some(line) = &w.regressed {
            watch.insert("regressed".into(), json!(line));
        }
        if let Some((run, _)) = round {
            watch.insert("run".into(), run.clone());
        }
        if !w.notes.is_empty() {
            watch.insert("notes".into(), json!(w.notes));
        }
        if let Err(e) = crate::feed_lines::append(&w.target, &w.rec.name, &watch, &self.ctx.settings.command) {
            eprintln!("wt-watch: {}: {}", w.rec.name, e.message);
        }
        if self.ctx.settings.until_green && !final_status {
            return;
        }
        let mut rec = w.rec.clone();
        rec.set_key("watch", Value::Object(watch));
        self.out.emit(&rec);
        self.wts[id].notes.clear();
    }

    /// Keeps how the round ended for wt-status (`kept`): the person hears of a loop that ended
    /// guarded, flaky or gave up.
    fn keep_outcome(
        &self,
        rec: &Record,
        status: &str,
        round: Option<(&Value, &Tested)>,
        failure: Option<&str>,
        extra: &[(&str, Value)],
    ) {
        let o = crate::kept::of_round(rec, status, round, &self.ctx.settings.command.join(" "), failure, extra);
        wt_common::ledger::outcome::write(&self.ctx.repo.state_dir(), &rec.name, &o);
    }

    /// On SIGINT/SIGTERM: every test run's group gets SIGTERM, then SIGKILL after the grace.
    fn terminate_all(&mut self) {
        let groups: Vec<i32> = self
            .wts
            .iter()
            .flat_map(|w| w.groups.lock().map(|g| g.iter().copied().collect::<Vec<_>>()).unwrap_or_default())
            .collect();
        for w in &self.wts {
            w.stop.store(true, Ordering::SeqCst);
            if let Some(pane) = &w.test_pane {
                pane.cancel();
            }
        }
        let handles: Vec<_> = groups
            .into_iter()
            .map(|g| std::thread::spawn(move || wt_common::proc::process::end_group(g, round::GRACE)))
            .collect();
        for h in handles {
            let _ = h.join();
        }
    }
}

/// The fed round's failing tests running again (`narrow`).
#[derive(Debug)]
struct Rerun {
    plan: Plan,
    /// What the red round tested.
    tested: Tested,
    round: u32,
}

/// Forgets the re-run of a failure the agent has moved on from, and ends it and the check on
/// the base (they run in the worktree's process groups, which hold nothing else between
/// rounds, with its env: never beside its next round), with what they would have said.
fn drop_rerun(w: &mut Wt) {
    let rerun = w.rerun.take().is_some();
    if rerun {
        w.own.run_ended();
    }
    if rerun || w.checking_base {
        round::cancel(&w.groups);
    }
    w.note = None;
    w.then_run = false;
}

/// Ends the worktree's running round, wherever it runs, in the background.
fn cancel_round(w: &Wt) {
    round::cancel(&w.groups);
    if let Some(pane) = w.test_pane.clone() {
        std::thread::spawn(move || pane.cancel());
    }
}

/// The log a round's output went to, as its record's `run.log` names it.
fn round_log(run: &Value) -> PathBuf {
    PathBuf::from(run["log"].as_str().unwrap_or_default())
}

/// `15m`, `90s`, `500ms`: a duration as a person writes it.
fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}
