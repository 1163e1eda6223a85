//! `--list`, `--release` and `--gc`: reading and giving back leases.

use serde_json::{json, Value};
use wt_common::git::repo::Repo;
use wt_common::ledger::machine_ports::Registry as MachinePorts;
use wt_common::ledger::LedgerFile;
use wt_common::record::output::Output;
use wt_common::{Error, Record};

use crate::database::drop_database;
use crate::grant::env_object;
use wt_common::record::select::record_from_entry;
use wt_common::{ledger::kept_db, ledger::lease};

use crate::TOOL;

/// Every worktree in the ledger that holds a lease, as a record with `env`.
pub fn list(repo: &Repo, ledger: &LedgerFile, out: &mut Output) -> Result<(), Error> {
    for (name, entry) in &ledger.read()?.worktrees {
        let (Some(index), Some(block)) = (entry.index, lease::block_of(entry)) else { continue };
        let mut rec = record_from_entry(repo, name, entry);
        let db = lease::db_of(entry);
        let vars = wt_common::ledger::lease::vars(&rec, index, &block, db.as_ref());
        rec.set_key("env", Value::Object(env_object(&vars, &block, db.as_ref())));
        out.emit(&rec);
    }
    Ok(())
}

/// Every block the machine's port registry holds, by first port: a record per block with the
/// worktree's name and path, its repository, `env.block`, and `machine` (`uid`, `live`: false
/// for a claim of another user's that no longer holds, which only its owner can remove).
///
/// The record's `repo` is the repository's git common dir's worktree root when it is a
/// `.git` directory, else the common dir itself (a bare repository).
pub fn list_machine(repo: &Repo, ledger: &LedgerFile, out: &mut Output) -> Result<(), Error> {
    let ledger = ledger.read()?;
    wt_common::proc::failpoint::hit("machine-list-read");
    for found in wt_common::ledger::machine_ports::list(&repo.common_dir, &ledger)?.into_values() {
        let c = &found.claim;
        let mut rec = Record::named(&c.worktree);
        let root = if c.repo.ends_with(".git") { c.repo.parent().map(std::path::Path::to_path_buf) } else { None };
        rec.repo = Some(root.unwrap_or_else(|| c.repo.clone()));
        rec.path = Some(c.path.clone());
        rec.set_key("env", json!({"block": {"start": c.start, "end": c.end}}));
        rec.set_key("machine", json!({"uid": c.uid, "live": found.live}));
        out.emit(&rec);
    }
    Ok(())
}

/// The record of a kept database: named after the worktree it was kept from, with `env.kept`:
///
/// ```json
/// {"v":1,"name":"agent-2","repo":"/abs/repo","env":{"kept":{"database":"app_wt2",
///  "kind":"postgres","index":2,"since":1765000000,"size_bytes":8110639}}}
/// ```
///
/// `since` (Unix seconds) and `size_bytes` are left out when unknown; `wt-env --drop-kept`
/// adds `"dropped": true` to `env` once the database is gone.
fn kept_record(repo: &Repo, db_name: &str, k: &kept_db::Kept) -> Record {
    let mut rec = Record::named(&k.worktree);
    rec.repo = Some(repo.root().to_path_buf());
    let mut kept = json!({"database": db_name, "kind": k.database.kind});
    if let Some(index) = k.index {
        kept["index"] = json!(index);
    }
    if let Some(since) = k.since {
        kept["since"] = json!(since);
    }
    if let Some(size) = crate::database::size(&k.database) {
        kept["size_bytes"] = json!(size);
    }
    rec.set_key("env", json!({"kept": kept}));
    rec
}

/// `--list --kept`: every database kept after its worktree was removed.
pub fn list_kept(repo: &Repo, ledger: &LedgerFile, out: &mut Output) -> Result<(), Error> {
    for (db_name, k) in kept_db::all(&*ledger.read()?) {
        out.emit(&kept_record(repo, &db_name, &k));
    }
    Ok(())
}

