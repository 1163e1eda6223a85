//! The note of which directories wt-create shared into a worktree: `<state>/share/<name>.json`,
//! a JSON list of paths relative to the worktree. wt-create writes it as it shares; its
//! `--share-status` reads it, and so does wt-merge, to give a verification worktree what the
//! candidate's worktree has.

use std::path::{Path, PathBuf};

/// The file listing what was shared into worktree `name`, in the repository's state dir.
pub fn file(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join("share").join(format!("{name}.json"))
}

/// The directories a note lists; none when there is no note (or it cannot be read). The note
/// is in the common dir, which an unconfined agent can write: read as an untrusted file, and
/// only plain relative paths (no `..`, not absolute) are taken.
pub fn read(file: &Path) -> Vec<PathBuf> {
    let max = crate::fs::untrusted::STATE_MAX;
    let bytes = crate::fs::untrusted::read_untrusted_bytes(file, max).ok().flatten().unwrap_or_default();
    let dirs: Vec<PathBuf> = serde_json::from_slice(&bytes).unwrap_or_default();
    let plain = |d: &PathBuf| {
        d.components().next().is_some() && d.components().all(|c| matches!(c, std::path::Component::Normal(_)))
    };
    dirs.into_iter().filter(plain).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_read_and_never_from_a_fifo() {
        let t = tempfile::tempdir().unwrap();
        let note = file(t.path(), "a");
        std::fs::create_dir_all(note.parent().unwrap()).unwrap();
        std::fs::write(&note, r#"["node_modules", "web/node_modules", "/etc", "../x", "a/../../b", ""]"#).unwrap();
        assert_eq!(read(&note), [PathBuf::from("node_modules"), PathBuf::from("web/node_modules")]);
        std::fs::remove_file(&note).unwrap();
        nix::unistd::mkfifo(&note, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(read(&note).is_empty());
    }
}
