//! The note of which directories wt-create shared into a worktree: `<state>/share/<name>.json`,
//! a JSON list of paths relative to the worktree. wt-create writes it as it shares; its
//! `--share-status` reads it, and so does wt-merge, to give a verification worktree what the
//! candidate's worktree has.

use std::path::{Path, PathBuf};

/// The file listing what was shared into worktree `name`, in the repository's state dir.
pub fn file(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join("share").join(format!("{name}.json"))
}

/// The directories a note lists; none when there is no note (or it cannot be read).
pub fn read(file: &Path) -> Vec<PathBuf> {
    std::fs::read(file).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}
