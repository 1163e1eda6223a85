//! One round: the test command run in a worktree the way wt-run runs commands (its own process
//! group, its output to a log, the worktree's env, a timeout), and what came of it. With
//! `--confine` the command runs through `wt-run --confine --passthrough` (`confine_via`): its
//! output, exit code, timeout and process group stay this module's, and wt-run's record adds
//! what the sandbox enforced (`run.confined`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Map, Value};
use wt_common::confine::via::{self, Via};
use wt_common::proc::process::{self, Groups, Outcome, Spec};
use wt_common::proc::supervisor::Client;
use wt_common::record::excerpt;
use wt_common::Error;

/// What a run needs.
#[derive(Debug, Clone)]
pub struct RoundSpec {
    pub name: String,
    pub cwd: PathBuf,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
    pub timeout: Option<Duration>,
    /// `--confine`: run through wt-run's sandbox.
    pub confine: Option<Via>,
}

impl RoundSpec {
    /// Where wt-run writes its record of a confined round: beside the log, in wt's state
    /// directory, which a confined command cannot write.
    fn record_file(&self) -> PathBuf {
        PathBuf::from(format!("{}.run.json", self.log.display()))
    }

    /// The round as it runs: its environment with what it asks of pytest for a hang
    /// (`wt_common::record::running::asking_pytest`).
    fn asking_runners(&self) -> RoundSpec {
        let mut spec = self.clone();
        wt_common::record::running::asking_pytest(&mut spec.env, self.timeout);
        spec
    }

    /// The command line of the round: the test command, or wt-run running it confined.
    fn argv(&self) -> Vec<String> {
        match &self.confine {
            Some(via) => via.argv(&self.cwd, &self.name, &self.record_file(), &self.env, &self.argv),
            None => self.argv.clone(),
        }
    }
}

/// A finished run.
#[derive(Debug)]
pub struct Finished {
    pub passed: bool,
    /// The record's `run`: cmd, exit or signal, timed_out, duration_ms, log.
    pub run: Value,
    /// The failure excerpt, when it failed.
    pub excerpt: Option<String>,
    /// How long it ran.
    pub duration: Duration,
    /// The limit it was stopped at, when it did not finish within it.
    pub timed_out: Option<Duration>,
    /// The tests the runner executed, from its summary (the guard holds a green round to the
    /// first round's).
    pub count: Option<wt_common::record::test_count::TestCount>,
}

/// The round timeout when neither `--timeout` nor `[watch] timeout` gives one: three times the
/// last green round, and never under the floor (2 minutes; `WT_WATCH_TIMEOUT_FLOOR`, e.g. `5s`,
/// sets another, for tests). Before any green round: five times the floor (10 minutes).
pub fn default_timeout(last_green: Option<Duration>) -> Duration {
    let floor = std::env::var("WT_WATCH_TIMEOUT_FLOOR")
        .ok()
        .and_then(|v| wt_common::record::duration::parse(&v).ok())
        .unwrap_or(Duration::from_secs(120));
    match last_green {
        Some(d) => (d * 3).max(floor),
        None => floor * 5,
    }
}

/// Grace between SIGTERM and SIGKILL for what a run leaves behind.
pub const GRACE: Duration = Duration::from_secs(2);

/// Runs the test command; `groups` holds its process group while it runs, so a change (or a
/// signal to wt-watch) can end it.
pub fn run(spec: &RoundSpec, groups: &Groups) -> Result<Finished, Error> {
    run_with(spec, groups, None)
}

/// `run`, the command getting the build governor's jobserver from `lease` (a confined round's
/// by path, which its wt-run lets through the sandbox).
pub fn run_with(
    spec: &RoundSpec,
    groups: &Groups,
    lease: Option<&wt_common::proc::governor::Lease>,
) -> Result<Finished, Error> {
    let spec = &spec.asking_runners();
    let argv = spec.argv();
    let mut cmd = match &spec.confine {
        Some(via) => via.command(&argv, &spec.env),
        None => {
            let mut cmd = Command::new(&argv[0]);
            cmd.args(&argv[1..]).envs(spec.env.iter().map(|(k, v)| (k, v)));
            cmd
        }
    };
    cmd.current_dir(&spec.cwd);
    match (lease, &spec.confine) {
        (Some(lease), None) => lease.apply(&mut cmd),
        // The confined run's wt-run lets the FIFO through its sandbox, by path.
        (Some(lease), Some(_)) => drop(cmd.envs(lease.env().iter().map(|(k, v)| (k, v)))),
        (None, _) => {}
    }
    let pspec = Spec { name: &spec.name, log: spec.log.clone(), timeout: spec.timeout, grace: GRACE, echo: false };
    let outcome = process::run(cmd, &pspec, groups)?;
    finish(spec, &outcome)
}

