//! What a finished run leaves behind: its log under the state dir, and the `run` object a record
//! gets (exit or signal, timeout, duration, tail). wt-run's runs and wt-watch's test rounds
//! both describe themselves this way.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::git::repo::Repo;
use crate::proc::process::Outcome;
use crate::Error;

/// A name no other run (of this or another wt process) uses: `<millis>-<pid>-<n>`.
pub fn unique_stem() -> String {
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    format!("{ms}-{}-{n}", std::process::id())
}

/// `<state>/logs/<name>/`, created if needed: where the runs of worktree `name` log.
pub fn log_dir(repo: &Repo, name: &str) -> Result<PathBuf, Error> {
    let dir = repo.state_dir().join("logs").join(name);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
    Ok(dir)
}

/// Adds how the run ended to `run`: `exit` or `signal` and `signal_number`, `timed_out`,
/// `duration_ms`, `tail`.
pub fn describe(run: &mut Map<String, Value>, o: &Outcome) {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = o.status.code() {
        run.insert("exit".into(), json!(code));
    }
    if let Some(sig) = o.status.signal() {
        let name = nix::sys::signal::Signal::try_from(sig).map(|s| s.as_str().trim_start_matches("SIG").to_string());
        run.insert("signal".into(), json!(name.unwrap_or_else(|_| sig.to_string())));
        run.insert("signal_number".into(), json!(sig));
    }
    run.insert("timed_out".into(), json!(o.timed_out));
    run.insert("duration_ms".into(), json!(o.duration.as_millis() as u64));
    run.insert("tail".into(), json!(o.tail));
}
