//! Running the `git` command. The tools drive git's own porcelain and plumbing so that what
//! they make is exactly what git makes, and so that git's hooks and config apply as usual.
//!
//! An agent can write into its worktree and its admin dir, so nothing there may choose what
//! code wt's own git calls run: every command has `core.fsmonitor` off, none inherits the
//! variables that redirect git, and a command about one worktree (`in_worktree`) names its git
//! dir, common dir and work tree explicitly, from the registration, with hooks off.

pub mod ahead_behind;
pub mod best;
pub mod build_dirs;
pub mod checkout_state;
pub mod clean_proof;
pub mod hooks_path;
pub mod ignore;
pub mod refs;
pub mod registry;
pub mod repo;
#[cfg(test)]
pub(crate) mod test_git;
pub mod tested;
pub mod worktree;
pub mod worktree_check;
pub mod worktree_cost;

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::error::Error;
use crate::git::worktree_check::Registered;

/// Variables that point git at another repository, object store or program, or add config
/// on the side. A git hook exports some of them to its children; a caller's shell may have
/// any. None may redirect wt's own git calls. (The user's config files, `GIT_CONFIG_GLOBAL`
/// and `GIT_CONFIG_SYSTEM`, are theirs to choose and stay.)
const INHERITED_GIT_VARS: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_PREFIX",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_EXEC_PATH",
    "GIT_EXTERNAL_DIFF",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
];

/// A `git -C dir` command, cleaned of inherited repository variables, with the file-system
/// monitor off (`core.fsmonitor` names a program to run; wt never needs it). The git process
/// dies with the thread that started it, so a killed wt tool never leaves a git behind that
/// goes on writing into a worktree the next run is rolling back.
pub fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(program());
    cmd.arg("-C").arg(dir).args(["-c", "core.fsmonitor=false"]);
    for var in INHERITED_GIT_VARS {
        cmd.env_remove(var);
    }
    for (var, _) in std::env::vars_os() {
        let var = var.to_string_lossy();
        if var.starts_with("GIT_CONFIG_KEY_") || var.starts_with("GIT_CONFIG_VALUE_") {
            cmd.env_remove(var.as_ref());
        }
    }
    cmd.env("GIT_TERMINAL_PROMPT", "0");
    // Every caller waits for its git child on the spawning thread, so only the death of the
    // tool triggers it.
    crate::proc::process::die_with_parent(&mut cmd);
    cmd
}

/// The `git` that `PATH` names, found once and then started by its full path: a command
/// spawned by name has the kernel try each `PATH` directory in turn (a failed `execve` apiece,
/// before every git call), where git starts its own subcommands from their full path. The
/// path found is checked again (one `access`) before each use, so a long-running tool whose
/// git was removed or upgraded finds it anew. `git` when none is found, so that starting it
/// fails as before, with the message that says to install git.
pub(crate) fn program() -> std::ffi::OsString {
    static FOUND: std::sync::Mutex<Option<std::path::PathBuf>> = std::sync::Mutex::new(None);
    let mut found = FOUND.lock().unwrap_or_else(|p| p.into_inner());
    if !found.as_deref().is_some_and(runnable) {
        // No PATH: where `execvp` looks then.
        *found = find_on_path(std::env::var_os("PATH").or_else(|| Some("/bin:/usr/bin".into())), "git");
    }
    found.as_ref().map_or_else(|| "git".into(), |p| p.clone().into_os_string())
}

/// The first program `name` in `path` that this process may run, as `execvp` would pick it
/// (an empty entry is the current directory; a relative one is made absolute, as the path
/// found may be run from another directory; `execvp` also passes over one it may not run).
pub fn find_on_path(path: Option<std::ffi::OsString>, name: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&path?)
        .filter_map(
            |dir| if dir.is_relative() { std::env::current_dir().ok().map(|cwd| cwd.join(dir)) } else { Some(dir) },
        )
        .map(|dir| dir.join(name))
        .find(|candidate| runnable(candidate))
}

