//! Crash safety. Before wt-create touches git for a new worktree it leaves a marker in
//! `<state>/pending/<name>.json` and holds an flock on it until the worktree is complete and in
//! the ledger. A marker whose lock can be taken belongs to a process that died mid-way: the next
//! wt-create (under the worktree lock) rolls back exactly what that marker describes (its admin
//! directory, its half-checked-out directory, the branch it created) and nothing else. That is
//! why no `git worktree prune` is ever run: prune would also drop the registration of every
//! worktree whose directory is only momentarily missing.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wt_common::fs::{read_small, remove_any};
use wt_common::git::repo::Repo;
use wt_common::ledger::LedgerFile;
use wt_common::proc::lock::FileLock;
use wt_common::{git, Error};

/// What a half-made worktree consists of.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Marker {
    pub name: String,
    pub path: PathBuf,
    pub branch: String,
    /// The branch did not exist before: rolling back deletes it (if it was not moved).
    pub branch_created: bool,
    pub start_commit: String,
    /// Names this attempt: the ledger entry its maker writes once the worktree is finished
    /// carries it (`MADE_BY`), so that an entry another tool wrote for the same name and path
    /// meanwhile (wt-env run by a post-checkout hook) does not pass a half-made worktree off as
    /// finished. Absent in markers of an older wt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// A marker's size at most (a name, a path, a branch and two ids).
const MARKER_MAX: u64 = 64 << 10;

/// The key of a ledger entry that names the marker of the wt-create that finished it.
pub const MADE_BY: &str = "made_by";

impl Marker {
    /// A fresh id for a new attempt: the process and the moment.
    pub fn new_id() -> String {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        format!("{}-{nanos}", std::process::id())
    }

    /// Whether this is a marker wt-create writes in `<stem>.json`: a valid name, its file's;
    /// its worktree `<some root>/<name>` (the root is the writer's `--root`); its branch
    /// `wt/<name>`; a commit id.
    pub fn is_wt_creates(&self, stem: &str) -> bool {
        let plain = self.path.is_absolute()
            && self
                .path
                .components()
                .all(|c| matches!(c, std::path::Component::RootDir | std::path::Component::Normal(_)));
        self.name == stem
            && wt_common::ledger::name::validate(&self.name).is_ok()
            && plain
            && self.path.file_name() == Some(std::ffi::OsStr::new(&self.name))
            && self.branch == format!("wt/{}", self.name)
            && matches!(self.start_commit.len(), 40 | 64)
            && self.start_commit.bytes().all(|b| b.is_ascii_hexdigit())
    }

    /// Whether `entry` is the one this marker's maker wrote when it finished.
    pub fn finished_as(&self, entry: &wt_common::ledger::Entry) -> bool {
        entry.path == self.path
            && match &self.id {
                Some(id) => entry.extra.get(MADE_BY).and_then(serde_json::Value::as_str) == Some(id),
                None => true,
            }
    }
}

/// A marker this process owns; dropping it without `finish` leaves it for the next run.
#[derive(Debug)]
pub struct Pending {
    pub marker: Marker,
    file: PathBuf,
    _lock: FileLock,
}

fn dir(repo: &Repo) -> PathBuf {
    repo.state_dir().join("pending")
}

impl Pending {
    /// Makes, locks and writes the marker. Call only under the worktree lock, as `reap_dead`
    /// runs: so no other process finds it before it is locked, and a kill before it is whole
    /// leaves one that nothing was done under yet (git is asked only after), which `reap_dead`
    /// drops as unreadable.
    pub fn begin(repo: &Repo, marker: Marker) -> Result<Pending, Error> {
        let dir = dir(repo);
        fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
        let file = dir.join(format!("{}.json", marker.name));
        let bytes = serde_json::to_vec(&marker).expect("a marker serializes");
        let lock = FileLock::acquire(&file, std::time::Duration::from_secs(5))?;
        // Not synced: the marker is for a killed process, whose writes the page cache keeps.
        // A power loss can lose it, and as much of what git writes next (git syncs neither its
        // admin dir nor the checkout): docs/crash-safety.md says what to do then.
        let mut written = lock.file();
        let write = written.set_len(0).and_then(|()| std::io::Write::write_all(&mut written, &bytes));
        if let Err(e) = write {
            let _ = fs::remove_file(&file);
            return Err(Error::io(file.display(), e));
        }
        Ok(Pending { marker, file, _lock: lock })
    }

    /// The marker's lock, to note the git children that write into the worktree with
    /// (`git::output_under`): killed with this process, one still writes for a moment, and the
    /// next run must not roll the worktree back (deleting its directory) while it does.
    pub fn lock(&self) -> &FileLock {
        &self._lock
    }

    /// The worktree is complete and recorded: forget the marker.
    pub fn finish(self) {
        let _ = fs::remove_file(&self.file);
    }

    /// Undoes this process's own half-made worktree and forgets the marker.
    pub fn roll_back(self, repo: &Repo) {
        roll_back(repo, &self.marker, By::Maker);
        let _ = fs::remove_file(&self.file);
    }
}

