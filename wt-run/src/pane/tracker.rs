//! Keeps one pane's agent state: takes the signals in (hook reports from `pane.notify`, and for
//! a native pane its output, terminal notifications, screen rules and status file, which one
//! thread watches for every native pane: `watchers`; for a tmux pane its sampled screen, one
//! thread for every tmux pane: `tmux_watchers`), decides, and announces each change: a `state`
//! event, the `--on-state` command, and the event loop, which looks at the waiters of
//! `pane.wait --state` again.
//!
//! A native pane's watcher is woken by output, input and the exit; its only timers are the
//! ones after which something can change (the quiet time after the last output, a throttled
//! look at a screen that changed, a hook report going stale), so a quiet pane costs nothing.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::agent::{Activity, Agent, Decided, Signal, Source, HOOK_STALE};
use super::answer::Reply;
use super::events::Events;
use super::handle::{Failure, Handle};
use super::on_state::OnState;
use super::pty::{Exit, Pane};
use super::rules::Profile;
use super::tmux::TmuxPane;

/// A changed screen is matched against the rules at most this often.
pub const SCREEN_EVERY: Duration = Duration::from_millis(100);

/// While a pane's output flows, its tracker is told of it (and looks) at most this often.
pub const OUTPUT_EVERY: Duration = Duration::from_millis(20);

/// A tmux pane's screen is looked at this often (one tmux command each time).
pub const TMUX_EVERY: Duration = Duration::from_millis(500);

/// A status file is read at most this often while the pane prints.
pub const STATUS_EVERY: Duration = Duration::from_millis(500);

pub struct Tracker {
    name: String,
    agent: Mutex<(Agent, Activity)>,
    /// Tells the event loop of a change of state (see `on_change`).
    on_change: OnceLock<Box<dyn Fn() + Send + Sync>>,
    profile: Profile,
    on_state: OnState,
    events: Arc<Events>,
    sessions_dir: Option<PathBuf>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker").field("name", &self.name).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Tracker {
    /// A tracker in state `starting`, announced.
    pub fn start(
        name: &str,
        profile: Profile,
        on_state: OnState,
        events: Arc<Events>,
        env: &[(String, String)],
    ) -> Arc<Tracker> {
        let sessions_dir = profile.claude_status.then(|| super::status_file::claude_sessions_dir(env)).flatten();
        let t = Arc::new(Tracker {
            name: name.to_string(),
            agent: Mutex::new((Agent::new(), Activity { last_output: Instant::now(), last_input: None })),
            on_change: OnceLock::new(),
            profile,
            on_state,
            events,
            sessions_dir,
        });
        let first = lock(&t.agent).0.decided().clone();
        t.events.publish(first.event(name));
        t.on_state.entered(name, &first);
        t
    }

    pub fn describe_into(&self, pane: &mut Value) {
        lock(&self.agent).0.decided().describe_into(pane);
        pane["agent"] = json!(self.profile.name);
    }

