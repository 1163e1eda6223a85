//! A seal on a pooled worktree: the stat data of what a write into it changes, taken when the
//! pooled worktree was last known untouched (just made or advanced by a fill, or found
//! untouched by a refill's check). A claim compares the seal — a few hundred `lstat` calls —
//! instead of reading the whole checkout (`untouched`: `git diff-files` and
//! `git ls-files -o`, 180 ms on 40,000 files, which is most of a claim there).
//!
//! Sealed: every directory that holds a tracked or an include file, and the worktree's root (a
//! file made, removed or renamed in a directory changes its mtime and ctime; an editor that
//! saves by writing a new file and renaming it too), each include file itself, the `.git` link,
//! and the admin dir's `index` and `HEAD` (any git that wrote in the worktree); a lock file in
//! the admin dir breaks it too. The same seal means none of that changed.
//!
//! What a seal cannot see: a tracked file rewritten in place (`echo x >> src/lib.rs`: no
//! directory changes). Each refill checks every pooled worktree of its base whole again
//! (`reverify`) and removes one written into, so such a write is seen at the next refill (one
//! runs after every claim), not at the claim. Who can write there at all: a confined agent
//! cannot (its Landlock rules let it write only in its own worktree); an unconfined process
//! can write into any worktree, pooled or not.
//!
//! Timestamps are coarse (a clock tick, 4–10 ms): a write in the same tick as the last write
//! before the seal could leave a directory's times unchanged. So a seal is only taken once its
//! newest time is more than `SETTLE` old (the fill waits for that), as git treats an index
//! entry as racy when it is as new as the index.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use wt_common::fs::stamp::Stamp;
use wt_common::git;

use super::Pooled;
use crate::context::Context;

/// How old the newest sealed time must be: well over a clock tick.
const SETTLE: Duration = Duration::from_millis(50);

/// The same on a file system whose times have whole seconds only (no nanoseconds anywhere in
/// the seal: ext4 with small inodes, vfat, some NFS): a write a second later can keep them.
const SETTLE_COARSE: Duration = Duration::from_millis(2100);

/// The most of a seal file read (a tree of 100,000 directories fits).
const SEAL_MAX: u64 = 16 << 20;

/// The seal's file: `<state>/pool/<id>.seal`, beside the journal. Paths are relative: `w/…` in
/// the worktree (`w/` its root), `a/…` in its admin dir.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal(BTreeMap<String, Stamp>);

fn file(ctx: &Context, id: &str) -> std::path::PathBuf {
    super::dir(ctx).join(format!("{id}.seal"))
}

fn admin(ctx: &Context, id: &str) -> std::path::PathBuf {
    ctx.repo.common_dir.join("worktrees").join(id)
}

/// What a seal covers, as (key, path): see the module's comment.
fn covered(ctx: &Context, pooled: &Pooled) -> Option<Vec<(String, std::path::PathBuf)>> {
    let tracked = git::run(&pooled.path, ["ls-files", "-z", "--full-name"]).ok()?;
    let includes = match ctx.repo.main_worktree.as_deref() {
        Some(main) => crate::include::selected(&ctx.repo, main).ok()?,
        None => Vec::new(),
    };
    let mut dirs = std::collections::BTreeSet::from([String::new()]);
    for rel in tracked.split('\0').chain(includes.iter().map(String::as_str)).filter(|r| !r.is_empty()) {
        let mut at = rel;
        while let Some((parent, _)) = at.rsplit_once('/') {
            if !dirs.insert(parent.to_string()) {
                break; // its ancestors are in too
            }
            at = parent;
        }
    }
    let mut out: Vec<(String, std::path::PathBuf)> =
        dirs.into_iter().map(|d| (format!("w/{d}"), pooled.path.join(&d))).collect();
    out.extend(includes.iter().map(|rel| (format!("w/{rel}"), pooled.path.join(rel))));
    out.push(("w/.git".into(), pooled.path.join(".git")));
    let admin = admin(ctx, &pooled.id);
    out.extend(["index", "HEAD"].map(|f| (format!("a/{f}"), admin.join(f))));
    Some(out)
}

/// Refreshes the index's stat data (so that a later check, and the agent's first
/// `git status`, need not read racily clean files), then seals: for a pooled worktree a fill
/// just made or advanced, holding its lock.
pub fn refresh_and_take(ctx: &Context, pooled: &Pooled, held: &wt_common::proc::lock::FileLock) {
    let mut refresh = git::command(&pooled.path);
    refresh.args(["update-index", "-q", "--refresh"]);
    // Exits 1 when a file differs: the fill just wrote them all, so it is only racy data.
    let _ = git::output_under(&mut refresh, held);
    take(ctx, pooled);
}