/// Names that a live or dead marker reserves.
pub fn reserved_names(repo: &Repo) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir(repo)) else { return Vec::new() };
    entries.filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".json").map(str::to_string)).collect()
}

/// Waits until the wt-create making `name` has finished (or died). Call without the lock.
pub fn wait_for(repo: &Repo, name: &str) -> Result<(), Error> {
    let file = dir(repo).join(format!("{name}.json"));
    let deadline = std::time::Instant::now() + wt_common::proc::lock::default_timeout();
    loop {
        // Opened without creating: a marker that vanished means its owner finished. Never
        // through a link or blocking on a FIFO (one the reaper then drops).
        let opened = wt_common::fs::untrusted::open_regular(&file, fs::OpenOptions::new().read(true));
        let Ok(f) = opened else { return Ok(()) };
        if nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockSharedNonblock).is_ok() {
            return Ok(()); // owner gone; the next plan reaps it
        }
        if std::time::Instant::now() >= deadline {
            return Err(Error::env(
                "lock-timeout",
                format!("timed out waiting for another wt-create to finish '{name}'"),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Rolls back every marker whose owner has died. Call only under the worktree lock. A marker
/// whose worktree is already in the ledger belongs to a wt-create killed after it finished the
/// worktree (between writing the ledger and dropping the marker): that worktree is complete and
/// listed, possibly already in use, so only the marker goes.
///
/// The ledger is read once each marker's lock is taken: read before, it could miss the entry
/// of a maker that finished and was killed a moment later, whose worktree would then be rolled
/// back though it was complete.
///
/// A marker is in the common dir, which an unconfined agent can write: it is read as an
/// untrusted file, and rolled back only if it is one wt-create writes for its file's name (its
/// worktree `<root>/<name>`, its branch `wt/<name>`) and no other wt-create finished that
/// worktree; any other is dropped.
pub fn reap_dead(repo: &Repo, ledger: &LedgerFile) -> Result<(), Error> {
    let Ok(entries) = fs::read_dir(dir(repo)) else { return Ok(()) };
    for entry in entries.flatten() {
        let file = entry.path();
        let noted_children = file.to_str().is_some_and(|f| f.ends_with(".json.children"));
        if noted_children {
            continue; // read by whoever takes its marker's lock, and removed with it
        }
        if file.extension().is_none_or(|x| x != "json") {
            // A temp file of a marker write that was killed; it never became a marker.
            let _ = fs::remove_file(&file);
            continue;
        }
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            // A link, a FIFO, a directory: wt-create writes none of these.
            tracing::warn!("dropping {}: not a marker wt-create wrote (not a regular file)", file.display());
            let _ = remove_any(&file);
            continue;
        }
        let Some(_owner_gone) = FileLock::try_acquire(&file)? else { continue };
        let read = wt_common::fs::untrusted::read_untrusted_bytes(&file, MARKER_MAX);
        let marker = read.ok().flatten().and_then(|b| serde_json::from_slice::<Marker>(&b).ok());
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let entry = |m: &Marker| ledger.read().map(|l| l.worktrees.get(&m.name).cloned());
        match marker {
            Some(marker) if !marker.is_wt_creates(stem) => {
                tracing::warn!("dropping marker {}: it is not one wt-create wrote", file.display());
            }
            Some(marker) => match entry(&marker)? {
                Some(e) if marker.finished_as(&e) => {
                    tracing::debug!("'{}' was finished before its maker died; dropping the marker", marker.name);
                }
                // Finished by another wt-create (or a pool claim): a marker naming it is not
                // its maker's, whatever it says.
                Some(e) if e.extra.contains_key(MADE_BY) => {
                    tracing::warn!(
                        "dropping marker {}: '{}' was made by another wt-create",
                        file.display(),
                        marker.name
                    );
                }
                // Listed by another tool meanwhile (wt-env, run by a post-checkout hook), or a
                // worktree wt-create adopted: rolled back, but what its directory holds is
                // moved aside rather than deleted, and its branch kept.
                Some(_) => {
                    tracing::warn!("rolling back '{}', left half-made by a wt-create that died", marker.name);
                    roll_back(repo, &marker, By::ReaperKeepingFiles);
                }
                None => {
                    tracing::warn!("rolling back '{}', left half-made by a wt-create that died", marker.name);
                    roll_back(repo, &marker, By::Reaper);
                }
            },
            None => tracing::warn!("dropping unreadable marker {}", file.display()),
        }
        let _ = fs::remove_file(&file);
    }
    Ok(())
}

/// Who rolls a half-made worktree back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// Its maker, whose git children have all ended by themselves: a git lock found now is
    /// another git's.
    Maker,
    /// A later run, after the maker died: its git children were killed with it.
    Reaper,
    /// The same, for a worktree the ledger lists without this marker's id: its directory is
    /// moved aside (`.<name>.rolled-back-<time>` beside it), not deleted, and its branch kept.
    ReaperKeepingFiles,
}

/// Removes what the marker's worktree left: its admin dir, its directory (only if it is
/// recognisably the half-made worktree), and the branch it created (only if still unmoved).
pub fn roll_back(repo: &Repo, m: &Marker, by: By) {
    let dot_git = m.path.join(".git");
    let admin_root = repo.common_dir.join("worktrees");
    if let Ok(entries) = fs::read_dir(&admin_root) {
        for admin in entries.flatten().map(|e| e.path()) {
            if is_admin_dir_of(&admin, &dot_git, &m.name) {
                let _ = remove_any(&admin);
            }
        }
    }
    let keep_files = by == By::ReaperKeepingFiles;
    if keep_files && is_half_made_dir(&m.path, &admin_root) && !holds_nothing(&m.path, &admin_root) {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let aside = m.path.with_file_name(format!(".{}.rolled-back-{nanos}", m.name));
        match fs::rename(&m.path, &aside) {
            Ok(()) => {
                tracing::warn!("moved {} aside to {}: look at it, then remove it", m.path.display(), aside.display())
            }
            Err(e) => tracing::warn!("left {} in place: it could not be moved aside ({e})", m.path.display()),
        }
    } else if is_half_made_dir(&m.path, &admin_root) {
        let _ = wt_common::fs::remove_tree(&m.path);
    } else if m.path.exists() {
        tracing::warn!("left {} in place: it does not look like the half-made worktree", m.path.display());
    }
    // A git killed while creating the branch leaves its lock file; git would refuse every
    // later change to the branch until someone removed it by hand. The marker's owner is dead
    // and its git children died with it (the next holder of the lock waited for them), so the
    // lock is stale. Its maker's own gits ended by themselves, so it is not theirs.
    if by == By::Reaper {
        let _ = fs::remove_file(repo.common_dir.join(format!("refs/heads/{}.lock", m.branch)));
    }
    if m.branch_created && !keep_files {
        // update-ref -d with the old value deletes the branch only if nobody moved it.
        let r = git::run(repo.git_dir(), ["update-ref", "-d", &format!("refs/heads/{}", m.branch), &m.start_commit]);
        if let Err(e) = r {
            tracing::debug!("branch {} kept: {e}", m.branch);
        }
    }
}

/// An admin dir is ours if its `gitdir` points at our worktree, or if git was killed before
/// writing `gitdir`: then it is named after ours and holds only git's "initializing" lock, or
/// nothing at all (git makes the directory, then writes the lock into it); or while writing it:
/// then it is named after ours, the lock is still there, and `gitdir` holds a cut-off start of
/// our path. Rolling back runs under the worktree lock, so no `git worktree add` of wt's is
/// filling such a directory now.
fn is_admin_dir_of(admin: &Path, dot_git: &Path, name: &str) -> bool {
    match read_small(&admin.join("gitdir")).text() {
        Some(gitdir) if Path::new(gitdir.trim_end()) == dot_git => true,
        Some(gitdir) => {
            wt_common::git::worktree::is_named_after(admin, name)
                && wt_common::git::worktree::killed_writing_gitdir(admin, &gitdir, dot_git)
        }
        None => {
            let empty = fs::read_dir(admin).is_ok_and(|mut d| d.next().is_none());
            wt_common::git::worktree::is_named_after(admin, name) && (empty || admin.join("locked").exists())
        }
    }
}

/// The directory is a half-made worktree if it is empty, or its `.git` file points into the
/// repository's admin dirs, or it holds nothing but a `.git` file git was killed while writing.
/// Anything else at that path is not ours to delete.
fn is_half_made_dir(path: &Path, admin_root: &Path) -> bool {
    if holds_nothing(path, admin_root) {
        return true;
    }
    match read_small(&path.join(".git")).text() {
        Some(text) => text.trim_end().strip_prefix("gitdir: ").is_some_and(|g| Path::new(g).starts_with(admin_root)),
        None => false,
    }
}

/// Empty, or holding only a `.git` file that is empty or a cut-off start of the
/// `gitdir: <admin dir>` line git writes there, besides wt-env's default env file: nothing
/// anyone could lose.
pub fn holds_nothing(path: &Path, admin_root: &Path) -> bool {
    let Ok(entries) = fs::read_dir(path) else { return false };
    // wt-env's env file (and its temp file) hold nothing but leases, written again from the
    // ledger on the next lease: a lease whose write met a worktree being made or removed can
    // leave one in a directory that is otherwise empty.
    let names: Vec<_> = entries
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| !n.to_str().is_some_and(|n| n == ".env.wt" || n.starts_with("..env.wt.tmp.")))
        .collect();
    match names.as_slice() {
        [] => true,
        [only] if only == ".git" => {
            let Some(text) = read_small(&path.join(".git")).text() else { return false };
            let full = format!("gitdir: {}/", admin_root.display());
            full.starts_with(text.as_str()) || text.starts_with(&full)
        }
        _ => false,
    }
}
