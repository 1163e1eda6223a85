//! The `wt-run pane …` verbs: each one request to the supervisor, its answer printed as JSON,
//! or for a person on a terminal as text (a screen) or a table (the panes).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wt_common::proc::lock::FileLock;
use wt_common::record::output::render_table;
use wt_common::Error;

use super::client::Client;
use crate::args::PaneCmd;

/// How long one `pane.wait --state` request may block when no `--timeout` was given: the
/// verb asks again until the pane is in the state, so a client that goes away leaves no
/// request waiting for ever in the supervisor.
const STATE_WAIT_SLICE: Duration = Duration::from_secs(60);

/// Runs one verb against the supervisor on `socket`; the process exit code. `person`: stdout
/// is a terminal and `--json` was not given, so results are said in words.
pub fn run(socket: &Path, cmd: &PaneCmd, person: bool) -> Result<u8, Error> {
    let (method, params) = match cmd {
        PaneCmd::Attach { name } => {
            super::attach::attach(socket, name)?;
            return Ok(0);
        }
        PaneCmd::Kill { names } => return kill(socket, names, person),
        PaneCmd::Stop => return stop(socket, person),
        PaneCmd::Wait { name, state, timeout, .. } if !state.is_empty() && timeout.is_none() => {
            let result = wait_for_state(socket, name, state)?;
            print(cmd, &result, person);
            return Ok(0);
        }
        PaneCmd::Ls { .. } => ("pane.list", json!({})),
        PaneCmd::Screen { name, lines } => ("pane.read_screen", json!({"pane": name, "lines": lines.unwrap_or(0)})),
        PaneCmd::Send { name, text, enter } => ("pane.send", json!({"pane": name, "text": text, "enter": enter})),
        PaneCmd::Answer { name, answer } => match answer.to_ascii_lowercase().as_str() {
            word @ ("yes" | "no") => ("pane.answer", json!({"pane": name, "answer": word})),
            _ => ("pane.answer", json!({"pane": name, "text": answer})),
        },
        PaneCmd::Key { name, key } => ("pane.send_key", json!({"pane": name, "key": key})),
        PaneCmd::Wait { name, state, exit, pattern, quiet, timeout } => {
            if state.is_empty() && !exit && pattern.is_none() && quiet.is_none() {
                return Err(Error::usage(
                    "usage",
                    "pane wait needs what to wait for: --state S, --exit, --match RE or --quiet DUR (see `wt-run pane wait --help`)",
                ));
            }
            let timeout_ms = timeout.unwrap_or(Duration::from_secs(30)).as_millis() as u64;
            let params = match state.is_empty() {
                false => json!({"pane": name, "state": state, "timeout_ms": timeout_ms}),
                true => json!({"pane": name, "exit": exit, "match": pattern,
                    "quiet_ms": quiet.map(|q| q.as_millis() as u64), "timeout_ms": timeout_ms}),
            };
            ("pane.wait", params)
        }
        PaneCmd::Resize { name, rows, cols } => ("pane.resize", json!({"pane": name, "rows": rows, "cols": cols})),
        PaneCmd::Notify { args, state, message, from_hook } => {
            return super::notify::verb(socket, args, state.as_deref(), message.as_deref(), from_hook.as_deref());
        }
    };
    let mut result = Client::connect(socket)?.call(method, params)?;
    if let PaneCmd::Screen { lines: Some(n), .. } = cmd {
        keep_last_lines(&mut result, *n);
    }
    print(cmd, &result, person);
    Ok(0)
}

/// `pane wait --state` without `--timeout`: until the pane is in one of the states (or exits).
fn wait_for_state(socket: &Path, name: &str, states: &[String]) -> Result<Value, Error> {
    let mut client = Client::connect(socket)?;
    let params = json!({"pane": name, "state": states, "timeout_ms": STATE_WAIT_SLICE.as_millis() as u64});
    loop {
        match client.call("pane.wait", params.clone()) {
            Err(e) if e.code == "timeout" => continue,
            other => return other,
        }
    }
}