    pub fn state(&self) -> &'static str {
        lock(&self.agent).0.decided().state
    }

    /// Takes in signals (source → its word now) and announces what they change.
    pub fn report(&self, signals: Vec<(Source, Option<Signal>)>, activity: Option<Activity>) {
        let mut guard = lock(&self.agent);
        let (agent, known) = &mut *guard;
        if let Some(a) = activity {
            *known = a;
        }
        let before = agent.decided().state;
        for (source, signal) in signals {
            agent.set(source, signal);
        }
        let decided = agent.decide(*known, Instant::now());
        drop(guard);
        if let Some(d) = decided {
            self.announce(&d, before);
        }
    }

    /// The pane's program ended.
    pub fn exited(&self, exit: Option<&Exit>) {
        let mut guard = lock(&self.agent);
        if guard.0.finished() {
            return;
        }
        let before = guard.0.decided().state;
        let message = exit.map(|e| match &e.signal {
            Some(sig) => format!("ended by signal {sig}"),
            None => format!("exit {}", e.code),
        });
        let d = guard.0.exited(message);
        drop(guard);
        self.announce(&d, before);
    }

    fn announce(&self, d: &Decided, before: &str) {
        self.events.publish(d.event(&self.name));
        if d.state != before {
            self.on_state.entered(&self.name, d);
        }
        if let Some(changed) = self.on_change.get() {
            changed();
        }
    }

    /// `pane.wait` with `state`, one look (on the event loop, at each change of state and at
    /// `deadline`): its answer, or `None` while the pane is in none of `states`.
    pub fn poll_wait(&self, states: &[&str], timeout: Duration, deadline: Instant) -> Option<Result<Value, Failure>> {
        let d = lock(&self.agent).0.decided().clone();
        if states.contains(&d.state) {
            let mut out = json!({});
            d.describe_into(&mut out);
            return Some(Ok(out));
        }
        if d.state == "exited" {
            return Some(Err(("exited", "the program exited before the pane reached the state".into())));
        }
        if Instant::now() >= deadline {
            return Some(Err(("timeout", format!("waited {} ms; the pane is {}", timeout.as_millis(), d.state))));
        }
        None
    }

    /// `changed` is called at every change of state (from the thread that decided it), so the
    /// event loop looks at this tracker's waiters again. Once.
    pub fn on_change(&self, changed: Box<dyn Fn() + Send + Sync>) {
        let _ = self.on_change.set(changed);
    }

    /// The fallback signal from output alone: an agent is `working` while it prints and `idle`
    /// once quiet; a program that is no agent (`program` in its profile) is `running` once it
    /// printed or has been quiet since its start. Before that, nothing (still `starting`).
    fn fallback(&self, printed: bool, quiet_at: Instant, last_output: Instant, now: Instant) -> Option<Signal> {
        let state = match (self.profile.program, printed, now < quiet_at) {
            (true, true, _) | (true, false, false) => "running",
            (false, true, true) => "working",
            (false, true, false) => "idle",
            (_, false, true) | (false, false, false) => return None,
        };
        Some(Signal { state, message: None, at: last_output })
    }

    /// `pane.answer`: answers the pane's dialog, only while the pane is `waiting`. The state is
    /// checked and the keys sent under the tracker's lock, so no change of state falls between
    /// the two (the next one is decided after the answer is typed).
    pub fn answer(&self, pane: &Handle, reply: &Reply) -> Result<Value, Failure> {
        let guard = lock(&self.agent);
        let decided = guard.0.decided().clone();
        if decided.state != "waiting" {
            return Err(("not-waiting", self.not_waiting(decided.state)));
        }
        let rows: Vec<String> = pane.screen(0)["lines"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        // The question answered is the dialog on the screen now, read from it; only without
        // one, what the agent said it waits for.
        let question = match self.profile.match_screen(&rows) {
            Some(("waiting", dialog)) => Some(dialog),
            _ => decided.message,
        };
        let mut out = json!({"pane": self.name, "agent": self.profile.name, "question": question});
        match reply {
            Reply::Text(text) => {
                pane.send_text(text, true)?;
                out["text"] = json!(text);
            }
            Reply::Named(name) => {
                let answer = self.profile.answers.get(name).ok_or_else(|| ("no-answer", self.no_such_answer(name)))?;
                let pane_name = &self.name;
                let keys = answer.keys(&rows).ok_or_else(|| {
                    let msg = format!(
                        "the screen of pane '{pane_name}' shows no menu item for '{name}'; read it with `wt-run pane screen {pane_name}` and press keys with `wt-run pane key`"
                    );
                    ("no-answer", msg)
                })?;
                pane.send_bytes(&keys.bytes)?;
                out["answer"] = json!(name);
                out["keys"] = json!(keys.names);
                if let Some(item) = keys.item {
                    out["item"] = json!(item);
                }
            }
        }
        drop(guard);
        Ok(out)
    }

    /// Why `pane.answer` refuses a pane in `state`, and what to do.
    fn not_waiting(&self, state: &str) -> String {
        let name = &self.name;
        match state {
            "exited" => format!("pane '{name}' has exited: there is no dialog to answer"),
            _ => format!(
                "pane '{name}' is {state}, not waiting for an answer; wait for its question with `wt-run pane wait {name} --state waiting`, or type with `wt-run pane send`"
            ),
        }
    }

    /// Why `pane.answer` cannot give the answer `name`: the agent's profile has none.
    fn no_such_answer(&self, name: &str) -> String {
        let agent = &self.profile.name;
        let known: Vec<&str> = self.profile.answers.keys().map(String::as_str).collect();
        let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
        format!(
            "agent '{agent}' has no answer '{name}' (known: {known}); add it in wt.toml [agents.{agent}.answers], or press keys with `wt-run pane key`"
        )
    }
}

