//! The person's list of repositories wt keeps state in, so that `wt-status --inbox` can look
//! at every one of them, not only the one it runs in. A repository is added when a tool first
//! makes its state directory (`Repo::ensure_state_dir`), and dropped once it is gone.
//!
//! One file per user: `$WT_REPO_REGISTRY`, else `$XDG_STATE_HOME/wt/repos`, else
//! `~/.local/state/wt/repos`; one absolute path a line (the main worktree, or the bare
//! repository's directory). Additions are appended under a lock (`<file>.lock`), once each;
//! pruning rewrites the file whole (`fs::write_atomic`) under the same lock.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::proc::lock::FileLock;
use crate::Error;

/// The most of the list that is read: thousands of repositories.
const MAX_BYTES: u64 = 1 << 20;
/// How long an addition waits for the lock: registering never holds up the tool's work long.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Where the list is, or `None` when neither `WT_REPO_REGISTRY`, `XDG_STATE_HOME` nor `HOME`
/// says.
pub fn file() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(f) = var("WT_REPO_REGISTRY") {
        return Some(f);
    }
    let state = var("XDG_STATE_HOME").or_else(|| var("HOME").map(|h| h.join(".local/state")))?;
    Some(state.join("wt").join("repos"))
}

fn lock_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    file.with_file_name(name)
}

/// The repositories listed, in the order they were added (none when there is no list).
pub fn list() -> Vec<PathBuf> {
    file().map(|f| read(&f)).unwrap_or_default()
}

fn read(file: &Path) -> Vec<PathBuf> {
    let text = crate::fs::read_untrusted(file, MAX_BYTES).ok().flatten().unwrap_or_default();
    text.lines().filter(|l| l.starts_with('/')).map(PathBuf::from).collect()
}

/// Adds `root` to the list unless it is there. Failing to is logged, not fatal: the list only
/// widens what the inbox shows.
pub fn register(root: &Path) {
    let Some(file) = file() else { return };
    if let Err(e) = add(&file, root) {
        tracing::debug!("cannot list {} in {}: {e}", root.display(), file.display());
    }
}

fn add(file: &Path, root: &Path) -> Result<(), Error> {
    let line = root.to_string_lossy();
    if !root.is_absolute() || line.contains('\n') {
        return Ok(());
    }
    // Read without the lock first: nearly every call finds the repository listed.
    if read(file).iter().any(|p| p == root) {
        return Ok(());
    }
    let parent = file.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent.display(), e))?;
    let _lock = FileLock::acquire(&lock_path(file), LOCK_WAIT)?;
    if read(file).iter().any(|p| p == root) {
        return Ok(());
    }
    // An append killed half way leaves a line without its newline: end it first, so that this
    // path is a line of its own (the cut-off one names nothing and is pruned).
    let cut = crate::fs::read_end(file, 1).is_some_and(|last| !last.is_empty() && last != "\n");
    let text = format!("{}{line}\n", if cut { "\n" } else { "" });
    let mut f =
        std::fs::OpenOptions::new().create(true).append(true).open(file).map_err(|e| Error::io(file.display(), e))?;
    f.write_all(text.as_bytes()).map_err(|e| Error::io(file.display(), e))
}

/// Drops `gone` from the list.
pub fn prune(gone: &[PathBuf]) {
    let Some(file) = file() else { return };
    if gone.is_empty() {
        return;
    }
    let Ok(_lock) = FileLock::acquire(&lock_path(&file), LOCK_WAIT) else { return };
    let kept: Vec<PathBuf> = read(&file).into_iter().filter(|p| !gone.contains(p)).collect();
    let text: String = kept.iter().map(|p| format!("{}\n", p.display())).collect();
    if let Err(e) = crate::fs::write_atomic(&file, text.as_bytes()) {
        tracing::debug!("cannot prune {}: {e}", file.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_once_each_in_order() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("state/wt/repos");
        add(&f, Path::new("/a/one")).unwrap();
        add(&f, Path::new("/b/two")).unwrap();
        add(&f, Path::new("/a/one")).unwrap();
        add(&f, Path::new("relative")).unwrap();
        assert_eq!(read(&f), [PathBuf::from("/a/one"), PathBuf::from("/b/two")]);
        // What a killed append left (no newline) does not swallow the next one.
        std::fs::OpenOptions::new().append(true).open(&f).unwrap().write_all(b"/c/thr").unwrap();
        add(&f, Path::new("/d/four")).unwrap();
        assert_eq!(read(&f).last(), Some(&PathBuf::from("/d/four")));
    }
}
