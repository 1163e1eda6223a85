//! `.worktreeinclude`: gitignored files of the main worktree (`.env`, local config) that a new
//! worktree needs but git will not check out. The file uses gitignore syntax, the convention
//! Claude Code, Conductor and worktrunk share. A file is copied when it is untracked, matched by
//! `.worktreeinclude`, and ignored by git's own rules. git itself does the matching, so the
//! syntax and its corner cases are exactly gitignore's.
//!
//! An untracked file the include patterns match but git does not ignore is not copied (in the
//! new worktree it would show in `git status` as a new file, and `git add -A` would commit it);
//! wt-create says so on stderr, once per run, with the fix.

use std::path::Path;

use wt_common::fs::copy_tree;
use wt_common::fs::untrusted::IGNORE_MAX;
use wt_common::git::repo::Repo;
use wt_common::{git, Error};

pub const FILE_NAME: &str = ".worktreeinclude";

/// The paths (relative to `source`) that `.worktreeinclude` selects; empty without the file.
///
/// The file comes with the repository (a merge can change it), so it is read as
/// `fs::read_untrusted` says (a regular file of at most 4 MiB, not through a link, never waited
/// on), and git is given that copy, in wt's state dir, rather than the file itself: git would
/// follow a link to `/dev/zero` and read a huge file whole. A file that is refused is an error.
pub fn selected(repo: &Repo, source: &Path) -> Result<Vec<String>, Error> {
    let include = source.join(FILE_NAME);
    let text = wt_common::fs::read_untrusted(&include, IGNORE_MAX)
        .map_err(|refused| Error::failed("bad-include", format!("{refused} (replace it)")))?;
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else { return Ok(Vec::new()) };
    let copy = wt_common::fs::write_synced_aside(&repo.ensure_state_dir()?.join(FILE_NAME), text.as_bytes())
        .map_err(|e| Error::io(FILE_NAME, e))?;
    let listed = list(source, &copy);
    let _ = std::fs::remove_file(&copy);
    let (ignored, skipped) = listed?;
    if let Some(warning) = skipped_warning(&skipped) {
        eprintln!("wt-create: {warning}");
    }
    Ok(ignored)
}

/// How many skipped paths a warning names before it gives the count of the rest.
const NAMED: usize = 5;

/// The warning for include entries git does not ignore, naming the first few; `None` for none.
pub fn skipped_warning(skipped: &[String]) -> Option<String> {
    let first = skipped.first()?;
    let mut named = skipped.iter().take(NAMED).cloned().collect::<Vec<_>>().join(", ");
    if skipped.len() > NAMED {
        named.push_str(&format!(" and {} more", skipped.len() - NAMED));
    }
    let (it, untracked) = match skipped.len() {
        1 => ("it", "an untracked file"),
        _ => ("them", "untracked files"),
    };
    Some(format!(
        "{FILE_NAME}: not copying {named}: git does not ignore {it}, so in a new worktree {it} would be \
         {untracked} that `git add -A` commits; to have {it} copied, make git ignore {it} \
         (add a line such as `/{first}` to .gitignore, or to .git/info/exclude for this clone only)"
    ))
}

/// The untracked files the patterns select: those git ignores (to copy), and those it does not
/// (skipped).
fn list(source: &Path, patterns: &Path) -> Result<(Vec<String>, Vec<String>), Error> {
    // Untracked files matching the include patterns (read as "exclude" patterns here)…
    let mut list = git::command(source);
    list.args(["ls-files", "-z", "--others", "--ignored"]).arg(format!("--exclude-from={}", patterns.display()));
    let candidates = git::output(&mut list)?.stdout;
    if candidates.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    // …that git's standard rules also ignore. check-ignore exits 1 when none is.
    let mut check = git::command(source);
    check
        .args(["check-ignore", "-z", "--stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let ignored = pipe_through(&mut check, &candidates)?;
    let paths = |bytes: &[u8]| -> Vec<String> {
        bytes.split(|b| *b == 0).filter(|p| !p.is_empty()).map(|p| String::from_utf8_lossy(p).into_owned()).collect()
    };
    let ignored = paths(&ignored);
    let skipped = paths(&candidates).into_iter().filter(|p| !ignored.contains(p)).collect();
    Ok((ignored, skipped))
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

/// Copies into an adopted worktree (the agent's: never through a link planted there) the
/// selected files it lacks; a file it has is its own and stays. Returns how many were copied.
pub fn copy_missing(source: &Path, dest: &Path, paths: &[String]) -> Result<usize, Error> {
    let mut copied = 0;
    for rel in paths {
        let made = wt_common::fs::inside::copy_new(dest, Path::new(rel), &source.join(rel))
            .map_err(|e| Error::failed("include-copy", format!("copying {rel} (from {FILE_NAME}): {}", e.message)))?;
        copied += usize::from(made);
    }
    Ok(copied)
}
