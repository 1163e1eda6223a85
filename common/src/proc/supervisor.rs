//! Talking to a repository's pane supervisor (`wt-run serve`): where its socket is, and a client
//! that sends JSON-lines requests over it. wt-run's pane verbs and wt-watch's feedback both
//! use it; the protocol is in docs/protocol.md.
//!
//! The socket is a file in a directory only its user can enter (`$XDG_RUNTIME_DIR/wt/`, else
//! `/tmp/wt-$UID/`), named after a hash of the repository's common dir so the path stays far
//! below the 108-byte limit of socket paths.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::fs::fnv::fnv1a;
use crate::Error;

/// How long a line from the supervisor's socket is read at most (a screen and its scrollback
/// take far less): whatever answers there, it is never read without end.
const MAX_ANSWER: u64 = 64 << 20;

/// The 0700 directory of this user's sockets, created if needed and checked if it exists.
pub fn socket_dir() -> Result<PathBuf, Error> {
    let uid = nix::unistd::getuid().as_raw();
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(run) => PathBuf::from(run).join("wt"),
        None => PathBuf::from(format!("/tmp/wt-{uid}")),
    };
    if !dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(|e| Error::io(dir.display(), e))?;
    }
    let meta = std::fs::metadata(&dir).map_err(|e| Error::io(dir.display(), e))?;
    if meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
        return Err(Error::env(
            "unsafe-socket-dir",
            format!("{} must belong to you and be private (chmod 700 it, or remove it)", dir.display()),
        ));
    }
    Ok(dir)
}

/// The socket of the repository whose common dir is `common_dir`.
pub fn socket_path(common_dir: &Path) -> Result<PathBuf, Error> {
    Ok(socket_dir()?.join(format!("{}.sock", repo_hash(common_dir))))
}

/// What identifies a repository in names outside it: its git common dir, hashed.
pub fn repo_hash(common_dir: &Path) -> String {
    format!("{:016x}", fnv1a(common_dir.as_os_str().as_encoded_bytes()))
}

/// Whether `dir` is covered here, as inside a confined run: a read-only file system where a
/// supervisor's socket should be.
pub fn hidden_here(dir: &Path) -> bool {
    nix::sys::statvfs::statvfs(dir).is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// Inside a confined run the supervisor's socket is hidden, so nothing there can start a pane
/// (which would run unconfined) or drive the panes.
pub fn hidden() -> Error {
    Error::env(
        "supervisor-hidden",
        "the pane supervisor is out of reach inside a confined run (no panes can be started from here); a confined pane reaches its own pane through WT_SOCKET",
    )
}

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
        match (&mut self.reader).take(MAX_ANSWER).read_line(&mut line) {
            Ok(0) => Ok(None),
            Ok(_) => serde_json::from_str(&line).map(Some).map_err(|e| Error::env("bad-response", e.to_string())),
            Err(e) => Err(Error::env("supervisor-lost", e.to_string())),
        }
    }

    /// Sends one request and waits for its response: the `result`, or the supervisor's
    /// `error` (its code and message) as a failed `Error`.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, Error> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(&json!({"id": id, "method": method, "params": params})).expect("request");
        line.push(b'\n');
        let lost = |e: std::io::Error| Error::env("supervisor-lost", format!("the pane supervisor went away: {e}"));
        self.writer.write_all(&line).map_err(lost)?;
        let mut answer = String::new();
        if (&mut self.reader).take(MAX_ANSWER).read_line(&mut answer).map_err(lost)? == 0 {
            return Err(Error::env("supervisor-lost", "the pane supervisor closed the connection"));
        }
        let bad = || Error::env("bad-response", answer.trim().to_string());
        let resp: Value = serde_json::from_str(&answer).map_err(|_| bad())?;
        match (resp.get("ok").and_then(Value::as_bool), resp.get("result"), resp.get("error")) {
            (Some(true), Some(v), _) => Ok(v.clone()),
            (_, _, Some(e)) => {
                let field = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                Err(Error::failed(&field("code"), field("message")))
            }
            _ => Err(bad()),
        }
    }
}
