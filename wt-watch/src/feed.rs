//! Handing a failure to the agent: into its pane (once it is idle), into a file, through a
//! command, or nowhere.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wt_common::proc::supervisor::Client;
use wt_common::Error;

use crate::args::Feed;

/// What the agent reads.
pub fn message(name: &str, round: u32, argv: &[String], excerpt: &str) -> String {
    let cmd = argv.join(" ");
    format!(
        "wt-watch: the tests of worktree {name} failed (round {round}, `{cmd}`).\n\
         The tests are the specification: fix the code so that they pass. Do not change the tests.\n\n{excerpt}"
    )
}

/// Where one worktree's failures go, resolved.
#[derive(Debug, Clone)]
pub enum Target {
    Pane {
        socket: PathBuf,
        pane: String,
        ready: Readiness,
    },
    File(PathBuf),
    /// `--feed jsonl:PATH`: the worktree's root and the path as given (relative ones are below
    /// the root). Every round's line is appended when its record is written (`feed_lines`);
    /// there is nothing more to deliver.
    Jsonl {
        root: PathBuf,
        path: PathBuf,
    },
    Cmd {
        command: String,
        cwd: PathBuf,
        env: Vec<(String, String)>,
    },
    None,
}

impl Target {
    pub fn resolve(
        feed: &Feed,
        name: &str,
        root: &Path,
        socket: &Path,
        quiet: Duration,
        env: &[(String, String)],
    ) -> Target {
        match feed {
            Feed::Pane(pane) => Target::Pane {
                socket: socket.to_path_buf(),
                pane: pane.clone().unwrap_or_else(|| name.to_string()),
                ready: Readiness::Quiet(quiet),
            },
            Feed::File(p) => Target::File(root.join(p)),
            Feed::Jsonl(p) => Target::Jsonl { root: root.to_path_buf(), path: p.clone() },
            Feed::Cmd(c) => Target::Cmd { command: c.clone(), cwd: root.to_path_buf(), env: env.to_vec() },
            Feed::None => Target::None,
        }
    }
}

/// How wt-watch knows an agent may be typed into. Until panes report their agent's state, the
/// screen being quiet for a while stands for idle; a state check fits here as another variant.
#[derive(Debug, Clone, Copy)]
pub enum Readiness {
    Quiet(Duration),
}

impl Readiness {
    fn wait_params(&self, pane: &str, slice: Duration) -> Value {
        match self {
            Readiness::Quiet(q) => {
                json!({"pane": pane, "quiet_ms": q.as_millis() as u64, "timeout_ms": slice.as_millis() as u64})
            }
        }
    }
}

/// Why a failure did not reach the agent.
#[derive(Debug)]
pub enum Undelivered {
    /// A change came first: the failure is stale, the tests run again.
    Cancelled,
    /// The agent's pane has ended: the loop for this worktree gives up, saying why.
    Exited(String),
    /// The agent was never idle within the time allowed.
    Busy(Duration),
    /// No pane, no supervisor, a command that failed: an error for this worktree.
    Failed(Error),
}

/// How long one `pane.wait` may block before wt-watch looks at its cancel flag again.
const SLICE: Duration = Duration::from_millis(500);

/// Delivers `text`. Pane feeds wait for the agent to be ready (at most `patience`), and give
/// up at once when `cancel` is set.
pub fn deliver(target: &Target, text: &str, patience: Duration, cancel: &AtomicBool) -> Result<(), Undelivered> {
    match target {
        Target::Pane { socket, pane, ready } => to_pane(socket, pane, *ready, text, patience, cancel),
        Target::File(path) => wt_common::fs::write_atomic(path, text.as_bytes())
            .map_err(|e| Undelivered::Failed(Error::io(path.display(), e).with_kind(wt_common::ErrorKind::Failed))),
        Target::Cmd { command, cwd, env } => to_command(command, cwd, env, text),
        Target::Jsonl { .. } | Target::None => Ok(()),
    }
}

