//! `wt-run pane notify --from-hook claude|codex`: an agent's hook payload, mapped to a state.
//!
//! Claude Code (JSON on stdin): `UserPromptSubmit`, `PreToolUse`, `PostToolUse` → working;
//! `PermissionRequest`, and `PreToolUse` of `AskUserQuestion` → waiting; `Stop` → idle;
//! `StopFailure` → idle with the error; `SessionEnd` → exited. Its `Notification` event is not
//! used for waiting: it is reported to fire only after the person has been idle for a while,
//! and to be missed during extended thinking.
//!
//! Codex: its hooks (JSON on stdin) `UserPromptSubmit`, `PreToolUse`, `PostToolUse` →
//! working, `PermissionRequest` → waiting (it also fires for calls that are then approved
//! automatically; the next tool event sets working again), `Stop` → idle; its legacy
//! `notify` program (JSON as the last argument) `agent-turn-complete` → idle.
//!
//! An event of a subagent (`agent_id` present) says nothing about the pane: the main agent
//! goes on, so it maps to nothing. So does any event not listed.

use serde_json::Value;

/// Agents whose hooks this understands.
pub const AGENTS: &[&str] = &["claude", "codex"];

/// The state (and message) a hook payload means, if any.
pub fn map(agent: &str, payload: &Value) -> Option<(&'static str, Option<String>)> {
    if payload.get("agent_id").is_some_and(|a| !a.is_null()) {
        return None;
    }
    if agent == "codex" {
        if let Some(kind) = payload.get("type").and_then(Value::as_str) {
            // The legacy `notify` program's payload.
            let message = text(payload, &["last-assistant-message"]);
            return (kind == "agent-turn-complete").then_some(("idle", message));
        }
    }
    let event = payload.get("hook_event_name").and_then(Value::as_str)?;
    let tool = payload.get("tool_name").and_then(Value::as_str);
    let state = match (agent, event) {
        ("claude", "PreToolUse") if tool == Some("AskUserQuestion") => {
            let question = payload.pointer("/tool_input/questions/0/question").and_then(Value::as_str);
            return Some(("waiting", Some(question.unwrap_or("a question for you").to_string())));
        }
        (_, "UserPromptSubmit") => return Some(("working", None)),
        (_, "PreToolUse" | "PostToolUse") => return Some(("working", tool.map(str::to_string))),
        (_, "PermissionRequest") => {
            return Some(("waiting", Some(format!("permission to use {}", tool.unwrap_or("a tool")))))
        }
        (_, "Stop") => "idle",
        ("claude", "StopFailure") => {
            let error = text(payload, &["error", "error_message", "message", "reason"]);
            return Some(("idle", Some(error.unwrap_or_else(|| "the turn failed".into()))));
        }
        ("claude", "SessionEnd") => return Some(("exited", text(payload, &["reason"]))),
        _ => return None,
    };
    Some((state, text(payload, &["last_assistant_message"])))
}

fn text(payload: &Value, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| payload.get(*k).and_then(Value::as_str)).filter(|t| !t.is_empty()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state(agent: &str, payload: Value) -> Option<&'static str> {
        map(agent, &payload).map(|(s, _)| s)
    }

    #[test]
    fn claude_events_map_as_documented() {
        for (event, expected) in [
            ("UserPromptSubmit", Some("working")),
            ("PreToolUse", Some("working")),
            ("PostToolUse", Some("working")),
            ("PermissionRequest", Some("waiting")),
            ("Stop", Some("idle")),
            ("StopFailure", Some("idle")),
            ("SessionEnd", Some("exited")),
            ("Notification", None),
            ("WorktreeCreate", None),
        ] {
            assert_eq!(state("claude", json!({"hook_event_name": event, "tool_name": "Bash"})), expected, "{event}");
        }
        let ask = json!({"hook_event_name": "PreToolUse", "tool_name": "AskUserQuestion",
                         "tool_input": {"questions": [{"question": "Which database?"}]}});
        assert_eq!(map("claude", &ask), Some(("waiting", Some("Which database?".into()))));
        let failed = json!({"hook_event_name": "StopFailure", "error": "rate_limit"});
        assert_eq!(map("claude", &failed), Some(("idle", Some("rate_limit".into()))));
    }

    #[test]
    fn subagent_events_change_nothing() {
        for event in ["PreToolUse", "Stop", "PermissionRequest", "SessionEnd"] {
            assert_eq!(state("claude", json!({"hook_event_name": event, "agent_id": "a1"})), None, "{event}");
        }
    }

    #[test]
    fn codex_hooks_and_legacy_notify() {
        assert_eq!(
            state("codex", json!({"hook_event_name": "PermissionRequest", "tool_name": "Bash"})),
            Some("waiting")
        );
        assert_eq!(state("codex", json!({"hook_event_name": "Stop"})), Some("idle"));
        let done = json!({"type": "agent-turn-complete", "last-assistant-message": "Done."});
        assert_eq!(map("codex", &done), Some(("idle", Some("Done.".into()))));
        assert_eq!(state("codex", json!({"type": "something-else"})), None);
    }
}
