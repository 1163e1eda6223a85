//! The `wt-run pane …` verbs: each one request to the supervisor, its answer printed as JSON,
//! or for a person on a terminal as text (a screen) or a table (the panes).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wt_common::proc::lock::FileLock;
use wt_common::record::output::render_table;
use wt_common::Error;

use super::client::Client;
use crate::args::PaneCmd;

/// Runs one verb against the supervisor on `socket`; the process exit code.
pub fn run(socket: &Path, cmd: &PaneCmd) -> Result<u8, Error> {
    let (method, params) = match cmd {
        PaneCmd::Attach { name } => {
            super::attach::attach(socket, name)?;
            return Ok(0);
        }
        PaneCmd::Ls { .. } => ("pane.list", json!({})),
        PaneCmd::Screen { name, lines } => ("pane.read_screen", json!({"pane": name, "lines": lines.unwrap_or(0)})),
        PaneCmd::Send { name, text, enter } => ("pane.send", json!({"pane": name, "text": text, "enter": enter})),
        PaneCmd::Key { name, key } => ("pane.send_key", json!({"pane": name, "key": key})),
        PaneCmd::Wait { name, state, exit, pattern, quiet, timeout } => {
            if state.is_empty() && !exit && pattern.is_none() && quiet.is_none() {
                return Err(Error::usage(
                    "usage",
                    "pane wait needs what to wait for: --state S, --exit, --match RE or --quiet DUR (see `wt-run pane wait --help`)",
                ));
            }
            let timeout_ms = timeout.as_millis() as u64;
            let params = match state.is_empty() {
                false => json!({"pane": name, "state": state, "timeout_ms": timeout_ms}),
                true => json!({"pane": name, "exit": exit, "match": pattern,
                    "quiet_ms": quiet.map(|q| q.as_millis() as u64), "timeout_ms": timeout_ms}),
            };
            ("pane.wait", params)
        }
        PaneCmd::Resize { name, rows, cols } => ("pane.resize", json!({"pane": name, "rows": rows, "cols": cols})),
        PaneCmd::Kill { name } => ("pane.kill", json!({"pane": name})),
        PaneCmd::Notify { args, state, message, from_hook } => {
            return super::notify::verb(socket, args, state.as_deref(), message.as_deref(), from_hook.as_deref());
        }
        PaneCmd::Stop => ("server.stop", json!({})),
    };
    let mut result = Client::connect(socket)?.call(method, params)?;
    match cmd {
        PaneCmd::Stop => await_exit(socket)?,
        PaneCmd::Screen { lines: Some(n), .. } => keep_last_lines(&mut result, *n),
        _ => {}
    }
    print(cmd, &result);
    Ok(0)
}

/// `server.stop` answers before the supervisor has ended its panes and exited; `pane stop`
/// returns only once it has, so a `--pane` right after it starts a fresh supervisor. The
/// supervisor holds `<socket>.lock` for its whole life (and removes it as it exits: asking never
/// makes the file again).
fn await_exit(socket: &Path) -> Result<(), Error> {
    let lock = socket.with_extension("lock");
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if FileLock::is_free(&lock)? {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(Error::env(
        "supervisor-stuck",
        format!("the pane supervisor did not exit within 15s (it holds {})", lock.display()),
    ))
}

/// `--lines N`: the last N lines the pane printed, scrollback and screen together, without the
/// blank rows below the last one.
fn keep_last_lines(screen: &mut Value, n: usize) {
    let mut lines: Vec<String> = screen["lines"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    let lines = lines.split_off(lines.len().saturating_sub(n));
    screen["text"] = json!(lines.iter().map(|l| l.trim_end()).collect::<Vec<_>>().join("\n"));
    screen["lines"] = json!(lines);
}

fn print(cmd: &PaneCmd, v: &Value) {
    let terminal = std::io::stdout().is_terminal();
    let text = match (cmd, terminal) {
        (PaneCmd::Screen { .. }, true) => v["text"].as_str().unwrap_or_default().to_string(),
        (PaneCmd::Ls { json: false }, true) => panes_table(v, super::agent::now_ms()),
        (PaneCmd::Ls { .. }, _) => {
            v.as_array().map(|a| a.iter().map(Value::to_string).collect::<Vec<_>>().join("\n")).unwrap_or_default()
        }
        _ => v.to_string(),
    };
    if !text.is_empty() {
        let _ = writeln!(std::io::stdout().lock(), "{}", text.trim_end_matches('\n'));
    }
}

/// `pane ls` for a person: each pane, what its agent is doing and since when, and how to sit
/// at it.
fn panes_table(list: &Value, now_ms: u64) -> String {
    let panes = list.as_array().cloned().unwrap_or_default();
    if panes.is_empty() {
        return "no panes (start one with `wt-run -w NAME --pane -- CMD`)".into();
    }
    let rows: Vec<Vec<String>> = panes.iter().map(|p| pane_row(p, now_ms)).collect();
    render_table(&["NAME", "PID", "STATE", "FOR", "SOURCE", "MESSAGE", "SIZE", "CMD", "ATTACH"], &rows)
}

fn pane_row(p: &Value, now_ms: u64) -> Vec<String> {
    let name = p["name"].as_str().unwrap_or_default();
    let state = match (&p["alive"], &p["exit"], p["state"].as_str()) {
        (Value::Bool(true), _, Some(state)) => state.to_string(),
        (Value::Bool(true), _, None) => "running".to_string(),
        (_, e, _) => exit_text(e),
    };
    let since = p["since"].as_u64().map(|s| short_duration(now_ms.saturating_sub(s))).unwrap_or_default();
    let source = p["source"].as_str().unwrap_or_default().to_string();
    let message: String = p["message"].as_str().unwrap_or_default().chars().take(50).collect();
    let cmd: Vec<&str> = p["cmd"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let attach = match p["tmux"]["session"].as_str() {
        Some(session) => format!("tmux attach -t {session}"),
        None => format!("wt-run pane attach {name}"),
    };
    let size = match (p["rows"].as_u64(), p["cols"].as_u64()) {
        (Some(r), Some(c)) => format!("{r}x{c}"),
        _ => String::new(),
    };
    let pid = p["pid"].as_u64().map(|x| x.to_string()).unwrap_or_default();
    vec![name.into(), pid, state, since, source, message, size, cmd.join(" "), attach]
}

/// `42s`, `5m`, `3h`: how long a pane has been in its state, at a glance.
fn short_duration(ms: u64) -> String {
    match ms / 1000 {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    }
}

/// An exit as `{"code": N}` or `{"signal": "KILL"}` shows it: `exited 3`, `killed by SIGKILL`.
pub fn exit_text(exit: &Value) -> String {
    match (exit["code"].as_i64(), exit["signal"].as_str()) {
        (_, Some(sig)) => format!("killed by SIG{sig}"),
        (Some(code), None) => format!("exited {code}"),
        _ => "exited".into(),
    }
}
