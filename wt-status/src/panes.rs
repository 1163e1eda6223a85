//! The panes of the repository's supervisor, asked over its socket (`pane.list`), so the
//! overview shows which agents run. No supervisor means no panes, not an error.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// Pane name → its `pane.list` entry; empty when no supervisor answers.
pub fn list(common_dir: &Path) -> BTreeMap<String, Value> {
    let Ok(socket) = wt_common::proc::supervisor::socket_path(common_dir) else { return BTreeMap::new() };
    ask(&socket).unwrap_or_else(|| {
        tracing::debug!("no pane supervisor answers on {}", socket.display());
        BTreeMap::new()
    })
}

fn ask(socket: &Path) -> Option<BTreeMap<String, Value>> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"{\"id\":1,\"method\":\"pane.list\",\"params\":{}}\n").ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    let answer: Value = serde_json::from_str(&line).ok()?;
    let panes = answer.get("result")?.as_array()?;
    Some(panes.iter().filter_map(|p| Some((p.get("name")?.as_str()?.to_string(), p.clone()))).collect())
}