/// `--drop-kept [NAME…]`: drops the kept databases of the named worktrees (or of those
/// database names), every kept one without names. Says on stderr what it is about to drop
/// before it drops anything; then a record per database, with `"dropped": true` once gone. A
/// name that matches no kept database is an error record.
pub fn drop_kept_named(repo: &Repo, ledger: &LedgerFile, names: &[String], out: &mut Output) -> Result<(), Error> {
    let kept = kept_db::all(&*ledger.read()?);
    for name in names.iter().filter(|n| !kept.iter().any(|(db, k)| db == *n || &k.worktree == *n)) {
        let mut rec = Record::named(name);
        rec.repo = Some(repo.root().to_path_buf());
        let e = Error::failed(
            "no-kept-database",
            format!("no database was kept from '{name}' (see `wt-env --list --kept`)"),
        );
        rec.set_error(TOOL, &e);
        out.emit(&rec);
    }
    let chosen: Vec<Record> = kept
        .iter()
        .filter(|(db, k)| names.is_empty() || names.iter().any(|n| n == *db || *n == k.worktree))
        .map(|(db, k)| kept_record(repo, db, k))
        .collect();
    if chosen.is_empty() {
        if names.is_empty() {
            eprintln!("wt-env: no database is kept; nothing to drop");
        }
        return Ok(());
    }
    let shown: Vec<String> = chosen.iter().map(kept_line).collect();
    eprintln!("wt-env: dropping {} kept database(s): {}", chosen.len(), shown.join("; "));
    for mut rec in chosen {
        let db_name = rec.key("env").and_then(|e| e.pointer("/kept/database")).and_then(Value::as_str);
        let db_name = db_name.unwrap_or_default().to_string();
        match drop_kept(ledger, |k| k.database.name == db_name) {
            Ok(_) => {
                if let Some(Value::Object(env)) = rec.key("env").cloned() {
                    let mut env = env;
                    env.insert("dropped".into(), json!(true));
                    rec.set_key("env", Value::Object(env));
                }
            }
            Err(e) => rec.set_error(TOOL, &e),
        }
        out.emit(&rec);
    }
    Ok(())
}

/// `app_wt2 (from agent-2, 7.7 MiB)`: a kept database as a line says it.
fn kept_line(rec: &Record) -> String {
    let kept = rec.key("env").and_then(|e| e.get("kept")).cloned().unwrap_or_default();
    let mut about = vec![format!("from {}", rec.name)];
    if let Some(size) = kept.get("size_bytes").and_then(Value::as_u64) {
        about.push(wt_common::record::size::human(size));
    }
    format!("{} ({})", kept["database"].as_str().unwrap_or_default(), about.join(", "))
}

/// How long ago `since` (Unix seconds) was: `3h05m ago`.
pub fn ago(since: u64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(since);
    let secs = now.saturating_sub(since);
    if secs >= 2 * 86400 {
        return format!("{} days ago", secs / 86400);
    }
    format!("{} ago", wt_common::record::duration::human(std::time::Duration::from_secs(secs)))
}

