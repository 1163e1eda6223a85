//! The second line behind hiding the supervisor's socket: who is on the other end of a
//! connection to it. A confined run's mount namespace covers the socket directory (see
//! `hide`), so a peer whose mount namespace has a mount at the supervisor's socket directory
//! is inside a confined run, however it reached the socket; it gets nothing. The common case
//! (the peer shares the supervisor's mount namespace) costs two `readlink`s.

use std::os::unix::net::UnixStream;
use std::path::Path;

use super::access::Access;

/// The capability of a connection to the supervisor's own socket in `socket_dir`.
pub fn access_of(stream: &UnixStream, socket_dir: &Path) -> Access {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let Ok(cred) = getsockopt(stream, PeerCredentials) else { return Access::Confined };
    let namespace = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
    let pid = cred.pid().to_string();
    match (namespace("self"), namespace(&pid)) {
        (Some(own), Some(theirs)) if own == theirs => Access::Full,
        // Unreadable (the peer already left, so it cannot be checked): refused.
        (_, None) => Access::Confined,
        _ if covers(&pid, socket_dir) => Access::Confined,
        _ => Access::Full,
    }
}

/// Whether process `pid` sees a mount at `dir` (in `/proc/PID/mountinfo`, mount points are the
/// fifth field, with space, tab, newline and backslash escaped in octal).
fn covers(pid: &str, dir: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")) else { return true };
    let wanted = escape(&dir.to_string_lossy());
    info.lines().any(|line| line.split(' ').nth(4) == Some(wanted.as_str()))
}

fn escape(path: &str) -> String {
    path.chars()
        .map(|c| match c {
            ' ' | '\t' | '\n' | '\\' => format!("\\{:03o}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_compared_as_mountinfo_escapes_them() {
        assert_eq!(escape("/run/user/1000/wt"), "/run/user/1000/wt");
        assert_eq!(escape("/tmp/a b\\c"), "/tmp/a\\040b\\134c");
        assert!(covers("self", Path::new("/proc")), "this process sees a mount at /proc");
        assert!(!covers("self", Path::new("/proc/self")));
    }
}
