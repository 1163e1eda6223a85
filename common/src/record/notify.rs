//! Terminal notifications and progress, as escape sequences the person's terminal shows: a
//! desktop notification for a new inbox entry (`wt-status --watch`), and the OSC 9;4 progress
//! bar of long work (wt-merge's queue, wt-watch's rounds).
//!
//! Which notification a terminal understands is read from its environment ([`Style::detect`]);
//! `WT_NOTIFY=osc9|osc99|osc777|off` overrides. Inside tmux (`$TMUX`) every sequence is wrapped
//! for tmux's passthrough (`\ePtmux;` … `\e\\`, its ESCs doubled), which tmux forwards to the
//! terminal it runs in (with `allow-passthrough on`). Callers write them only to a terminal,
//! never into a pipe.

const ESC: u8 = 0x1b;
const BEL: u8 = 0x07;

/// How a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `ESC ] 9 ; body BEL`: iTerm2, Windows Terminal, ConEmu, WezTerm, Ghostty.
    Osc9,
    /// `ESC ] 99 ; ; body ESC \`: kitty's desktop notifications.
    Osc99,
    /// `ESC ] 777 ; notify ; title ; body BEL`: VTE terminals (GNOME Terminal, Tilix), foot,
    /// urxvt, WezTerm.
    Osc777,
    Off,
}

impl Style {
    /// The style the terminal described by `env` (a variable's value by name) understands.
    pub fn detect(env: impl Fn(&str) -> Option<String>) -> Style {
        let var = |k: &str| env(k).filter(|v| !v.is_empty());
        match var("WT_NOTIFY").as_deref() {
            Some("osc9") => return Style::Osc9,
            Some("osc99") => return Style::Osc99,
            Some("osc777") => return Style::Osc777,
            Some("off") => return Style::Off,
            _ => {}
        }
        let term = var("TERM").unwrap_or_default();
        if var("KITTY_WINDOW_ID").is_some() || term == "xterm-kitty" {
            return Style::Osc99;
        }
        // Inside tmux TERM_PROGRAM names tmux; the outer terminal's own variables are inherited.
        let program = var("TERM_PROGRAM").filter(|p| p != "tmux").or_else(|| var("LC_TERMINAL")).unwrap_or_default();
        match program.as_str() {
            "iTerm.app" | "iTerm2" | "WezTerm" | "ghostty" => return Style::Osc9,
            _ => {}
        }
        if var("WT_SESSION").is_some() || var("ConEmuPID").is_some() || term == "xterm-ghostty" {
            return Style::Osc9;
        }
        if var("VTE_VERSION").is_some() || term.starts_with("foot") || term.starts_with("rxvt") {
            return Style::Osc777;
        }
        Style::Off
    }

    /// The style of this process's terminal.
    pub fn from_env() -> Style {
        Style::detect(|k| std::env::var(k).ok())
    }
}

/// Text fit to go inside an OSC sequence: no control characters (an ESC or BEL would end it),
/// and no `;` where the sequence separates fields with it.
fn clean(text: &str, semicolons: bool) -> String {
    let t: String = text.chars().map(|c| if c.is_control() || (!semicolons && c == ';') { ' ' } else { c }).collect();
    t.chars().take(240).collect()
}

/// The notification `title: body` in `style`; empty for [`Style::Off`].
pub fn notification(style: Style, title: &str, body: &str) -> Vec<u8> {
    let osc = |s: String, end: &[u8]| [&[ESC, b']'][..], s.as_bytes(), end].concat();
    match style {
        Style::Osc9 => osc(format!("9;{}: {}", clean(title, false), clean(body, true)), &[BEL]),
        Style::Osc99 => osc(format!("99;;{}: {}", clean(title, true), clean(body, true)), &[ESC, b'\\']),
        Style::Osc777 => osc(format!("777;notify;{};{}", clean(title, false), clean(body, true)), &[BEL]),
        Style::Off => Vec::new(),
    }
}

/// Progress of long work, OSC 9;4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// `PCT` percent done (0–100).
    Percent(u8),
    /// Under way, for how long unknown.
    Busy,
    /// No work: the bar goes.
    Clear,
}

