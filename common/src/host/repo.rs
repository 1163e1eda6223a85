//! The repository at a host: made there on first use, given the base its worktrees start
//! from, and its branches fetched back. Branches travel through git over the host's ssh
//! connection (`GIT_SSH_COMMAND` with the same multiplexing options).

use std::path::Path;
use std::process::Stdio;

use super::config::Host;
use super::remote::{install_hint, program};
use super::{quote, ssh};
use crate::error::Error;
use crate::git;

/// Runs a shell command at the host and returns its exit code and stdout; a connection that
/// cannot be made is an error.
fn at_host(host: &Host, line: &str) -> Result<(i32, String, String), Error> {
    let out = ssh::command(host, line, false)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::env("no-ssh", format!("cannot run ssh: {e} (install OpenSSH's client)")))?;
    let code = out.status.code().unwrap_or(255);
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if code == 255 {
        return Err(unreachable(host, &stderr));
    }
    Ok((code, String::from_utf8_lossy(&out.stdout).into_owned(), stderr))
}

/// The error for a host ssh cannot reach.
pub fn unreachable(host: &Host, said: &str) -> Error {
    let last = said.lines().last().unwrap_or_default();
    Error::failed("host-unreachable", format!("host {} ({}) cannot be reached over ssh: {last}", host.name, host.ssh))
}

/// Checks that `tool` at the host speaks this protocol version.
pub fn check_tools(host: &Host, tool: &str) -> Result<(), Error> {
    let line = quote::join(&[program(host, tool), "--protocol-version".into()]);
    let (code, out, _) = at_host(host, &line)?;
    let want = super::guard::protocol_line();
    let want_proto = want.split(' ').next().unwrap_or_default();
    let got = out.trim();
    if code == 127 || (code != 0 && got.is_empty()) {
        return Err(super::remote::missing_tool(host, tool));
    }
    if got.split(' ').next() != Some(want_proto) {
        return Err(Error::failed(
            "protocol-mismatch",
            format!(
                "{tool} at {} speaks '{got}', this one '{want}'; install the same version there ({})",
                host.name,
                install_hint(host, tool)
            ),
        ));
    }
    Ok(())
}

/// Makes sure the repository exists at the host and has `base` (a ref of the local
/// repository `dir`) at the commit it has here; returns the name to give the host's wt-create
/// as `--base`.
pub fn ensure_base(dir: &Path, host: &Host, base: &str) -> Result<String, Error> {
    let commit = git::run(dir, ["rev-parse", "--verify", "-q", &format!("{base}^{{commit}}")])
        .map_err(|_| Error::usage("unknown-base", format!("--base {base} is not a commit here")))?;
    let full = git::run(dir, ["rev-parse", "--symbolic-full-name", base]).unwrap_or_default();
    let branch = full.strip_prefix("refs/heads/").map(str::to_string);
    if let Some(b) = &branch {
        super::quote::check_sendable("branch", b)?;
    }
    let path = host.path.display().to_string();
    // A repository made here takes pushes to its checked-out branch by updating its files.
    let mut init = vec!["git".to_string(), "init".into(), "-q".into()];
    if let Some(b) = &branch {
        init.extend(["-b".to_string(), b.clone()]);
    }
    init.push(path.clone());
    let line = format!(
        "git -C {p} rev-parse --git-dir >/dev/null 2>&1 || {{ {init} && git -C {p} config receive.denyCurrentBranch updateInstead; }}",
        p = quote::quote(&path),
        init = quote::join(&init),
    );
    let (code, _, said) = at_host(host, &line)?;
    if code != 0 {
        return Err(Error::failed(
            "remote-repo",
            format!("cannot make the repository {path} at {}: {said}", host.name),
        ));
    }
    let (target, remote_base) = match &branch {
        Some(b) => (format!("refs/heads/{b}"), b.clone()),
        None => (format!("refs/wt/base/{commit}"), commit.clone()),
    };
    let mut push = git::command(dir);
    push.env("GIT_SSH_COMMAND", ssh::git_ssh_command(host)).env("GIT_SSH_VARIANT", "ssh");
    push.args(["push", "--quiet", "--no-verify", &ssh::git_url(host), &format!("{commit}:{target}")]);
    git::output(&mut push).map_err(|e| {
        Error::failed(
            "push-failed",
            format!(
                "cannot give {} the base {base}: {} (its {target} has other commits? merge them here first)",
                host.name, e.message
            ),
        )
    })?;
    Ok(remote_base)
}

/// The local branch that holds a host's branch once fetched: `hosts/<host>/<branch>`.
pub fn local_branch(host: &Host, branch: &str) -> String {
    format!("hosts/{}/{branch}", host.name)
}

/// Fetches `branch` from the host into `local_branch`; returns that local branch.
pub fn fetch_branch(dir: &Path, host: &Host, branch: &str) -> Result<String, Error> {
    super::quote::check_sendable("branch", branch)?;
    let local = local_branch(host, branch);
    let mut fetch = git::command(dir);
    fetch.env("GIT_SSH_COMMAND", ssh::git_ssh_command(host)).env("GIT_SSH_VARIANT", "ssh");
    fetch.args([
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        &ssh::git_url(host),
        &format!("+refs/heads/{branch}:refs/heads/{local}"),
    ]);
    git::output(&mut fetch).map_err(|e| {
        Error::failed("fetch-failed", format!("cannot fetch {branch} from host {}: {}", host.name, e.message))
    })?;
    Ok(local)
}

/// Removes a worktree and its branch at the host through its wt-create (`--remove --force`:
/// its branch was merged here, not there).
pub fn remove_worktree(host: &Host, name: &str) -> Result<(), Error> {
    super::quote::check_sendable("name", name)?;
    let line = super::remote::command_line(
        host,
        "wt-create",
        &["--json".into(), "--remove".into(), "--force".into(), name.into()],
        false,
    );
    let (code, _, said) = at_host(host, &line)?;
    if code != 0 {
        return Err(Error::failed(
            "remote-remove",
            format!("wt-create --remove {name} at {} failed: {said}", host.name),
        ));
    }
    Ok(())
}
