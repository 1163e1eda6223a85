//! `pane.notify`: an agent reports its own state (from its hooks, through `wt-run pane notify`),
//! which `pane.list` shows and an event announces. What it reports is untrusted text that
//! people will read in a terminal, so it is checked and stripped of control characters.

use serde_json::{json, Value};

use super::handle::Failure;

/// The states an agent may report (`exited` is the supervisor's to say).
pub const STATES: &[&str] = &["starting", "working", "waiting", "idle"];

/// The longest message kept, in characters.
pub const MAX_MESSAGE: usize = 500;

/// What an agent last reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    pub state: String,
    pub message: Option<String>,
}

impl Reported {
    /// Reads `state` and `message` from a request's params.
    pub fn from_params(params: &Value) -> Result<Reported, Failure> {
        let state = params.get("state").and_then(Value::as_str).unwrap_or_default();
        if !STATES.contains(&state) {
            return Err((
                "bad-params",
                format!("state must be one of {}, not '{}'", STATES.join(", "), state.escape_debug()),
            ));
        }
        let message = params
            .get("message")
            .and_then(Value::as_str)
            .map(|m| m.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_MESSAGE).collect::<String>());
        Ok(Reported { state: state.to_string(), message })
    }

    /// Adds `state` and `message` to a pane's description.
    pub fn describe_into(&self, pane: &mut Value) {
        pane["state"] = json!(self.state);
        if let Some(m) = &self.message {
            pane["message"] = json!(m);
        }
    }

    /// The event that announces it.
    pub fn event(&self, pane: &str) -> Value {
        json!({"event": "state", "pane": pane, "state": self.state, "message": self.message})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_states_and_printable_messages_are_kept() {
        let r = Reported::from_params(&json!({"state": "waiting", "message": "a\u{1b}[31mb\nc"})).unwrap();
        assert_eq!(r, Reported { state: "waiting".into(), message: Some("a [31mb c".into()) });
        assert_eq!(Reported::from_params(&json!({"state": "exited"})).unwrap_err().0, "bad-params");
        assert_eq!(Reported::from_params(&json!({})).unwrap_err().0, "bad-params");
        let long = "x".repeat(MAX_MESSAGE * 2);
        let r = Reported::from_params(&json!({"state": "idle", "message": long})).unwrap();
        assert_eq!(r.message.unwrap().chars().count(), MAX_MESSAGE);
    }
}
