//! `--share-status`: the disk the shared directories really use, against what full copies would
//! use. A file's blocks are counted once however many names it has (hard links), so the figures
//! are what `du` over all worktrees together would say, not `du` of each worktree alone. The
//! total beyond the main worktree's counts the shared trees and the store, directories
//! included, and leaves out every inode the main worktree's trees hold: a store entry (and a
//! worktree's file) that is a hard link of the main worktree's own file costs nothing.
//! Reflinked files are separate inodes that share blocks; no file-system count (this one or
//! `du`) sees that sharing, so with reflinks the real use is lower than shown.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::json;
use wt_common::record::output::Output;
use wt_common::Error;

use super::method;
use crate::context::Context;

pub type Inode = (u64, u64);

/// What one tree holds.
#[derive(Debug, Default)]
pub struct Usage {
    /// Bytes the tree would take as a full copy: every file's blocks, and its directories'.
    full: u64,
    files: u64,
    /// Blocks of each file inode (by device and inode number), counted once.
    pub inodes: HashMap<Inode, u64>,
    /// Blocks of the directories themselves (never shared).
    dir_bytes: u64,
}

fn walk(dir: &Path, usage: &mut Usage) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        let bytes = meta.blocks() * 512;
        if meta.is_dir() {
            usage.full += bytes;
            usage.dir_bytes += bytes;
            walk(&entry.path(), usage);
        } else if meta.is_file() {
            usage.full += bytes;
            usage.files += 1;
            usage.inodes.insert((meta.dev(), meta.ino()), bytes);
        }
    }
}

pub fn usage_of(root: &Path, dirs: &[PathBuf]) -> Usage {
    let mut usage = Usage::default();
    for dir in dirs {
        walk(&root.join(dir), &mut usage);
    }
    usage
}

pub fn run(ctx: &Context, out: &mut Output) -> Result<(), Error> {
    let Some(main) = ctx.repo.main_worktree.clone() else {
        return Err(Error::usage("no-main-worktree", "a bare repository has no main worktree to share from"));
    };
    let ledger = ctx.ledger.read()?;
    let worktrees = ctx.repo.worktrees()?;
    let mut trees = Vec::new();
    let mut all_dirs: HashSet<PathBuf> = HashSet::new();
    for (name, entry) in &ledger.worktrees {
        let Some(wt) = worktrees.iter().find(|w| w.path == entry.path) else { continue };
        let dirs =
            wt_common::ledger::shared_dirs::read(&wt_common::ledger::shared_dirs::file(&ctx.repo.state_dir(), name));
        if dirs.is_empty() {
            continue;
        }
        all_dirs.extend(dirs.iter().cloned());
        trees.push((name.clone(), wt, entry, usage_of(&wt.path, &dirs), dirs));
    }
    let main_dirs: Vec<PathBuf> = all_dirs.into_iter().collect();
    let main_usage = usage_of(&main, &main_dirs);
    // How many worktrees hold each inode, to tell a worktree's own blocks from shared ones.
    let mut holders: HashMap<Inode, usize> = HashMap::new();
    for (_, _, _, u, _) in &trees {
        for ino in u.inodes.keys() {
            *holders.entry(*ino).or_default() += 1;
        }
    }
    // What each worktree really costs, its checkout and build dirs included (`disk`).
    let measured =
        wt_common::git::worktree_cost::measure(&ctx.repo, &ledger, &crate::budget::build_names(ctx)?, Some(&ctx.root))?;
    let mut total_full = 0u64;
    for (name, wt, entry, u, dirs) in &trees {
        let own: u64 = u.dir_bytes
            + u.inodes
                .iter()
                .filter(|(ino, _)| holders[*ino] == 1 && !main_usage.inodes.contains_key(*ino))
                .map(|(_, b)| b)
                .sum::<u64>();
        total_full += u.full;
        let mut rec = ctx.record(name, wt, Some(entry));
        rec.set_key(
            "share",
            json!({"status": {"dirs": dirs, "files": u.files, "full_bytes": u.full, "own_bytes": own,
                              "linked_bytes": u.full.saturating_sub(own)}}),
        );
        if let Some(cost) = measured.worktrees.iter().find(|w| &w.name == name) {
            rec.set_key("disk", wt_common::git::worktree_cost::disk_value(cost));
        }
        out.emit(&rec);
    }
    // What is really on disk beyond the main worktree: every inode of the shared trees and of
    // the store (files and directories alike), each once, leaving out the main worktree's own
    // (a store entry that is a hard link of a main worktree's file costs nothing). This is
    // what `du` over the trees and the store says, less the main worktree's part.
    let mut roots: Vec<PathBuf> =
        trees.iter().flat_map(|(_, wt, _, _, dirs)| dirs.iter().map(|d| wt.path.join(d))).collect();
    roots.push(ctx.repo.state_dir().join("store"));
    let main_inodes: HashSet<Inode> = main_usage.inodes.keys().copied().collect();
    let total_used = on_disk(&roots, &main_inodes);
    let pct = if total_full == 0 { 0.0 } else { 100.0 * total_used as f64 / total_full as f64 };
    let mut summary = format!(
        "shared directories of {} worktrees: {} on disk beyond the main worktree's, against {} as full copies ({pct:.1}%)",
        trees.len(),
        human(total_used),
        human(total_full)
    );
    let store_tmp = ctx.repo.state_dir().join("store/tmp");
    if store_tmp.is_dir() && method::reflinks_work(&store_tmp, &store_tmp) {
        summary.push_str("; this file system makes reflinks, whose shared blocks neither this count nor du can see");
    }
    eprintln!("wt-create: {summary}");
    eprintln!("wt-create: {}", all_worktrees(&measured));
    Ok(())
}

/// The blocks of everything under `roots` (the roots included), each inode once, leaving out
/// `except`. Never follows a link.
fn on_disk(roots: &[PathBuf], except: &HashSet<Inode>) -> u64 {
    let mut seen: HashSet<Inode> = HashSet::new();
    let mut bytes = 0;
    let mut stack = roots.to_vec();
    while let Some(path) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&path) else { continue };
        let ino = (meta.dev(), meta.ino());
        if !except.contains(&ino) && seen.insert(ino) {
            bytes += meta.blocks() * 512;
        }
        if meta.is_dir() {
            stack.extend(fs::read_dir(&path).into_iter().flatten().flatten().map(|e| e.path()));
        }
    }
    bytes
}

pub use wt_common::record::size::human;

/// The machine's total for all of wt's worktrees of this repository: `all 3 worktrees of wt:
/// 1.2 GiB on disk beyond the main worktree's (checkouts 20 MiB, build dirs 1.1 GiB, store
/// 80 MiB)`.
pub fn all_worktrees(m: &wt_common::git::worktree_cost::Measured) -> String {
    let checkouts: u64 = m.worktrees.iter().map(|w| w.cost.checkout).sum();
    let builds: u64 = m.worktrees.iter().map(|w| w.cost.build()).sum();
    format!(
        "all {} worktrees of wt: {} on disk beyond the main worktree's (checkouts {}, build dirs {}, store {}{})",
        m.worktrees.len(),
        human(m.total()),
        human(checkouts),
        human(builds),
        human(m.store),
        m.others_text()
    )
}
