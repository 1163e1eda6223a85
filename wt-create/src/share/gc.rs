//! `--store-gc`: removes store entries that nothing links to any more (their link count is 1:
//! only the store's own name is left), and temp files of killed shares. It holds the store lock
//! exclusively, so no share is between adding an entry and linking it.
//!
//! It says what it removed, and what it kept and why: each kept entry is looked up (by inode)
//! in the shared directories of the main worktree and of every worktree wt shared into, so the
//! summary reads "in use by agent-1 (1200 files), agent-2 (1180); 1250 are the main worktree's
//! own files (they cost nothing: the same inode)".

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use wt_common::Error;

use super::status::{human, usage_of, Inode};
use super::store::Store;
use crate::context::Context;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Collected {
    pub files: u64,
    pub bytes: u64,
    pub kept: u64,
}

/// Who holds a kept entry.
#[derive(Debug, Default)]
struct Holders {
    main: HashSet<Inode>,
    /// Each worktree's shared files, by worktree name.
    worktrees: BTreeMap<String, HashSet<Inode>>,
}

impl Holders {
    fn find(ctx: &Context) -> Holders {
        let mut holders = Holders::default();
        let Ok(ledger) = ctx.ledger.read() else { return holders };
        let live = ctx.repo.worktrees().unwrap_or_default();
        let mut all_dirs: HashSet<PathBuf> = HashSet::new();
        for (name, entry) in &ledger.worktrees {
            if !live.iter().any(|w| w.path == entry.path) {
                continue;
            }
            let note = wt_common::ledger::shared_dirs::file(&ctx.repo.state_dir(), name);
            let dirs = wt_common::ledger::shared_dirs::read(&note);
            if dirs.is_empty() {
                continue;
            }
            all_dirs.extend(dirs.iter().cloned());
            let inodes = usage_of(&entry.path, &dirs).inodes.into_keys().collect();
            holders.worktrees.insert(name.clone(), inodes);
        }
        if let Some(main) = ctx.repo.main_worktree.as_deref() {
            let dirs: Vec<PathBuf> = all_dirs.into_iter().collect();
            holders.main = usage_of(main, &dirs).inodes.into_keys().collect();
        }
        holders
    }
}

pub fn run(ctx: &Context) -> Result<Collected, Error> {
    let store = Store::open(&ctx.repo.state_dir(), true)?;
    let holders = Holders::find(ctx);
    let mut done = Collected::default();
    let (mut by_worktree, mut mains, mut elsewhere, mut kept_bytes) = (BTreeMap::new(), 0u64, 0u64, 0u64);
    let files = store.files_dir();
    let io = |e: std::io::Error| Error::io(files.display(), e);
    for fan in fs::read_dir(&files).map_err(io)?.flatten() {
        let Ok(entries) = fs::read_dir(fan.path()) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_file() && meta.nlink() == 1 {
                fs::remove_file(entry.path()).map_err(io)?;
                done.files += 1;
                done.bytes += meta.blocks() * 512;
                continue;
            }
            done.kept += 1;
            let ino = (meta.dev(), meta.ino());
            let mut known = false;
            for (name, inodes) in &holders.worktrees {
                if inodes.contains(&ino) {
                    *by_worktree.entry(name.as_str()).or_insert(0u64) += 1;
                    known = true;
                }
            }
            if holders.main.contains(&ino) {
                mains += 1;
            } else {
                kept_bytes += meta.blocks() * 512;
                elsewhere += u64::from(!known);
            }
        }
        let _ = fs::remove_dir(fan.path()); // only when empty
    }
    for entry in fs::read_dir(store.tmp_dir()).map_err(io)?.flatten() {
        let _ = wt_common::fs::remove_any(&entry.path());
    }
    eprintln!(
        "wt-create: store: removed {} files ({}) that no worktree links to; {}",
        done.files,
        human(done.bytes),
        kept_summary(&done, &by_worktree, mains, elsewhere, kept_bytes)
    );
    Ok(done)
}

/// Why the kept entries stay: `kept 2400 files (12.0 MiB beyond the main worktree's): in use
/// by agent-1 (1200 files), agent-2 (1180); 1250 are the main worktree's own files (they cost
/// nothing: the same inode); 3 are linked from elsewhere (not a worktree wt shared into)`.
fn kept_summary(
    done: &Collected,
    by_worktree: &BTreeMap<&str, u64>,
    mains: u64,
    elsewhere: u64,
    kept_bytes: u64,
) -> String {
    if done.kept == 0 {
        return "kept nothing".into();
    }
    let mut why = Vec::new();
    if !by_worktree.is_empty() {
        let users: Vec<String> = by_worktree
            .iter()
            .enumerate()
            .map(|(i, (name, n))| if i == 0 { format!("{name} ({n} files)") } else { format!("{name} ({n})") })
            .collect();
        why.push(format!("in use by {}", users.join(", ")));
    }
    if mains > 0 {
        why.push(format!("{mains} are the main worktree's own files (they cost nothing: the same inode)"));
    }
    if elsewhere > 0 {
        why.push(format!("{elsewhere} are linked from elsewhere (not a worktree wt shared into)"));
    }
    format!("kept {} files ({} beyond the main worktree's): {}", done.kept, human(kept_bytes), why.join("; "))
}
