//! Where records go: JSON lines on stdout (flushed one by one), or a readable table when
//! stdout is a terminal and `--json` was not given. Also keeps the run's exit status.

use std::io::{self, IsTerminal, Write};

use crate::error::Exit;
use crate::record::jsonl::{write_record, Malformed, WriteError};
use crate::record::Record;

/// One column of the table shown on a terminal.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub title: &'static str,
    pub value: fn(&Record) -> String,
}

/// The columns every tool can show: the worktree itself.
pub fn core_columns() -> Vec<Column> {
    vec![
        Column { title: "NAME", value: |r| r.name.clone() },
        Column { title: "BRANCH", value: |r| r.branch.clone().unwrap_or_default() },
        Column {
            title: "HEAD",
            value: |r| r.head.as_deref().map(|h| h[..h.len().min(10)].to_string()).unwrap_or_default(),
        },
        Column { title: "PATH", value: |r| r.path.as_ref().map(|p| p.display().to_string()).unwrap_or_default() },
    ]
}

/// Text for a status column: the error if there is one, else what `ok` says.
pub fn status_or_error(rec: &Record, ok: &str) -> String {
    match &rec.error {
        Some(e) => format!("error: {}", e.message),
        None => ok.to_string(),
    }
}

#[derive(Debug)]
enum Mode {
    Json,
    Table { columns: Vec<Column>, rows: Vec<Vec<String>> },
}

/// The record sink of one run.
#[derive(Debug)]
pub struct Output {
    tool: &'static str,
    mode: Mode,
    exit: Exit,
    closed: bool,
}

impl Output {
    /// JSON when `json` is set or stdout is not a terminal; otherwise a table of `columns`.
    pub fn new(tool: &'static str, json: bool, columns: Vec<Column>) -> Self {
        let mode =
            if json || !io::stdout().is_terminal() { Mode::Json } else { Mode::Table { columns, rows: Vec::new() } };
        Output { tool, mode, exit: Exit::Ok, closed: false }
    }

    /// Writes one record (at once, in JSON mode). A record with `error` makes the run exit 1.
    pub fn emit(&mut self, rec: &Record) {
        if rec.has_error() {
            self.fail(Exit::Failed);
            // On a terminal the table already shows the error.
            if matches!(self.mode, Mode::Json) {
                self.tell(rec);
            }
        }
        if self.closed {
            return;
        }
        match &mut self.mode {
            Mode::Json => match write_record(&mut io::stdout().lock(), rec) {
                Ok(()) => {}
                Err(WriteError::Closed) => self.closed = true,
                Err(WriteError::Io(e)) => {
                    eprintln!("{}: cannot write to stdout: {e}", self.tool);
                    self.closed = true;
                    self.fail(Exit::Environment);
                }
            },
            Mode::Table { columns, rows } => rows.push(columns.iter().map(|c| (c.value)(rec)).collect()),
        }
    }

    /// Counts a failed record and tells the person, without writing the record (for modes
    /// whose stdout is not records, such as `wt-env --export`).
    pub fn emit_error_only(&mut self, rec: &Record) {
        if rec.has_error() {
            self.fail(Exit::Failed);
            self.tell(rec);
        }
    }

    /// The tool that raised an error also tells the person, in one line on stderr; tools
    /// downstream only pass the record on.
    fn tell(&self, rec: &Record) {
        let Some(err) = rec.error.as_ref().filter(|e| e.tool == self.tool) else { return };
        let message = crate::record::cli::one_line(&err.message);
        if rec.name.is_empty() || err.message.contains(&rec.name) {
            eprintln!("{}: {message}", self.tool);
        } else {
            eprintln!("{}: {}: {message}", self.tool, rec.name.escape_debug());
        }
    }

    /// Reports an input line that could not be read; the run goes on and exits 2.
    pub fn malformed(&mut self, m: &Malformed) {
        eprintln!("{}: skipped input {m}", self.tool);
        self.fail(Exit::Usage);
    }

    /// Raises the run's exit status to at least `exit`.
    pub fn fail(&mut self, exit: Exit) {
        self.exit = self.exit.worst(exit);
    }

    /// True when records become a table for a person, not JSON lines for a program.
    pub fn is_table(&self) -> bool {
        matches!(self.mode, Mode::Table { .. })
    }

    /// True once the reader of stdout has gone away: stop working, nobody is listening.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// Prints the table (terminal mode) and gives the run's exit status. A closed stdout alone
    /// is not a failure.
    pub fn finish(self) -> Exit {
        if let Mode::Table { columns, rows } = &self.mode {
            if !rows.is_empty() {
                let titles: Vec<&str> = columns.iter().map(|c| c.title).collect();
                let _ = io::stdout().lock().write_all(render_table(&titles, rows).as_bytes());
            }
        }
        self.exit
    }
}

/// A cell as the terminal is to show it: its text may be an agent's (a file name on its branch,
/// a line of its test output), so a control character is written as its escape (`\u{1b}`),
/// never sent for the terminal to act on (an OSC 52 would set the person's clipboard).
/// Unicode's invisible formatting characters (bidirectional controls, zero-width ones), which
/// reorder or hide the text around them, are shown escaped too.
fn visible(cell: &str) -> String {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
    };
    if !cell.chars().any(hidden) {
        return cell.to_string();
    }
    cell.chars().map(|c| if hidden(c) { c.escape_unicode().to_string() } else { c.to_string() }).collect()
}

/// Rows under `titles`, each column as wide as its widest cell, two spaces apart; for tables of
/// things that are not records (panes, say). Control characters in a cell are shown escaped.
pub fn render_table(titles: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(|c| visible(c)).collect()).collect();
    let rows = &rows;
    let mut widths: Vec<usize> = titles.iter().map(|t| t.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        let mut s = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            s.push_str(cell);
            if i < last {
                s.extend(std::iter::repeat_n(' ', widths[i] - cell.chars().count() + 2));
            }
        }
        s.truncate(s.trim_end().len());
        s + "\n"
    };
    let mut out = line(titles.to_vec());
    for row in rows {
        out += &line(row.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_and_trims_trailing_space() {
        let rows = vec![vec!["agent-10".into(), "a".into()], vec!["b".into(), String::new()]];
        assert_eq!(render_table(&["NAME", "X"], &rows), "NAME      X\nagent-10  a\nb\n");
    }

    #[test]
    fn control_characters_in_a_cell_are_shown_not_sent() {
        let rows = vec![vec!["a\x1b]52;c;eA==\x07\x1bc\u{9b}2J".into(), "x".into()]];
        let table = render_table(&["NAME", "X"], &rows);
        assert!(!table.chars().any(|c| c.is_control() && c != '\n'), "{table:?}");
        assert!(table.contains("a\\u{1b}]52;c;eA==\\u{7}\\u{1b}c\\u{9b}2J  x"), "{table}");
        let reordered = render_table(&["NAME"], &[vec!["ok\u{202e}txt.exe".into()]]);
        assert!(reordered.contains("ok\\u{202e}txt.exe"), "{reordered}");
    }
}
