//! `--on-state STATE=COMMAND`: a command the supervisor runs when a pane enters a state (a
//! desktop notification, a chat webhook), through `sh -c`, in the pane's directory, with the
//! pane's environment plus `WT_PANE`, `WT_STATE`, `WT_STATE_SOURCE` and `WT_MESSAGE`. Once per
//! change of state, never for a repeat of the same state; at most [`MAX_RUNNING`] at once per
//! pane, so an agent flapping between states cannot start a swarm.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::Value;

use super::agent::Decided;
use super::handle::Failure;

/// Commands of one pane running at once; a change while that many run is skipped (and logged).
pub const MAX_RUNNING: usize = 4;

#[derive(Debug, Default)]
pub struct OnState {
    commands: Vec<(&'static str, String)>,
    cwd: PathBuf,
    env: Vec<(String, String)>,
    running: Arc<AtomicUsize>,
}

impl OnState {
    /// From `pane.spawn`'s `on_state` (state → command).
    pub fn from_params(p: &Value, cwd: PathBuf, env: Vec<(String, String)>) -> Result<OnState, Failure> {
        let mut commands = Vec::new();
        if let Some(map) = p.get("on_state").and_then(Value::as_object) {
            for (state, cmd) in map {
                let state = super::agent::state_named(state).ok_or((
                    "bad-params",
                    format!("on_state: '{state}' is not a state (starting, working, waiting, idle, running, exited)"),
                ))?;
                let cmd = cmd
                    .as_str()
                    .filter(|c| !c.trim().is_empty())
                    .ok_or(("bad-params", format!("on_state: the command for '{state}' must be a non-empty string")))?;
                commands.push((state, cmd.to_string()));
            }
        }
        Ok(OnState { commands, cwd, env, running: Arc::default() })
    }

    /// Runs the command for the state `d` entered, if there is one.
    pub fn entered(&self, pane: &str, d: &Decided) {
        for (_, cmd) in self.commands.iter().filter(|(s, _)| *s == d.state) {
            if self.running.load(Ordering::SeqCst) >= MAX_RUNNING {
                tracing::warn!(pane, state = d.state, "on-state command skipped: {MAX_RUNNING} still running");
                continue;
            }
            let mut c = Command::new("sh");
            c.arg("-c").arg(cmd).current_dir(&self.cwd).stdin(Stdio::null()).stdout(Stdio::null());
            c.envs(self.env.iter().map(|(k, v)| (k, v)));
            c.env("WT_PANE", pane).env("WT_STATE", d.state).env("WT_STATE_SOURCE", d.source.as_str());
            c.env("WT_MESSAGE", d.message.as_deref().unwrap_or_default());
            std::os::unix::process::CommandExt::process_group(&mut c, 0);
            match c.spawn() {
                Ok(mut child) => {
                    let running = Arc::clone(&self.running);
                    running.fetch_add(1, Ordering::SeqCst);
                    std::thread::spawn(move || {
                        let _ = child.wait();
                        running.fetch_sub(1, Ordering::SeqCst);
                    });
                }
                Err(e) => tracing::warn!(pane, "cannot run the on-state command: {e}"),
            }
        }
    }
}