fn finish(spec: &RoundSpec, o: &Outcome) -> Result<Finished, Error> {
    let passed = o.status.success() && !o.timed_out;
    let mut run = Map::new();
    run.insert("cmd".into(), json!(spec.argv));
    wt_common::record::runlog::describe(&mut run, o);
    run.remove("tail"); // the excerpt says more; the log has it all
    run.insert("log".into(), json!(spec.log));
    if spec.confine.is_some() {
        confined(spec, o, &mut run)?;
    }
    let timed_out = o.timed_out.then(|| spec.timeout.unwrap_or(o.duration));
    let text = read_log(&spec.log);
    let count = wt_common::record::test_count::count(&text);
    let excerpt = (!passed).then(|| {
        match timed_out {
            // Said first: what follows is only how far the tests got (pytest -q: dots).
            Some(after) => excerpt::timed_out(&text, &spec.log, after),
            None => excerpt::excerpt(&text, &spec.log),
        }
    });
    Ok(Finished { passed, run: Value::Object(run), excerpt, duration: o.duration, timed_out, count })
}

/// A confined round: wt-run's record says how the command ended (a signal is the command's,
/// not wt-run's 128+N) and what the sandbox enforced. Its error (the sandbox could not be set
/// up, the command not started) is the round's.
fn confined(spec: &RoundSpec, o: &Outcome, run: &mut Map<String, Value>) -> Result<(), Error> {
    match via::finish(&spec.record_file())? {
        Some(theirs) => {
            if theirs.get("exit").is_some() || theirs.get("signal").is_some() {
                for key in ["exit", "signal", "signal_number"] {
                    run.remove(key);
                    if let Some(v) = theirs.get(key) {
                        run.insert(key.into(), v.clone());
                    }
                }
            }
            if let Some(c) = theirs.get("confined") {
                run.insert("confined".into(), c.clone());
            }
            Ok(())
        }
        // Stopped before it could write one (a timeout that ended in SIGKILL).
        None if o.timed_out => Ok(()),
        None => {
            let text = read_log(&spec.log);
            let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output");
            Err(Error::failed(
                "confine-failed",
                format!("wt-run --confine ended without a record ({}): {last}", o.status),
            ))
        }
    }
}

/// The log as the excerpt reads it: its head and its end, [`excerpt::READ_BYTES`] at most.
fn read_log(log: &Path) -> String {
    excerpt::read_log(log, excerpt::READ_BYTES).unwrap_or_default()
}

/// Ends every run in `groups` (SIGTERM, SIGKILL after the grace), in the background.
pub fn cancel(groups: &Groups) {
    let live: Vec<i32> = groups.lock().map(|g| g.iter().copied().collect()).unwrap_or_default();
    for pgid in live {
        std::thread::spawn(move || process::end_group(pgid, GRACE));
    }
}

/// `--test-pane`: the round runs in a pane of the supervisor beside the agent's (a window of the
/// same tmux session when the agent's pane is a tmux one), so a person can watch it; its output
/// still goes to the log, and the excerpt is taken from there, not from the screen.
#[derive(Debug, Clone)]
pub struct TestPane {
    pub socket: PathBuf,
    /// The test pane's name: `<worktree>-test`.
    pub pane: String,
    /// The agent's pane, whose backend the test pane shares.
    pub agent: String,
}