/// A regular file this process may execute (the kernel's own check, so a `noexec` mount, an
/// ACL or another user's mode bits count as they do for `execve`).
pub fn runnable(file: &Path) -> bool {
    std::fs::metadata(file).is_ok_and(|m| m.is_file())
        && nix::unistd::access(file, nix::unistd::AccessFlags::X_OK).is_ok()
}

/// A git command about one worktree: its git dir, common dir and work tree come from git's
/// registration (`worktree_check::verify`), never from the `.git` file or `commondir` the
/// agent could have rewritten since, and hooks are off. These variables pass to any git that
/// git starts in turn (`git worktree remove` runs `git status` in the worktree).
pub fn in_worktree(reg: &Registered) -> Command {
    let mut cmd = command(&reg.path);
    cmd.args(["-c", "core.hooksPath=/dev/null"]);
    cmd.env("GIT_DIR", &reg.admin_dir).env("GIT_COMMON_DIR", &reg.common_dir).env("GIT_WORK_TREE", &reg.path);
    cmd
}

/// A git command about the repository as a whole, run from `dir` with its common dir named
/// explicitly, so that a git it starts for some worktree (`git worktree remove` runs
/// `git status` there) finds config only in the common dir, not through a `commondir` file
/// the agent could have rewritten; hooks off.
pub fn about_worktrees(dir: &Path, common_dir: &Path) -> Command {
    let mut cmd = command(dir);
    cmd.args(["-c", "core.hooksPath=/dev/null"]);
    cmd.env("GIT_COMMON_DIR", common_dir);
    cmd
}

/// Runs `git -C dir args…` and returns its stdout with the trailing newline removed.
pub fn run<I, S>(dir: &Path, args: I) -> Result<String, Error>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = command(dir);
    cmd.args(args);
    tracing::debug!("{cmd:?}");
    let out = output(&mut cmd)?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    if text.ends_with('\n') {
        text.pop();
    }
    Ok(text)
}

/// The commits of the branches in `branches` that exist (branch → commit): read from the ref
/// files in `common` where they can answer (`refs::read_branches`), else by one `git
/// for-each-ref` in `dir`, never a `rev-parse` per branch: at 16 branches the per-branch
/// processes cost as much as the merges they feed.
pub fn branch_heads<'a>(
    dir: &Path,
    common: &Path,
    branches: impl IntoIterator<Item = &'a str> + Clone,
) -> Result<std::collections::HashMap<String, String>, Error> {
    if let Some(found) = crate::git::refs::read_branches(common, branches.clone()) {
        return Ok(found);
    }
    let mut cmd = command(dir);
    cmd.args(["for-each-ref", "--format=%(refname)%00%(objectname)", "--"]);
    let mut wanted = std::collections::HashSet::new();
    for b in branches {
        let full = format!("refs/heads/{b}");
        cmd.arg(&full);
        wanted.insert(full);
    }
    if wanted.is_empty() {
        return Ok(Default::default());
    }
    let out = output(&mut cmd)?;
    // A pattern also matches the refs below it (`refs/heads/a` matches `refs/heads/a/b`):
    // only exact names count.
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\0'))
        .filter(|(r, _)| wanted.contains(*r))
        .map(|(r, c)| (r["refs/heads/".len()..].to_string(), c.to_string()))
        .collect())
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
    cmd.output().map_err(cannot_start)
}

/// How long a git that only reads an agent's worktree may take before it is taken to be stuck:
/// `WT_GIT_TIMEOUT` seconds, else 60 (a `git status` of a cold, very large checkout takes
/// seconds; one that reads a FIFO the agent planted as a `.gitignore` never ends).
pub fn read_timeout() -> std::time::Duration {
    let secs = std::env::var("WT_GIT_TIMEOUT").ok().and_then(|s| s.parse::<u64>().ok()).filter(|s| *s > 0);
    std::time::Duration::from_secs(secs.unwrap_or(60))
}

