//! Ignored files that may be work: `git status` lists none of them, yet a `.env` holding the
//! only copy of a key, or a `dev.sqlite3`, is lost with its worktree. Before `--remove-idle`
//! removes a whole worktree, every untracked ignored path in it is listed (`git ls-files
//! --others --ignored --directory`, within `git::read_timeout()`), and the worktree is kept
//! when any is not:
//! - in one of its confirmed build directories (rebuildable),
//! - a file wt itself wrote there (`.env.wt`, wt-env's brief: the state dir's `secret-files`),
//! - a regular file identical to the main worktree's file at the same path (a copy that
//!   `.worktreeinclude` made), or a symbolic link to the same place,
//! - a FIFO, socket or device (no data).
//!
//! A whole ignored directory that is no build directory counts as work: it is not compared.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use wt_common::git::build_dirs;
use wt_common::git::worktree_check::Registered;
use wt_common::Error;

/// Files larger than this are not compared with the main worktree's: kept as work.
const COMPARED_MAX: u64 = 256 << 20;

/// The ignored paths of the worktree at `reg` that may be work (see the module's comment).
pub fn work(
    reg: &Registered,
    build_dirs: &[PathBuf],
    wt_files: &[PathBuf],
    main: Option<&Path>,
) -> Result<Vec<PathBuf>, Error> {
    let mut work = Vec::new();
    for ignored in build_dirs::ignored(reg, &["--no-empty-directory"], &[])? {
        let (rel, is_dir) = (ignored.rel, ignored.whole_dir);
        if build_dirs.iter().any(|d| rel.starts_with(d)) || wt_files.iter().any(|f| f == &rel) {
            continue;
        }
        if !is_dir && !is_data(&reg.path.join(&rel)) {
            continue;
        }
        if !is_dir && main.is_some_and(|m| same_file(&reg.path.join(&rel), &m.join(&rel))) {
            continue;
        }
        work.push(rel);
    }
    Ok(work)
}

/// Work named for a `why`: `.env, dev.sqlite3 and 3 more`.
pub fn named(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().take(3).map(|p| p.display().to_string()).collect();
    match paths.len().saturating_sub(3) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

/// Not a FIFO, socket or device (looked at without following a link).
fn is_data(path: &Path) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(m) => {
            let t = m.file_type();
            !(t.is_fifo() || t.is_socket() || t.is_block_device() || t.is_char_device())
        }
        // Gone meanwhile, or unreadable: taken as work.
        Err(_) => true,
    }
}

/// Whether `a` (in the worktree) holds what `b` (in the main worktree) does: two regular files
/// of the same bytes, or two links to the same place. No link is followed, no FIFO opened.
fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (std::fs::symlink_metadata(a), std::fs::symlink_metadata(b)) else { return false };
    if ma.file_type().is_symlink() && mb.file_type().is_symlink() {
        return matches!((std::fs::read_link(a), std::fs::read_link(b)), (Ok(x), Ok(y)) if x == y);
    }
    if !(ma.is_file() && mb.is_file()) || ma.len() != mb.len() || ma.len() > COMPARED_MAX {
        return false;
    }
    let open = |p: &Path| {
        std::fs::OpenOptions::new().read(true).custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK).open(p)
    };
    let (Ok(mut fa), Ok(mut fb)) = (open(a), open(b)) else { return false };
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = match read_full(&mut fa, &mut ba) {
            Ok(n) => n,
            Err(_) => return false,
        };
        match read_full(&mut fb, &mut bb[..n.max(1)]) {
            Ok(m) if m == n => {}
            _ => return false,
        }
        if n == 0 {
            return true;
        }
        if ba[..n] != bb[..n] {
            return false;
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
