//! `pane.notify`: an agent reports its own state (from its hooks, through `wt-run pane notify`),
//! the highest-ranked of the signals a pane's state is decided from (see `agent`). What it
//! reports is untrusted text that people will read in a terminal, so it is checked and
//! stripped of control characters.

use std::time::Instant;

use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};
use wt_common::Error;

use super::agent::{state_named, Signal};
use super::handle::Failure;

/// The longest message kept, in characters.
pub const MAX_MESSAGE: usize = 500;

/// Reads `state` and `message` from a request's params, as a hook's signal.
pub fn signal_from_params(params: &Value) -> Result<Signal, Failure> {
    let given = params.get("state").and_then(Value::as_str).unwrap_or_default();
    let state = state_named(given).ok_or_else(|| {
        (
            "bad-params",
            format!(
                "state must be one of starting, working, waiting, idle, running, exited, not '{}'",
                given.escape_debug()
            ),
        )
    })?;
    let message = params.get("message").and_then(Value::as_str).map(printable);
    Ok(Signal { state, message, at: Instant::now() })
}

/// A line people can read in a terminal: control characters become spaces, at most
/// [`MAX_MESSAGE`] characters.
pub fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_MESSAGE).collect()
}

/// `wt-run pane notify`. From an agent's hook (`--from-hook`) it prints nothing (Claude Code
/// reads some hooks' output as context) and never exits 2 (which blocks the agent's tool
/// call): a failure is a line on stderr and exit 1; a payload that means nothing, or a hook
/// run outside any pane, is exit 0.
pub fn verb(
    socket: &Path,
    args: &[String],
    state: Option<&str>,
    message: Option<&str>,
    from_hook: Option<&str>,
) -> Result<u8, Error> {
    let mut args = args.to_vec();
    let Some(agent) = from_hook else {
        let pane = args.first().cloned().or_else(|| std::env::var("WT_PANE").ok().filter(|p| !p.is_empty()));
        let pane = pane.ok_or_else(|| {
            Error::usage("bad-params", "pane notify needs a pane NAME (inside a pane, WT_PANE names it)")
        })?;
        let params = json!({"pane": pane, "state": state, "message": message});
        let result = super::client::Client::connect(socket)?.call("pane.notify", params)?;
        let _ = writeln!(std::io::stdout().lock(), "{result}");
        return Ok(0);
    };
    let from_argument = agent == "codex" && args.last().is_some_and(|a| a.trim_start().starts_with('{'));
    let payload = match from_argument {
        true => args.pop().unwrap_or_default(),
        false => {
            let mut text = String::new();
            let read = std::io::Read::read_to_string(
                &mut std::io::Read::take(std::io::stdin().lock(), super::protocol::MAX_REQUEST as u64),
                &mut text,
            );
            read.map(|_| text).unwrap_or_default()
        }
    };
    let Some(pane) = args.first().cloned().or_else(|| std::env::var("WT_PANE").ok().filter(|p| !p.is_empty())) else {
        return Ok(0); // the agent runs outside any pane: nobody to tell
    };
    let report = || -> Result<(), Error> {
        let payload: Value = serde_json::from_str(&payload)
            .map_err(|e| Error::usage("bad-payload", format!("the {agent} hook payload is not JSON: {e}")))?;
        let Some((state, hook_message)) = crate::agent::from_hook::map(agent, &payload) else { return Ok(()) };
        let params = json!({"pane": pane, "state": state, "message": message.map(str::to_string).or(hook_message)});
        super::client::Client::connect(socket)?.call("pane.notify", params).map(|_| ())
    };
    match report() {
        Ok(()) => Ok(0),
        Err(e) => {
            eprintln!("{}: pane notify --from-hook {agent}: {}", crate::TOOL, e.message);
            Ok(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_known_states_and_printable_messages_are_kept() {
        let r = signal_from_params(&json!({"state": "waiting", "message": "a\u{1b}[31mb\nc"})).unwrap();
        assert_eq!((r.state, r.message.as_deref()), ("waiting", Some("a [31mb c")));
        assert_eq!(signal_from_params(&json!({"state": "asleep"})).unwrap_err().0, "bad-params");
        assert_eq!(signal_from_params(&json!({})).unwrap_err().0, "bad-params");
        let long = "x".repeat(MAX_MESSAGE * 2);
        let r = signal_from_params(&json!({"state": "idle", "message": long})).unwrap();
        assert_eq!(r.message.unwrap().chars().count(), MAX_MESSAGE);
    }
}
