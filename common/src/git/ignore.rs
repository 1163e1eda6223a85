//! Files wt writes into a worktree that git must not see (the env file, agent hook settings):
//! kept out of `git status` through the repository's `info/exclude`, shared by every worktree.

use std::io::Write;

use crate::git::repo::Repo;
use crate::proc::lock::{default_timeout, FileLock};
use crate::Error;

/// Makes git ignore `rel` (a path relative to a worktree root) in every worktree, through the
/// repository's `info/exclude`, so `git status` stays clean. Serialised across processes.
pub fn exclude(repo: &Repo, rel: &str) -> Result<(), Error> {
    let pattern = format!("/{}", rel.trim_start_matches('/'));
    let info = repo.common_dir.join("info");
    std::fs::create_dir_all(&info).map_err(|e| Error::io(info.display(), e))?;
    let _lock = FileLock::acquire(&repo.ensure_state_dir()?.join("exclude.lock"), default_timeout())?;
    let file = info.join("exclude");
    // Read and appended to as files an agent could have placed are: never through a link,
    // never waiting on a FIFO, capped.
    let text = crate::fs::read_untrusted(&file, crate::fs::untrusted::IGNORE_MAX)
        .map_err(|refused| Error::failed("bad-exclude", format!("{refused} (replace it)")))?
        .unwrap_or_default();
    if text.lines().any(|l| l.trim_end() == pattern) {
        return Ok(());
    }
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(&file)
        .map_err(|e| Error::io(file.display(), e))?;
    let sep = if text.is_empty() || text.ends_with('\n') { "" } else { "\n" };
    writeln!(f, "{sep}{pattern}").map_err(|e| Error::io(file.display(), e))
}
