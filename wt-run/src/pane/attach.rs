//! `wt-run pane attach NAME`: a person at the pane's keyboard. The terminal goes into raw
//! mode; what is typed goes to the pane as it is (`pane.write`), what the pane prints comes back
//! as it is (a `pane.attach` stream, which starts with a redraw of the current screen). Ctrl-]
//! detaches; the pane goes on. A tmux pane is handed to `tmux attach` itself.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};
use serde_json::{json, Value};
use wt_common::Error;

use super::client::Client;

/// The key that detaches: Ctrl-] (as in telnet and docker).
pub const DETACH: u8 = 0x1d;

pub fn attach(socket: &Path, name: &str) -> Result<(), Error> {
    let described = Client::connect(socket)?.call("pane.list", json!({}))?;
    let pane = described.as_array().and_then(|a| a.iter().find(|p| p["name"] == name)).cloned();
    let Some(pane) = pane else {
        return Err(Error::failed("no-such-pane", format!("no pane '{name}' (see `wt-run pane ls`)")));
    };
    if let Some(session) = pane["tmux"]["session"].as_str() {
        let window = pane["tmux"]["window"].as_str().unwrap_or_default();
        let status = std::process::Command::new("tmux")
            .args(["attach-session", "-t", session, ";", "select-window", "-t", window])
            .status()
            .map_err(|e| Error::env("tmux-missing", format!("cannot run tmux: {e}")))?;
        return if status.success() { Ok(()) } else { Err(Error::failed("tmux-failed", "tmux attach failed")) };
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::usage(
            "not-a-terminal",
            "attach needs a terminal on stdin; use `pane send` and `pane screen` from scripts",
        ));
    }
    let mut stream = Client::connect(socket)?;
    stream.call("pane.attach", json!({"pane": name}))?;
    let mut input = Client::connect(socket)?;
    let _raw = RawMode::enter()?;
    let printer = std::thread::spawn(move || {
        let mut out = std::io::stdout().lock();
        while let Ok(Some(chunk)) = stream.next_line() {
            let bytes = chunk.get("data_b64").and_then(Value::as_str).map(decode).unwrap_or_default();
            if out.write_all(&bytes).and_then(|_| out.flush()).is_err() {
                break;
            }
        }
    });
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 4096];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let (keys, detach) = match buf[..n].iter().position(|b| *b == DETACH) {
            Some(i) => (&buf[..i], true),
            None => (&buf[..n], false),
        };
        if !keys.is_empty() && input.call("pane.write", json!({"pane": name, "data_b64": encode(keys)})).is_err() {
            break;
        }
        if detach || printer.is_finished() {
            break;
        }
    }
    drop(_raw);
    eprintln!("\r\n[detached from {name}; it goes on: `wt-run pane attach {name}` to come back]");
    Ok(())
}

/// The terminal in raw mode until dropped. TCSANOW, not TCSAFLUSH: keys typed before the
/// switch are kept.
struct RawMode {
    saved: Termios,
}

impl RawMode {
    fn enter() -> Result<RawMode, Error> {
        let stdin = std::io::stdin();
        let saved =
            tcgetattr(&stdin).map_err(|e| Error::env("tty", format!("cannot read the terminal's mode: {e}")))?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).map_err(|e| Error::env("tty", format!("cannot set raw mode: {e}")))?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.saved);
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (RFC 4648), for raw terminal bytes inside JSON lines.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            out.push(if i <= chunk.len() { B64[(n >> (18 - 6 * i)) as usize & 63] as char } else { '=' });
        }
    }
    out
}

/// `decode`, but `None` for text that is not base64 (a character outside the alphabet, a
/// length that is not a multiple of 4, padding in the middle).
pub fn decode_strict(text: &str) -> Option<Vec<u8>> {
    let body = text.trim_end_matches('=');
    let padding = text.len() - body.len();
    let valid = text.len().is_multiple_of(4) && padding <= 2 && body.bytes().all(|c| B64.contains(&c));
    valid.then(|| decode(text))
}

pub fn decode(text: &str) -> Vec<u8> {
    let val = |c: u8| B64.iter().position(|b| *b == c).map(|p| p as u32);
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for chunk in text.as_bytes().chunks(4) {
        let digits: Vec<u32> = chunk.iter().filter_map(|c| val(*c)).collect();
        let n = digits.iter().enumerate().fold(0u32, |n, (i, d)| n | (d << (18 - 6 * i)));
        for i in 0..digits.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"\x00\xff\x1b[31mred\r\n"] {
            assert_eq!(decode(&encode(data)), data);
        }
        assert_eq!(encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(encode(b"fo"), "Zm8=");
    }
}
