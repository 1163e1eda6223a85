//! The last outcome of each kind of work on a worktree, kept so that wt-status can say what
//! needs the person and why: a wt-run batch run, a wt-watch round, a wt-merge of it. Today's
//! log files say when something ran, not how it ended; this says how.
//!
//! `<state>/outcomes/<name>/<kind>.json`, one file per kind (`run`, `watch`, `merge`), replaced
//! whole (`fs::write_atomic`) by each new outcome, so a reader sees the old one or the new one:
//!
//! ```json
//! {"kind":"merge","at_ms":1767225600000,"state":"verify-failed","failing":3,
//!  "lines":["✗ tests/test_parse.py::test_empty","✗ tests/test_parse.py::test_unicode"],
//!  "log":"/…/.git/wt/logs/agent-3/verify-1a2b3c4d5e.log","commit":"<40 hex>",
//!  "into":"main","cmd":"pytest -q"}
//! ```
//!
//! - `state`: for `run`, `pass` or `red`; for `watch`, `pass`, `red`, or how a loop ended that
//!   needs the person: `gave-up` (`detail`: why), `flaky` (`detail`) or `guarded` (green by
//!   changing guarded files, `paths`, or running fewer tests, `lines`: the missing ones; `detail`
//!   says which, `into` is the worktree's base); for `merge`, `merged`, `conflict`
//!   (`paths`), `verify-failed` (`failing`, `lines`, `cmd`), a held state (`untested`,
//!   `gate-changed`, `deps-differ`, with `detail`) or `error` (`detail`).
//! - `failing`: how many tests failed, when the runner was recognised; `lines`: the excerpt's key
//!   lines (the failing tests' names, else its last lines).
//!
//! The files are written by wt alone, in wt's state directory; still, they are read with a size
//! cap, never through a link, and parsed strictly (unknown fields or states are refused).
//! `wt-create --remove` deletes a worktree's outcomes with it ([`forget`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The most an outcome file may hold.
const MAX_BYTES: u64 = 64 << 10;
/// The most key lines kept from an excerpt.
const MAX_LINES: usize = 5;

/// Which tool's work an outcome is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Run,
    Watch,
    Merge,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Run => "run",
            Kind::Watch => "watch",
            Kind::Merge => "merge",
        }
    }

    /// The states an outcome of this kind may have.
    pub fn states(self) -> &'static [&'static str] {
        match self {
            Kind::Run => &["pass", "red"],
            Kind::Watch => &["pass", "red", "gave-up", "flaky", "guarded"],
            Kind::Merge => &["merged", "conflict", "verify-failed", "untested", "gate-changed", "deps-differ", "error"],
        }
    }
}

/// One outcome, as its file holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    pub kind: Kind,
    /// When it ended, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub state: String,
    /// How many tests failed, when the runner was recognised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing: Option<u64>,
    /// The key lines of the failure excerpt: the failing tests, else its last lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
    /// A conflict's paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Why a merge was held or failed, in a line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<PathBuf>,
    /// The commit that was tested or merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The branch a merge went into; a guarded round's worktree's base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub into: Option<String>,
    /// The command that ran (a merge's verify command, a round's test command), as one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
}

impl Outcome {
    /// An outcome of `kind` in `state`, ended now.
    pub fn now(kind: Kind, state: &str) -> Outcome {
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Outcome {
            kind,
            at_ms,
            state: state.to_string(),
            failing: None,
            lines: Vec::new(),
            paths: Vec::new(),
            detail: None,
            log: None,
            commit: None,
            into: None,
            cmd: None,
        }
    }

    /// Takes `failing` and `lines` from a failure excerpt (`record::excerpt`).
    pub fn with_excerpt(mut self, excerpt: &str) -> Outcome {
        self.failing = crate::record::excerpt::failing_count(excerpt);
        self.lines = key_lines(excerpt);
        self
    }

    /// Whether it is red: a failed run or round, a loop that gave up, a conflict, a failed
    /// verification.
    pub fn is_red(&self) -> bool {
        matches!(self.state.as_str(), "red" | "gave-up" | "conflict" | "verify-failed")
    }
}

/// The lines of an excerpt a person scans first: the failing tests (`✗ name`), else its last
/// non-empty lines (output of a runner not recognised says most about how it ended at its
/// end); at most [`MAX_LINES`], each at most 200 characters.
pub fn key_lines(excerpt: &str) -> Vec<String> {
    let tests: Vec<&str> = excerpt.lines().map(str::trim).filter(|l| l.starts_with("✗ ")).collect();
    let chosen: Vec<&str> = if tests.is_empty() {
        // Not the note of what the excerpt cut (`[… 812 bytes cut above; …]`).
        // Nor what a package manager says after the command it ran (`npm notice New major
        // version…`, `npm error Lifecycle script…`): that is how npm ended, not the tests.
        let chatter =
            |l: &str| ["npm notice", "npm warn", "npm WARN", "npm error", "npm ERR!"].iter().any(|p| l.starts_with(p));
        let said: Vec<&str> =
            excerpt.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("[… ") && !chatter(l)).collect();
        said[said.len().saturating_sub(MAX_LINES)..].to_vec()
    } else {
        tests.into_iter().take(MAX_LINES).collect()
    };
    chosen.into_iter().map(|l| l.chars().take(200).collect()).collect()
}

