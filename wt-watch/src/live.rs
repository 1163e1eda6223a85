//! On a terminal, a line per worktree on stderr (its round, its status, how long it has been in
//! it), redrawn in place; never on stdout, and nothing at all when stderr is not a terminal.
//! The timers count: the loop wakes at each whole second ([`Live::next_tick`]) and redraws
//! ([`Live::refresh`]), so a round that runs for a minute shows its minute pass. A line at rest
//! (green and watching, done: [`Live::rest`]) counts whole minutes, so an idle watch wakes once
//! a minute, not once a second: it may sit there for days.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Live {
    on: bool,
    /// Each worktree's text, since when, and whether its timer counts minutes (at rest).
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

    /// Sets a line at rest, whose timer counts whole minutes, and redraws.
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

    /// When a timer on screen next shows one second more; `None` when nothing is on screen.
    pub fn next_tick(&self) -> Option<Instant> {
        if !self.on {
            return None;
        }
        self.lines
            .values()
            .map(|(_, since, rest)| *since + Duration::from_secs((shown(*since, *rest) + 1) * unit(*rest)))
            .min()
    }

    /// Redraws if a timer shows another second now.
    pub fn refresh(&mut self) {
        if self.on && self.seconds() != self.shown {
            self.draw();
        }
    }

    fn seconds(&self) -> Vec<u64> {
        self.lines.values().map(|(_, since, rest)| shown(*since, *rest)).collect()
    }

    fn draw(&mut self) {
        let width = self.lines.keys().map(String::len).max().unwrap_or(0);
        let mut out = String::new();
        if self.drawn > 0 {
            out.push_str(&format!("\x1b[{}A", self.drawn));
        }
        self.shown = self.seconds();
        for ((name, (text, _, rest)), n) in self.lines.iter().zip(&self.shown) {
            out.push_str(&format!("\x1b[2K{name:width$}  {text}  ({})\n", elapsed(n * unit(*rest), *rest)));
        }
        self.drawn = self.lines.len();
        let _ = std::io::stderr().lock().write_all(out.as_bytes());
    }
}

/// Seconds per step of a line's timer: 1, or 60 at rest.
fn unit(rest: bool) -> u64 {
    if rest {
        60
    } else {
        1
    }
}

/// How many steps a line's timer shows now.
fn shown(since: Instant, rest: bool) -> u64 {
    since.elapsed().as_secs() / unit(rest)
}

/// `42s`, `3m05s`, `1h02m` (at rest: `0m`, `3m`, `1h02m`): how long a line has been as it is.
fn elapsed(secs: u64, rest: bool) -> String {
    match secs {
        0..3600 if rest => format!("{}m", secs / 60),
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
        assert_eq!(elapsed(0, false), "0s");
        assert_eq!(elapsed(59, false), "59s");
        assert_eq!(elapsed(185, false), "3m05s");
        assert_eq!(elapsed(3720, false), "1h02m");
        assert_eq!(
            (elapsed(0, true), elapsed(180, true), elapsed(3720, true)),
            ("0m".into(), "3m".into(), "1h02m".into())
        );
    }

    #[test]
    fn a_line_at_rest_wakes_the_loop_once_a_minute() {
        let mut live = Live::to_terminal(true);
        live.lines.insert("a".into(), ("green; watching".into(), Instant::now(), true));
        let wait = live.next_tick().unwrap().saturating_duration_since(Instant::now());
        assert!(wait > Duration::from_secs(50), "{wait:?}");
        live.lines.insert("b".into(), ("round 1: running".into(), Instant::now(), false));
        let wait = live.next_tick().unwrap().saturating_duration_since(Instant::now());
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
    }
}
