//! `--list`, `--release` and `--gc`: reading and giving back leases.

use serde_json::{json, Value};
use wt_common::ledger::LedgerFile;
use wt_common::output::Output;
use wt_common::repo::Repo;
use wt_common::{Error, Record};

use crate::database::drop_database;
use crate::grant::env_object;
use wt_common::lease;
use wt_common::select::record_from_entry;

use crate::TOOL;

/// Every worktree in the ledger that holds a lease, as a record with `env`.
pub fn list(repo: &Repo, ledger: &LedgerFile, out: &mut Output) -> Result<(), Error> {
    for (name, entry) in &ledger.read()?.worktrees {
        let (Some(index), Some(block)) = (entry.index, lease::block_of(entry)) else { continue };
        let mut rec = record_from_entry(repo, name, entry);
        let db = lease::db_of(entry);
        let vars = wt_common::lease::vars(&rec, index, &block, db.as_ref());
        rec.set_key("env", Value::Object(env_object(&vars, &block, db.as_ref())));
        out.emit(&rec);
    }
    Ok(())
}

/// Gives back the leases of `rec`'s worktree; with `drop_db`, drops its database first (a
/// database that cannot be dropped keeps its lease, so it is not forgotten).
pub fn release(ledger: &LedgerFile, mut rec: Record, drop_db: bool, forget: bool) -> Record {
    let result = (|| {
        let entry = ledger.read()?.worktrees.get(&rec.name).cloned();
        let Some(entry) = entry else {
            return Err(Error::failed("no-lease", format!("'{}' holds no lease", rec.name)));
        };
        let db = lease::db_of(&entry);
        if let (true, Some(db)) = (drop_db, &db) {
            drop_database(db)?;
        }
        ledger.update(|l| {
            if forget {
                l.worktrees.remove(&rec.name);
            } else if let Some(e) = l.worktrees.get_mut(&rec.name) {
                let keep_db = if drop_db { None } else { lease::db_of(e) };
                lease::clear(e);
                if let Some(db) = keep_db {
                    // Not dropped: still on the server, so still recorded.
                    lease::set_db(e, Some(&db));
                }
            }
            Ok(())
        })?;
        Ok(json!({"released": true, "database_dropped": drop_db && db.is_some()}))
    })();
    match result {
        Ok(env) => rec.set_key("env", env),
        Err(e) => rec.set_error(TOOL, &e),
    }
    rec
}

/// Releases the leases of every ledger entry whose worktree git no longer knows or whose
/// directory is gone (`rm -rf` plus `git worktree prune`, or anything else).
pub fn gc(repo: &Repo, ledger: &LedgerFile, drop_db: bool, out: &mut Output) -> Result<(), Error> {
    let live: Vec<std::path::PathBuf> = repo.worktrees()?.into_iter().map(|w| w.path).collect();
    for (name, entry) in ledger.read()?.worktrees {
        if live.contains(&entry.path) && entry.path.is_dir() {
            continue;
        }
        let rec = record_from_entry(repo, &name, &entry);
        out.emit(&release(ledger, rec, drop_db, true));
    }
    Ok(())
}
