//! Splits a tool's stdin between this machine and the hosts.
//!
//! A record with `host` goes, in order, to a session of the same tool at that host (one per
//! host, started on its first record), without its `host` key; the records that come back get
//! it again. Everything else (records without `host`, names, even malformed lines, which the
//! tool reports as usual) reaches the tool's own logic through a pipe put in place of its
//! stdin, so that logic reads stdin exactly as before. With `--host H`, every line goes to H.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::config::Hosts;
use super::quote::check_sendable;
use super::remote::{Session, Sink};
use crate::error::{Error, Exit};
use crate::jsonl::{parse_line, Input};
use crate::record::Record;

/// The split in progress; `finish` waits for every host.
#[derive(Debug)]
pub struct Router {
    thread: Option<JoinHandle<Exit>>,
}

/// The arguments a tool was started with, for the same tool at a host: without `-C`, `--host`
/// and `--json` (the host's `-C` and `--json` are added), up to a `--` after which they are
/// the command's.
pub fn forwarded_args() -> Vec<String> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let mut out = vec!["--json".to_string()];
    out.extend(strip_local_options(&raw));
    out
}

/// `args` without `option VALUE` or `option=VALUE` (before a `--`).
pub fn without_option(args: &[String], option: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            out.push(a.clone());
            out.extend(it.cloned());
            break;
        }
        if a == option {
            it.next();
        } else if !a.starts_with(&format!("{option}=")) {
            out.push(a.clone());
        }
    }
    out
}

pub(crate) fn strip_local_options(raw: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let a = &raw[i];
        if a == "--" {
            out.extend(raw[i..].iter().cloned());
            break;
        }
        match a.as_str() {
            "-C" | "--host" => i += 1,
            "--json" => {}
            _ if a.starts_with("--host=") || (a.starts_with("-C") && a.len() > 2) => {}
            _ => out.push(a.clone()),
        }
        i += 1;
    }
    out
}

impl Router {
    /// Nothing to split: stdin is the tool's.
    pub fn local() -> Router {
        Router { thread: None }
    }

    /// Splits stdin (when it is not a terminal) by the records' hosts. Call it only when the
    /// tool reads its worktrees from stdin.
    pub fn split_stdin(tool: &'static str, root: Option<&Path>) -> Result<Router, Error> {
        Router::start(tool, root, None, forwarded_args(), true)
    }

    /// `--host H`: the tool runs at H with `args`, its session started even with no input;
    /// with `stdin`, every line of stdin goes there.
    pub fn at_host(
        tool: &'static str,
        root: Option<&Path>,
        host: &str,
        args: Vec<String>,
        stdin: bool,
    ) -> Result<Router, Error> {
        Router::start(tool, root, Some(host), args, stdin)
    }

    fn start(
        tool: &'static str,
        root: Option<&Path>,
        only: Option<&str>,
        args: Vec<String>,
        stdin: bool,
    ) -> Result<Router, Error> {
        let hosts = Hosts::load(root)?;
        if let Some(h) = only {
            hosts.get(h)?;
        }
        let piped = stdin && !std::io::stdin().is_terminal();
        if !piped && only.is_none() {
            return Ok(Router::local());
        }
        let input = if piped { Some(take_stdin()?) } else { None };
        let only = only.map(str::to_string);
        let thread = std::thread::spawn(move || route(tool, &hosts, &args, input, only.as_deref()));
        Ok(Router { thread: Some(thread) })
    }

    /// Waits for every host's records; the worse of that and the local outcome.
    pub fn finish(self, local: Exit) -> Exit {
        match self.thread.map(JoinHandle::join) {
            None => local,
            Some(Ok(e)) => local.worst(e),
            Some(Err(_)) => local.worst(Exit::Environment),
        }
    }
}

/// What was stdin, and the writer of the pipe that is stdin now.
struct SplitStdin {
    original: std::fs::File,
    local: std::io::PipeWriter,
}

