//! The note of which files wt-env writes into worktrees that hold a secret (the env file, the
//! agent's brief: both name the worktree's database password): `<state>/secret-files`, one
//! path relative to a worktree per line. wt-env adds to it as it writes; `wt-run --confine`
//! reads it to cover those files of the other worktrees with an empty file, so that one agent
//! cannot read another's password.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::proc::lock::{default_timeout, FileLock};
use crate::Error;

fn file(state_dir: &Path) -> PathBuf {
    state_dir.join("secret-files")
}

/// Adds `rel` to the note, once. Serialised across processes.
pub fn note(state_dir: &Path, rel: &Path) -> Result<(), Error> {
    let line = rel.to_string_lossy().trim_start_matches('/').to_string();
    if line.is_empty() || line.contains('\n') {
        return Ok(());
    }
    let _lock = FileLock::acquire(&state_dir.join("secret-files.lock"), default_timeout())?;
    let path = file(state_dir);
    if read(state_dir).iter().any(|p| p == Path::new(&line)) {
        return Ok(());
    }
    let mut f =
        std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|e| Error::io(path.display(), e))?;
    writeln!(f, "{line}").map_err(|e| Error::io(path.display(), e))
}

/// The paths the note lists (none when there is none); at most 1 MiB of it is read.
pub fn read(state_dir: &Path) -> Vec<PathBuf> {
    let text = crate::fs::read_end(&file(state_dir), 1 << 20).unwrap_or_default();
    text.lines().filter(|l| !l.is_empty()).map(PathBuf::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_noted_once() {
        let t = tempfile::tempdir().unwrap();
        note(t.path(), Path::new(".env.wt")).unwrap();
        note(t.path(), Path::new("/.env.wt")).unwrap();
        note(t.path(), Path::new("config/agent.md")).unwrap();
        assert_eq!(read(t.path()), [PathBuf::from(".env.wt"), PathBuf::from("config/agent.md")]);
    }
}
