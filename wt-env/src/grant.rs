//! Leasing: index and port block under the ledger lock; the database, env file and brief
//! after it (a slow database server never holds the lock).

use std::path::PathBuf;

use serde_json::{json, Map, Value};
use wt_common::ledger::{Entry, LedgerFile};
use wt_common::repo::Repo;
use wt_common::{Error, Record};

use crate::database::DbSpec;
use crate::envfile;
use crate::lease::{self, PortRequest};
use crate::ports::foreign_listeners;
use crate::TOOL;
use wt_common::lease::{self as held, DbLease, PortBlock};

/// What a run grants to every worktree it is given.
#[derive(Debug)]
pub struct Plan {
    pub ports: PortRequest,
    pub database: Option<DbSpec>,
    pub dotenv: Option<PathBuf>,
    pub brief: Option<PathBuf>,
}

/// The leases of one worktree after the locked step.
#[derive(Debug)]
struct Granted {
    index: u32,
    block: PortBlock,
    /// The block was held before this run (so something may have taken a port since).
    reused: bool,
    db: Option<DbLease>,
}

/// Leases for one worktree, and its record with `index` and `env`. A database that cannot be
/// made puts an error in the record; the port lease stands.
pub fn grant(repo: &Repo, ledger: &LedgerFile, plan: &Plan, mut rec: Record) -> Record {
    let g = match take_leases(repo, ledger, plan, &rec) {
        Ok(g) => g,
        Err(e) => {
            rec.set_error(TOOL, &e);
            return rec;
        }
    };
    let Granted { index, block, reused, mut db } = g;
    tracing::info!(
        "'{}': index {index}, ports {}-{}{}",
        rec.name,
        block.start,
        block.end(),
        if reused { " (held)" } else { "" }
    );
    let path = rec.path.clone().unwrap_or_default();
    let mut problem = None;
    if let (Some(spec), Some(lease)) = (&plan.database, db.as_mut()) {
        if !lease.provisioned {
            match spec.provision(lease, &path) {
                Ok(()) => problem = record_provisioned(ledger, &rec.name, lease).err(),
                Err(e) => problem = Some(e),
            }
        }
    }
    let conflicts = if reused { foreign_listeners(block.ports(), &path) } else { Vec::new() };
    rec.index = Some(index);
    let vars = wt_common::lease::vars(&rec, index, &block, db.as_ref());
    let mut env = env_object(&vars, &block, db.as_ref());
    if let Some(rel) = &plan.dotenv {
        match envfile::write_ignored(repo, &path, &rel.to_string_lossy(), &envfile::dotenv_text(&vars)) {
            Ok(file) => {
                env.insert("file".into(), json!(file));
            }
            Err(e) => problem = problem.or(Some(e)),
        }
    }
    if let Some(rel) = &plan.brief {
        let env_file = env.get("file").and_then(Value::as_str).map(PathBuf::from);
        let text = envfile::brief_text(&rec, &block, db.as_ref(), env_file.as_deref());
        match envfile::write_ignored(repo, &path, &rel.to_string_lossy(), &text) {
            Ok(file) => {
                env.insert("brief".into(), json!(file));
            }
            Err(e) => problem = problem.or(Some(e)),
        }
    }
    if !conflicts.is_empty() {
        env.insert("conflicts".into(), json!(conflicts));
    }
    rec.set_key("env", Value::Object(env));
    if let Some(e) = problem {
        rec.set_error(TOOL, &e);
    }
    rec
}

/// The `env` key: `vars`, `ports` (name → number), `block`, `database`.
pub fn env_object(vars: &Map<String, Value>, block: &PortBlock, db: Option<&DbLease>) -> Map<String, Value> {
    let ports: Map<String, Value> =
        block.names.iter().enumerate().map(|(i, n)| (n.clone(), json!(block.start + i as u16))).collect();
    let mut env = Map::new();
    env.insert("vars".into(), Value::Object(vars.clone()));
    env.insert("ports".into(), Value::Object(ports));
    env.insert("block".into(), json!({"start": block.start, "end": block.end()}));
    if let Some(db) = db {
        env.insert("database".into(), json!({"url": db.url, "name": db.name, "provisioned": db.provisioned}));
    }
    env
}

fn take_leases(repo: &Repo, ledger: &LedgerFile, plan: &Plan, rec: &Record) -> Result<Granted, Error> {
    wt_common::select::check(rec)?;
    let path = rec.path.clone().unwrap_or_default();
    ledger.update(|l| {
        if let Some(other) = l.worktrees.get(&rec.name).filter(|e| e.path != path) {
            return Err(Error::failed(
                "name-taken",
                format!(
                    "'{}' is leased to another worktree, {}; release it with `wt-env --gc`",
                    rec.name,
                    other.path.display()
                ),
            ));
        }
        let index = l.worktrees.get(&rec.name).and_then(|e| e.index).unwrap_or_else(|| lease::free_index(l, &rec.name));
        let reused = l.worktrees.get(&rec.name).and_then(held::block_of).is_some_and(|b| b.size == plan.ports.size);
        let block = lease::port_block(l, &rec.name, &plan.ports)?;
        let entry = l.worktrees.entry(rec.name.clone()).or_insert_with(|| {
            let mut e = Entry::new(path.clone());
            e.branch = rec.branch.clone();
            e.base = rec.base.clone();
            e.base_commit = rec.base_commit.clone();
            e
        });
        entry.index = Some(index);
        held::set_block(entry, Some(&block));
        let db = match &plan.database {
            None => held::db_of(entry),
            Some(spec) => {
                let wanted = spec.lease_for(index, &path, repo.main_worktree.as_deref())?;
                let db = held::db_of(entry).filter(|d| spec.matches(d, &wanted)).unwrap_or(wanted);
                held::set_db(entry, Some(&db));
                Some(db)
            }
        };
        Ok(Granted { index, block, reused, db })
    })
}

fn record_provisioned(ledger: &LedgerFile, name: &str, db: &DbLease) -> Result<(), Error> {
    ledger.update(|l| {
        if let Some(e) = l.worktrees.get_mut(name) {
            held::set_db(e, Some(db));
        }
        Ok(())
    })
}
