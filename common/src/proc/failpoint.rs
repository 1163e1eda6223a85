//! Named points where a test can kill the running tool, to prove that a crash at that point
//! leaves nothing behind that breaks the next run. `WT_FAILPOINT=<name>` arms one point; the
//! process then dies there with SIGKILL, exactly as if killed from outside.

/// Dies with SIGKILL if `WT_FAILPOINT` names this point.
pub fn hit(name: &str) {
    if std::env::var_os("WT_FAILPOINT").is_some_and(|armed| armed == name) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
