//! When a worktree was last used, from what is cheap to read and honest about it:
//!
//! - its admin dir in the common dir: `index` (written by every `git add`, commit, checkout,
//!   and by a `git status` that refreshes it), `HEAD` and `logs/HEAD` (every commit, checkout,
//!   reset), and the admin dir itself (written when the worktree is made);
//! - its logs under `<state>/logs/<name>/`: every `wt-run` run and every pane's output
//!   (a pane whose agent prints anything touches its log).
//!
//! The newest of these times is the worktree's "last used". Not counted: the worktree
//! directory's own time (wt-create `--gc` moving a build dir out changes it) and wt's own reads
//! (its git runs with `GIT_OPTIONAL_LOCKS=0`, which never writes the index). Every time is read
//! with `lstat`: nothing is followed or opened.

use std::path::Path;
use std::time::SystemTime;

/// The newest of the times above; the epoch when none can be read.
pub fn last_used(state_dir: &Path, name: &str, admin_dir: Option<&Path>) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut see = |p: &Path| {
        if let Ok(t) = std::fs::symlink_metadata(p).and_then(|m| m.modified()) {
            newest = newest.max(t);
        }
    };
    if let Some(admin) = admin_dir {
        see(admin);
        for f in ["index", "HEAD", "logs/HEAD"] {
            see(&admin.join(f));
        }
    }
    let logs = state_dir.join("logs").join(name);
    if let Ok(entries) = std::fs::read_dir(&logs) {
        for e in entries.flatten() {
            see(&e.path());
        }
    }
    newest
}
