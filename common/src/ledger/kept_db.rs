//! Databases kept after their worktree went. Removing a worktree never drops its database
//! unless asked (it holds data someone may want), but a kept database must stay known: the
//! ledger lists it under `kept_databases`, so that `wt-env --release --drop-database NAME` and
//! `wt-env --gc --drop-database` can still drop it, and so that its index is not handed to a
//! new worktree, whose database would otherwise be this one, old rows included.
//!
//! ```json
//! "kept_databases": {"app_wt2": {"worktree": "agent-2", "index": 2, "since": 1765000000,
//!   "database": {"kind": "postgres", "name": "app_wt2", "url": "…", "provisioned": true}}}
//! ```
//!
//! `since` (Unix seconds) is when it was first kept; entries written before it existed have none.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ledger::lease::{db_of, DbLease};
use crate::ledger::{Entry, Ledger};

const SECTION: &str = "kept_databases";

/// A database whose worktree is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    /// The name of the worktree it was made for.
    pub worktree: String,
    /// The index that worktree held, which the database's name is made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// When it was first listed as kept, in seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    pub database: DbLease,
}

/// Every kept database, by database name.
pub fn all(l: &Ledger) -> BTreeMap<String, Kept> {
    l.extra.get(SECTION).and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default()
}

fn store(l: &mut Ledger, kept: &BTreeMap<String, Kept>) {
    if kept.is_empty() {
        l.extra.shift_remove(SECTION);
    } else {
        l.extra.insert(SECTION.into(), serde_json::to_value(kept).expect("kept databases serialize"));
    }
}

/// Lists the database of a worktree entry that is being forgotten, if one was made for it.
/// Returns its name.
pub fn keep(l: &mut Ledger, worktree: &str, entry: &Entry) -> Option<String> {
    let db = db_of(entry).filter(DbLease::made_by_us)?;
    keep_lease(l, worktree, entry.index, db)
}

/// Lists `db` as kept from `worktree` (which held `index`). Returns its name.
pub fn keep_lease(l: &mut Ledger, worktree: &str, index: Option<u32>, db: DbLease) -> Option<String> {
    let mut kept = all(l);
    let name = db.name.clone();
    // Kept again (a killed run's retry): it has been kept since the first time.
    let since = kept.get(&name).and_then(|k| k.since).or_else(now);
    kept.insert(name.clone(), Kept { worktree: worktree.to_string(), index, since, database: db });
    store(l, &kept);
    Some(name)
}

fn now() -> Option<u64> {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// Forgets a kept database (once dropped).
pub fn forget(l: &mut Ledger, db_name: &str) {
    let mut kept = all(l);
    if kept.remove(db_name).is_some() {
        store(l, &kept);
    }
}

/// Indices whose database is kept: a new worktree given one of them would get that database.
pub fn reserved_indices(l: &Ledger) -> Vec<u32> {
    all(l).values().filter_map(|k| k.index).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::lease::set_db;

    #[test]
    fn keeps_only_provisioned_databases_and_forgets_them_once_dropped() {
        let mut l = Ledger::default();
        let mut e = Entry::new("/w/a".into());
        e.index = Some(2);
        let db = DbLease {
            kind: "postgres".into(),
            name: "app_wt2".into(),
            url: "u".into(),
            provisioned: false,
            role: None,
            server_url: None,
            creating: false,
        };
        set_db(&mut e, Some(&db));
        assert_eq!(keep(&mut l, "a", &e), None, "never made: nothing to keep");
        set_db(&mut e, Some(&DbLease { provisioned: true, ..db }));
        assert_eq!(keep(&mut l, "a", &e).as_deref(), Some("app_wt2"));
        assert_eq!(reserved_indices(&l), [2]);
        assert_eq!(all(&l)["app_wt2"].worktree, "a");
        assert!(all(&l)["app_wt2"].since.is_some_and(|s| s > 1_700_000_000), "when it was kept");
        forget(&mut l, "app_wt2");
        assert!(all(&l).is_empty() && !l.extra.contains_key(SECTION));
    }
}