fn take_stdin() -> Result<SplitStdin, Error> {
    use std::os::fd::AsFd;
    let fail = |e: &dyn std::fmt::Display| Error::env("stdin", format!("cannot split stdin: {e}"));
    let original = nix::unistd::dup(std::io::stdin().as_fd()).map_err(|e| fail(&e))?;
    let (reader, writer) = std::io::pipe().map_err(|e| fail(&e))?;
    nix::unistd::dup2_stdin(&reader).map_err(|e| fail(&e))?;
    Ok(SplitStdin { original: std::fs::File::from(original), local: writer })
}

fn route(tool: &'static str, hosts: &Hosts, args: &[String], input: Option<SplitStdin>, only: Option<&str>) -> Exit {
    let sink = Sink::new(tool);
    let mut sessions: BTreeMap<String, Session> = BTreeMap::new();
    let session = |name: &str, sessions: &mut BTreeMap<String, Session>| -> Result<(), Error> {
        if !sessions.contains_key(name) {
            let host = hosts.get(name)?;
            sessions.insert(name.to_string(), Session::start(host, tool, args, Arc::clone(&sink))?);
        }
        Ok(())
    };
    let mut exit = Exit::Ok;
    if let Some(h) = only {
        if let Err(e) = session(h, &mut sessions) {
            let mut rec = Record::failed("", tool, &e);
            rec.set_key(super::KEY, h.into());
            sink.emit(&rec);
        }
    }
    if let Some(SplitStdin { original, mut local }) = input {
        let mut reader = BufReader::new(original);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            // A line that is not UTF-8 is the tool's to report, with its line number.
            let text = std::str::from_utf8(&line).unwrap_or("").trim_end_matches('\n');
            let parsed = if text.is_empty() { None } else { parse_line(text) };
            if parsed.is_none() && only.is_some() {
                if !line.trim_ascii().is_empty() {
                    eprintln!("{tool}: skipped input line: it is not valid UTF-8");
                    exit = Exit::Usage;
                }
                continue;
            }
            let (host, rec) = match parsed {
                Some(Ok(Input::Record(rec))) if !rec.has_error() => match super::of(&rec).map(str::to_string) {
                    Some(h) => (Some(h), Some(rec)),
                    None => (only.map(str::to_string), Some(rec)),
                },
                _ => (only.map(str::to_string), None),
            };
            let Some(host) = host else {
                // This machine's: the tool's own logic reads it from the pipe.
                let _ = local.write_all(&line);
                continue;
            };
            let name = rec.as_ref().map(|r| r.name.clone()).unwrap_or_else(|| text.trim().to_string());
            let sent = rec.map(|mut r| {
                r.extra.remove(super::KEY);
                r
            });
            let checked = check_record(&name, sent.as_deref()).and_then(|()| session(&host, &mut sessions));
            match checked {
                Ok(()) => {
                    let line = sent.map(|r| r.to_json()).unwrap_or_else(|| text.to_string());
                    sessions.get_mut(&host).expect("started").send(&name, line);
                }
                Err(e) => {
                    let mut rec = Record::failed(&name, tool, &e);
                    rec.set_key(super::KEY, host.into());
                    sink.emit(&rec);
                }
            }
        }
        drop(local);
    }
    for (_, s) in sessions {
        exit = exit.worst(s.finish());
    }
    exit.worst(sink.exit())
}

/// What is sent must be safe on the other side's command lines.
fn check_record(name: &str, rec: Option<&Record>) -> Result<(), Error> {
    if !name.is_empty() {
        check_sendable("name", name)?;
    }
    if let Some(b) = rec.and_then(|r| r.branch.as_deref()) {
        check_sendable("branch", b)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_args_drop_local_options_but_not_the_command() {
        let raw: Vec<String> =
            ["-C", "/x", "--host", "h", "-j", "2", "--host=h", "-C/y", "--json", "--", "-C", "--json"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        assert_eq!(strip_local_options(&raw), ["-j", "2", "--", "-C", "--json"]);
    }
}
