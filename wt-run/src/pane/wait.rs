//! `pane.wait`: until the program exits, until a regular expression matches the screen (`^` and
//! `$` at each line's ends), or until the screen has been quiet for N ms; each with a timeout.
//! Waiters sleep on the pane's condition variable, which every chunk of output and the exit
//! wake: no polling.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::pty::{exit_json, screen_json, Pane};

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

pub fn wait(pane: &Pane, p: &Value) -> Result<Value, (&'static str, String)> {
    let until = Until::parse(p)?;
    let Until { timeout, ref regex, quiet, for_exit } = until;
    let deadline = Instant::now() + timeout;
    let (lock, cvar) = &*pane.state;
    let mut s = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let now = Instant::now();
        if for_exit && s.exit.is_some() {
            return Ok(json!({"exit": s.exit.as_ref().map(exit_json), "screen": screen_json(&mut s, 0)}));
        }
        if let Some(re) = regex {
            if let Some(m) = re.find(&s.parser().screen().contents()) {
                let found = m.as_str().to_string();
                return Ok(json!({"matched": found, "screen": screen_json(&mut s, 0)}));
            }
        }
        let mut next = deadline;
        if let Some(q) = quiet {
            let quiet_until = s.last_output + q;
            if now >= quiet_until {
                return Ok(json!({"quiet_ms": q.as_millis() as u64, "screen": screen_json(&mut s, 0)}));
            }
            next = next.min(quiet_until);
        }
        if regex.is_some() && s.exit.is_some() && !for_exit {
            return Err(("exited", "the program exited before the screen matched".into()));
        }
        if now >= deadline {
            return Err(until.timed_out());
        }
        s = cvar.wait_timeout(s, next - now).unwrap_or_else(std::sync::PoisonError::into_inner).0;
    }
}
