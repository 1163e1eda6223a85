//! Whether a pooled worktree is still as its fill left it, read whole: a pooled worktree sits in
//! the worktree root, where any unconfined process can write into it, and a claim must hand out
//! what a fresh create would make. Asked by a claim when the seal (`seal`) no longer matches,
//! and of every pooled worktree by each refill (`fill::reverify`). Untouched means: no lock file in its
//! admin dir (a git killed in it, or one planted), no tracked file changed (`git diff-files`),
//! no untracked file (`git ls-files -o --exclude-standard`), and each include file byte-equal
//! to the main worktree's (read without following a link or blocking on a FIFO).

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

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
    no_locks
        && git::run(&pooled.path, ["diff-files", "--quiet", "--ignore-submodules"]).is_ok()
        && git::run(&pooled.path, ["ls-files", "-z", "--others", "--exclude-standard"]).is_ok_and(|o| o.is_empty())
        && includes_equal(ctx, &pooled.path)
}

fn includes_equal(ctx: &Context, pooled: &Path) -> bool {
    let Some(main) = ctx.repo.main_worktree.as_deref() else { return true };
    let Ok(selected) = crate::include::selected(&ctx.repo, main) else { return false };
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