fn dir(state_dir: &Path, name: &str) -> Option<PathBuf> {
    crate::ledger::name::validate(name).ok()?;
    Some(state_dir.join("outcomes").join(name))
}

/// Replaces the `kind` outcome of worktree `name`. A failure to keep it is logged, not fatal:
/// the work itself happened, and its record says how it ended.
pub fn write(state_dir: &Path, name: &str, outcome: &Outcome) {
    let Some(dir) = dir(state_dir, name) else { return };
    let path = dir.join(format!("{}.json", outcome.kind.as_str()));
    let text = serde_json::to_string(outcome).expect("an outcome serializes");
    let written = std::fs::create_dir_all(&dir).and_then(|_| crate::fs::write_atomic(&path, text.as_bytes()));
    if let Err(e) = written {
        tracing::warn!("cannot keep the outcome at {}: {e}", path.display());
    }
}

/// The `kind` outcome of worktree `name`, if one was kept and reads as one.
pub fn read(state_dir: &Path, name: &str, kind: Kind) -> Option<Outcome> {
    let path = dir(state_dir, name)?.join(format!("{}.json", kind.as_str()));
    let text = crate::fs::read_untrusted(&path, MAX_BYTES).ok()??;
    match parse(&text, kind) {
        Ok(o) => Some(o),
        Err(why) => {
            tracing::warn!("{} is not an outcome wt wrote ({why}); ignored", path.display());
            None
        }
    }
}

/// Parses an outcome of `kind`, refusing another kind, an unknown state or field.
pub fn parse(text: &str, kind: Kind) -> Result<Outcome, String> {
    let o: Outcome = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if o.kind != kind {
        return Err(format!("it is a {} outcome", o.kind.as_str()));
    }
    if !kind.states().contains(&o.state.as_str()) {
        return Err(format!("'{}' is not a state of a {} outcome", o.state.escape_debug(), kind.as_str()));
    }
    Ok(o)
}

/// Deletes every outcome of worktree `name` (it is being removed).
pub fn forget(state_dir: &Path, name: &str) {
    if let Some(dir) = dir(state_dir, name) {
        if let Err(e) = crate::fs::remove_tree(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("cannot remove {}: {e}", dir.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_read_replaced_and_forgotten() {
        let t = tempfile::tempdir().unwrap();
        let red = Outcome { log: Some("/l.log".into()), ..Outcome::now(Kind::Watch, "red") }
            .with_excerpt("2 failing tests (pytest):\n\n✗ t.py::a\n    assert 1\n\n✗ t.py::b\n");
        write(t.path(), "agent-1", &red);
        let back = read(t.path(), "agent-1", Kind::Watch).unwrap();
        assert_eq!(back, red);
        assert_eq!((back.failing, back.lines.clone()), (Some(2), vec!["✗ t.py::a".to_string(), "✗ t.py::b".into()]));
        assert!(read(t.path(), "agent-1", Kind::Run).is_none());
        write(t.path(), "agent-1", &Outcome::now(Kind::Watch, "pass"));
        assert_eq!(read(t.path(), "agent-1", Kind::Watch).unwrap().state, "pass");
        forget(t.path(), "agent-1");
        assert!(!t.path().join("outcomes/agent-1").exists());
        // A name that is no worktree name reaches no file.
        write(t.path(), "../x", &red);
        assert!(!t.path().join("x").exists() && !t.path().join("outcomes").join("..").join("x").exists());
    }

    #[test]
    fn parsed_strictly() {
        assert!(parse(r#"{"kind":"run","at_ms":1,"state":"pass"}"#, Kind::Run).is_ok());
        assert!(parse(r#"{"kind":"run","at_ms":1,"state":"merged"}"#, Kind::Run).is_err());
        assert!(parse(r#"{"kind":"run","at_ms":1,"state":"pass"}"#, Kind::Merge).is_err());
        assert!(parse(r#"{"kind":"run","at_ms":1,"state":"pass","x":1}"#, Kind::Run).is_err());
    }

    #[test]
    fn key_lines_are_the_failing_tests_else_the_first_lines() {
        assert_eq!(
            key_lines("[… 9 bytes cut above; the full log: /l]\nerror: boom\n\nmore\n"),
            ["error: boom", "more"]
        );
        let long: String = (0..9).map(|i| format!("line {i}\n")).collect();
        assert_eq!(key_lines(&long).last().map(String::as_str), Some("line 8"));
        let many: String = (0..9).map(|i| format!("✗ t{i}\n    why\n")).collect();
        assert_eq!(key_lines(&many).len(), MAX_LINES);
        let npm = "Error: boom\nnpm notice\nnpm notice New major version of npm available!\nnpm error Lifecycle script `test` failed\n";
        assert_eq!(key_lines(npm), ["Error: boom"], "npm's own lines are not how the tests ended");
    }
}