/// What a tracker knows of its tmux pane between looks (see `tmux_watchers`, which looks at
/// every tmux pane on one thread). tmux tells nothing when a pane prints, so its screen is
/// sampled: a change counts as output.
#[derive(Debug)]
pub struct TmuxWatch {
    tracker: Arc<Tracker>,
    pane: Arc<TmuxPane>,
    last: Option<Vec<String>>,
    last_output: Instant,
    printed: bool,
}

impl TmuxWatch {
    pub fn new(tracker: Arc<Tracker>, pane: Arc<TmuxPane>) -> TmuxWatch {
        TmuxWatch { tracker, pane, last: None, last_output: Instant::now(), printed: false }
    }

    /// One look at the pane; false once it has ended (or the supervisor let it go).
    pub fn step(&mut self) -> bool {
        if Arc::strong_count(&self.tracker) == 1 {
            return false; // the supervisor let the pane go
        }
        // tmux not answering (its server stopped): nothing known, looked at again later.
        let Some((dead, rows)) = self.pane.sample() else { return true };
        if dead {
            let _ = self.pane.exit(); // seen: what the supervisor's loop reads
            self.tracker.exited(None);
            return false;
        }
        let now = Instant::now();
        let mut signals = Vec::new();
        if self.last.as_ref() != Some(&rows) {
            if rows.iter().any(|r| !r.trim().is_empty()) {
                (self.printed, self.last_output) = (true, now);
            }
            if !self.tracker.profile.rules.is_empty() {
                let matched = self.tracker.profile.match_screen(&rows);
                signals.push((
                    Source::Screen,
                    matched.map(|(state, text)| Signal { state, message: Some(text), at: now }),
                ));
            }
            self.last = Some(rows);
        }
        let quiet_at = self.last_output + self.tracker.profile.quiet;
        let fallback = self.tracker.fallback(self.printed, quiet_at, self.last_output, now);
        signals.extend(fallback.map(|sig| (Source::Output, Some(sig))));
        self.tracker.report(signals, Some(Activity { last_output: self.last_output, last_input: None }));
        true
    }
}

/// What a tracker knows of its native pane between looks (see `watchers`, which looks at
/// every native pane on one thread).
#[derive(Debug)]
pub struct NativeWatch {
    tracker: Arc<Tracker>,
    pane: Arc<Pane>,
    /// The pane's bytes, notifications and last input when last looked at.
    seen: (u64, u64, Option<Instant>),
    screen_dirty: bool,
    status_dirty: bool,
    screen_at: Instant,
    status_at: Instant,
    /// When something can change without output (a timer), if ever.
    wake: Option<Instant>,
}

impl NativeWatch {
    pub fn new(tracker: Arc<Tracker>, pane: Arc<Pane>) -> NativeWatch {
        let now = Instant::now();
        NativeWatch {
            tracker,
            pane,
            seen: (u64::MAX, 0, None),
            screen_dirty: false,
            status_dirty: false,
            screen_at: now - SCREEN_EVERY,
            status_at: now - STATUS_EVERY,
            wake: None,
        }
    }

