//! Where a repository's supervisor listens: a file socket in a directory only its user can
//! enter (`$XDG_RUNTIME_DIR/wt/`, else `/tmp/wt-$UID/`), named after a hash of the repository's
//! common dir so the path stays far below the 108-byte limit of socket paths.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use wt_common::Error;

/// The 0700 directory of this user's sockets, created if needed and checked if it exists.
pub fn socket_dir() -> Result<PathBuf, Error> {
    let uid = nix::unistd::getuid().as_raw();
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(run) => PathBuf::from(run).join("wt"),
        None => PathBuf::from(format!("/tmp/wt-{uid}")),
    };
    if !dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(|e| Error::io(dir.display(), e))?;
    }
    let meta = std::fs::metadata(&dir).map_err(|e| Error::io(dir.display(), e))?;
    if meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
        return Err(Error::env(
            "unsafe-socket-dir",
            format!("{} must belong to you and be private (chmod 700 it, or remove it)", dir.display()),
        ));
    }
    Ok(dir)
}

/// The socket of the repository whose common dir is `common_dir`.
pub fn socket_path(common_dir: &Path) -> Result<PathBuf, Error> {
    Ok(socket_dir()?.join(format!("{}.sock", repo_hash(common_dir))))
}

/// What identifies a repository in names outside it: its git common dir, hashed.
pub fn repo_hash(common_dir: &Path) -> String {
    format!("{:016x}", fnv1a(common_dir.as_os_str().as_encoded_bytes()))
}

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

/// Whether `dir` is covered here, as inside a confined run: a read-only file system where a
/// supervisor's socket should be.
pub fn hidden_here(dir: &Path) -> bool {
    nix::sys::statvfs::statvfs(dir).is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// FNV-1a: stable across builds and Rust versions (unlike `DefaultHasher`), so every wt-run
/// binary finds the same socket.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}