fn to_pane(
    socket: &Path,
    pane: &str,
    ready: Readiness,
    text: &str,
    patience: Duration,
    cancel: &AtomicBool,
) -> Result<(), Undelivered> {
    let mut client = Client::connect(socket).map_err(|e| Undelivered::Failed(pane_gone(pane, &e.message)))?;
    let deadline = Instant::now() + patience;
    loop {
        let described = check_alive(&mut client, pane)?;
        if cancel.load(Ordering::SeqCst) {
            return Err(Undelivered::Cancelled);
        }
        if Instant::now() >= deadline {
            return Err(Undelivered::Busy(patience));
        }
        // An agent that has shown nothing yet is still starting: what is typed now may be lost.
        let started =
            client.call("pane.wait", json!({"pane": pane, "match": "\\S", "timeout_ms": SLICE.as_millis() as u64}));
        match started {
            Ok(_) => {}
            Err(e) if e.code == "timeout" || e.code == "exited" => continue,
            Err(e) => return Err(Undelivered::Failed(pane_gone(pane, &e.message))),
        }
        // The agent's own word (its hooks, its status file, a notification, a dialog on its
        // screen) that it is working or asking something outranks a quiet screen: typing now
        // would interrupt it or answer its question. Wait for it to say its turn is over.
        if says_busy(&described) {
            let idle = json!({"pane": pane, "state": ["idle"], "timeout_ms": SLICE.as_millis() as u64});
            match client.call("pane.wait", idle) {
                Ok(_) => {}
                Err(e) if e.code == "timeout" || e.code == "exited" => continue,
                Err(e) => return Err(Undelivered::Failed(pane_gone(pane, &e.message))),
            }
        }
        match client.call("pane.wait", ready.wait_params(pane, SLICE)) {
            // Quiet: unless the agent said meanwhile that it is busy after all.
            Ok(_) if says_busy(&check_alive(&mut client, pane)?) => continue,
            Ok(_) => break,
            Err(e) if e.code == "timeout" => continue,
            Err(e) => return Err(Undelivered::Failed(pane_gone(pane, &e.message))),
        }
    }
    // Ready, and nothing changed meanwhile: the message as `pane.send` types it (one bracketed
    // paste if the agent turned bracketed paste on, else line by line), then Enter.
    if cancel.load(Ordering::SeqCst) {
        return Err(Undelivered::Cancelled);
    }
    check_alive(&mut client, pane)?;
    client
        .call("pane.send", json!({"pane": pane, "text": text, "enter": true}))
        .map(|_| ())
        .map_err(|e| Undelivered::Failed(pane_gone(pane, &e.message)))
}

/// Whether the pane's agent state says busy from a signal of the agent's own, not from the
/// quiet-output guess (`source` `output`), which the quiet wait checks more strictly anyway.
fn says_busy(described: &Value) -> bool {
    let state = described["state"].as_str().unwrap_or_default();
    let source = described["source"].as_str().unwrap_or("output");
    matches!(state, "working" | "waiting") && source != "output"
}

/// The pane exists and its program runs: its description in `pane.list`.
fn check_alive(client: &mut Client, pane: &str) -> Result<Value, Undelivered> {
    let list = client.call("pane.list", json!({})).map_err(|e| Undelivered::Failed(pane_gone(pane, &e.message)))?;
    let found = list.as_array().and_then(|a| a.iter().find(|p| p["name"] == pane)).cloned();
    match found {
        None => Err(Undelivered::Failed(pane_gone(pane, "it is not in `wt-run pane ls`"))),
        Some(p) if p["alive"] == json!(false) => {
            Err(Undelivered::Exited(format!("the agent's pane {pane} exited ({})", exit_text(&p["exit"]))))
        }
        Some(p) => Ok(p),
    }
}

fn exit_text(exit: &Value) -> String {
    match (exit.get("code"), exit.get("signal")) {
        (Some(c), _) => format!("exit code {c}"),
        (_, Some(s)) => format!("signal {}", s.as_str().unwrap_or_default()),
        _ => "no exit status".into(),
    }
}

fn pane_gone(pane: &str, why: &str) -> Error {
    Error::failed(
        "no-such-pane",
        format!("cannot feed the agent's pane {pane}: {why} (start it with `wt-run --pane`, or use --feed pane:NAME)"),
    )
}

/// Watches the agent's pane after a failure was fed, until `stop` is set: returns why it
/// ended if it did. Blocks on the supervisor (`pane.wait` for the exit), no polling of files.
pub fn watch_exit(socket: &Path, pane: &str, stop: &Arc<AtomicBool>) -> Option<String> {
    let mut client = Client::connect(socket).ok()?;
    while !stop.load(Ordering::SeqCst) {
        let params = json!({"pane": pane, "exit": true, "timeout_ms": 2000});
        match client.call("pane.wait", params) {
            Ok(r) => return Some(format!("the agent's pane {pane} exited ({})", exit_text(&r["exit"]))),
            Err(e) if e.code == "timeout" => continue,
            Err(e) => return Some(format!("the agent's pane {pane} is gone: {}", e.message)),
        }
    }
    None
}

fn to_command(command: &str, cwd: &Path, env: &[(String, String)], text: &str) -> Result<(), Undelivered> {
    let failed = |msg: String| Undelivered::Failed(Error::failed("feed-failed", msg));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| failed(format!("cannot start the feed command: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(text.as_bytes()); // a command that does not read is its business
    }
    let status = child.wait().map_err(|e| failed(format!("the feed command: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(failed(format!("the feed command `{command}` failed ({status})")))
    }
}
