//! Running the `git` command. The tools drive git's own porcelain and plumbing so that what
//! they make is exactly what git makes, and so that git's hooks and config apply as usual.

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::error::Error;

/// Variables a git hook exports to its children. Were a wt tool run from inside a hook, they
/// would point every git command at the hook's repository instead of `-C DIR`.
const INHERITED_GIT_VARS: &[&str] =
    &["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_PREFIX", "GIT_OBJECT_DIRECTORY"];

/// A `git -C dir` command, cleaned of inherited repository variables. The git process dies
/// with the thread that started it, so a killed wt tool never leaves a git behind that goes on
/// writing into a worktree the next run is rolling back.
pub fn command(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(dir);
    for var in INHERITED_GIT_VARS {
        cmd.env_remove(var);
    }
    cmd.env("GIT_TERMINAL_PROMPT", "0");
    die_with_parent(&mut cmd);
    cmd
}

/// Asks the kernel to SIGKILL the child when the thread that spawned it ends. Every caller
/// waits for its git child on the spawning thread, so only the death of the tool triggers it.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only makes the async-signal-safe
    // prctl(2) system call; it allocates nothing and touches no lock.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
}

/// Runs `git -C dir args…` and returns its stdout with the trailing newline removed.
pub fn run<I, S>(dir: &Path, args: I) -> Result<String, Error>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = command(dir);
    cmd.args(args);
    let out = output(&mut cmd)?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    if text.ends_with('\n') {
        text.pop();
    }
    Ok(text)
}

/// Runs a prepared git command, failing with git's own message when it exits non-zero.
pub fn output(cmd: &mut Command) -> Result<Output, Error> {
    let out = raw_output(cmd)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(Error::failed("git-failed", failure_message(cmd, &out)))
    }
}

/// Runs a prepared git command and returns its output whatever its exit status; fails only
/// when git cannot be started.
pub fn raw_output(cmd: &mut Command) -> Result<Output, Error> {
    cmd.stdin(Stdio::null());
    cmd.output().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            Error::env("git-missing", "git is not installed or not on PATH; install git (2.38 or later)")
        } else {
            Error::env("git-missing", format!("cannot run git: {e}"))
        }
    })
}

/// `git <subcommand>: <git's last error line>`, the form every tool reports a git failure in.
pub fn failure_message(cmd: &Command, out: &Output) -> String {
    let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    // Skip `-C dir` so the message names the subcommand.
    let sub = args.iter().skip_while(|a| *a == "-C").nth(1).cloned().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = || stderr.lines().map(str::trim);
    // git's own verdict is the `fatal:`/`error:` line; what follows it is often advice.
    let detail = lines()
        .find(|l| l.starts_with("fatal:") || l.starts_with("error:"))
        .or_else(|| lines().rfind(|l| !l.is_empty() && !l.starts_with("hint:")))
        .unwrap_or("exited with an error")
        .trim_start_matches("fatal: ")
        .trim_start_matches("error: ");
    format!("git {sub}: {detail}")
}
