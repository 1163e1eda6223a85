//! A tool at a host: its command line there, and a session that streams records to it and its
//! records back, as they are written.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::config::Host;
use super::guard::{END_OF_INPUT, GUARD_ARG, STARTED};
use super::{quote, ssh};
use crate::error::{Error, ErrorKind, Exit};
use crate::record::jsonl::{write_record, WriteError};
use crate::record::Record;

/// Variables a remote tool gets from this side, explicitly on its command line.
const PASSED_ENV: &[&str] = &["WT_LOG", "WT_LOCK_TIMEOUT", "WT_PANE_IDLE"];

/// ssh's own exit code when it could not connect or the connection broke.
const SSH_FAILED: i32 = 255;
/// The remote shell's code for a command it could not find.
const NOT_FOUND: i32 = 127;

/// The program of `tool` at `host`: in its `bin`, or found on its PATH.
pub fn program(host: &Host, tool: &str) -> String {
    match &host.bin {
        Some(bin) => bin.join(tool).display().to_string(),
        None => tool.to_string(),
    }
}

/// The remote shell command that runs `tool` in the host's repository with `args`; under the
/// guard when `guarded`.
pub fn command_line(host: &Host, tool: &str, args: &[String], guarded: bool) -> String {
    let mut words: Vec<String> = vec!["exec".into()];
    let env: Vec<String> =
        PASSED_ENV.iter().filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v}"))).collect();
    if !env.is_empty() {
        words.push("env".into());
        words.extend(env);
    }
    words.push(program(host, tool));
    if guarded {
        words.push(GUARD_ARG.into());
    }
    words.extend(["-C".to_string(), host.path.display().to_string()]);
    words.extend(args.iter().cloned());
    quote::join(&words)
}

/// The error for a tool the host does not have.
pub fn missing_tool(host: &Host, tool: &str) -> Error {
    Error::failed(
        "remote-tool-missing",
        format!("{} is not found at {}: {}", program(host, tool), host.name, install_hint(host, tool)),
    )
}

/// How to put the tools where a host can find them.
pub fn install_hint(host: &Host, tool: &str) -> String {
    format!(
        "install the wt tools at {} (`make install` there, or `cargo install --path {tool}`), or point [hosts.{}] bin at where they are",
        host.name, host.name
    )
}

/// Where records end up: this tool's stdout, one flushed line each, and the worst outcome.
#[derive(Debug)]
pub struct Sink {
    tool: &'static str,
    exit: Mutex<Exit>,
}

impl Sink {
    pub fn new(tool: &'static str) -> Arc<Sink> {
        Arc::new(Sink { tool, exit: Mutex::new(Exit::Ok) })
    }

    /// Writes a record; one with `error` makes the run exit at least 1 and, if this tool raised
    /// it, is told on stderr.
    pub fn emit(&self, rec: &Record) {
        if let Some(err) = &rec.error {
            self.fail(Exit::Failed);
            if err.tool == self.tool {
                eprintln!("{}: {}: {}", self.tool, rec.name, err.message);
            }
        }
        match write_record(&mut std::io::stdout().lock(), rec) {
            Ok(()) | Err(WriteError::Closed) => {}
            Err(WriteError::Io(e)) => {
                eprintln!("{}: cannot write to stdout: {e}", self.tool);
                self.fail(Exit::Environment);
            }
        }
    }

    pub fn fail(&self, exit: Exit) {
        let mut e = self.exit.lock().expect("sink");
        *e = e.worst(exit);
    }

    pub fn exit(&self) -> Exit {
        *self.exit.lock().expect("sink")
    }
}

enum Msg {
    Line(String),
    End,
}

/// One tool running at one host, fed records in order.
#[derive(Debug)]
pub struct Session {
    host: Host,
    tool: &'static str,
    child: Child,
    feed: Sender<Msg>,
    writer: JoinHandle<()>,
    reader: JoinHandle<(Vec<String>, bool)>,
    stderr: JoinHandle<String>,
    sent: Vec<String>,
    sink: Arc<Sink>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Line(_) => "Line",
            Msg::End => "End",
        })
    }
}

