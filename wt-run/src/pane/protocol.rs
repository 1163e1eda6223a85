//! The supervisor's protocol: JSON lines over its socket.
//!
//! Request: `{"id": 1, "method": "pane.read_screen", "params": {"pane": "agent-1"}}`
//! Response: `{"id": 1, "ok": true, "result": {…}}` or
//! `{"id": 1, "ok": false, "error": {"code": "no-such-pane", "message": "…"}}`.
//! Documented method by method in `docs/protocol.md`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The longest request line the supervisor reads; longer ones get an error response.
pub const MAX_REQUEST: usize = 1 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    #[serde(default)]
    pub id: Value,
    pub method: String,
    #[serde(default)]
    pub params: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub id: Value,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

impl Response {
    pub fn ok(id: Value, result: Value) -> Response {
        Response { id, ok: true, result: Some(result), error: None }
    }
    pub fn err(id: Value, code: &str, message: impl Into<String>) -> Response {
        Response { id, ok: false, result: None, error: Some(ErrorBody { code: code.into(), message: message.into() }) }
    }
}

/// The bytes a named key sends to a terminal program.
pub fn key_bytes(key: &str) -> Option<&'static [u8]> {
    Some(match key.to_ascii_lowercase().as_str() {
        "enter" | "return" => b"\r",
        "tab" => b"\t",
        "escape" | "esc" => b"\x1b",
        "backspace" => b"\x7f",
        "space" => b" ",
        "up" => b"\x1b[A",
        "down" => b"\x1b[B",
        "right" => b"\x1b[C",
        "left" => b"\x1b[D",
        "home" => b"\x1b[H",
        "end" => b"\x1b[F",
        "pageup" => b"\x1b[5~",
        "pagedown" => b"\x1b[6~",
        "delete" => b"\x1b[3~",
        "ctrl-c" => b"\x03",
        "ctrl-d" => b"\x04",
        "ctrl-z" => b"\x1a",
        "ctrl-l" => b"\x0c",
        "ctrl-u" => b"\x15",
        "ctrl-a" => b"\x01",
        "ctrl-e" => b"\x05",
        _ => return None,
    })
}

/// Text as a program receives it when typed or pasted: several lines go in as one bracketed
/// paste, so an agent's prompt takes them as one message, not one per line.
pub fn text_bytes(text: &str, enter: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if text.contains('\n') {
        out.extend_from_slice(b"\x1b[200~");
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\x1b[201~");
    } else {
        out.extend_from_slice(text.as_bytes());
    }
    if enter {
        out.push(b'\r');
    }
    out
}
