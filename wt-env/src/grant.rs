//! Leasing: index and port block under the ledger lock; the database, env file and brief
//! after it (a slow database server never holds the lock).

use std::path::PathBuf;

use serde_json::{json, Map, Value};
use wt_common::git::repo::Repo;
use wt_common::ledger::{Entry, LedgerFile};
use wt_common::{Error, Record};

use crate::database::DbSpec;
use crate::envfile;
use crate::lease::{self, PortRequest};
use crate::ports::foreign_listeners;
use crate::TOOL;
use wt_common::ledger::kept_db;
use wt_common::ledger::lease::{self as held, DbLease, PortBlock};
use wt_common::ledger::machine_ports::Registry as MachinePorts;

/// What a run grants to every worktree it is given.
#[derive(Debug)]
pub struct Plan {
    pub ports: PortRequest,
    pub database: Option<DbSpec>,
    pub dotenv: Option<PathBuf>,
    pub brief: Option<PathBuf>,
    pub rust_cache: Option<crate::rust_cache::RustCache>,
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
        if let Err(e) = crate::database::exclude_sqlite_copy(repo, &path, lease) {
            problem = Some(e);
        }
        if !lease.provisioned {
            match provision(ledger, &rec.name, spec, lease, index, &path) {
                Ok(()) => {
                    wt_common::proc::failpoint::hit("after-create-database");
                    problem = record_provisioned(ledger, &rec.name, lease, index).err();
                }
                Err(e) => {
                    // The record shows what the worktree still has.
                    db = ledger.read().ok().and_then(|l| l.worktrees.get(&rec.name).and_then(held::db_of));
                    problem = Some(e);
                }
            }
        }
    }
    let conflicts = if reused { foreign_listeners(block.ports(), &path) } else { Vec::new() };
    rec.index = Some(index);
    let mut vars = wt_common::ledger::lease::vars(&rec, index, &block, db.as_ref());
    let rust_cache = plan.rust_cache.map(|c| crate::rust_cache::apply(c, std::env::var_os("PATH"), &mut vars));
    let mut env = env_object(&vars, &block, db.as_ref());
    if let Some(rc) = rust_cache {
        env.insert("rust_cache".into(), rc);
    }
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
    wt_common::record::select::check(rec)?;
    let path = rec.path.clone().unwrap_or_default();
    wt_common::proc::failpoint::hit("lease-checked");
    let settle = |g: &Granted| {
        // The block held before is freed on the machine only now, the ledger written: see
        // `MachinePorts::claim`. (One that cannot be freed now is found stale later.)
        if let Ok(machine) = MachinePorts::lock(wt_common::proc::lock::default_timeout()) {
            machine.settle(&repo.common_dir, &rec.name, g.block.start, g.block.end());
        }
    };
    ledger.update_then(
        |l| {
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
            if !l.worktrees.contains_key(&rec.name) && path.join(".git").symlink_metadata().is_err() {
                // Removed since it was looked up: an entry made now would hold an index, a block
                // and a database for a worktree that is gone.
                return Err(Error::failed(
                    "no-such-worktree",
                    format!("'{}' was removed while it was being leased", rec.name),
                ));
            }
            let index =
                l.worktrees.get(&rec.name).and_then(|e| e.index).unwrap_or_else(|| lease::free_index(l, &rec.name));
            let reused = l.worktrees.get(&rec.name).and_then(held::block_of).is_some_and(|b| b.size == plan.ports.size);
            // The machine's registry is locked while the ledger is: no other repository's wt-env
            // can take the same block between the choice and the claim.
            let machine = MachinePorts::lock(wt_common::proc::lock::default_timeout())?;
            let elsewhere = machine.others(&repo.common_dir, &rec.name, l);
            let block = lease::port_block(l, &rec.name, &plan.ports, &elsewhere)?;
            machine.claim(&repo.common_dir, &rec.name, &path, block.start, block.end())?;
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
                    let held = held::db_of(entry);
                    let db = held.clone().filter(|d| spec.matches(d, &wanted)).unwrap_or(wanted);
                    // A working database stays leased until its replacement exists: a
                    // `--database` that fails must not take the worktree's DATABASE_URL away.
                    if !held.is_some_and(|h| h.provisioned && h != db) {
                        held::set_db(entry, Some(&db));
                    }
                    Some(db)
                }
            };
            Ok(Granted { index, block, reused, db })
        },
        settle,
    )
}

/// Makes the database. One that exists already is used only if this lease made it, or began
/// to (a wt-env killed after `CREATE DATABASE`), or a wt-env running at the same time made it
/// for this worktree; any other (made by hand, say) is never handed out.
fn provision(
    ledger: &LedgerFile,
    name: &str,
    spec: &DbSpec,
    lease: &mut DbLease,
    index: u32,
    worktree: &std::path::Path,
) -> Result<(), Error> {
    let db_name = lease.name.clone();
    let recorded = |ledger: &LedgerFile| -> Result<Option<DbLease>, Error> {
        let l = ledger.read()?;
        let leased = l.worktrees.get(name).and_then(held::db_of).filter(|d| d.name == db_name);
        let pending = kept_db::all(&l).remove(&db_name).filter(|k| k.worktree == name).map(|k| k.database);
        Ok(leased.or(pending))
    };
    if spec.exists(lease)? {
        return match recorded(ledger)? {
            // Made by this lease: what a killed run left undone (its role) is finished.
            Some(d) if d.made_by_us() => spec.provision(lease, worktree),
            _ => Err(crate::database::exists_error(&lease.name)),
        };
    }
    // Said before it is made, so that a kill right after `CREATE DATABASE` leaves a database
    // the ledger knows of: the next run takes it, and removing the worktree keeps or drops it.
    lease.creating = true;
    record_creating(ledger, name, lease, index)?;
    spec.provision(lease, worktree)
}

/// Notes in the ledger that the database is about to be made: in the worktree's entry when it
/// is the one leased there, else (it is to replace a working one) among the kept databases,
/// until it is made. A worktree removed meanwhile gets no database.
fn record_creating(ledger: &LedgerFile, name: &str, db: &DbLease, index: u32) -> Result<(), Error> {
    ledger.update(|l| {
        // The same worktree still: not one of that name made since (it would hold another index).
        let Some(e) = l.worktrees.get_mut(name).filter(|e| e.index == Some(index)) else {
            return Err(Error::failed(
                "no-such-worktree",
                format!("'{name}' was removed while its database was leased"),
            ));
        };
        if held::db_of(e).is_none_or(|d| d.name == db.name) {
            held::set_db(e, Some(db));
        } else {
            let index = e.index;
            kept_db::keep_lease(l, name, index, db.clone());
        }
        Ok(())
    })
}

/// Records the made database as the worktree's; one it replaces is listed as kept. Should the
/// worktree have been removed meanwhile, the database is listed as kept from it.
fn record_provisioned(ledger: &LedgerFile, name: &str, db: &DbLease, index: u32) -> Result<(), Error> {
    ledger.update(|l| {
        kept_db::forget(l, &db.name);
        // Removed meanwhile (and maybe made again, with another index): the database is kept
        // from the worktree it was made for.
        let Some(e) = l.worktrees.get_mut(name).filter(|e| e.index == Some(index)) else {
            kept_db::keep_lease(l, name, Some(index), db.clone());
            return Ok(());
        };
        let replaced = held::db_of(e).filter(|old| old.made_by_us() && old.name != db.name);
        held::set_db(e, Some(db));
        if let Some(old) = replaced {
            kept_db::keep_lease(l, name, Some(index), old);
        }
        Ok(())
    })
}
