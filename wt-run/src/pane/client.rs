//! Clients of the supervisor: the `wt-run pane …` verbs, `wt-run --pane`, and starting the
//! supervisor on demand.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wt_common::git::repo::Repo;
use wt_common::Error;

pub use wt_common::proc::supervisor::Client;
use wt_common::proc::supervisor::{hidden, hidden_here};

use super::socket::socket_path;

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
    // In the common dir, which an unconfined agent can write: never through a link or blocking
    // on a FIFO, and only a regular file.
    let path = logs.join("supervisor.log");
    let log = wt_common::fs::untrusted::open_regular(&path, std::fs::OpenOptions::new().create(true).append(true))
        .map_err(|e| {
            Error::env("supervisor-log", format!("{}: {e}; remove it, then start the pane again", path.display()))
        })?;
    let exe = std::env::current_exe().map_err(|e| Error::io("current executable", e))?;
    // Its own process group: a Ctrl-C meant for the caller does not reach the supervisor.
    let mut cmd = Command::new(exe);
    wt_common::proc::governor::outside_any_job(&mut cmd);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0)
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
