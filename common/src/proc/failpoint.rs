//! Named points where a test can kill the running tool, to prove that a crash at that point
//! leaves nothing behind that breaks the next run. `WT_FAILPOINT=<name>` arms one point; the
//! process then dies there with SIGKILL, exactly as if killed from outside.
//!
//! `WT_FAILPOINT=<name>:stop` stops the process there with SIGSTOP instead, so that a test can
//! make another process act in that window (a race made deterministic) and then let it go on
//! with SIGCONT.

/// Dies with SIGKILL if `WT_FAILPOINT` names this point; stops with SIGSTOP if it names it
/// with `:stop`.
pub fn hit(name: &str) {
    let Some(armed) = std::env::var_os("WT_FAILPOINT") else { return };
    let armed = armed.as_encoded_bytes();
    let signal = if armed == name.as_bytes() {
        nix::sys::signal::Signal::SIGKILL
    } else if armed.strip_suffix(b":stop") == Some(name.as_bytes()) {
        nix::sys::signal::Signal::SIGSTOP
    } else {
        return;
    };
    let _ = nix::sys::signal::raise(signal);
}
