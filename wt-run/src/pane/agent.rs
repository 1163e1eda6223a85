//! What a pane's agent is doing: `starting`, `working`, `waiting` (for a person), `idle` (its
//! turn is done), `running` (a program that is no agent, such as a dev server, runs: it has no
//! turns, so neither working nor idle) or `exited`, decided from ranked signals. Each source keeps its latest
//! signal; the highest-ranked one that is still fresh wins:
//!
//! 1. `hook`: the agent's own hooks (`pane.notify`). Believed until a newer hook report, except
//!    that it goes stale once it is [`HOOK_STALE`] old *and* the pane has printed since it (an
//!    agent whose hooks stopped reporting, say after a crash of its hook command, falls back
//!    to the other signals; an agent sitting at a prompt prints nothing and stays believed).
//! 2. `status-file`: the agent's own status file (Claude Code's `~/.claude/sessions/<pid>.json`).
//! 3. `terminal`: a terminal notification in its output (OSC 9, 99, 777, BEL): waiting, until
//!    someone types into the pane or the pane prints again after [`NOTIFICATION_SETTLE`].
//! 4. `screen`: a screen rule of the agent matches (a permission dialog).
//! 5. `output`: the fallback: output within the agent's quiet time → working, quiet → idle;
//!    for a program that is no agent (`program` in its profile: `default`), output or a quiet
//!    time since its start → running.
//!
//! `exited` (source `supervisor`) ends it all.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// The states a pane can be in (`exited` only the supervisor says).
pub const STATES: &[&str] = &["starting", "working", "waiting", "idle", "running", "exited"];

/// How long a hook report is believed once the pane has printed after it.
pub const HOOK_STALE: Duration = Duration::from_secs(600);

/// A terminal notification stays believed while the pane prints within this time after it
/// (the rest of the redraw that carried it).
pub const NOTIFICATION_SETTLE: Duration = Duration::from_millis(1000);

/// Where a signal came from, highest rank first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Supervisor,
    Hook,
    StatusFile,
    Terminal,
    Screen,
    Output,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Supervisor => "supervisor",
            Source::Hook => "hook",
            Source::StatusFile => "status-file",
            Source::Terminal => "terminal",
            Source::Screen => "screen",
            Source::Output => "output",
        }
    }
}

/// One source's latest word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    pub state: &'static str,
    pub message: Option<String>,
    pub at: Instant,
}

/// What the pane shows about itself, for deciding freshness.
#[derive(Debug, Clone, Copy)]
pub struct Activity {
    pub last_output: Instant,
    pub last_input: Option<Instant>,
}

/// The decided state, as `pane.list` and events show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub state: &'static str,
    pub source: Source,
    pub message: Option<String>,
    /// Milliseconds since the Unix epoch when the pane entered `state`.
    pub since_ms: u64,
}

impl Decided {
    pub fn describe_into(&self, pane: &mut Value) {
        pane["state"] = json!(self.state);
        pane["since"] = json!(self.since_ms);
        pane["source"] = json!(self.source.as_str());
        if let Some(m) = &self.message {
            pane["message"] = json!(m);
        }
    }

    /// The `state` event that announces it.
    pub fn event(&self, pane: &str) -> Value {
        json!({"event": "state", "pane": pane, "state": self.state, "source": self.source.as_str(),
               "message": self.message, "since": self.since_ms})
    }
}

/// A pane's signals and what they decide.
#[derive(Debug)]
pub struct Agent {
    signals: Vec<(Source, Signal)>,
    decided: Decided,
}

impl Default for Agent {
    fn default() -> Self {
        Agent::new()
    }
}

impl Agent {
    pub fn new() -> Agent {
        Agent {
            signals: Vec::new(),
            decided: Decided { state: "starting", source: Source::Supervisor, message: None, since_ms: now_ms() },
        }
    }

    pub fn decided(&self) -> &Decided {
        &self.decided
    }

    /// Sets `source`'s latest word (`None`: it has nothing to say now).
    pub fn set(&mut self, source: Source, signal: Option<Signal>) {
        self.signals.retain(|(s, _)| *s != source);
        if let Some(signal) = signal {
            self.signals.push((source, signal));
            self.signals.sort_by_key(|(s, _)| *s);
        }
    }

    /// Re-decides from the fresh signals; returns the new decision when the state or its
    /// message changed.
    pub fn decide(&mut self, activity: Activity, now: Instant) -> Option<Decided> {
        if self.finished() {
            return None; // the program ended: nothing said after that is believed
        }
        let (source, signal) = self.signals.iter().find(|(s, sig)| fresh(*s, sig, activity, now))?;
        // While a dialog is on the screen, what the pane waits for is what the dialog asks: a
        // hook report or a notification (which the program, or any file it prints, writes) may
        // say that it waits, but not stand in for the question the person answers.
        let dialog = self.signals.iter().find(|(s, sig)| *s == Source::Screen && sig.state == "waiting");
        let message = match dialog {
            Some((_, d)) if signal.state == "waiting" => d.message.clone(),
            _ => signal.message.clone(),
        };
        let changed_state = signal.state != self.decided.state;
        if !changed_state && message == self.decided.message && *source == self.decided.source {
            return None;
        }
        let since_ms = if changed_state { now_ms() } else { self.decided.since_ms };
        self.decided = Decided { state: signal.state, source: *source, message, since_ms };
        Some(self.decided.clone())
    }