/// `output`, for a git that reads a worktree an agent writes: in a process group of its own,
/// killed (with anything it started) when it has not finished within `limit`, which is then
/// the error `git-stuck` naming the worktree. It dies with this process too. Started without
/// copying this process (`proc::spawn`: these are the many gits of a look at hundreds of
/// worktrees); `cmd`'s program, arguments, environment and directory are what is read of it.
pub fn output_within(
    cmd: &mut Command,
    limit: std::time::Duration,
    worktree: &std::path::Path,
) -> Result<Output, Error> {
    let out = match crate::proc::spawn::spawn(cmd) {
        Ok(child) => crate::proc::spawn::wait_output(child, limit).map_err(|e| Error::io("git", e))?,
        // `git` not found on PATH: starting it by name says so.
        Err(e) if e.kind() == io::ErrorKind::Unsupported => return Err(cannot_start(io::ErrorKind::NotFound.into())),
        Err(e) => return Err(cannot_start(e)),
    };
    let Some(out) = out else {
        return Err(Error::failed(
            "git-stuck",
            format!(
                "git did not finish in {} within {} s (a FIFO in the worktree, such as one planted as a .gitignore, makes git wait for ever); look at what is there, or raise WT_GIT_TIMEOUT",
                worktree.display(),
                limit.as_secs()
            ),
        ));
    };
    if out.status.success() {
        Ok(out)
    } else {
        Err(Error::failed("git-failed", failure_message(cmd, &out)))
    }
}

/// `output` for a git that writes what `lock` protects: the child is noted with the lock
/// (`FileLock::note_children_of`), so that if this process is killed, the next holder of the lock
/// waits for that git to end too.
pub fn output_under(cmd: &mut Command, lock: &crate::proc::lock::FileLock) -> Result<Output, Error> {
    output_under_while(cmd, lock, || ()).1
}

/// `output_under`, doing `meanwhile` on this thread while git runs (or, if git cannot be
/// started, before that is reported): a wait of this process's own, such as an `fsync`, then
/// costs no time of its own. The child is waited for on this thread, as its parent-death signal
/// requires.
pub fn output_under_while<T>(
    cmd: &mut Command,
    lock: &crate::proc::lock::FileLock,
    meanwhile: impl FnOnce() -> T,
) -> (T, Result<Output, Error>) {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let noting = lock.note_children_of(cmd);
    let child = cmd.spawn();
    drop(noting);
    let done = meanwhile();
    let out = match child.and_then(std::process::Child::wait_with_output) {
        Ok(out) if out.status.success() => Ok(out),
        Ok(out) => Err(Error::failed("git-failed", failure_message(cmd, &out))),
        Err(e) => Err(cannot_start(e)),
    };
    (done, out)
}

fn cannot_start(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::NotFound {
        Error::env("git-missing", "git is not installed or not on PATH; install git (2.38 or later)")
    } else {
        Error::env("git-missing", format!("cannot run git: {e}"))
    }
}

/// `git <subcommand>: <git's last error line>`, the form every tool reports a git failure in.
pub fn failure_message(cmd: &Command, out: &Output) -> String {
    let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    // Skip `-C dir` and `-c key=value` so the message names the subcommand.
    let mut rest = args.iter();
    let mut sub = String::new();
    while let Some(a) = rest.next() {
        if a == "-C" || a == "-c" {
            rest.next();
        } else {
            sub = a.clone();
            break;
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// As `execvp` picks: the first directory whose `git` is an executable file, skipping a
    /// `git` that is not executable or is a directory.
    #[test]
    fn git_is_found_on_path_as_execvp_finds_it() {
        let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
        let [not_exec, is_dir, first, second] = [0, 1, 2, 3].map(|i| dirs[i].path());
        std::fs::write(not_exec.join("git"), "").unwrap();
        std::fs::create_dir(is_dir.join("git")).unwrap();
        for d in [first, second] {
            std::fs::write(d.join("git"), "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(d.join("git"), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = std::env::join_paths([not_exec, is_dir, first, second]).unwrap();
        assert_eq!(find_on_path(Some(path), "git"), Some(first.join("git")));
        let path = std::env::join_paths([not_exec, is_dir]).unwrap();
        assert_eq!(find_on_path(Some(path), "git"), None, "none there: spawned by name, git-missing as before");
        assert_eq!(find_on_path(None, "git"), None);
    }
}