/// `pane kill A B …`: each pane in turn, each one's line (or record) as it is dead; a name
/// that fails is said on stderr and the others are still killed (exit 1 then).
fn kill(socket: &Path, names: &[String], person: bool) -> Result<u8, Error> {
    let mut client = Client::connect(socket)?;
    let mut code = 0;
    for name in names {
        match client.call("pane.kill", json!({"pane": name})) {
            Ok(killed) => print_line(&killed, person, |v| {
                let how = exit_text(&v["exit"]);
                match v["dropped"].as_bool() {
                    Some(true) => format!("{name} had already ended ({how}); dropped it from the list"),
                    _ => format!("ended {name} ({how})"),
                }
            }),
            Err(e) => {
                eprintln!("wt-run: {name}: {}", wt_common::record::cli::one_line(&e.message));
                code = 1;
            }
        }
    }
    Ok(code)
}

/// `pane stop`: tells the supervisor to stop, and returns once it has exited: its lock is free
/// and its process is gone, so a `--pane` right after it starts a fresh supervisor.
fn stop(socket: &Path, person: bool) -> Result<u8, Error> {
    let mut client = Client::connect(socket)?;
    let pid = client.call("server.ping", json!({}))?["pid"].as_u64().map(|p| p as i32);
    client.call("server.stop", json!({}))?;
    await_exit(socket, pid)?;
    let record = json!({"stopped": true, "pid": pid});
    print_line(&record, person, |_| match pid {
        Some(pid) => format!("stopped the pane supervisor (pid {pid}) and its panes"),
        None => "stopped the pane supervisor and its panes".to_string(),
    });
    Ok(0)
}

/// `server.stop` answers before the supervisor has ended its panes and exited; `pane stop`
/// returns only once it has. The supervisor holds `<socket>.lock` for its whole life (and
/// removes it as it exits: asking never makes the file again), and then its process ends.
fn await_exit(socket: &Path, pid: Option<i32>) -> Result<(), Error> {
    let lock = socket.with_extension("lock");
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if FileLock::is_free(&lock)? && pid.is_none_or(gone) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(Error::env(
        "supervisor-stuck",
        format!("the pane supervisor did not exit within 15s (it holds {})", lock.display()),
    ))
}

/// Whether process `pid` has ended: it no longer exists, or is a zombie its parent has not
/// reaped yet (it runs no more code).
fn gone(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the command name, which is in parentheses and may hold anything.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    matches!(state, None | Some("Z" | "X"))
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

fn print(cmd: &PaneCmd, v: &Value, person: bool) {
    let text = match (cmd, person) {
        (PaneCmd::Screen { .. }, true) => v["text"].as_str().unwrap_or_default().to_string(),
        (PaneCmd::Ls { json: false }, true) => panes_table(v, super::agent::now_ms()),
        (PaneCmd::Ls { .. }, _) => {
            v.as_array().map(|a| a.iter().map(Value::to_string).collect::<Vec<_>>().join("\n")).unwrap_or_default()
        }
        (PaneCmd::Send { name, enter, .. }, true) => {
            let bytes = v["sent"].as_u64().unwrap_or(0);
            format!("typed {bytes} bytes into {name}{}", if *enter { ", then enter" } else { "" })
        }
        (PaneCmd::Key { name, key }, true) => format!("pressed {key} in {name}"),
        (PaneCmd::Answer { name, .. }, true) => answered(name, v),
        _ => v.to_string(),
    };
    if !text.is_empty() {
        let _ = writeln!(std::io::stdout().lock(), "{}", text.trim_end_matches('\n'));
    }
}

/// A verb's result: `line` of it for a person, else the record.
fn print_line(v: &Value, person: bool, line: impl Fn(&Value) -> String) {
    let text = if person { line(v) } else { v.to_string() };
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// `answered yes in agent-2 (pressed 1: "Yes")`, for a person.
fn answered(name: &str, v: &Value) -> String {
    let question = v["question"].as_str().map(|q| format!(" to \"{q}\"")).unwrap_or_default();
    match (v["answer"].as_str(), v["text"].as_str()) {
        (Some(answer), _) => {
            let keys: Vec<&str> =
                v["keys"].as_array().map(|k| k.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            let item = v["item"].as_str().map(|i| format!(": \"{i}\"")).unwrap_or_default();
            format!("answered {answer} in {name}{question} (pressed {}{item})", keys.join(" "))
        }
        (None, Some(text)) => format!("answered {name}{question}: typed \"{text}\", then enter"),
        _ => format!("answered {name}"),
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

pub use wt_common::proc::panes::exit_text;
