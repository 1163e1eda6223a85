//! Clients of the supervisor: the `wt-run pane …` verbs, `wt-run --pane`, and starting the
//! supervisor on demand.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wt_common::repo::Repo;
use wt_common::Error;

use super::protocol::Response;
use super::socket::{hidden_here, socket_path};

/// A connection to a supervisor.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

impl Client {
    pub fn connect(socket: &Path) -> Result<Client, Error> {
        let stream = UnixStream::connect(socket).map_err(|_| match socket.parent() {
            Some(dir) if hidden_here(dir) => hidden(),
            _ => Error::env(
                "no-supervisor",
                "no pane supervisor is running for this repository (it starts with `wt-run --pane …`, or run `wt-run serve`)",
            ),
        })?;
        let writer = stream.try_clone().map_err(|e| Error::io("socket", e))?;
        Ok(Client { reader: BufReader::new(stream), writer, next_id: 1 })
    }

    /// The next line the supervisor sends unasked (a stream after `pane.attach` or
    /// `events.subscribe`); `None` when it closed the connection.
    pub fn next_line(&mut self) -> Result<Option<Value>, Error> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Ok(None),
            Ok(_) => serde_json::from_str(&line).map(Some).map_err(|e| Error::env("bad-response", e.to_string())),
            Err(e) => Err(Error::env("supervisor-lost", e.to_string())),
        }
    }

    /// Sends one request and waits for its response.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, Error> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(&json!({"id": id, "method": method, "params": params})).expect("request");
        line.push(b'\n');
        let lost = |e: std::io::Error| Error::env("supervisor-lost", format!("the pane supervisor went away: {e}"));
        self.writer.write_all(&line).map_err(lost)?;
        let mut answer = String::new();
        if self.reader.read_line(&mut answer).map_err(lost)? == 0 {
            return Err(Error::env("supervisor-lost", "the pane supervisor closed the connection"));
        }
        let resp: Response = serde_json::from_str(&answer).map_err(|e| Error::env("bad-response", e.to_string()))?;
        match (resp.ok, resp.result, resp.error) {
            (true, Some(v), _) => Ok(v),
            (_, _, Some(e)) => Err(Error::failed(&e.code, e.message)),
            _ => Err(Error::env("bad-response", answer.trim().to_string())),
        }
    }
}

/// The socket of `repo`'s supervisor, starting one (detached, logging to the state dir) if
/// none answers.
pub fn ensure_server(repo: &Repo) -> Result<PathBuf, Error> {
    let socket = socket_path(&repo.common_dir)?;
    if Client::connect(&socket).is_ok() {
        return Ok(socket);
    }
    if socket.parent().is_some_and(hidden_here) {
        return Err(hidden());
    }
    let logs = repo.state_dir().join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| Error::io(logs.display(), e))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join("supervisor.log"))
        .map_err(|e| Error::io("supervisor.log", e))?;
    let exe = std::env::current_exe().map_err(|e| Error::io("current executable", e))?;
    // Its own process group: a Ctrl-C meant for the caller does not reach the supervisor.
    std::os::unix::process::CommandExt::process_group(&mut Command::new(exe), 0)
        .arg("serve")
        .arg("-C")
        .arg(repo.root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| Error::env("supervisor-start", format!("cannot start the pane supervisor: {e}")))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if Client::connect(&socket).is_ok() {
            return Ok(socket);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(Error::env(
        "supervisor-start",
        format!("the pane supervisor did not start; see {}", logs.join("supervisor.log").display()),
    ))
}

/// Inside a confined run the supervisor's socket is hidden, so nothing there can start a pane
/// (which would run unconfined) or drive the panes.
fn hidden() -> Error {
    Error::env(
        "supervisor-hidden",
        "the pane supervisor is out of reach inside a confined run (no panes can be started from here); a confined pane reaches its own pane through WT_SOCKET",
    )
}
