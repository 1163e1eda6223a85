//! The machine's port registry: which port blocks the worktrees of every repository on this
//! machine hold, so that no two of them, in any repository, of any user, are ever given the
//! same port. Each repository's ledger says which blocks its own worktrees hold; the registry
//! is what one repository knows of the others'.
//!
//! It is a directory every user of wt can write (`/var/tmp/wt-ports`, or `WT_PORT_REGISTRY`),
//! sticky like `/tmp`, so that nobody can remove another user's entries. One file per leased
//! block, `<start>-<end>.<uid>.<key>.json`, written by its owner and holding where it belongs
//! (repository, worktree, path); nothing secret. Every change happens under the registry's lock
//! (`lock`, opened read-only: `flock` needs no write access), taken while the repository's
//! ledger lock is held, never the other way round.
//!
//! An entry is **live** while what it belongs to exists: for the repository being leased, while
//! its ledger gives that worktree that block; for another repository, while its git common dir
//! and the worktree's directory exist. A stale entry of one's own is removed; another user's is
//! passed over (it cannot be removed, and it claims nothing).
//!
//! Entries are read without following links, without blocking on a FIFO, at most 4 KiB each:
//! any user of the machine can write into the directory.

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::ledger::lease::block_of;
use crate::ledger::Ledger;
use crate::Error;

/// Where the registry is: `WT_PORT_REGISTRY`, else `/var/tmp/wt-ports` (kept across reboots,
/// like the ledgers whose blocks it mirrors).
pub fn dir() -> PathBuf {
    std::env::var_os("WT_PORT_REGISTRY")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/wt-ports"))
}

/// One leased block, as its file holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The repository's git common dir.
    pub repo: PathBuf,
    pub worktree: String,
    /// The worktree's directory.
    pub path: PathBuf,
    pub start: u16,
    pub end: u16,
    pub uid: u32,
}

/// A claim found in the registry, with whether it still holds.
#[derive(Debug, Clone)]
pub struct Found {
    pub claim: Claim,
    pub file: String,
    pub live: bool,
}

/// The registry, locked.
pub struct Registry {
    dir: PathBuf,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("dir", &self.dir).finish()
    }
}

fn unusable(dir: &Path, why: impl std::fmt::Display) -> Error {
    Error::env(
        "port-registry",
        format!(
            "cannot use the machine's port registry {}: {why}; set WT_PORT_REGISTRY to a directory every user of wt can write",
            dir.display()
        ),
    )
}

