//! `.worktreeinclude`: gitignored files of the main worktree (`.env`, local config) that a new
//! worktree needs but git will not check out. The file uses gitignore syntax, the convention
//! Claude Code, Conductor and worktrunk share. A file is copied when it is untracked, matched by
//! `.worktreeinclude`, and ignored by git's own rules. git itself does the matching, so the
//! syntax and its corner cases are exactly gitignore's.

use std::path::Path;

use wt_common::fs::copy_tree;
use wt_common::{git, Error};

pub const FILE_NAME: &str = ".worktreeinclude";

/// The paths (relative to `source`) that `.worktreeinclude` selects; empty without the file.
pub fn selected(source: &Path) -> Result<Vec<String>, Error> {
    let include = source.join(FILE_NAME);
    if !include.is_file() {
        return Ok(Vec::new());
    }
    // Untracked files matching the include patterns (read as "exclude" patterns here)…
    let mut list = git::command(source);
    list.args(["ls-files", "-z", "--others", "--ignored"]).arg(format!("--exclude-from={}", include.display()));
    let candidates = git::output(&mut list)?.stdout;
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    // …that git's standard rules also ignore. check-ignore exits 1 when none is.
    let mut check = git::command(source);
    check
        .args(["check-ignore", "-z", "--stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let ignored = pipe_through(&mut check, &candidates)?;
    Ok(ignored.split(|b| *b == 0).filter(|p| !p.is_empty()).map(|p| String::from_utf8_lossy(p).into_owned()).collect())
}

fn pipe_through(cmd: &mut std::process::Command, input: &[u8]) -> Result<Vec<u8>, Error> {
    use std::io::Write;
    let mut child = cmd.spawn().map_err(|e| Error::env("git-missing", format!("cannot run git: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().map_err(|e| Error::io("git check-ignore", e))?;
    let _ = writer.join();
    match out.status.code() {
        Some(0) | Some(1) => Ok(out.stdout),
        _ => Err(Error::failed("git-failed", git::failure_message(cmd, &out))),
    }
}

/// Copies the selected paths from `source` into the new worktree `dest`.
pub fn copy(source: &Path, dest: &Path, paths: &[String]) -> Result<usize, Error> {
    for rel in paths {
        let to = dest.join(rel);
        if to.symlink_metadata().is_ok() {
            continue;
        }
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent.display(), e))?;
        }
        copy_tree(&source.join(rel), &to)
            .map_err(|e| Error::failed("include-copy", format!("copying {rel} (from {FILE_NAME}): {e}")))?;
    }
    Ok(paths.len())
}
