//! Where a repository's supervisor listens (`wt_common::proc::supervisor`: a file socket in a 0700
//! directory, named after a hash of the repository's common dir), and where a confined pane's
//! own socket and the other control planes a confined command must not reach are.

use std::path::{Path, PathBuf};

pub use wt_common::fs::fnv::fnv1a;
pub use wt_common::proc::supervisor::{hidden_here, repo_hash, socket_dir, socket_path};

/// The socket of a confined pane's own, beside its supervisor's: `<hash>.pane-<hash of name>.sock`
/// (a hash, so a long pane name cannot push the path past the limit).
pub fn pane_socket_path(supervisor: &Path, pane: &str) -> PathBuf {
    let stem = supervisor.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    supervisor.with_file_name(format!("{stem}.pane-{:016x}.sock", fnv1a(pane.as_bytes())))
}

/// Every directory where a pane supervisor or a tmux server of this user may listen, as this
/// process's environment names them: what a confined command must not reach, since either
/// would run anything it is asked to, unconfined.
pub fn control_dirs() -> Vec<PathBuf> {
    let uid = nix::unistd::getuid().as_raw();
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let mut dirs = Vec::new();
    if let Some(run) = var("XDG_RUNTIME_DIR") {
        dirs.push(run.join("wt"));
    }
    dirs.push(PathBuf::from(format!("/tmp/wt-{uid}")));
    if let Some(tmp) = var("TMUX_TMPDIR") {
        dirs.push(tmp.join(format!("tmux-{uid}")));
    }
    dirs.push(PathBuf::from(format!("/tmp/tmux-{uid}")));
    // Inside tmux, TMUX is "<socket>,<pid>,<session>": the server that holds this terminal.
    let tmux = std::env::var("TMUX").unwrap_or_default();
    if let Some(dir) = tmux.split(',').next().map(Path::new).and_then(Path::parent).filter(|d| d.is_absolute()) {
        dirs.push(dir.to_path_buf());
    }
    dirs
}
