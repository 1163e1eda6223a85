//! The ssh command line: the system OpenSSH client, the user's config, one multiplexed
//! connection per host.
//!
//! Every call goes through a ControlMaster connection (`ControlMaster=auto`, kept for a minute
//! after the last use), so only the first call to a host pays for the handshake. Host keys are
//! checked as the user's config says (never turned off here); `BatchMode` makes a missing key or
//! an unknown host an error instead of a prompt nobody sees. Environment variables are never
//! sent through `SendEnv`: what a remote tool needs is on its command line (`env K=V …`).

use std::path::PathBuf;
use std::process::Command;

use super::config::Host;
use super::quote;

/// How long a master connection stays after its last client.
const PERSIST: &str = "60s";

/// The directory of the control sockets: short, because a socket path has at most 104 bytes
/// on some systems (108 on Linux) and ssh adds a random suffix while it makes one.
pub fn control_dir() -> PathBuf {
    let uid = nix::unistd::getuid().as_raw();
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).filter(|d| d.is_absolute());
    match runtime.map(|d| d.join("wt-ssh")) {
        // 40 hex characters of %C, a slash and ssh's 17-character temporary suffix.
        Some(d) if d.as_os_str().len() + 58 < 104 => d,
        _ => PathBuf::from(format!("/tmp/wt-ssh-{uid}")),
    }
}

/// Makes the control directory, only its owner may enter it.
fn ensure_control_dir() -> PathBuf {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = control_dir();
    let _ = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir);
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    dir
}

/// The options that come before the destination: config file and multiplexing.
pub fn options(host: &Host) -> Vec<String> {
    let mut opts = Vec::new();
    if let Some(cfg) = &host.ssh_config {
        opts.push("-F".to_string());
        opts.push(cfg.display().to_string());
    }
    let control = ensure_control_dir().join("%C");
    for o in [
        "BatchMode=yes".to_string(),
        "ControlMaster=auto".to_string(),
        format!("ControlPath={}", control.display()),
        format!("ControlPersist={PERSIST}"),
    ] {
        opts.push("-o".into());
        opts.push(o);
    }
    opts
}

/// `ssh … HOST -- remote_command`; with `tty`, a terminal is asked for (`-t`), else refused
/// (`-T`).
pub fn command(host: &Host, remote_command: &str, tty: bool) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.args(options(host));
    cmd.arg(if tty { "-t" } else { "-T" });
    cmd.arg("--").arg(&host.ssh).arg(remote_command);
    cmd
}

/// `GIT_SSH_COMMAND` for git's fetch and push to the host: the same options, so git rides the
/// same connection.
pub fn git_ssh_command(host: &Host) -> String {
    let mut words = vec!["ssh".to_string()];
    words.extend(options(host));
    quote::join(&words)
}

/// The repository at the host as git's URL (`ssh://dest/abs/path`).
pub fn git_url(host: &Host) -> String {
    format!("ssh://{}{}", host.ssh, host.path.display())
}
