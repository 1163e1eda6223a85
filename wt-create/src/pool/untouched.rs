//! Whether a pooled worktree is still as its fill left it, read whole: a pooled worktree sits in
//! the worktree root, where any unconfined process can write into it, and a claim must hand out
//! what a fresh create would make. Asked by a claim when the seal (`seal`) no longer matches,
//! and of every pooled worktree by each refill (`fill::reverify`). Untouched means: no lock file in its
//! admin dir (a git killed in it, or one planted), no tracked file changed (`git diff-files`),
//! no untracked file (`git ls-files -o --exclude-standard`), and each include file byte-equal
//! to the main worktree's (read without following a link or blocking on a FIFO).

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use wt_common::git;

use super::Pooled;
use crate::context::Context;

/// The largest include file compared; a bigger one counts as changed (a claim then makes a
/// fresh worktree, which copies it).
const INCLUDE_MAX: u64 = 4 << 20;

pub fn untouched(ctx: &Context, pooled: &Pooled) -> bool {
    let admin = ctx.repo.common_dir.join("worktrees").join(&pooled.id);
    let no_locks = std::fs::read_dir(&admin)
        .is_ok_and(|d| d.flatten().all(|e| !e.file_name().to_string_lossy().ends_with(".lock")));
    let includes = match ctx.repo.main_worktree.as_deref() {
        Some(main) => match crate::include::selected(&ctx.repo, main) {
            Ok(selected) => selected,
            Err(_) => return false,
        },
        None => Vec::new(),
    };
    no_locks
        // At its commit, nothing staged (a staged change matches the files, so diff-files
        // would not see it), and no entry hidden from git (assume-unchanged, skip-worktree).
        && super::admin_head(&admin).is_some_and(|h| h == pooled.commit)
        && git::run(&pooled.path, ["diff-index", "--cached", "--quiet", "HEAD", "--"]).is_ok()
        && git::run(&pooled.path, ["ls-files", "-v", "-z"])
            .is_ok_and(|o| o.split('\0').filter(|e| !e.is_empty()).all(|e| e.starts_with("H ")))
        && git::run(&pooled.path, ["diff-files", "--quiet", "--ignore-submodules"]).is_ok()
        && git::run(&pooled.path, ["ls-files", "-z", "--others", "--exclude-standard"]).is_ok_and(|o| o.is_empty())
        && ignored_are_ours(ctx, &pooled.path, &includes)
        && includes_equal(ctx, &pooled.path, &includes)
}

/// Whether every ignored path in the pooled worktree is one the fill put there: a shared
/// directory, an include file, or a directory holding nothing but include files (git names a
/// wholly ignored directory, not its files). A `.env` planted beside them is not.
fn ignored_are_ours(ctx: &Context, pooled: &Path, includes: &[String]) -> bool {
    let shared: Vec<&Path> =
        ctx.share.as_ref().map(|s| s.dirs.iter().map(PathBuf::as_path).collect()).unwrap_or_default();
    let Ok(listed) = git::run(pooled, ["ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory"])
    else {
        return false;
    };
    listed.split('\0').filter(|e| !e.is_empty()).all(|entry| {
        let rel = Path::new(entry.trim_end_matches('/'));
        shared.contains(&rel)
            || includes.iter().any(|i| Path::new(i) == rel)
            || (entry.ends_with('/') && only_includes(pooled, rel, includes))
    })
}

/// Whether directory `rel` holds include files and directories leading to them, and nothing
/// else (looked at without following a link; at most `LISTED_MAX` entries).
fn only_includes(pooled: &Path, rel: &Path, includes: &[String]) -> bool {
    const LISTED_MAX: usize = 10_000;
    let mut stack = vec![rel.to_path_buf()];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(pooled.join(&dir)) else { return false };
        for entry in entries.flatten() {
            seen += 1;
            let sub = dir.join(entry.file_name());
            let Ok(kind) = entry.file_type() else { return false };
            let leads = includes.iter().any(|i| Path::new(i).starts_with(&sub) && Path::new(i) != sub);
            let is_include = includes.iter().any(|i| Path::new(i) == sub);
            match (kind.is_dir(), kind.is_file()) {
                (true, _) if leads => stack.push(sub),
                (_, true) if is_include => {}
                _ => return false,
            }
            if seen > LISTED_MAX {
                return false;
            }
        }
    }
    true
}

fn includes_equal(ctx: &Context, pooled: &Path, selected: &[String]) -> bool {
    let Some(main) = ctx.repo.main_worktree.as_deref() else { return true };
    selected.iter().all(|rel| match (read_regular(&main.join(rel)), read_regular(&pooled.join(rel))) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    })
}

/// The bytes of a regular file, opened without following a link or blocking; `None` for
/// anything else, or one larger than `INCLUDE_MAX`.
fn read_regular(path: &Path) -> Option<Vec<u8>> {
    let flags = nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(flags).open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > INCLUDE_MAX {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(INCLUDE_MAX + 1).read_to_end(&mut bytes).ok()?;
    (bytes.len() as u64 <= INCLUDE_MAX).then_some(bytes)
}
