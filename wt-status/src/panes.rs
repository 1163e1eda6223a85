//! The panes of the repository's supervisor, asked over its socket (`pane.list`), so the
//! overview shows which agents and servers run. No supervisor means no panes, not an error.
//!
//! A pane belongs to the worktree its directory (`cwd`) is inside (the innermost, when
//! worktrees nest), or, without a directory inside any, to the worktree of its name: a dev
//! server started in agent-2's worktree under another name is agent-2's.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// The `pane.list` entries; none when no supervisor answers.
pub fn list(common_dir: &Path) -> Vec<Value> {
    let Ok(socket) = wt_common::proc::supervisor::socket_path(common_dir) else { return Vec::new() };
    ask(&socket).unwrap_or_else(|| {
        tracing::debug!("no pane supervisor answers on {}", socket.display());
        Vec::new()
    })
}

fn ask(socket: &Path) -> Option<Vec<Value>> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"{\"id\":1,\"method\":\"pane.list\",\"params\":{}}\n").ok()?;
    let mut line = String::new();
    // The answer is bounded: a supervisor of this user, but no reason to read without end.
    BufReader::new(stream).take(16 << 20).read_line(&mut line).ok()?;
    let answer: Value = serde_json::from_str(&line).ok()?;
    Some(answer.get("result")?.as_array()?.iter().filter(|p| p["name"].is_string()).cloned().collect())
}

/// The panes of the worktree `name` at `path`, given every worktree's path (`all`).
pub fn of_worktree(panes: &[Value], name: &str, path: Option<&Path>, all: &[PathBuf]) -> Vec<Value> {
    panes
        .iter()
        .filter(|p| match owner(p, all) {
            Some(owner) => Some(owner.as_path()) == path,
            None => p["name"] == name,
        })
        .cloned()
        .collect()
}

/// The innermost worktree (of `all`) the pane's directory is inside.
fn owner<'a>(pane: &Value, all: &'a [PathBuf]) -> Option<&'a PathBuf> {
    let cwd = Path::new(pane["cwd"].as_str()?);
    all.iter().filter(|w| cwd.starts_with(w)).max_by_key(|w| w.components().count())
}