impl Session {
    /// Starts `tool args…` at `host` under the guard.
    pub fn start(host: &Host, tool: &'static str, args: &[String], sink: Arc<Sink>) -> Result<Session, Error> {
        let line = command_line(host, tool, args, true);
        tracing::debug!("{}: ssh {} {line}", host.name, host.ssh);
        let mut child = ssh::command(host, &line, false)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::env("no-ssh", format!("cannot run ssh: {e} (install OpenSSH's client)")))?;
        let (feed, rx) = mpsc::channel::<Msg>();
        let mut stdin = child.stdin.take().expect("piped");
        let writer = std::thread::spawn(move || {
            // After the end-of-input line the connection stays open, so the guard at the host
            // can tell "no more records" from "the connection is gone".
            for msg in rx {
                let bytes = match msg {
                    Msg::Line(l) => l + "\n",
                    Msg::End => format!("{END_OF_INPUT}\n"),
                };
                if stdin.write_all(bytes.as_bytes()).and_then(|()| stdin.flush()).is_err() {
                    break;
                }
            }
        });
        let stdout = child.stdout.take().expect("piped");
        let (name, out_sink) = (host.name.clone(), Arc::clone(&sink));
        let reader = std::thread::spawn(move || {
            let (mut returned, mut started) = (Vec::new(), false);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line == STARTED {
                    started = true;
                    continue;
                }
                match Record::from_json(&line) {
                    Ok(mut rec) => {
                        rec.set_key(super::KEY, name.clone().into());
                        returned.push(rec.name.clone());
                        out_sink.emit(&rec);
                    }
                    Err(e) => eprintln!("[{name}] not a record ({e}): {line}"),
                }
            }
            (returned, started)
        });
        let stderr = child.stderr.take().expect("piped");
        let name = host.name.clone();
        let stderr = std::thread::spawn(move || {
            let mut last = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{name}] {line}");
                last = line;
            }
            last
        });
        Ok(Session { host: host.clone(), tool, child, feed, writer, reader, stderr, sent: Vec::new(), sink })
    }

    /// Sends one record (its `host` already removed) or a bare word.
    pub fn send(&mut self, name: &str, line: String) {
        self.sent.push(name.to_string());
        let _ = self.feed.send(Msg::Line(line));
    }

    /// Ends the input, waits for the remote tool, and gives an error record for each record
    /// sent that did not come back.
    pub fn finish(self) -> Exit {
        let Session { host, tool, mut child, feed, writer, reader, stderr, sent, sink } = self;
        let _ = feed.send(Msg::End);
        let (returned, started) = reader.join().unwrap_or_default();
        drop(feed);
        let _ = writer.join();
        let status = child.wait().ok().and_then(|s| s.code()).unwrap_or(SSH_FAILED);
        let last = stderr.join().unwrap_or_default();
        let mut exit = match status {
            0 => Exit::Ok,
            1..=3 if !sent.is_empty() || !returned.is_empty() => Exit::Failed,
            2 => Exit::Usage,
            3 => Exit::Environment,
            _ => Exit::Failed,
        };
        let lost = lost(&host, tool, started, status, &last);
        let missing = missing(&sent, &returned);
        let nothing_named = sent.is_empty() && returned.is_empty();
        if let Some(err) = lost.filter(|_| !missing.is_empty() || nothing_named) {
            let names = if missing.is_empty() { vec![String::new()] } else { missing };
            for name in names {
                sink.emit(&super::failed(&name, &host.name, tool, &err));
            }
            exit = exit.worst(Exit::Failed);
        }
        exit.worst(sink.exit())
    }
}

/// The error for records that did not come back, by how ssh ended.
fn lost(h: &Host, tool: &str, started: bool, status: i32, last_stderr: &str) -> Option<Error> {
    let said = if last_stderr.trim().is_empty() { String::new() } else { format!(" ({})", last_stderr.trim()) };
    match status {
        0..=3 => None,
        SSH_FAILED if !started => Some(Error::failed(
            "host-unreachable",
            format!("host {} ({}) cannot be reached over ssh{said}; the other hosts go on", h.name, h.ssh),
        )),
        SSH_FAILED => Some(Error::failed(
            "connection-lost",
            format!("the connection to host {} ({}) dropped{said}; its run there was ended", h.name, h.ssh),
        )),
        NOT_FOUND => Some(Error::failed(
            "remote-tool-missing",
            format!("{} is not found at {}: {}", program(h, tool), h.name, install_hint(h, tool)),
        )),
        code => Some(Error::failed("remote-failed", format!("{tool} at {} exited {code}{said}", h.name))),
    }
}

/// Runs this same command line at the host with the terminal's stdin, stdout and stderr (for
/// output that is not records: a pane's screen, `attach`); `tty` asks ssh for a terminal.
/// Returns the remote exit code.
pub fn exec_raw(root: Option<&std::path::Path>, host_name: &str, tool: &str, tty: bool) -> Result<u8, Error> {
    let hosts = super::Hosts::load(root)?;
    let host = hosts.get(host_name)?;
    let args = super::router::strip_local_options(&std::env::args().skip(1).collect::<Vec<_>>());
    let line = command_line(host, tool, &args, false);
    let status = ssh::command(host, &line, tty)
        .status()
        .map_err(|e| Error::env("no-ssh", format!("cannot run ssh: {e} (install OpenSSH's client)")))?;
    match status.code() {
        Some(SSH_FAILED) | None => {
            Err(super::repo::unreachable(host, "see ssh's message above").with_kind(ErrorKind::Environment))
        }
        Some(NOT_FOUND) => Err(missing_tool(host, tool).with_kind(ErrorKind::Environment)),
        Some(code) => Ok(code as u8),
    }
}

/// Names sent that did not come back, each as often as it is missing.
fn missing(sent: &[String], returned: &[String]) -> Vec<String> {
    let mut back = returned.to_vec();
    sent.iter()
        .filter(|n| match back.iter().position(|r| r == *n) {
            Some(i) => {
                back.swap_remove(i);
                false
            }
            None => true,
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_that_did_not_come_back_are_found_by_name() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(missing(&s(&["a", "b", "c"]), &s(&["c", "a"])), s(&["b"]));
        assert!(missing(&s(&["a"]), &s(&["a"])).is_empty());
    }

    #[test]
    fn the_remote_command_quotes_every_argument() {
        let host = Host {
            name: "b1".into(),
            ssh: "b1".into(),
            path: "/srv/my repo".into(),
            bin: Some("/opt/wt bin".into()),
            ssh_config: None,
        };
        let line = command_line(&host, "wt-run", &["--".into(), "echo".into(), "$(id)".into()], true);
        assert!(line.contains("'/opt/wt bin/wt-run' __host-guard -C '/srv/my repo' -- echo '$(id)'"), "{line}");
    }
}
