//! The one step that cannot be a single atomic operation: moving the target ref and then the
//! files of the worktree where it is checked out. Before the ref moves, `<state>/merge-journal`
//! records the worktree and both commits; after the files follow, it is removed. A run killed
//! in between leaves the journal, and the next run (holding the queue lock) finishes the update,
//! or drops the journal if the ref never moved.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wt_common::git::repo::Repo;
use wt_common::Error;

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    worktree: PathBuf,
    old: String,
    new: String,
}

fn path(repo: &Repo) -> PathBuf {
    repo.state_dir().join("merge-journal")
}

pub fn write(repo: &Repo, worktree: &Path, old: &str, new: &str) -> Result<(), Error> {
    let j = Journal { worktree: worktree.to_path_buf(), old: old.into(), new: new.into() };
    let bytes = serde_json::to_vec(&j).expect("journal serializes");
    wt_common::fs::write_atomic(&path(repo), &bytes).map_err(|e| Error::io("merge journal", e))
}

pub fn clear(repo: &Repo) {
    let _ = std::fs::remove_file(path(repo));
}

/// Finishes an update a killed run left half-done. Call while holding the queue lock.
pub fn roll_forward(repo: &Repo) -> Result<(), Error> {
    // In the common dir: never through a link, a FIFO or past the cap (a refused one is no
    // journal of wt's).
    let max = wt_common::fs::untrusted::STATE_MAX;
    let Ok(Some(bytes)) = wt_common::fs::untrusted::read_untrusted_bytes(&path(repo), max) else {
        clear(repo);
        return Ok(());
    };
    if let Ok(j) = serde_json::from_slice::<Journal>(&bytes) {
        let head = crate::checkout::git_in(repo, &j.worktree, &["rev-parse", "HEAD"]).unwrap_or_default();
        let index_at_old =
            crate::checkout::git_in(repo, &j.worktree, &["diff-index", "--cached", "--quiet", &j.old]).is_ok();
        if head == j.new && index_at_old {
            tracing::warn!("finishing the update of {} that a killed wt-merge left half-done", j.worktree.display());
            crate::locks::clear_stale_checkout(repo, &j.worktree)?;
            crate::checkout::finish_follow(repo, &j.worktree, &j.old, &j.new)?;
        }
    }
    clear(repo);
    Ok(())
}
