//! Files and symlinks that name the main worktree's absolute path. A virtualenv's `bin/`
//! scripts (`#!/src/app/.venv/bin/python`), `activate` and `pyvenv.cfg`, an editable install's
//! `.pth` file: linked as they are, they would make the worktree run (and `pip install` into)
//! the main checkout's environment. They are copied with the path rewritten instead.
//!
//! A match must end at a path boundary: `/src/app` matches in `/src/app/.venv` and in
//! `'/src/app'`, not in `/src/app.wt/agent-1` or `/src/apple`.

use std::path::{Path, PathBuf};

/// Whether a byte may continue a file name (so a match followed by it is a longer name).
fn continues_name(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+' | b'@' | b'~')
}

/// Offsets of every boundary-terminated occurrence of `needle` in `hay`.
fn matches(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    memchr::memmem::find_iter(hay, needle)
        .filter(|&at| hay.get(at + needle.len()).is_none_or(|&b| !continues_name(b)))
        .collect()
}

pub fn contains_path(hay: &[u8], needle: &[u8]) -> bool {
    !matches(hay, needle).is_empty()
}

/// `bytes` with every occurrence of `from` (at a path boundary) replaced by `to`.
pub fn replace_path(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 64);
    let mut last = 0;
    for at in matches(bytes, from) {
        out.extend_from_slice(&bytes[last..at]);
        out.extend_from_slice(to);
        last = at + from.len();
    }
    out.extend_from_slice(&bytes[last..]);
    out
}

/// A symlink target inside the main worktree, moved to the same place in the worktree; any
/// other target (relative, or outside the main worktree) is kept as it is.
pub fn symlink_target(target: &Path, main: &Path, worktree: &Path) -> PathBuf {
    match target.strip_prefix(main) {
        Ok(rest) if target.is_absolute() => worktree.join(rest),
        _ => target.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_at_path_boundaries() {
        let text = b"#!/src/app/.venv/bin/python\nV='/src/app'\n/src/apple /src/app.wt/x /src/app";
        let out = replace_path(text, b"/src/app", b"/w/t");
        assert_eq!(out, b"#!/w/t/.venv/bin/python\nV='/w/t'\n/src/apple /src/app.wt/x /w/t".to_vec());
        assert!(contains_path(b"x /src/app/y", b"/src/app"));
        assert!(!contains_path(b"x /src/apple", b"/src/app"));
    }

    #[test]
    fn symlinks_into_the_main_worktree_move_relative_ones_stay() {
        let (main, wt) = (Path::new("/src/app"), Path::new("/w/t"));
        assert_eq!(symlink_target(Path::new("/src/app/pkg/a"), main, wt), Path::new("/w/t/pkg/a"));
        assert_eq!(symlink_target(Path::new("../../pkg/a"), main, wt), Path::new("../../pkg/a"));
        assert_eq!(symlink_target(Path::new("/usr/bin/python3"), main, wt), Path::new("/usr/bin/python3"));
    }
}