impl TestPane {
    /// Runs the round in the pane and waits for it to exit.
    /// The round's `lease` (its job slot) names its jobserver in the pane's environment: by
    /// path only (a pane's program inherits no descriptors of ours).
    pub fn run(&self, spec: &RoundSpec, lease: Option<&wt_common::proc::governor::Lease>) -> Result<Finished, Error> {
        let spec = &spec.asking_runners();
        let mut client = Client::connect(&self.socket)?;
        let backend = client
            .call("pane.list", json!({}))?
            .as_array()
            .and_then(|a| a.iter().find(|p| p["name"] == self.agent.as_str()))
            .and_then(|p| p["backend"].as_str().map(str::to_string))
            .unwrap_or_else(|| "native".into());
        // bash: the test's own exit status survives the pipe into the log, and is kept in a
        // file too (a tmux window that closes at once takes its status with it).
        // Confined, the pane runs `wt-run --confine --passthrough` in place of the test command:
        // what the tests run is sandboxed, the wrapper that writes the log is wt's.
        let script =
            "set -o pipefail; \"$@\" 2>&1 | tee \"$WT_WATCH_LOG\"; s=$?; echo $s > \"$WT_WATCH_LOG.status\"; exit $s";
        let script = if spec.confine.is_some() { format!("unset WT_LOG; {script}") } else { script.to_string() };
        let mut argv: Vec<String> = vec!["bash".into(), "-c".into(), script, "wt-watch-test".into()];
        argv.extend(spec.argv());
        let mut env: Map<String, Value> = spec.env.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        env.insert("WT_WATCH_LOG".into(), json!(spec.log));
        match lease.filter(|_| spec.confine.is_none()) {
            Some(lease) => {
                let fifo_make = wt_common::proc::governor::make_speaks_fifo();
                for (k, v) in lease.env().iter().filter(|(k, _)| k != "MAKEFLAGS" || fifo_make) {
                    env.insert(k.clone(), json!(v));
                }
            }
            // Ungoverned (or confined, whose command gets no jobserver): the supervisor must
            // not govern the pane as an agent's either.
            None => drop(env.insert("WT_GOVERNOR".into(), json!("off"))),
        }
        let params = json!({"name": self.pane, "cmd": argv, "cwd": spec.cwd, "env": env, "backend": backend});
        let started = std::time::Instant::now();
        if let Err(e) = client.call("pane.spawn", params.clone()) {
            if e.code != "pane-exists" {
                return Err(e);
            }
            client.call("pane.kill", json!({"pane": self.pane}))?; // a cancelled round's
            client.call("pane.spawn", params)?;
        }
        let limit = spec.timeout.map_or(u64::MAX / 4, |t| t.as_millis() as u64);
        let (exit, timed_out) =
            match client.call("pane.wait", json!({"pane": self.pane, "exit": true, "timeout_ms": limit})) {
                Ok(r) => (r["exit"].clone(), false),
                Err(e) if e.code == "timeout" => {
                    (client.call("pane.kill", json!({"pane": self.pane}))?["exit"].clone(), true)
                }
                Err(e) => return Err(e),
            };
        let status_file = PathBuf::from(format!("{}.status", spec.log.display()));
        // Written by the shell around the command, where the command can replace it: a small
        // regular file or nothing (then the pane's exit counts).
        let code =
            wt_common::fs::read_untrusted(&status_file, 64).ok().flatten().and_then(|s| s.trim().parse::<i64>().ok());
        let _ = std::fs::remove_file(&status_file);
        let exit = match code {
            Some(c) if !timed_out => json!({"code": c}),
            _ => exit,
        };
        let outcome = Outcome { status: exit_status(&exit), timed_out, duration: started.elapsed(), tail: Vec::new() };
        finish(spec, &outcome)
    }

    /// Ends the pane's round (a change made it stale, or wt-watch is stopping).
    /// A round that has already ended keeps its pane for a person to read: killing an ended
    /// pane would drop it from the supervisor.
    pub fn cancel(&self) {
        let Ok(mut c) = Client::connect(&self.socket) else { return };
        let listed = c.call("pane.list", json!({})).unwrap_or_default();
        let running = listed
            .as_array()
            .and_then(|a| a.iter().find(|p| p["name"] == self.pane.as_str()))
            .is_some_and(|p| p["alive"] != json!(false));
        if running {
            let _ = c.call("pane.kill", json!({"pane": self.pane}));
        }
    }
}

/// A pane's `exit` (`{"code": N}` or `{"signal": "TERM"}`) as a process status.
fn exit_status(exit: &Value) -> std::process::ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = exit.get("code").and_then(Value::as_i64) {
        return std::process::ExitStatus::from_raw(((code as i32) & 0xff) << 8);
    }
    let sig = exit.get("signal").and_then(Value::as_str).unwrap_or("KILL");
    let number =
        format!("SIG{}", sig.trim_start_matches("SIG")).parse::<nix::sys::signal::Signal>().map_or(9, |s| s as i32);
    std::process::ExitStatus::from_raw(number)
}