impl Registry {
    /// Opens (making it, sticky and writable by all, when missing) and locks the registry.
    pub fn lock(timeout: Duration) -> Result<Registry, Error> {
        let dir = dir();
        match std::fs::DirBuilder::new().mode(0o1777).create(&dir) {
            Ok(()) => {
                // The umask may have taken bits away.
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777))
                    .map_err(|e| unusable(&dir, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(unusable(&dir, e)),
        }
        let meta = std::fs::symlink_metadata(&dir).map_err(|e| unusable(&dir, e))?;
        let me = nix::unistd::geteuid().as_raw();
        if !meta.is_dir() {
            return Err(unusable(&dir, "it is not a directory"));
        }
        // Another user's directory that is not sticky would let that user remove our entries.
        if meta.uid() != me && meta.uid() != 0 && meta.mode() & 0o1000 == 0 {
            return Err(unusable(&dir, format!("it belongs to uid {} and is not sticky", meta.uid())));
        }
        let path = dir.join("lock");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(false)
            .create(false)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(&path)
            .or_else(|_| {
                let made = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
                    .mode(0o644)
                    .open(&path)?;
                Ok::<_, std::io::Error>(made)
            })
            .map_err(|e| unusable(&dir, format!("its lock: {e}")))?;
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            return Err(unusable(&dir, "its lock is not a regular file"));
        }
        let deadline = Instant::now() + timeout;
        let mut file = file;
        loop {
            match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(Registry { dir, _lock: lock }),
                Err((f, nix::errno::Errno::EWOULDBLOCK | nix::errno::Errno::EINTR)) => file = f,
                Err((_, e)) => return Err(unusable(&dir, format!("its lock: {e}"))),
            }
            if Instant::now() >= deadline {
                return Err(Error::env(
                    "lock-timeout",
                    format!(
                        "timed out after {:.1}s waiting for the machine's port registry {} (another wt-env holds it)",
                        timeout.as_secs_f64(),
                        path.display()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every claim in the registry, judged live or stale against `ledger`, the ledger of the
    /// repository `repo` (its git common dir). With `prune`, stale claims of one's own are
    /// removed: only by a caller holding that repository's ledger lock with `ledger` read under
    /// it, since against an older ledger a claim made since looks stale.
    fn claims(&self, repo: &Path, ledger: &Ledger, prune: bool) -> Vec<Found> {
        let me = nix::unistd::geteuid().as_raw();
        let mut out = Vec::new();
        let Ok(dir) = crate::fs::beneath::Dir::open(&self.dir) else { return out };
        let Ok(entries) = dir.entries() else { return out };
        for (file, _) in entries.into_iter().filter(|(n, _)| n.ends_with(".json")) {
            let Some(claim) = dir.read(&file, 4096).and_then(|b| serde_json::from_slice::<Claim>(&b).ok()) else {
                continue;
            };
            if claim.start > claim.end || !file.starts_with(&format!("{}-{}.{}.", claim.start, claim.end, claim.uid)) {
                continue; // not what its name says: nobody's claim
            }
            let live = if claim.repo == repo {
                ledger
                    .worktrees
                    .get(&claim.worktree)
                    .and_then(block_of)
                    .is_some_and(|b| b.start == claim.start && b.end() == claim.end)
            } else {
                exists(&claim.repo) && exists(&claim.path)
            };
            if prune && !live && claim.uid == me {
                let _ = dir.remove(&file);
                continue;
            }
            out.push(Found { claim, file, live });
        }
        out
    }

    /// The blocks other worktrees hold, as `(first, last)` port: every live claim but those of
    /// `worktree` in `repo`. Call it holding `repo`'s ledger lock, with `ledger` read under it:
    /// the stale claims of `repo` are removed.
    pub fn others(&self, repo: &Path, worktree: &str, ledger: &Ledger) -> Vec<(u16, u16)> {
        self.claims(repo, ledger, true)
            .into_iter()
            .filter(|f| f.live && !(f.claim.repo == repo && f.claim.worktree == worktree))
            .map(|f| (f.claim.start, f.claim.end))
            .collect()
    }

    /// Records that `worktree` of `repo` holds `start..=end`. A block it held before stays
    /// claimed until `settle`, called once the ledger no longer holds it: freed first, a kill
    /// before the ledger is written would leave a block the ledger still gives out free to
    /// another repository.
    pub fn claim(&self, repo: &Path, worktree: &str, path: &Path, start: u16, end: u16) -> Result<(), Error> {
        let uid = nix::unistd::geteuid().as_raw();
        let claim =
            Claim { repo: repo.to_path_buf(), worktree: worktree.into(), path: path.to_path_buf(), start, end, uid };
        let name = file_name(&claim);
        let dir = crate::fs::beneath::Dir::open(&self.dir).map_err(|e| unusable(&self.dir, e))?;
        let bytes = serde_json::to_vec(&claim).expect("a claim serializes");
        dir.write(&name, &bytes).map_err(|e| unusable(&self.dir, e))?;
        // Readable by every user of wt (it names no secret), whatever the umask.
        if let Ok((file, _)) = dir.file(&name) {
            let _ = rustix::fs::fchmod(file.as_fd(), rustix::fs::Mode::from_raw_mode(0o644));
        }
        Ok(())
    }

    /// Forgets every block `worktree` of `repo` held but `start..=end`, which it holds now.
    pub fn settle(&self, repo: &Path, worktree: &str, start: u16, end: u16) {
        let uid = nix::unistd::geteuid().as_raw();
        let keep = Claim { repo: repo.to_path_buf(), worktree: worktree.into(), path: PathBuf::new(), start, end, uid };
        if let Ok(dir) = crate::fs::beneath::Dir::open(&self.dir) {
            self.release_except(&dir, repo, worktree, Some(&file_name(&keep)));
        }
    }

    /// Forgets what `worktree` of `repo` holds. Call it once the ledger no longer holds it.
    pub fn release(&self, repo: &Path, worktree: &str) {
        if let Ok(dir) = crate::fs::beneath::Dir::open(&self.dir) {
            self.release_except(&dir, repo, worktree, None);
        }
    }

    fn release_except(&self, dir: &crate::fs::beneath::Dir, repo: &Path, worktree: &str, keep: Option<&str>) {
        let suffix = format!(".{}.json", key(repo, worktree));
        for (file, _) in dir.entries().unwrap_or_default() {
            if file.ends_with(&suffix) && Some(file.as_str()) != keep {
                let _ = dir.remove(&file);
            }
        }
    }
}

/// Whether `path` exists; one that cannot be looked at (another user's) is taken to exist.
fn exists(path: &Path) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(_) => true,
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

/// A short key of a worktree of a repository, for file names.
fn key(repo: &Path, worktree: &str) -> String {
    let keyed = [repo.as_os_str().as_encoded_bytes(), b"\0", worktree.as_bytes()].concat();
    format!("{:016x}", crate::fs::fnv::fnv1a(&keyed))
}

fn file_name(c: &Claim) -> String {
    format!("{}-{}.{}.{}.json", c.start, c.end, c.uid, key(&c.repo, &c.worktree))
}

/// Every claim, for `wt-env --list --machine`, by first port.
pub fn list(repo: &Path, ledger: &Ledger) -> Result<BTreeMap<(u16, String), Found>, Error> {
    let registry = Registry::lock(crate::proc::lock::default_timeout())?;
    // Read only: `ledger` was read without its lock, and a lease taken since would look stale
    // against it (removing its claim let another repository take the block).
    Ok(registry.claims(repo, ledger, false).into_iter().map(|f| ((f.claim.start, f.file.clone()), f)).collect())
}
