//! The `wt/1` record: one JSON object per line, passed between the tools over pipes.
//!
//! # Wire format
//!
//! ```json
//! {"v":1,"name":"agent-2","index":2,"repo":"/abs/main/worktree","path":"/abs/repo.wt/agent-2",
//!  "branch":"wt/agent-2","base":"main","base_commit":"<40 hex>","head":"<40 hex>","created":true}
//! ```
//!
//! - `v` is always `1`. A record without `v` is read as version 1; any other version is refused.
//! - The core fields (`name` … `head`, `created`, `removed`) belong to the worktree and are
//!   written by wt-create. Every other tool owns one key (`env`, `run`, `watch`, `merge`) and
//!   writes only that key, plus `error`.
//! - Fields this version does not know are kept in `extra`, in the order they came, and written
//!   back out untouched after the core fields. Readers ignore keys they do not know.
//! - A record carrying `error` is passed through unchanged and not acted on.
//!
//! Absent optional fields are omitted, never written as `null`.

pub mod cli;
pub mod complete;
pub mod duration;
pub mod excerpt;
pub mod jsonl;
pub mod notify;
pub mod output;
pub mod pane_logs;
pub mod progress;
pub mod runlog;
pub mod running;
pub mod select;
pub mod size;
pub mod test_count;
pub mod test_counts;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;

/// The protocol version every record carries.
pub const VERSION: u32 = 1;

fn version() -> u32 {
    VERSION
}

/// One worktree, as the tools pass it along a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    #[serde(default = "version")]
    pub v: u32,
    /// The worktree's name: a single git ref component (`agent-2`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The stable index leased by wt-env (1, 2, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// The repository: its main worktree, or the bare repository's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<PathBuf>,
    /// The worktree's directory, absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// The branch checked out there, short form (`wt/agent-2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The ref the worktree was started from, as the user named it (`main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// The commit `base` pointed at when the worktree was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_commit: Option<String>,
    /// The commit checked out in the worktree now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    /// wt-create: true when this run made the worktree, false when it adopted an existing one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
    /// wt-create --remove: true once the worktree is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<bool>,
    /// Every field this version does not know, in input order.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// Set by the first tool that failed on this record; later tools pass it through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
}

/// `error`: which tool failed, a stable kebab-case code, and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub tool: String,
    pub code: String,
    pub message: String,
}

impl Default for Record {
    fn default() -> Self {
        Record {
            v: VERSION,
            name: String::new(),
            index: None,
            repo: None,
            path: None,
            branch: None,
            base: None,
            base_commit: None,
            head: None,
            created: None,
            removed: None,
            extra: Map::new(),
            error: None,
        }
    }
}

impl Record {
    /// A record for the worktree `name`, no other field set.
    pub fn named(name: impl Into<String>) -> Self {
        Record { name: name.into(), ..Record::default() }
    }

    /// Parses one line of JSON into a record, refusing versions other than 1.
    pub fn from_json(line: &str) -> Result<Self, String> {
        let rec: Record = serde_json::from_str(line).map_err(|e| e.to_string())?;
        if rec.v != VERSION {
            return Err(format!("record has version {}, this tool speaks version {VERSION}", rec.v));
        }
        Ok(rec)
    }

    /// The record as one line of JSON, without the newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a record always serializes")
    }

    pub fn has_error(&self) -> bool {
        self.error.is_some()
    }

    /// Marks the record failed by `tool` with `err`.
    pub fn set_error(&mut self, tool: &str, err: &Error) {
        self.error = Some(ErrorInfo { tool: tool.into(), code: err.code.clone(), message: err.message.clone() });
    }

    /// A record that carries only a name (or nothing) and an error: what a tool prints for an
    /// input it could not even resolve to a worktree.
    pub fn failed(name: &str, tool: &str, err: &Error) -> Self {
        let mut rec = Record::named(name);
        rec.set_error(tool, err);
        rec
    }

    /// The value of a key owned by another tool (`env`, `run`, …), if present.
    pub fn key(&self, key: &str) -> Option<&Value> {
        self.extra.get(key)
    }

    /// Sets the key this tool owns, keeping its place if it was already there.
    pub fn set_key(&mut self, key: &str, value: Value) {
        self.extra.insert(key.to_string(), value);
    }
}
