//! Directories whose tools rewrite files in place. Through a hard link such a write would change
//! the main worktree's copy and every other worktree's, so these are cloned (reflink) or copied,
//! never hard-linked.

use std::path::Path;

/// Why `dir` (in the main worktree) must not be hard-linked, or `None` if it may be.
pub fn reason(dir: &Path) -> Option<&'static str> {
    let cargo = dir.join(".rustc_info.json").is_file()
        || wt_common::fs::read_untrusted(&dir.join("CACHEDIR.TAG"), 4096)
            .is_ok_and(|t| t.is_some_and(|t| t.contains("cargo")));
    cargo.then_some("cargo rewrites files in its target directory in place")
}