/// The OSC 9;4 sequence for `p`.
pub fn progress(p: Progress) -> Vec<u8> {
    let body = match p {
        Progress::Percent(pct) => format!("9;4;1;{}", pct.min(100)),
        Progress::Busy => "9;4;3;0".to_string(),
        Progress::Clear => "9;4;0;0".to_string(),
    };
    [&[ESC, b']'][..], body.as_bytes(), &[BEL]].concat()
}

/// `seq` as tmux passes it through to its terminal: `ESC P tmux ;`, the sequence with each ESC
/// doubled, `ESC \`.
pub fn tmux_wrap(seq: &[u8]) -> Vec<u8> {
    let mut out = b"\x1bPtmux;".to_vec();
    for &b in seq {
        if b == ESC {
            out.push(ESC);
        }
        out.push(b);
    }
    out.extend_from_slice(b"\x1b\\");
    out
}

/// `seq` as this process's terminal needs it: wrapped when inside tmux.
pub fn for_terminal(seq: Vec<u8>) -> Vec<u8> {
    if seq.is_empty() || std::env::var_os("TMUX").is_none_or(|v| v.is_empty()) {
        return seq;
    }
    tmux_wrap(&seq)
}

/// Shows progress `p` on stderr, when stderr is a terminal and notifications are not turned off
/// (`WT_NOTIFY=off`).
pub fn progress_on_stderr(p: Progress) {
    use std::io::{IsTerminal, Write};
    let mut err = std::io::stderr();
    if !err.is_terminal() || std::env::var("WT_NOTIFY").is_ok_and(|v| v == "off") {
        return;
    }
    let _ = err.write_all(&for_terminal(progress(p))).and_then(|_| err.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn each_style_in_exact_bytes() {
        assert_eq!(notification(Style::Osc9, "wt", "agent-2 waiting"), b"\x1b]9;wt: agent-2 waiting\x07");
        assert_eq!(notification(Style::Osc99, "wt", "agent-2 red"), b"\x1b]99;;wt: agent-2 red\x1b\\");
        assert_eq!(notification(Style::Osc777, "wt", "a; b"), b"\x1b]777;notify;wt;a; b\x07");
        assert_eq!(notification(Style::Osc777, "w;t", "x"), b"\x1b]777;notify;w t;x\x07");
        assert!(notification(Style::Off, "wt", "x").is_empty());
        // A body cannot end the sequence early.
        assert_eq!(notification(Style::Osc9, "wt", "a\x07b\x1b]c"), b"\x1b]9;wt: a b ]c\x07");
    }

    #[test]
    fn progress_in_exact_bytes() {
        assert_eq!(progress(Progress::Percent(40)), b"\x1b]9;4;1;40\x07");
        assert_eq!(progress(Progress::Percent(250)), b"\x1b]9;4;1;100\x07");
        assert_eq!(progress(Progress::Busy), b"\x1b]9;4;3;0\x07");
        assert_eq!(progress(Progress::Clear), b"\x1b]9;4;0;0\x07");
    }

    #[test]
    fn tmux_passthrough_doubles_each_escape() {
        assert_eq!(tmux_wrap(b"\x1b]9;wt: x\x07"), b"\x1bPtmux;\x1b\x1b]9;wt: x\x07\x1b\\");
        assert_eq!(tmux_wrap(b"\x1b]99;;a\x1b\\"), b"\x1bPtmux;\x1b\x1b]99;;a\x1b\x1b\\\x1b\\");
    }

    #[test]
    fn the_style_follows_the_terminal_and_the_override() {
        assert_eq!(Style::detect(env(&[("KITTY_WINDOW_ID", "1"), ("TERM_PROGRAM", "tmux")])), Style::Osc99);
        assert_eq!(Style::detect(env(&[("TERM_PROGRAM", "iTerm.app")])), Style::Osc9);
        assert_eq!(Style::detect(env(&[("TERM_PROGRAM", "tmux"), ("LC_TERMINAL", "iTerm2")])), Style::Osc9);
        assert_eq!(Style::detect(env(&[("VTE_VERSION", "7600"), ("TERM", "xterm-256color")])), Style::Osc777);
        assert_eq!(Style::detect(env(&[("TERM", "xterm-256color")])), Style::Off);
        assert_eq!(Style::detect(env(&[("TERM", "xterm"), ("WT_NOTIFY", "osc777")])), Style::Osc777);
        assert_eq!(Style::detect(env(&[("KITTY_WINDOW_ID", "1"), ("WT_NOTIFY", "off")])), Style::Off);
    }
}
