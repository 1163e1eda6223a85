//! A pane of either backend, as the supervisor's verbs see it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::protocol::{key_bytes, text_bytes};
use super::pty::{screen_json, Pane};
use super::tmux::TmuxPane;

pub type Failure = (&'static str, String);

#[derive(Debug, Clone)]
pub enum Handle {
    Native(Arc<Pane>),
    Tmux(Arc<TmuxPane>),
}

impl Handle {
    pub fn exited(&self) -> bool {
        match self {
            Handle::Native(p) => p.exited(),
            Handle::Tmux(t) => t.exit().is_some(),
        }
    }

    pub fn describe(&self) -> Value {
        match self {
            Handle::Native(p) => p.describe(),
            Handle::Tmux(t) => t.describe(),
        }
    }

    pub fn screen(&self, lines: usize) -> Value {
        match self {
            Handle::Native(p) => {
                let mut s = p.state.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let screen = screen_json(&mut s, lines);
                if s.released {
                    s.sleep(true); // an exited pane's screen goes back to sleep once read
                }
                screen
            }
            Handle::Tmux(t) => t.screen(lines),
        }
    }

    pub fn send_text(&self, text: &str, enter: bool) -> Result<(), Failure> {
        match self {
            Handle::Native(p) => {
                // As the program last set it: the emulator follows its mode 2004 switches.
                let bracketed = p
                    .state
                    .0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .parser()
                    .screen()
                    .bracketed_paste();
                p.write(&text_bytes(text, enter, bracketed)).map_err(|e| ("write-failed", e))
            }
            // tmux's `paste-buffer -p` brackets only for a program that turned bracketed paste on.
            Handle::Tmux(t) => t.send_text(text, enter),
        }
    }

    pub fn send_key(&self, key: &str) -> Result<(), Failure> {
        let bytes = key_bytes(key)
            .ok_or_else(|| ("unknown-key", format!("unknown key '{key}' (keys: {})", super::protocol::KEYS)))?;
        self.send_bytes(&bytes)
    }

    /// Bytes typed into the program as they are.
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<(), Failure> {
        match self {
            Handle::Native(p) => p.write(bytes),
            Handle::Tmux(t) => t.send_bytes(bytes),
        }
        .map_err(|e| ("write-failed", e))
    }

    pub fn resize(&self, rows: u16, cols: u16) -> Result<(), Failure> {
        match self {
            Handle::Native(p) => p.resize(rows, cols),
            Handle::Tmux(t) => t.resize(rows, cols),
        }
        .map_err(|e| ("resize-failed", e))
    }

    pub fn kill(&self, grace: Duration) {
        match self {
            Handle::Native(p) => p.kill(grace),
            Handle::Tmux(t) => t.kill(),
        }
    }
}
