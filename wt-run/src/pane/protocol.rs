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

/// The keys `pane.send_key` knows, for messages and `--help`.
pub const KEYS: &str = "enter, tab, shift-tab, escape, backspace, space, up, down, left, right, home, end, \
pageup, pagedown, insert, delete, f1-f12, ctrl-<letter>, alt-<key>";

/// The bytes a named key sends to a terminal program (as xterm sends them).
pub fn key_bytes(key: &str) -> Option<Vec<u8>> {
    let key = key.to_ascii_lowercase();
    if let Some(inner) = key.strip_prefix("alt-").or_else(|| key.strip_prefix("meta-")) {
        // Alt sends ESC before the key: `alt-b` is ESC b, `alt-enter` ESC CR.
        let inner = key_bytes(inner).or_else(|| single_char(inner).map(|c| vec![c]))?;
        return Some([b"\x1b".as_slice(), &inner].concat());
    }
    if let Some(c) = key.strip_prefix("ctrl-").and_then(single_char) {
        return c.is_ascii_lowercase().then_some(vec![c & 0x1f]);
    }
    if let Some(n) = key.strip_prefix('f').and_then(|n| n.parse::<usize>().ok()) {
        const F: [&str; 12] = ["OP", "OQ", "OR", "OS", "[15~", "[17~", "[18~", "[19~", "[20~", "[21~", "[23~", "[24~"];
        return F.get(n.checked_sub(1)?).map(|s| [b"\x1b".as_slice(), s.as_bytes()].concat());
    }
    let bytes: &[u8] = match key.as_str() {
        "enter" | "return" => b"\r",
        "tab" => b"\t",
        "shift-tab" | "backtab" => b"\x1b[Z",
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
        "insert" => b"\x1b[2~",
        "delete" => b"\x1b[3~",
        _ => return None,
    };
    Some(bytes.to_vec())
}

/// The byte of a one-character ASCII key name (`c` in `ctrl-c`).
fn single_char(name: &str) -> Option<u8> {
    match name.as_bytes() {
        [c] if c.is_ascii_graphic() => Some(*c),
        _ => None,
    }
}

/// Text as a program receives it when typed or pasted. Several lines go in as one bracketed
/// paste when the program has turned bracketed paste on (DEC mode 2004: an agent's prompt then
/// takes them as one message, not one per line); otherwise as a terminal pastes them to a
/// program that has not, each line break a carriage return (Enter), so a plain line-reading
/// program gets the lines and never sees the markers.
pub fn text_bytes(text: &str, enter: bool, bracketed_paste: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if !text.contains('\n') {
        out.extend_from_slice(text.as_bytes());
    } else if bracketed_paste {
        out.extend_from_slice(b"\x1b[200~");
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\x1b[201~");
    } else {
        out.extend(text.bytes().map(|b| if b == b'\n' { b'\r' } else { b }));
    }
    if enter {
        out.push(b'\r');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{key_bytes, text_bytes};

    #[test]
    fn keys_as_xterm_sends_them() {
        assert_eq!(key_bytes("ctrl-c").unwrap(), b"\x03");
        assert_eq!(key_bytes("Ctrl-R").unwrap(), b"\x12");
        assert_eq!(key_bytes("ctrl-w").unwrap(), b"\x17");
        assert_eq!(key_bytes("shift-tab").unwrap(), b"\x1b[Z");
        assert_eq!(key_bytes("f1").unwrap(), b"\x1bOP");
        assert_eq!(key_bytes("f12").unwrap(), b"\x1b[24~");
        assert_eq!(key_bytes("alt-b").unwrap(), b"\x1bb");
        assert_eq!(key_bytes("alt-enter").unwrap(), b"\x1b\r");
        for unknown in ["f0", "f13", "ctrl-", "ctrl-1", "alt-", "hyper-x", "ctrl-cc"] {
            assert_eq!(key_bytes(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn several_lines_are_bracketed_only_for_a_program_that_asked() {
        assert_eq!(text_bytes("a\nb", true, true), b"\x1b[200~a\nb\x1b[201~\r");
        assert_eq!(text_bytes("a\nb", true, false), b"a\rb\r");
        assert_eq!(text_bytes("one line", false, true), b"one line");
    }
}