/// Seals a pooled worktree as it is now (call when it is known untouched, holding its lock).
/// Waits until the newest time in it has settled. A seal that cannot be taken is not written:
/// the claim then checks the whole checkout.
pub fn take(ctx: &Context, pooled: &Pooled) {
    forget(ctx, &pooled.id);
    for _ in 0..40 {
        let Some(seal) = snapshot(ctx, pooled) else { return };
        let young = unsettled(&seal);
        if young.is_zero() {
            return store(ctx, pooled, &seal);
        }
        std::thread::sleep(young.min(SETTLE_COARSE));
    }
}

/// The stat data a seal would hold now; `None` if something it covers is missing.
pub fn snapshot(ctx: &Context, pooled: &Pooled) -> Option<Seal> {
    let mut seal = Seal::default();
    for (key, path) in covered(ctx, pooled)? {
        seal.0.insert(key, Stamp::of(&path)?);
    }
    Some(seal)
}

/// Seals with `before` (a snapshot taken before a whole check found the worktree untouched) if
/// nothing changed since it, and its times have settled: a write during the check is never
/// sealed as checked.
pub fn store_if_unchanged(ctx: &Context, pooled: &Pooled, before: Option<Seal>) {
    if let Some(before) = before {
        if snapshot(ctx, pooled).as_ref() == Some(&before) {
            store(ctx, pooled, &before);
        }
    }
}

/// How long until the newest time in `seal` is `SETTLE` old (`SETTLE_COARSE` where the file
/// system keeps no nanoseconds).
fn unsettled(seal: &Seal) -> Duration {
    let newest = seal.0.values().map(Stamp::newest_nanos).max().unwrap_or(0);
    let coarse = seal.0.values().all(|s| s.mtime.1 == 0 && s.ctime.1 == 0);
    let settle = if coarse { SETTLE_COARSE } else { SETTLE };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128);
    Duration::from_nanos(u64::try_from(newest + settle.as_nanos() as i128 - now).unwrap_or(0))
}

/// A snapshot fit to seal with after a whole check (`store_if_unchanged`): only one whose
/// times had settled when it was taken, so that no write during the check can keep them.
pub fn settled_snapshot(ctx: &Context, pooled: &Pooled) -> Option<Seal> {
    snapshot(ctx, pooled).filter(|s| unsettled(s).is_zero())
}

fn store(ctx: &Context, pooled: &Pooled, seal: &Seal) {
    let bytes = serde_json::to_vec(seal).expect("a seal serializes");
    if let Err(e) = wt_common::fs::write_replace(&file(ctx, &pooled.id), &bytes) {
        tracing::warn!("pooled worktree {}: cannot write its seal: {e}", pooled.id);
    }
}

/// Whether the seal holds: taken, and nothing it covers changed, and no lock file in the admin
/// dir. `false` says only "not known untouched": the claim then checks the whole checkout.
pub fn intact(ctx: &Context, pooled: &Pooled) -> bool {
    let Ok(Some(text)) = wt_common::fs::read_untrusted(&file(ctx, &pooled.id), SEAL_MAX) else { return false };
    let Ok(seal) = serde_json::from_str::<Seal>(&text) else { return false };
    let admin = admin(ctx, &pooled.id);
    let no_locks = std::fs::read_dir(&admin)
        .is_ok_and(|d| d.flatten().all(|e| !e.file_name().to_string_lossy().ends_with(".lock")));
    no_locks
        && !seal.0.is_empty()
        && seal.0.iter().all(|(key, stamp)| {
            let path = match (key.strip_prefix("w/"), key.strip_prefix("a/")) {
                (Some(rel), _) if safe(rel) => pooled.path.join(rel),
                (_, Some(rel)) if safe(rel) => admin.join(rel),
                _ => return false,
            };
            Stamp::of(&path).as_ref() == Some(stamp)
        })
}

/// A key's path stays beneath its base (a seal file is wt's, but is read as any file there is).
fn safe(rel: &str) -> bool {
    rel.split('/').all(|c| c != ".." && c != ".") && !rel.starts_with('/')
}

pub fn forget(ctx: &Context, id: &str) {
    let _ = std::fs::remove_file(file(ctx, id));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_leave_their_base_are_refused() {
        assert!(safe("src/lib.rs") && safe(""));
        assert!(!safe("../x") && !safe("a/../../x") && !safe("/etc") && !safe("a/./b"));
    }

    #[test]
    fn a_stamp_changes_when_a_file_is_made_in_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let before = Stamp::of(dir.path()).unwrap();
        // As `take` does: the seal is of times older than `SETTLE`, so a write after it lands
        // in a later clock tick.
        std::thread::sleep(SETTLE);
        std::fs::write(dir.path().join("planted"), "x").unwrap();
        assert_ne!(Stamp::of(dir.path()).unwrap(), before);
    }
}
