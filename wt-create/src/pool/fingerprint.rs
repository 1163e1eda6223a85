//! What a pooled worktree took from the main worktree when it was filled, as one digest: the
//! dependency files (lock files and manifests, as `share::lockfiles` compares them) beside the
//! worktree root and every shared directory, what is shared and how, and the size and time of
//! each `.worktreeinclude` file. A claim takes only a pooled worktree with the digest the
//! claiming run computes: one filled before `package-lock.json` changed holds the old
//! `node_modules`, and one filled before `.env` changed holds the old `.env`.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::context::Context;
use crate::share::lockfiles;

/// The digest for this run's sharing (computed once: a run claims and fills with one sharing).
pub fn of(ctx: &Context) -> String {
    static DIGEST: OnceLock<String> = OnceLock::new();
    DIGEST.get_or_init(|| compute(ctx)).clone()
}

fn compute(ctx: &Context) -> String {
    let mut h = Sha256::new();
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::from([PathBuf::new()]);
    match &ctx.share {
        Some(s) => {
            h.update(format!("share {:?} pnpm={} mode={:?}\n", s.dirs, s.pnpm, s.mode));
            for d in &s.dirs {
                dirs.extend(d.ancestors().skip(1).map(Path::to_path_buf));
            }
        }
        None => h.update(b"share none\n"),
    }
    let Some(main) = ctx.repo.main_worktree.as_deref() else { return hex(h) };
    for dir in &dirs {
        let Ok(entries) = std::fs::read_dir(main.join(dir)) else { continue };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| lockfiles::is_lock_file(n) || lockfiles::MANIFESTS.contains(&n.as_str()))
            .collect();
        names.sort();
        for name in names {
            let path = main.join(dir).join(&name);
            // Read as a file an agent could have placed: no link, no FIFO, at most 256 MiB.
            let content =
                wt_common::fs::untrusted::open_untrusted(&path, 256 << 20).ok().flatten().map(|(mut f, _)| {
                    let mut bytes = Vec::new();
                    let _ = std::io::Read::read_to_end(&mut f, &mut bytes);
                    hex(Sha256::new_with_prefix(&bytes))
                });
            h.update(format!("dep {} {:?}\n", dir.join(&name).display(), content));
        }
    }
    if let Ok(selected) = crate::include::selected(&ctx.repo, main) {
        for rel in selected {
            let meta = std::fs::symlink_metadata(main.join(&rel)).ok();
            // ctime too: `cp -p` or `touch -r` onto the file can put its size and mtime back.
            let stamp = meta.map(|m| (m.len(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec(), m.ino()));
            h.update(format!("include {rel} {stamp:?}\n"));
        }
    }
    hex(h)
}

fn hex(h: Sha256) -> String {
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
