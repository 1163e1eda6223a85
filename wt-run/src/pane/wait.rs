//! `pane.wait`: until the program exits, until a regular expression matches the screen (`^` and
//! `$` at each line's ends), or until the screen has been quiet for N ms; each with a timeout.
//! A waiter is a state machine on the supervisor's event loop (`conn`): it is looked at again
//! when the pane printed or ended, and at its deadline (or when the pane will have been quiet
//! long enough); it holds no thread and polls nothing.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::pty::{exit_json, screen_json, Pane, Screen};

/// What `pane.wait` waits for, from its params; the same for both backends.
#[derive(Debug)]
pub struct Until {
    pub timeout: Duration,
    pub regex: Option<regex::Regex>,
    pub quiet: Option<Duration>,
    pub for_exit: bool,
}

impl Until {
    pub fn parse(p: &Value) -> Result<Until, (&'static str, String)> {
        let timeout = Duration::from_millis(p.get("timeout_ms").and_then(Value::as_u64).unwrap_or(30_000));
        let regex = match p.get("match").and_then(Value::as_str) {
            Some(re) => Some(screen_regex(re)?),
            None => None,
        };
        let quiet = p.get("quiet_ms").and_then(Value::as_u64).map(Duration::from_millis);
        let for_exit = p.get("exit").and_then(Value::as_bool).unwrap_or(false);
        if regex.is_none() && quiet.is_none() && !for_exit {
            return Err((
                "bad-params",
                "pane.wait needs exit, match or quiet_ms (`wt-run pane wait` needs --exit, --match RE or --quiet DUR)"
                    .into(),
            ));
        }
        Ok(Until { timeout, regex, quiet, for_exit })
    }

    /// The `timeout` failure, saying what was waited for.
    pub fn timed_out(&self) -> (&'static str, String) {
        let mut what = Vec::new();
        if self.for_exit {
            what.push("the program to exit".to_string());
        }
        if let Some(re) = &self.regex {
            what.push(format!("the screen to match '{}'", re.as_str()));
        }
        if let Some(q) = self.quiet {
            what.push(format!("{} without output", wt_common::record::duration::human(q)));
        }
        let waited = wt_common::record::duration::human(self.timeout);
        ("timeout", format!("waited {waited} for {} (raise --timeout to wait longer)", what.join(" or ")))
    }
}

/// `re` compiled to match a screen as a person reads it: line by line, so `^` and `$` match at
/// the start and end of every line (multi-line mode), not only of the whole screen, whose
/// first and last lines are usually the prompt's and blank ones.
pub fn screen_regex(re: &str) -> Result<regex::Regex, (&'static str, String)> {
    regex::RegexBuilder::new(re)
        .multi_line(true)
        .build()
        .map_err(|e| ("bad-params", format!("bad regular expression: {e}")))
}

/// A screen woken by a look is put back to sleep once its pane has printed nothing for this
/// long, as its tracker lets a quiet pane's cells go after its quiet time (2 s by default).
const ASLEEP_AFTER: Duration = Duration::from_secs(2);

/// Lets the cells of a running pane that has been quiet for `ASLEEP_AFTER` go again (see
/// `Screen::sleep`; a no-op for a screen whose redraw would lose state): a look for a waiter
/// or an attach woke them (150 KiB at 40×120), and a hundred waiters on idle panes must not
/// keep a hundred screens of cells. The next output or look wakes it.
pub fn back_to_sleep_if_quiet(s: &mut Screen) {
    if s.exit.is_none() && s.last_output.elapsed() >= ASLEEP_AFTER {
        s.sleep(false);
    }
}

/// Where a `pane.wait` stands after a look.
#[derive(Debug)]
pub enum Poll {
    /// Its answer.
    Done(Result<Value, (&'static str, String)>),
    /// Nothing yet: look again when the pane changes, or at this time (the deadline, or when
    /// the pane will have been quiet for long enough).
    Until(Instant),
}

/// What a `pane.wait`'s last look saw: the pane's bytes, whether it had exited, and when the
/// screen was last matched.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    bytes: u64,
    exited: bool,
    matched_at: Instant,
}

/// How often at most a printing pane's screen is matched for a waiter: each match lays out the
/// whole screen (and what the run shortener held back), and matching at every read of a pane
/// printing hard slowed its output by two thirds for one waiter (5 waiters matching every 20 ms
/// still doubled a `seq`'s time in a debug build).
const MATCH_EVERY: Duration = Duration::from_millis(100);

/// One look at a native pane for a `pane.wait` (run on the event loop, at each change of the
/// pane and at the time it asks for). `seen` is what the previous look saw: the screen is
/// matched again only when the pane printed or ended since, and at most every `MATCH_EVERY`
/// while it prints (an exit is matched at once).
pub fn poll(pane: &Pane, until: &Until, deadline: Instant, seen: &mut Option<Seen>) -> Poll {
    let Until { ref regex, quiet, for_exit, .. } = *until;
    let mut s = pane.state.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let now = Instant::now();
    if for_exit && s.exit.is_some() {
        return Poll::Done(Ok(json!({"exit": s.exit.as_ref().map(exit_json), "screen": screen_json(&mut s, 0)})));
    }
    let (bytes, exited) = (s.bytes, s.exit.is_some());
    let changed = seen.is_none_or(|v| (v.bytes, v.exited) != (bytes, exited));
    let too_soon = seen.filter(|v| !exited && now < v.matched_at + MATCH_EVERY).map(|v| v.matched_at + MATCH_EVERY);
    let mut next = deadline;
    match (regex.as_ref(), changed, too_soon) {
        (Some(_), true, Some(due)) => next = next.min(due), // matched again when due
        (Some(re), true, None) => {
            if let Some(m) = re.find(&s.parser().screen().contents()) {
                let found = m.as_str().to_string();
                return Poll::Done(Ok(json!({"matched": found, "screen": screen_json(&mut s, 0)})));
            }
            back_to_sleep_if_quiet(&mut s);
            *seen = Some(Seen { bytes, exited, matched_at: now });
        }
        _ => {
            let matched_at = seen.map_or(now, |v| v.matched_at);
            *seen = Some(Seen { bytes, exited, matched_at });
        }
    }
    if let Some(q) = quiet {
        let quiet_until = super::conn::later(s.last_output, q);
        if now >= quiet_until {
            return Poll::Done(Ok(json!({"quiet_ms": q.as_millis() as u64, "screen": screen_json(&mut s, 0)})));
        }
        next = next.min(quiet_until);
    }
    if regex.is_some() && s.exit.is_some() && !for_exit {
        return Poll::Done(Err(("exited", "the program exited before the screen matched".into())));
    }
    if now >= deadline {
        return Poll::Done(Err(until.timed_out()));
    }
    Poll::Until(next)
}
