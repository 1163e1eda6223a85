//! What a connection may ask of the supervisor. A connection to the supervisor's own socket may
//! ask anything. A connection to a confined pane's own socket acts for that pane only: it may
//! report the pane's state, read its screen, wait on it, follow its events and list the panes
//! (names and states), and read other panes' screens only if the pane was started with
//! `--confine-read-panes`. Everything else is `forbidden`.
//!
//! Which it is, is decided by the listener that accepted the connection (and by the peer's
//! mount namespace, see `peer`), never by anything the client sends.

use serde_json::{json, Map, Value};

use super::handle::Failure;
use super::protocol::Request;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// The supervisor's own socket: every method.
    Full,
    /// A confined pane's own socket (`socket`: which one, see `OwnSocket::id`).
    Pane { name: String, read_panes: bool, socket: u64 },
    /// The supervisor's own socket reached from inside a confined run (which should not be
    /// able to reach it at all): nothing.
    Confined,
}

impl Access {
    /// Checks `req` against this connection's capability; on a pane's socket, a request that
    /// names no pane is about the pane itself.
    pub fn admit(&self, req: &mut Request) -> Result<(), Failure> {
        let (own, read_panes) = match self {
            Access::Full => return Ok(()),
            Access::Confined => {
                return Err((
                    "forbidden",
                    "this connection comes from inside a confined run; a confined pane may use only its own socket (WT_SOCKET)"
                        .into(),
                ))
            }
            Access::Pane { name, read_panes, .. } => (name.as_str(), *read_panes),
        };
        if !req.params.is_object() {
            req.params = Value::Object(Map::new());
        }
        let target = req.params.get("pane").and_then(Value::as_str).unwrap_or(own).to_string();
        let allowed = match req.method.as_str() {
            "pane.list" | "server.ping" => true,
            "pane.notify" | "pane.wait" | "events.subscribe" => target == own,
            "pane.read_screen" => target == own || read_panes,
            _ => false,
        };
        if !allowed {
            let whose = if target == own { String::new() } else { format!(" of pane '{target}'") };
            return Err((
                "forbidden",
                format!(
                    "a confined pane may not call {}{whose} (it may report its state, read its own screen{}, wait on its own pane and list panes)",
                    req.method,
                    if read_panes { " and other panes' screens" } else { "" },
                ),
            ));
        }
        req.params["pane"] = json!(target);
        Ok(())
    }

    /// The pane whose events this connection may follow: all (`None`) or its own.
    pub fn events_of(&self) -> Option<&str> {
        match self {
            Access::Pane { name, .. } => Some(name),
            _ => None,
        }
    }

    /// A pane as `pane.list` shows it to this connection: on a pane's socket, only its name
    /// and state (another pane's command line, directory and log are none of its business).
    pub fn list_entry(&self, described: Value) -> Value {
        match self {
            Access::Full => described,
            _ => json!({"name": described["name"], "alive": described["alive"], "state": described.get("state")}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admit(access: &Access, method: &str, params: Value) -> Result<Value, &'static str> {
        let mut req = Request { id: json!(1), method: method.into(), params };
        access.admit(&mut req).map(|()| req.params).map_err(|(code, _)| code)
    }

    #[test]
    fn a_pane_socket_acts_for_its_own_pane_only() {
        let own = Access::Pane { name: "a".into(), read_panes: false, socket: 1 };
        for method in ["pane.read_screen", "pane.wait", "pane.notify", "events.subscribe"] {
            assert_eq!(admit(&own, method, json!({})), Ok(json!({"pane": "a"})), "{method}");
            assert_eq!(admit(&own, method, Value::Null), Ok(json!({"pane": "a"})), "{method}");
        }
        for method in ["pane.wait", "pane.notify", "events.subscribe", "pane.read_screen"] {
            assert_eq!(admit(&own, method, json!({"pane": "b"})), Err("forbidden"), "{method}");
        }
        assert!(admit(&own, "pane.list", json!({})).is_ok());
        for method in [
            "pane.spawn",
            "pane.send",
            "pane.send_key",
            "pane.write",
            "pane.resize",
            "pane.kill",
            "pane.attach",
            "server.stop",
            "no.such",
        ] {
            assert_eq!(admit(&own, method, json!({})), Err("forbidden"), "{method} of its own pane");
            assert_eq!(admit(&own, method, json!({"pane": "b"})), Err("forbidden"), "{method} of another");
        }
    }

    #[test]
    fn read_panes_adds_other_screens_and_nothing_else() {
        let reader = Access::Pane { name: "a".into(), read_panes: true, socket: 1 };
        assert_eq!(admit(&reader, "pane.read_screen", json!({"pane": "b"})), Ok(json!({"pane": "b"})));
        assert_eq!(admit(&reader, "pane.wait", json!({"pane": "b"})), Err("forbidden"));
        assert_eq!(admit(&reader, "pane.send", json!({"pane": "b", "text": "x"})), Err("forbidden"));
    }

    #[test]
    fn the_full_socket_allows_everything_and_a_confined_peer_nothing() {
        for method in ["pane.spawn", "pane.kill", "server.stop"] {
            assert!(admit(&Access::Full, method, json!({"pane": "b"})).is_ok());
            assert_eq!(admit(&Access::Confined, method, json!({})), Err("forbidden"));
        }
        assert_eq!(admit(&Access::Confined, "pane.list", json!({})), Err("forbidden"));
    }
}
