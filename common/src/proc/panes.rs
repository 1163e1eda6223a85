//! The panes running in a worktree, asked of the repository's pane supervisor (`wt-run serve`)
//! over its socket, with the protocol of docs/protocol.md. A worktree is never removed under a
//! running agent: its removal ends the panes there (when forced) or refuses.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::git::repo::Repo;
use crate::Error;

/// A live pane whose working directory is inside a worktree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pane {
    pub name: String,
    pub pid: i64,
}

/// One request and its response line; `None` when no supervisor answers.
fn call(repo: &Repo, method: &str, params: Value) -> Result<Option<Value>, Error> {
    // `pane.kill` waits up to 2 s for the pane to end.
    call_within(repo, method, params, Duration::from_secs(10))
}

/// `call`, giving up on the answer after `wait`.
fn call_within(repo: &Repo, method: &str, params: Value, wait: Duration) -> Result<Option<Value>, Error> {
    let socket = crate::proc::supervisor::socket_path(&repo.common_dir)?;
    let Ok(stream) = UnixStream::connect(&socket) else { return Ok(None) };
    let _ = stream.set_read_timeout(Some(wait));
    let _ = stream.set_write_timeout(Some(wait));
    let lost = |e: std::io::Error| Error::env("supervisor-lost", format!("the pane supervisor went away: {e}"));
    let mut line = serde_json::to_vec(&json!({"id": 1, "method": method, "params": params})).expect("request");
    line.push(b'\n');
    (&stream).write_all(&line).map_err(lost)?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).map_err(lost)?;
    let resp: Value = serde_json::from_str(&answer).map_err(|e| Error::env("bad-response", e.to_string()))?;
    match resp.get("ok").and_then(Value::as_bool) {
        Some(true) => Ok(Some(resp.get("result").cloned().unwrap_or(Value::Null))),
        _ => {
            let msg = resp.pointer("/error/message").and_then(Value::as_str).unwrap_or("refused").to_string();
            Err(Error::failed("pane-failed", format!("the pane supervisor: {msg}")))
        }
    }
}

/// Every pane of the repository's supervisor, live or exited, by name, with its agent's state
/// (`waiting`, `exited`, …): what a shell completes a pane name from. Asked with a short
/// timeout, since a person is waiting at the <TAB>; nothing when no supervisor answers.
pub fn names(repo: &Repo) -> Vec<(String, String)> {
    let list = call_within(repo, "pane.list", json!({}), Duration::from_millis(500)).ok().flatten();
    let text = |p: &Value, key: &str| p.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
    list.as_ref()
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| (text(p, "name"), text(p, "state")))
        .filter(|(name, _)| !name.is_empty())
        .collect()
}

/// The live panes whose working directory is `path` or inside it.
pub fn running_in(repo: &Repo, path: &Path) -> Result<Vec<Pane>, Error> {
    in_dir(repo, path, true)
}

/// The panes the supervisor lists (running or ended) whose working directory is `path` or
/// inside it.
pub fn listed_in(repo: &Repo, path: &Path) -> Result<Vec<Pane>, Error> {
    in_dir(repo, path, false)
}

fn in_dir(repo: &Repo, path: &Path, alive_only: bool) -> Result<Vec<Pane>, Error> {
    let Some(list) = call(repo, "pane.list", json!({}))? else { return Ok(Vec::new()) };
    let inside = |cwd: &str| {
        let cwd = Path::new(cwd);
        cwd.starts_with(path) || cwd.canonicalize().is_ok_and(|c| c.starts_with(path))
    };
    Ok(list
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| !alive_only || p.get("alive").and_then(Value::as_bool) == Some(true))
        .filter(|p| p.get("cwd").and_then(Value::as_str).is_some_and(inside))
        .map(|p| Pane {
            name: p.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
            pid: p.get("pid").and_then(Value::as_i64).unwrap_or_default(),
        })
        .collect())
}

/// Before a worktree goes: with `force`, ends every pane running in it (SIGTERM to its
/// session, SIGKILL 2 s later); without, refuses while one runs (`pane-running`).
pub fn end_or_refuse(repo: &Repo, path: &Path, force: bool) -> Result<(), Error> {
    let panes = running_in(repo, path)?;
    if panes.is_empty() {
        return Ok(());
    }
    if !force {
        let names: Vec<String> = panes.iter().map(|p| format!("'{}' (pid {})", p.name, p.pid)).collect();
        return Err(Error::failed(
            "pane-running",
            format!(
                "{} has a running pane {}; end it first (`wt-run pane kill {}`), or pass --force to end it",
                path.display(),
                names.join(", "),
                panes[0].name
            ),
        ));
    }
    for p in panes {
        tracing::info!("ending pane '{}' (pid {}) before removing {}", p.name, p.pid, path.display());
        call(repo, "pane.kill", json!({"pane": p.name}))?;
    }
    Ok(())
}

/// Ends pane `name` and drops it from the supervisor's list, with its screen: `pane.kill`
/// ends a live pane (it stays listed, dead), and drops one that has ended.
pub fn kill_and_forget(repo: &Repo, name: &str) -> Result<(), Error> {
    for _ in 0..2 {
        match call(repo, "pane.kill", json!({"pane": name})) {
            Ok(Some(pane)) if pane.get("alive").and_then(Value::as_bool) == Some(false) => continue,
            Ok(_) => return Ok(()),
            // Dropped already (by the first call, or by someone else).
            Err(e) if e.message.contains("no pane") => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What `stop_supervisor_if_idle` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Supervisor {
    /// No supervisor answers on the repository's socket.
    NotRunning,
    /// It had no pane left and has stopped; its pid.
    Stopped(Option<i64>),
    /// It still has these panes, so it runs on.
    Busy(Vec<String>),
}

/// Stops the repository's supervisor when it has no pane left, and waits (up to 10 s) until
/// its process is gone.
pub fn stop_supervisor_if_idle(repo: &Repo) -> Result<Supervisor, Error> {
    let Some(list) = call(repo, "pane.list", json!({}))? else { return Ok(Supervisor::NotRunning) };
    let names: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    if !names.is_empty() {
        return Ok(Supervisor::Busy(names));
    }
    let pid = call(repo, "server.ping", json!({}))?.and_then(|r| r.get("pid").and_then(Value::as_i64));
    call(repo, "server.stop", json!({}))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let alive = |p: i64| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p as i32), None).is_ok();
        if !pid.is_some_and(alive) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Supervisor::Stopped(pid))
}

/// How a pane ended, from its `exit` (`{"code": N}`, `{"signal": "KILL"}`) as `pane.list`
/// gives it: `exited 3`, `killed by SIGKILL`; a tmux pane whose window was closed: `ended
/// (window closed)`.
pub fn exit_text(exit: &Value) -> String {
    match (exit["code"].as_i64(), exit["signal"].as_str()) {
        (_, Some(sig)) if !sig.is_empty() && sig.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) => {
            format!("killed by SIG{sig}")
        }
        (_, Some(how)) => format!("ended ({how})"),
        (Some(code), None) => format!("exited {code}"),
        _ => "exited".into(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn an_exit_reads_as_people_say_it() {
        assert_eq!(super::exit_text(&json!({"code": 3})), "exited 3");
        assert_eq!(super::exit_text(&json!({"signal": "KILL", "killed": true})), "killed by SIGKILL");
        assert_eq!(super::exit_text(&json!({"signal": "window closed"})), "ended (window closed)");
        assert_eq!(super::exit_text(&json!(null)), "exited");
    }
}
