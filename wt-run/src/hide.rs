//! Which directories a confined command must not see: every place a pane supervisor or a tmux
//! server of this user may listen (either would run anything it is asked to, unconfined), and
//! those a caller adds (`Policy::hide`). The helper's mount namespace (`confine::namespace`)
//! covers each with an empty read-only tmpfs and binds chosen files (a pane's own socket)
//! back in at their paths; Landlock, applied next, forbids every later mount and umount, so
//! the command cannot lift a cover, and forbids reaching another process's view through
//! `/proc/PID/root`.

use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

/// A cover's options: private to its owner, and small (nothing is ever written in it).
pub const COVER: &str = "mode=0700,size=64k,nr_inodes=64";

/// The directories to cover: `extra` and every control-plane directory, each once, made first
/// if missing (private, as their owners make them), so a supervisor started later is hidden
/// too; a directory whose parent is missing is left out: nothing listens there.
pub fn dirs(extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    // wt's ssh control sockets run commands at a host with no key asked: never reachable.
    let ssh = wt_common::host::ssh::control_dir();
    for dir in extra.iter().cloned().chain(crate::pane::socket::control_dirs()).chain([ssh]) {
        let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
        if let Ok(real) = dir.canonicalize() {
            if real.is_dir() && !out.contains(&real) {
                out.push(real);
            }
        }
    }
    out
}
