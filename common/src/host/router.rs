//! Splits a tool's stdin between this machine and the hosts.
//!
//! A record with `host` goes, in order, to a session of the same tool at that host (one per
//! host, started on its first record), without its `host` key; the records that come back get
//! it again. Everything else (records without `host`, names, even malformed lines, which the
//! tool reports as usual) reaches the tool's own logic through a pipe put in place of its
//! stdin, so that logic reads stdin exactly as before. With `--host H`, every line goes to H.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::config::Hosts;
use super::quote::check_sendable;
use super::remote::{Session, Sink};
use crate::error::{Error, Exit};
use crate::record::jsonl::{parse_line, rest_of_line, Input, MAX_LINE};
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

/// The sessions of one split, started on the first record for their host.
struct Hub<'a> {
    tool: &'static str,
    hosts: &'a Hosts,
    args: &'a [String],
    sink: Arc<Sink>,
    sessions: BTreeMap<String, Session>,
}

impl Hub<'_> {
    /// Sends `line` (about the worktree `name`) to `host`, or gives its error record.
    fn send(&mut self, host: &str, name: &str, rec: Option<&Record>, line: String) {
        let started = check_record(name, rec).and_then(|()| self.session(host));
        match started {
            Ok(session) => session.send(name, line),
            Err(e) => self.sink.emit(&super::failed(name, host, self.tool, &e)),
        }
    }

    fn session(&mut self, host: &str) -> Result<&mut Session, Error> {
        if !self.sessions.contains_key(host) {
            let h = self.hosts.get(host)?;
            let s = Session::start(h, self.tool, self.args, Arc::clone(&self.sink))?;
            self.sessions.insert(host.to_string(), s);
        }
        Ok(self.sessions.get_mut(host).expect("started"))
    }

    /// Ends every session's input and waits for its records.
    fn finish(self) -> Exit {
        let sessions = self.sessions.into_values().map(Session::finish);
        sessions.fold(Exit::Ok, Exit::worst).worst(self.sink.exit())
    }
}

fn route(tool: &'static str, hosts: &Hosts, args: &[String], input: Option<SplitStdin>, only: Option<&str>) -> Exit {
    let mut hub = Hub { tool, hosts, args, sink: Sink::new(tool), sessions: BTreeMap::new() };
    if let Some(h) = only {
        if let Err(e) = hub.session(h) {
            hub.sink.emit(&super::failed("", h, tool, &e));
        }
    }
    let mut exit = Exit::Ok;
    if let Some(SplitStdin { original, mut local }) = input {
        let mut reader = BufReader::new(original);
        let mut line = Vec::new();
        loop {
            line.clear();
            // One byte past the cap is enough to know a line is too long.
            match reader.by_ref().take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if line.len() > MAX_LINE {
                // No host's record: never held whole here. The tool's own reader reports it
                // (with its number) and reads on; with `--host`, it is skipped here.
                // The tool's own logic may stop reading: the rest is still read past.
                let mut pass = |bytes: &[u8]| {
                    if only.is_none() {
                        let _ = local.write_all(bytes);
                    }
                };
                pass(&line);
                if rest_of_line(&mut reader, pass).is_err() {
                    break;
                }
                if only.is_some() {
                    eprintln!("{tool}: skipped input line: over {} MiB", MAX_LINE >> 20);
                    exit = Exit::Usage;
                }
                continue;
            }
            match destination(&line, only) {
                // This machine's: the tool's own logic reads it from the pipe (and reports a
                // malformed line with its number).
                Destination::Here => {
                    let _ = local.write_all(&line);
                }
                Destination::Host { host, name, rec, line } => hub.send(&host, &name, rec.as_deref(), line),
                Destination::Malformed => {
                    eprintln!("{tool}: skipped input line: it is not valid UTF-8");
                    exit = Exit::Usage;
                }
                Destination::Blank => {}
            }
        }
    }
    exit.worst(hub.finish())
}

/// Where one input line goes.
enum Destination {
    Here,
    /// To `host`: the record without its `host` key (or the bare word) as `line`.
    Host {
        host: String,
        name: String,
        rec: Option<Box<Record>>,
        line: String,
    },
    Malformed,
    Blank,
}

fn destination(line: &[u8], only: Option<&str>) -> Destination {
    let text = std::str::from_utf8(line).ok().map(|t| t.trim_end_matches('\n'));
    let parsed = text.and_then(parse_line);
    let (host, rec) = match (parsed, only) {
        (None, Some(_)) if line.trim_ascii().is_empty() => return Destination::Blank,
        (None, Some(_)) => return Destination::Malformed,
        (Some(Ok(Input::Record(rec))), _) if !rec.has_error() => match super::of(&rec).map(str::to_string) {
            Some(h) => (Some(h), Some(rec)),
            None => (only.map(str::to_string), Some(rec)),
        },
        _ => (only.map(str::to_string), None),
    };
    let Some(host) = host else { return Destination::Here };
    let text = text.unwrap_or_default();
    let name = rec.as_ref().map(|r| r.name.clone()).unwrap_or_else(|| text.trim().to_string());
    let rec = rec.map(|mut r| {
        r.extra.remove(super::KEY);
        r
    });
    let line = rec.as_ref().map(|r| r.to_json()).unwrap_or_else(|| text.to_string());
    Destination::Host { host, name, rec, line }
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
    fn a_record_goes_to_its_host_without_its_host_key_and_the_rest_stays_here() {
        let to = |line: &str, only: Option<&str>| destination(line.as_bytes(), only);
        match to("{\"v\":1,\"name\":\"a\",\"host\":\"b1\"}\n", None) {
            Destination::Host { host, name, line, .. } => {
                assert_eq!((host.as_str(), name.as_str()), ("b1", "a"));
                assert!(!line.contains("host"), "{line}");
            }
            _ => panic!("not sent to its host"),
        }
        assert!(matches!(to("{\"v\":1,\"name\":\"a\"}\n", None), Destination::Here));
        assert!(matches!(to("agent-1\n", None), Destination::Here));
        // An error record is passed through here, even with a host.
        let failed =
            "{\"v\":1,\"name\":\"a\",\"host\":\"b1\",\"error\":{\"tool\":\"x\",\"code\":\"c\",\"message\":\"m\"}}\n";
        assert!(matches!(to(failed, None), Destination::Here));
        assert!(matches!(to("agent-1\n", Some("b2")), Destination::Host { host, .. } if host == "b2"));
        assert!(matches!(destination(b"\xff\n", Some("b2")), Destination::Malformed));
        assert!(matches!(to("\n", Some("b2")), Destination::Blank));
    }

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
