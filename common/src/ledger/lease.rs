//! Leases as the ledger keeps them (written by wt-env, read by every tool that starts
//! processes in a worktree), and the environment variables they stand for.
//!
//! In the ledger entry of a worktree (beside wt-create's fields):
//! ```json
//! "index": 2,
//! "ports": {"start": 20010, "size": 10, "names": ["web", "api"]},
//! "database": {"kind": "postgres", "name": "app_wt2", "url": "postgres://…/app_wt2", "provisioned": true}
//! ```
//! (`"creating": true` while the database is being made.)
//! ```text
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ledger::Entry;
use crate::Record;

/// A block of consecutive ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBlock {
    pub start: u16,
    pub size: u16,
    /// Names of the first ports of the block (`web` is `start`, `api` is `start + 1`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

impl PortBlock {
    pub fn end(&self) -> u16 {
        self.start + (self.size - 1)
    }
    pub fn ports(&self) -> impl Iterator<Item = u16> {
        self.start..=self.end()
    }
    pub fn overlaps(&self, start: u16, size: u16) -> bool {
        let end = start + (size - 1);
        self.start <= end && start <= self.end()
    }
}

/// A database made (or copied) for one worktree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbLease {
    /// `postgres` or `sqlite`.
    pub kind: String,
    /// The database's name (postgres) or file (sqlite).
    pub name: String,
    /// `DATABASE_URL` for the worktree.
    pub url: String,
    /// True once the database exists (created from the template, or copied).
    pub provisioned: bool,
    /// PostgreSQL: the worktree's own role, which `url` logs in as (with its password); it
    /// owns the database, and no other worktree's role may connect to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// PostgreSQL: the `--database` URL, through which wt-env creates and drops the database
    /// and its role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_url: Option<String>,
    /// Set just before wt-env creates the database, after it found no database of that name:
    /// a database found under this name later was made by this lease (a wt-env killed between
    /// creating it and recording it), never one it must not take.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub creating: bool,
}

impl DbLease {
    /// The database may exist because of this lease: it was made, or its making began.
    pub fn made_by_us(&self) -> bool {
        self.provisioned || self.creating
    }
}

// Deserialized from the value in place (`&Value` is a deserializer): cloning each entry's
// value first was a measurable part of a lease at 500 leases.
pub fn block_of(entry: &Entry) -> Option<PortBlock> {
    entry.extra.get("ports").and_then(|v| PortBlock::deserialize(v).ok())
}

pub fn db_of(entry: &Entry) -> Option<DbLease> {
    entry.extra.get("database").and_then(|v| DbLease::deserialize(v).ok())
}

pub fn set_block(entry: &mut Entry, block: Option<&PortBlock>) {
    set(entry, "ports", block.map(|b| serde_json::to_value(b).expect("block serializes")));
}

pub fn set_db(entry: &mut Entry, db: Option<&DbLease>) {
    set(entry, "database", db.map(|d| serde_json::to_value(d).expect("lease serializes")));
}

fn set(entry: &mut Entry, key: &str, value: Option<serde_json::Value>) {
    match value {
        Some(v) => {
            entry.extra.insert(key.into(), v);
        }
        None => {
            entry.extra.shift_remove(key);
        }
    }
}

/// Forgets every lease of an entry (index, ports, database).
pub fn clear(entry: &mut Entry) {
    entry.index = None;
    set_block(entry, None);
    set_db(entry, None);
}

/// The variables every process in the worktree gets, in a stable order.
pub fn vars(rec: &Record, index: u32, block: &PortBlock, db: Option<&DbLease>) -> Map<String, Value> {
    let mut v = Map::new();
    let mut put = |k: &str, val: String| {
        v.insert(k.to_string(), Value::String(val));
    };
    put("WT_NAME", rec.name.clone());
    put("WT_INDEX", index.to_string());
    if let Some(p) = &rec.path {
        put("WT_PATH", p.display().to_string());
    }
    if let Some(b) = &rec.branch {
        put("WT_BRANCH", b.clone());
    }
    if let Some(r) = &rec.repo {
        put("WT_REPO", r.display().to_string());
    }
    put("PORT", block.start.to_string());
    put("WT_PORT_FIRST", block.start.to_string());
    put("WT_PORT_LAST", block.end().to_string());
    for (i, name) in block.names.iter().enumerate() {
        put(&format!("WT_PORT_{}", name.to_uppercase()), (block.start + i as u16).to_string());
    }
    // Names that existing setup scripts already read (Conductor, cmux).
    put("CONDUCTOR_PORT", block.start.to_string());
    put("CMUX_PORT", block.start.to_string());
    put("CMUX_PORT_END", block.end().to_string());
    if let Some(db) = db {
        put("DATABASE_URL", db.url.clone());
    }
    v
}

/// The variables of a managed worktree from its ledger entry, if it holds leases.
pub fn vars_from_entry(rec: &Record, entry: &Entry) -> Option<Map<String, Value>> {
    Some(vars(rec, entry.index?, &block_of(entry)?, db_of(entry).as_ref()))
}

/// The environment of a process started in a worktree: WT_* from the record's core fields, then
/// the leased variables over them: the record's `env.vars` (from wt-env upstream), or else those
/// of the worktree's leases in the ledger.
pub fn worktree_env(rec: &Record, ledger: &crate::ledger::Ledger) -> Vec<(String, String)> {
    let mut vars = vec![("WT_NAME".to_string(), rec.name.clone())];
    if let Some(p) = &rec.path {
        vars.push(("WT_PATH".into(), p.display().to_string()));
    }
    if let Some(b) = &rec.branch {
        vars.push(("WT_BRANCH".into(), b.clone()));
    }
    if let Some(r) = &rec.repo {
        vars.push(("WT_REPO".into(), r.display().to_string()));
    }
    if let Some(i) = rec.index {
        vars.push(("WT_INDEX".into(), i.to_string()));
    }
    let from_ledger = || {
        let entry = ledger.worktrees.get(&rec.name).filter(|e| Some(&e.path) == rec.path.as_ref())?;
        vars_from_entry(rec, entry)
    };
    let leased = rec.key("env").and_then(|e| e.get("vars")).and_then(Value::as_object).cloned().or_else(from_ledger);
    if let Some(env) = leased {
        for (k, v) in &env {
            if let Some(v) = v.as_str() {
                vars.push((k.clone(), v.to_string()));
            }
        }
    }
    vars
}
