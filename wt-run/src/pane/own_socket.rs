//! A confined pane's own socket: a listener beside the supervisor's, whose connections act for
//! that pane only (see `access`). It lives until the pane's name is spawned again or the
//! supervisor exits; then its listener is shut down (which ends the thread blocked in accept)
//! and its file removed.

use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct OwnSocket {
    /// Which socket this is: a connection accepted by an earlier pane's socket of the same
    /// name must not act for the pane that replaced it.
    pub id: u64,
    pub path: PathBuf,
    pub read_panes: bool,
    listener: UnixListener,
}

impl OwnSocket {
    /// Listens at `path` (replacing a file left there), private to this user; returns the
    /// socket and a listener to accept on.
    pub fn bind(path: &Path, read_panes: bool) -> Result<(OwnSocket, UnixListener), String> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        let accepting = listener.try_clone().map_err(|e| e.to_string())?;
        static SOCKETS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = SOCKETS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok((OwnSocket { id, path: path.to_path_buf(), read_panes, listener }, accepting))
    }
}

impl Drop for OwnSocket {
    fn drop(&mut self) {
        let _ = nix::sys::socket::shutdown(self.listener.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        let _ = std::fs::remove_file(&self.path);
    }
}
