//! The loop: every watched worktree's state, driven by messages (file changes, finished runs,
//! delivered feedback, new worktrees on stdin, signals) and by time (debounce, agent timeout).
//! One thread decides; runs, feeds and the watcher work on threads of their own and report here.

use std::collections::HashSet;
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
use crate::guard::{self, Guard, Snapshot};
use crate::live::Live;
use crate::noticed::{self, Noticed};
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
    /// This round's failure was already run again once (a flaky test passes then).
    retried: bool,
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
}

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
}

impl Session {
    pub fn new(ctx: Ctx, out: Output, tx: Sender<Msg>, rx: Receiver<Msg>, input_open: bool) -> Result<Session, Error> {
        let watcher = Watcher::new(tx.clone(), ctx.exclude.clone())?;
        Ok(Session { ctx, wts: Vec::new(), watcher, tx, rx, out, live: Live::new(), input_open, not_green: false })
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
        let debounce = s.debounce;
        let test_pane = s.test_pane.then(|| round::TestPane {
            socket: self.ctx.socket.clone(),
            pane: format!("{}-test", rec.name),
            agent: match &s.feed {
                crate::args::Feed::Pane(Some(p)) => p.clone(),
                _ => rec.name.clone(),
            },
        });
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
            retried: false,
            guard_base: None,
            count_base: None,
            last_failure: None,
            waiting_since: None,
            groups: Arc::new(Mutex::new(Default::default())),
            test_pane,
            stop: Arc::new(AtomicBool::new(false)),
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
            Msg::RunDone { id, seq, result, tested } => {
                if self.wts[id].seq == seq && self.wts[id].phase == Phase::Running {
                    self.finished(id, result, tested);
                }
            }
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
        if w.phase == Phase::Done || !noticed::matters(&w.root, self.ctx.exclude.as_deref(), &noticed, &mut w.visible) {
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
            Phase::Feeding | Phase::Waiting => {
                w.stop.store(true, Ordering::SeqCst);
                w.seq += 1;
            }
            Phase::Pending | Phase::Idle => {}
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
            let w = &self.wts[id];
            match w.phase {
                Phase::Pending if w.dirty.is_some_and(|d| now >= d + debounce) => self.start_run(id),
                Phase::Waiting if w.waiting_since.is_some_and(|t| now >= t + timeout) => {
                    let why = format!(
                        "the agent did not change anything within {} of being told the tests fail",
                        human(timeout)
                    );
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
        let round = w.rounds + 1;
        let text = if w.retried {
            format!("round {round}: red, re-running once to rule out a flaky test")
        } else {
            format!("round {round}: running")
        };
        let name = w.rec.name.clone();
        let repo = self.ctx.repo.clone();
        std::thread::spawn(move || {
            // Taken off the loop's thread: it costs a `git status`.
            let tested = wt_common::git::tested::of(&repo, &spec.name, &spec.cwd);
            let result = match &test_pane {
                Some(pane) => pane.run(&spec),
                None => round::run(&spec, &groups),
            };
            let _ = tx.send(Msg::RunDone { id, seq, result, tested });
        });
        self.live.set(&name, text);
    }

    fn finished(&mut self, id: usize, result: Result<Finished, Error>, tested: Tested) {
        let fin = match result {
            Ok(f) => f,
            Err(e) => return self.error(id, &e),
        };
        if fin.passed {
            return self.green(id, fin, tested);
        }
        let w = &mut self.wts[id];
        if w.dirty.is_some() {
            // A change came while it ran: the queued round tests it; this one is not fed.
            w.retried = false;
            w.phase = Phase::Pending;
            let name = w.rec.name.clone();
            self.live.set(&name, "red, but changed while it ran: running again".to_string());
            return;
        }
        if self.ctx.settings.rerun && !w.retried && fin.timed_out.is_none() {
            // Red with no change since: run it once more; a pass now means a flaky test. Not a
            // round that timed out: a hang is no flaky test, and a second one doubles the wait.
            w.retried = true;
            return self.start_run(id);
        }
        w.retried = false;
        w.rounds += 1;
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
        self.emit(id, "red", Some((&fin.run, &tested)), &[]);
        self.start_feed(id);
    }

    fn green(&mut self, id: usize, fin: Finished, tested: Tested) {
        let w = &mut self.wts[id];
        w.last_green = Some(fin.duration);
        if w.dirty.is_some() {
            // A change came while it ran: the queued round tests it, and decides.
            w.phase = Phase::Pending;
            w.retried = false;
            let name = w.rec.name.clone();
            self.live.set(&name, "green, but changed while it ran: running again".to_string());
            return;
        }
        w.rounds += 1;
        let touched = match &w.guard_base {
            Some(base) => guard::touched(base, &self.ctx.guard.snapshot(&w.root, self.ctx.exclude.as_deref())),
            None => Vec::new(),
        };
        let dropped = guard::fewer_tests(w.count_base.as_ref(), fin.count.as_ref());
        let status = if w.retried {
            "flaky"
        } else if !touched.is_empty() || dropped.is_some() {
            "green-guard-touched"
        } else {
            "green"
        };
        w.retried = false;
        let mut extra: Vec<(&str, Value)> =
            if touched.is_empty() { Vec::new() } else { vec![("guard_touched", json!(touched))] };
        extra.extend(dropped.map(|d| ("tests_dropped", d)));
        self.emit(id, status, Some((&fin.run, &tested)), &extra);
        if self.ctx.settings.until_green {
            return self.done(id, status == "green", status);
        }
        let w = &mut self.wts[id];
        (w.rounds, w.guard_base, w.count_base, w.last_failure, w.phase) = (0, None, None, None, Phase::Idle);
        let name = w.rec.name.clone();
        self.live.set(&name, format!("{status}; watching"));
    }

    fn start_feed(&mut self, id: usize) {
        let w = &mut self.wts[id];
        w.seq += 1;
        w.stop = Arc::new(AtomicBool::new(false));
        let s = &self.ctx.settings;
        let text = feed::message(&w.rec.name, w.rounds, &s.command, w.last_failure.as_deref().unwrap_or_default());
        let (tx, seq, stop, target, patience) =
            (self.tx.clone(), w.seq, Arc::clone(&w.stop), w.target.clone(), s.agent_timeout);
        w.phase = Phase::Feeding;
        let name = w.rec.name.clone();
        self.live.set(&name, format!("round {}: red, telling the agent", w.rounds));
        std::thread::spawn(move || {
            let result = feed::deliver(&target, &text, patience, &stop);
            let _ = tx.send(Msg::Fed { id, seq, result });
        });
    }

    fn fed(&mut self, id: usize, result: Result<(), Undelivered>) {
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
        self.live.set(&name, format!("round {rounds}: red, waiting for the agent"));
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
        self.live.set(&name, format!("done: {text}"));
    }

    /// Writes the worktree's record with `watch`: at every round, or with --until-green only
    /// when the worktree is done. `round`: the round's run and what it tested (`commit`,
    /// `dirty`); none when the loop gave up between runs.
    fn emit(&mut self, id: usize, status: &str, round: Option<(&Value, &Tested)>, extra: &[(&str, Value)]) {
        let final_status = status != "red";
        let w = &self.wts[id];
        if round.is_some() || status == "gave-up" {
            self.keep_outcome(&w.rec, status, round, w.last_failure.as_deref(), extra);
        }
        if self.ctx.settings.until_green && !final_status {
            return;
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
        if let Some((run, _)) = round {
            watch.insert("run".into(), run.clone());
        }
        let mut rec = w.rec.clone();
        rec.set_key("watch", Value::Object(watch));
        self.out.emit(&rec);
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

/// Ends the worktree's running round, wherever it runs, in the background.
fn cancel_round(w: &Wt) {
    round::cancel(&w.groups);
    if let Some(pane) = w.test_pane.clone() {
        std::thread::spawn(move || pane.cancel());
    }
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
