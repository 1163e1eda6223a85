//! Where a repository's pane supervisor listens: a file socket in a directory only its user can
//! enter (`$XDG_RUNTIME_DIR/wt/`, else `/tmp/wt-$UID/`), named after a hash of the repository's
//! common dir so the path stays far below the 108-byte limit of socket paths.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::Error;

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

/// FNV-1a: stable across builds and Rust versions (unlike `DefaultHasher`), so every wt-run
/// binary finds the same socket.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}
