//! On a terminal, a line per worktree on stderr (its round, its status, how long it has been in
//! it), redrawn in place; never on stdout, and nothing at all when stderr is not a terminal.
//! The timers count: the loop wakes at each whole second ([`Live::next_tick`]) and redraws
//! ([`Live::refresh`]), so a round that runs for a minute shows its minute pass. A line at rest
//! (green and watching, done: [`Live::rest`]) has no timer, so an idle watch, which may sit
//! there for days, never wakes for its status line.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Live {
    on: bool,
    /// Each worktree's text, since when, and whether it is at rest (no timer).
    lines: BTreeMap<String, (String, Instant, bool)>,
    drawn: usize,
    /// The seconds each line showed when last drawn: a redraw with nothing new is skipped.
    shown: Vec<u64>,
}

impl Live {
    pub fn new() -> Live {
        Live::to_terminal(std::io::stderr().is_terminal())
    }

    fn to_terminal(on: bool) -> Live {
        Live { on, lines: BTreeMap::new(), drawn: 0, shown: Vec::new() }
    }

    /// Sets the line of worktree `name` and redraws.
    pub fn set(&mut self, name: &str, text: String) {
        self.put(name, text, false);
    }

    /// Sets a line at rest, without a timer, and redraws.
    pub fn rest(&mut self, name: &str, text: String) {
        self.put(name, text, true);
    }

    fn put(&mut self, name: &str, text: String, rest: bool) {
        if !self.on {
            return;
        }
        self.lines.insert(name.to_string(), (text, Instant::now(), rest));
        self.draw();
    }

    /// When a timer on screen next shows one second more; `None` when no timer is on screen.
    pub fn next_tick(&self) -> Option<Instant> {
        if !self.on {
            return None;
        }
        self.lines
            .values()
            .filter(|(_, _, rest)| !rest)
            .map(|(_, since, _)| *since + Duration::from_secs(since.elapsed().as_secs() + 1))
            .min()
    }

    /// Redraws if a timer shows another second now.
    pub fn refresh(&mut self) {
        if self.on && self.seconds() != self.shown {
            self.draw();
        }
    }

    /// What each line's timer shows (0 for a line at rest, which has none).
    fn seconds(&self) -> Vec<u64> {
        self.lines.values().map(|(_, since, rest)| if *rest { 0 } else { since.elapsed().as_secs() }).collect()
    }

    fn draw(&mut self) {
        let width = self.lines.keys().map(String::len).max().unwrap_or(0);
        let mut out = String::new();
        if self.drawn > 0 {
            out.push_str(&format!("\x1b[{}A", self.drawn));
        }
        self.shown = self.seconds();
        for ((name, (text, _, rest)), secs) in self.lines.iter().zip(&self.shown) {
            let timer = if *rest { String::new() } else { format!("  ({})", elapsed(*secs)) };
            out.push_str(&format!("\x1b[2K{name:width$}  {text}{timer}\n"));
        }
        self.drawn = self.lines.len();
        let _ = std::io::stderr().lock().write_all(out.as_bytes());
    }
}

/// `42s`, `3m05s`, `1h02m`: how long a line has been as it is.
fn elapsed(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

impl Default for Live {
    fn default() -> Self {
        Live::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_read_as_people_write_durations() {
        assert_eq!(elapsed(0), "0s");
        assert_eq!(elapsed(59), "59s");
        assert_eq!(elapsed(185), "3m05s");
        assert_eq!(elapsed(3720), "1h02m");
    }

    #[test]
    fn lines_at_rest_never_wake_the_loop() {
        let mut live = Live::to_terminal(true);
        live.lines.insert("a".into(), ("green; watching".into(), Instant::now(), true));
        assert_eq!(live.next_tick(), None, "no timer to count");
        live.lines.insert("b".into(), ("round 1: running".into(), Instant::now(), false));
        let wait = live.next_tick().unwrap().saturating_duration_since(Instant::now());
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
    }
}