/// Gives back the leases of `rec`'s worktree; with `drop_db`, drops its database too. With
/// `forget` the entry goes too, and a database not dropped is listed as kept. A removed worktree
/// holds no lease, but `drop_db` still drops the databases kept from it.
///
/// In three steps, each of which a kill can end: under the ledger's lock the entry read before
/// is checked to be the one still there and released, a database to drop listed as kept; then
/// the database is dropped (no lock held while the server works); then it is forgotten. A
/// database that cannot be dropped stays listed as kept, never lost track of nor dropped from
/// under a worktree made again meanwhile.
pub fn release(repo: &Repo, ledger: &LedgerFile, mut rec: Record, drop_db: bool, forget: bool) -> Record {
    let result = (|| {
        let entry = ledger.read()?.worktrees.get(&rec.name).cloned();
        let Some(entry) = entry else {
            return match drop_db {
                true => drop_kept(ledger, |k| k.worktree == rec.name),
                false => Err(Error::failed("no-lease", format!("'{}' holds no lease", rec.name))),
            };
        };
        // Only a database this lease made is dropped; a lease whose database was never made
        // must not drop one of that name that someone else made.
        let to_drop = lease::db_of(&entry).filter(lease::DbLease::made_by_us).filter(|_| drop_db);
        wt_common::proc::failpoint::hit("release-planned");
        let kept = ledger.update_then(
            |l| {
                // Only the entry read above: one made since under this name (a worktree made
                // again at the same path, say) holds leases of its own, which must not be taken
                // from it. A removed worktree's leases (`forget`) only while it is still gone.
                let made_again = forget && entry.path.join(".git").symlink_metadata().is_ok();
                if l.worktrees.get(&rec.name) != Some(&entry) || made_again {
                    return Err(Error::failed(
                        "lease-changed",
                        format!(
                            "'{}' was leased or made again while its leases were being released; nothing was released: run the command again",
                            rec.name
                        ),
                    ));
                }
                let index = entry.index;
                if forget {
                    l.worktrees.remove(&rec.name);
                } else if let Some(e) = l.worktrees.get_mut(&rec.name) {
                    lease::clear(e);
                    // Not to be dropped: still on the server, so still the worktree's.
                    if let Some(db) = lease::db_of(&entry).filter(|_| !drop_db) {
                        lease::set_db(e, Some(&db));
                    }
                }
                let kept = match (&to_drop, forget) {
                    (Some(db), _) => kept_db::keep_lease(l, &rec.name, index, db.clone()),
                    (None, true) => kept_db::keep(l, &rec.name, &entry),
                    (None, false) => None,
                };
                Ok(kept)
            },
            // Its block is free on the whole machine again, once the ledger says so.
            |_| {
                if let Ok(machine) = MachinePorts::lock(wt_common::proc::lock::default_timeout()) {
                    machine.release(&repo.common_dir, &rec.name);
                }
            },
        )?;
        wt_common::proc::failpoint::hit("release-kept");
        if let Some(db) = &to_drop {
            drop_database(db).map_err(|e| {
                Error::failed(
                    &e.code,
                    format!(
                        "{}; the leases are released and the database {} is kept: drop it later with `wt-env --drop-kept {}`",
                        e.message, db.name, rec.name
                    ),
                )
            })?;
            ledger.update(|l| {
                kept_db::forget(l, &db.name);
                Ok(())
            })?;
        }
        let mut env = json!({"released": true, "database_dropped": to_drop.is_some()});
        if let Some(name) = kept.filter(|_| to_drop.is_none()) {
            env["database_kept"] = json!(name);
        }
        Ok(env)
    })();
    match result {
        Ok(env) => rec.set_key("env", env),
        Err(e) => rec.set_error(TOOL, &e),
    }
    rec
}

/// Drops the kept databases `which` selects, and forgets each once it is gone.
fn drop_kept(ledger: &LedgerFile, which: impl Fn(&kept_db::Kept) -> bool) -> Result<Value, Error> {
    let chosen: Vec<(String, kept_db::Kept)> =
        kept_db::all(&*ledger.read()?).into_iter().filter(|(_, k)| which(k)).collect();
    if chosen.is_empty() {
        return Err(Error::failed("no-lease", "holds no lease and no database was kept from it"));
    }
    for (name, k) in &chosen {
        drop_database(&k.database)?;
        ledger.update(|l| {
            kept_db::forget(l, name);
            Ok(())
        })?;
    }
    let names: Vec<&str> = chosen.iter().map(|(n, _)| n.as_str()).collect();
    Ok(json!({"released": true, "database_dropped": true, "databases": names}))
}

/// Releases the leases of every ledger entry whose worktree git no longer knows or whose
/// directory is gone (`rm -rf` plus `git worktree prune`, or anything else). With `drop_db`,
/// also drops every database kept from worktrees that were removed.
pub fn gc(repo: &Repo, ledger: &LedgerFile, drop_db: bool, out: &mut Output) -> Result<(), Error> {
    let live: Vec<std::path::PathBuf> = repo.worktrees()?.into_iter().map(|w| w.path).collect();
    for (name, entry) in &ledger.read()?.worktrees {
        if live.contains(&entry.path) && entry.path.is_dir() {
            continue;
        }
        let rec = record_from_entry(repo, name, entry);
        out.emit(&release(repo, ledger, rec, drop_db, true));
    }
    if drop_db {
        for (db_name, k) in kept_db::all(&*ledger.read()?) {
            let mut rec = Record::named(&k.worktree);
            rec.repo = Some(repo.root().to_path_buf());
            match drop_kept(ledger, |other| other.database.name == db_name) {
                Ok(env) => rec.set_key("env", env),
                Err(e) => rec.set_error(TOOL, &e),
            }
            out.emit(&rec);
        }
    }
    Ok(())
}