    /// Whether the supervisor saw the program end.
    pub fn finished(&self) -> bool {
        self.decided.source == Source::Supervisor && self.decided.state == "exited"
    }

    /// When the latest hook report came in.
    pub fn hook_reported_at(&self) -> Option<Instant> {
        self.signals.iter().find(|(s, _)| *s == Source::Hook).map(|(_, sig)| sig.at)
    }

    /// The end: nothing else is believed after it.
    pub fn exited(&mut self, message: Option<String>) -> Decided {
        self.decided = Decided { state: "exited", source: Source::Supervisor, message, since_ms: now_ms() };
        self.decided.clone()
    }
}

fn fresh(source: Source, sig: &Signal, a: Activity, now: Instant) -> bool {
    match source {
        Source::Hook => a.last_output <= sig.at || now.duration_since(sig.at) < HOOK_STALE,
        Source::Terminal => a.last_input.is_none_or(|i| i < sig.at) && a.last_output <= sig.at + NOTIFICATION_SETTLE,
        _ => true,
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A state name as one of ours.
pub fn state_named(name: &str) -> Option<&'static str> {
    STATES.iter().copied().find(|s| *s == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(state: &'static str, at: Instant) -> Option<Signal> {
        Some(Signal { state, message: None, at })
    }

    #[test]
    fn the_highest_ranked_fresh_signal_wins() {
        let t0 = Instant::now();
        let quiet = Activity { last_output: t0, last_input: None };
        let mut a = Agent::new();
        a.set(Source::Output, sig("working", t0));
        assert_eq!(a.decide(quiet, t0).unwrap().state, "working");
        a.set(Source::Screen, sig("waiting", t0));
        assert_eq!(a.decide(quiet, t0).unwrap().source, Source::Screen);
        a.set(Source::Hook, sig("idle", t0));
        let d = a.decide(quiet, t0).unwrap();
        assert_eq!((d.state, d.source), ("idle", Source::Hook));
        assert_eq!(a.decide(quiet, t0), None, "nothing changed");
    }

    #[test]
    fn a_hook_report_goes_stale_only_when_old_and_printed_over() {
        let t0 = Instant::now();
        let mut a = Agent::new();
        a.set(Source::Output, sig("idle", t0));
        a.set(Source::Hook, sig("working", t0));
        let later = t0 + HOOK_STALE + Duration::from_secs(1);
        let silent = Activity { last_output: t0, last_input: None };
        assert_eq!(a.decide(silent, later).unwrap().state, "working", "nothing printed since: believed");
        let printed = Activity { last_output: t0 + Duration::from_secs(5), last_input: None };
        assert_eq!(a.decide(printed, later).unwrap().state, "idle", "stale: the fallback decides");
    }

    #[test]
    fn a_terminal_notification_ends_with_input() {
        let t0 = Instant::now();
        let mut a = Agent::new();
        a.set(Source::Output, sig("working", t0));
        a.set(Source::Terminal, sig("waiting", t0));
        let quiet = Activity { last_output: t0, last_input: None };
        assert_eq!(a.decide(quiet, t0).unwrap().state, "waiting");
        let typed = Activity { last_output: t0, last_input: Some(t0 + Duration::from_millis(1)) };
        assert_eq!(a.decide(typed, t0).unwrap().state, "working");
    }

    #[test]
    fn while_a_dialog_is_on_screen_its_text_is_the_question_whoever_says_waiting() {
        let t0 = Instant::now();
        let quiet = Activity { last_output: t0, last_input: None };
        let said = |state, message: &str| Some(Signal { state, message: Some(message.into()), at: t0 });
        let mut a = Agent::new();
        a.set(Source::Screen, said("waiting", "Bash command · curl x | sh · Do you want to proceed?"));
        a.set(Source::Terminal, said("waiting", "Allow `cargo test`?"));
        let d = a.decide(quiet, t0).unwrap();
        assert_eq!((d.state, d.source), ("waiting", Source::Terminal));
        assert_eq!(d.message.as_deref(), Some("Bash command · curl x | sh · Do you want to proceed?"));
        a.set(Source::Screen, None);
        let d = a.decide(quiet, t0).unwrap();
        assert_eq!(d.message.as_deref(), Some("Allow `cargo test`?"), "no dialog on screen: the notification's text");
    }

    #[test]
    fn exited_is_final() {
        let t0 = Instant::now();
        let mut a = Agent::new();
        a.exited(None);
        a.set(Source::Hook, sig("working", t0));
        assert_eq!(a.decide(Activity { last_output: t0, last_input: None }, t0), None);
        assert_eq!(a.decided().state, "exited");
    }
}
