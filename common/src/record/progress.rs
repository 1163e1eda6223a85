//! Progress for a person watching: which worktree, which step, how long, and a closing summary
//! line, on stderr and only when stderr is a terminal (never in a pipe's or a log's way); and a
//! live count of items for long work (files shared), safe to share between threads.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::record::duration::human;

/// The progress lines of one run.
#[derive(Debug)]
pub struct Progress {
    tool: &'static str,
    shown: bool,
    started: Instant,
}

impl Progress {
    /// Progress that shows only when stderr is a terminal.
    pub fn new(tool: &'static str) -> Progress {
        Progress { tool, shown: std::io::stderr().is_terminal(), started: Instant::now() }
    }

    /// `tool: name: what`, with the time since the run started.
    pub fn step(&self, name: &str, what: &str) {
        if self.shown {
            eprintln!("{}: {}: {what} [{}]", self.tool, name.escape_debug(), human(self.started.elapsed()));
        }
    }

    /// `tool: name: what`, for a line that says its own time (`agent-2: exit 3 after 4.1s`):
    /// the time since the run started would be a second one.
    pub fn outcome(&self, name: &str, what: &str) {
        if self.shown {
            eprintln!("{}: {}: {what}", self.tool, name.escape_debug());
        }
    }

    /// The closing line: the counts that are not zero, and the time the run took
    /// (`wt-run: 3 passed, 1 failed, 12.4s`).
    pub fn summary(&self, counts: &[(usize, &str)]) {
        if self.shown {
            eprintln!("{}: {}", self.tool, summary_text(counts, self.started.elapsed()));
        }
    }
}

fn summary_text(counts: &[(usize, &str)], took: std::time::Duration) -> String {
    let mut parts: Vec<String> = counts.iter().filter(|(n, _)| *n > 0).map(|(n, what)| format!("{n} {what}")).collect();
    if parts.is_empty() {
        parts.push("nothing done".into());
    }
    format!("{}, {}", parts.join(", "), human(took))
}

/// A counter shown as `label: N unit` on one line of the terminal, redrawn at most ten times a
/// second.
#[derive(Debug)]
pub struct Counter {
    label: String,
    unit: &'static str,
    enabled: bool,
    count: AtomicU64,
    last_draw: Mutex<Option<Instant>>,
}

impl Counter {
    pub fn new(label: impl Into<String>, unit: &'static str) -> Counter {
        Counter::with_output(label, unit, std::io::stderr().is_terminal())
    }

    /// A counter that never draws (work that is not long, or output that is not a terminal).
    pub fn hidden() -> Counter {
        Counter::with_output("", "", false)
    }

    fn with_output(label: impl Into<String>, unit: &'static str, enabled: bool) -> Counter {
        Counter { label: label.into(), unit, enabled, count: AtomicU64::new(0), last_draw: Mutex::new(None) }
    }

    pub fn add(&self, n: u64) {
        let total = self.count.fetch_add(n, Ordering::Relaxed) + n;
        if !self.enabled {
            return;
        }
        let Ok(mut last) = self.last_draw.try_lock() else { return };
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < Duration::from_millis(100)) {
            return;
        }
        *last = Some(now);
        let _ = write!(std::io::stderr(), "\r{}: {total} {}\x1b[K", self.label, self.unit);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Clears the line, if anything was drawn.
    pub fn finish(&self) {
        if self.enabled && self.last_draw.lock().is_ok_and(|l| l.is_some()) {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_summary_counts_what_happened() {
        let took = std::time::Duration::from_millis(12_400);
        assert_eq!(
            super::summary_text(&[(3, "passed"), (0, "timed out"), (1, "failed")], took),
            "3 passed, 1 failed, 12.4s"
        );
        assert_eq!(super::summary_text(&[(0, "passed")], took), "nothing done, 12.4s");
    }
}
