//! One round: the test command run in a worktree the way wt-run runs commands (its own process
//! group, its output to a log, the worktree's env, a timeout), and what came of it.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Map, Value};
use wt_common::process::{self, Groups, Outcome, Spec};
use wt_common::Error;

/// How much of a log the excerpt reads: its end, where the runners summarise.
const EXCERPT_READ: u64 = 8 << 20;

/// What a run needs.
#[derive(Debug, Clone)]
pub struct RoundSpec {
    pub name: String,
    pub cwd: PathBuf,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
    pub timeout: Option<Duration>,
}

/// A finished run.
#[derive(Debug)]
pub struct Finished {
    pub passed: bool,
    /// The record's `run`: cmd, exit or signal, timed_out, duration_ms, log.
    pub run: Value,
    /// The failure excerpt, when it failed.
    pub excerpt: Option<String>,
}

/// Grace between SIGTERM and SIGKILL for what a run leaves behind.
pub const GRACE: Duration = Duration::from_secs(2);

/// Runs the test command; `groups` holds its process group while it runs, so a change (or a
/// signal to wt-watch) can end it.
pub fn run(spec: &RoundSpec, groups: &Groups) -> Result<Finished, Error> {
    let mut cmd = Command::new(&spec.argv[0]);
    cmd.args(&spec.argv[1..]).current_dir(&spec.cwd).envs(spec.env.iter().map(|(k, v)| (k, v)));
    let pspec = Spec { name: &spec.name, log: spec.log.clone(), timeout: spec.timeout, grace: GRACE, echo: false };
    let outcome = process::run(cmd, &pspec, groups)?;
    Ok(finish(spec, &outcome))
}

fn finish(spec: &RoundSpec, o: &Outcome) -> Finished {
    let passed = o.status.success() && !o.timed_out;
    let mut run = Map::new();
    run.insert("cmd".into(), json!(spec.argv));
    wt_common::runlog::describe(&mut run, o);
    run.remove("tail"); // the excerpt says more; the log has it all
    run.insert("log".into(), json!(spec.log));
    let excerpt = (!passed).then(|| {
        let mut text = read_end(&spec.log);
        if o.timed_out {
            text.push_str(&format!(
                "\n[wt-watch: the tests did not finish within {:?} and were stopped]\n",
                spec.timeout.unwrap_or_default()
            ));
        }
        crate::excerpt::excerpt(&text, &spec.log)
    });
    Finished { passed, run: Value::Object(run), excerpt }
}

/// The last `EXCERPT_READ` bytes of the log.
fn read_end(log: &Path) -> String {
    let Ok(mut f) = std::fs::File::open(log) else { return String::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(EXCERPT_READ)));
    let mut bytes = Vec::new();
    let _ = f.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Ends every run in `groups` (SIGTERM, SIGKILL after the grace), in the background.
pub fn cancel(groups: &Groups) {
    let live: Vec<i32> = groups.lock().map(|g| g.iter().copied().collect()).unwrap_or_default();
    for pgid in live {
        std::thread::spawn(move || process::end_group(pgid, GRACE));
    }
}