    /// Looks at the pane if it printed, was typed into or ended since the last look, or a timer
    /// is due, and reports what that changes. Returns when to look next if nothing happens
    /// (`Some(None)`: only when something happens), or `None` once the pane has ended.
    pub fn step(&mut self) -> Option<Option<Instant>> {
        let pane = Arc::clone(&self.pane);
        let this = Arc::clone(&self.tracker);
        let mut s = pane.state.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if let Some(exit) = s.exit.clone() {
            drop(s);
            this.exited(Some(&exit));
            return None;
        }
        if (s.bytes, s.notifications, s.last_input) == self.seen && self.wake.is_none_or(|w| now < w) {
            return Some(self.wake);
        }

        let (mut screen_dirty, mut status_dirty) = (self.screen_dirty, self.status_dirty);
        let (mut screen_at, mut status_at) = (self.screen_at, self.status_at);
        let seen = self.seen;
        let quiet;
        {
            let now = Instant::now();
            let mut signals = Vec::new();
            let flowing = s.bytes != seen.0;
            if flowing {
                screen_dirty = true;
                status_dirty = true;
            }
            if s.notifications != seen.1 {
                let note = s.last_notification.clone();
                signals.push((
                    Source::Terminal,
                    note.map(|(at, text)| Signal { state: "waiting", message: (!text.is_empty()).then_some(text), at }),
                ));
            }
            self.seen = (s.bytes, s.notifications, s.last_input);
            let activity = Activity { last_output: s.last_output, last_input: s.last_input };
            let rows = (screen_dirty && now >= screen_at + SCREEN_EVERY && !this.profile.rules.is_empty()).then(|| {
                let (_, cols) = s.parser().screen().size();
                s.parser().screen().rows(0, cols).collect::<Vec<_>>()
            });
            let printed = s.bytes > 0;
            drop(s);
            if let Some(rows) = rows {
                screen_dirty = false;
                screen_at = now;
                let matched = this.profile.match_screen(&rows);
                signals.push((
                    Source::Screen,
                    matched.map(|(state, text)| Signal { state, message: Some(text), at: now }),
                ));
            }
            if status_dirty && now >= status_at + STATUS_EVERY {
                if let (Some(dir), Some(pid)) = (&this.sessions_dir, pane.pid) {
                    status_dirty = false;
                    status_at = now;
                    let state = super::status_file::claude_state(dir, pid);
                    signals
                        .push((Source::StatusFile, state.map(|(state, _)| Signal { state, message: None, at: now })));
                }
            }
            let quiet_at = activity.last_output.max(pane.started) + this.profile.quiet;
            quiet = now >= quiet_at;
            signals.extend(
                this.fallback(printed, quiet_at, activity.last_output, now).map(|sig| (Source::Output, Some(sig))),
            );
            this.report(signals, Some(activity));
            // The next time something can change without output: the quiet time running out, a
            // throttled look at the screen or status file, a hook report going stale.
            let mut next = Vec::new();
            if flowing {
                // While output flows the pump tells of it at most every OUTPUT_EVERY: look
                // again then, whether told or not.
                next.push(now + OUTPUT_EVERY);
            }
            if (printed || this.profile.program) && now < quiet_at {
                next.push(quiet_at);
            }
            if screen_dirty && !this.profile.rules.is_empty() {
                next.push(screen_at + SCREEN_EVERY);
            }
            if status_dirty && this.sessions_dir.is_some() {
                next.push(status_at + STATUS_EVERY);
            }
            if let Some(at) = lock(&this.agent).0.hook_reported_at().filter(|at| activity.last_output > *at) {
                next.extend(Some(at + HOOK_STALE).filter(|t| *t > now));
            }
            self.wake = next.into_iter().min();
        }
        (self.screen_dirty, self.status_dirty, self.screen_at, self.status_at) =
            (screen_dirty, status_dirty, screen_at, status_at);
        if quiet {
            // The pane turned quiet: what was held back is parsed, and the emulator's cells
            // let go until it prints or is looked at again.
            let mut s = pane.state.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if s.bytes == self.seen.0 {
                s.sleep(false);
            }
        }
        Some(self.wake)
    }
}
