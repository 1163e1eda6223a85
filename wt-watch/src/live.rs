//! On a terminal, a line per worktree on stderr (its round, its status, how long it has been in
//! it), redrawn in place; never on stdout, and nothing at all when stderr is not a terminal.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Instant;

#[derive(Debug)]
pub struct Live {
    on: bool,
    lines: BTreeMap<String, (String, Instant)>,
    drawn: usize,
}

impl Live {
    pub fn new() -> Live {
        Live { on: std::io::stderr().is_terminal(), lines: BTreeMap::new(), drawn: 0 }
    }

    /// Sets the line of worktree `name` and redraws.
    pub fn set(&mut self, name: &str, text: String) {
        if !self.on {
            return;
        }
        self.lines.insert(name.to_string(), (text, Instant::now()));
        self.draw();
    }

    fn draw(&mut self) {
        let width = self.lines.keys().map(String::len).max().unwrap_or(0);
        let mut out = String::new();
        if self.drawn > 0 {
            out.push_str(&format!("\x1b[{}A", self.drawn));
        }
        for (name, (text, since)) in &self.lines {
            out.push_str(&format!("\x1b[2K{name:width$}  {text}  ({}s)\n", since.elapsed().as_secs()));
        }
        self.drawn = self.lines.len();
        let _ = std::io::stderr().lock().write_all(out.as_bytes());
    }
}

impl Default for Live {
    fn default() -> Self {
        Live::new()
    }
}
