//! Progress for a person watching: which worktree, which step, how long, and a closing summary
//! line, on stderr and only when stderr is a terminal (never in a pipe's or a log's way).

use std::io::IsTerminal;
use std::time::Instant;

use crate::duration::human;

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
