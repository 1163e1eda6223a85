//! The content-addressed store: `<git common dir>/wt/store/`. Each distinct file content (with
//! its mode) is kept once, under the SHA-256 of its bytes, and every worktree's shared files are
//! links to (or clones of) these entries.
//!
//! Crash safety: an entry appears under its final name only whole. It is made either by a hard
//! link (atomic: the name and the whole content appear together) or by a copy written to
//! `tmp/`, synced, and renamed. An entry already present is trusted only once this process has
//! read it and checked its hash, or when it is the very file just hashed (same inode). Temp
//! files of a killed run are never reused (each name carries the pid and a counter) and
//! `--store-gc` removes them. Sharers hold the store lock shared; `--store-gc` holds it
//! exclusively, so it never removes an entry between its creation and its first link.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

use super::cache::Ident;
use wt_common::Error;

/// A store entry's name: the content hash and the mode bits (a hard link shares its mode, so
/// the same bytes with and without the executable bit are two entries).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key(pub String);

impl Key {
    pub fn new(hash_hex: &str, mode: u32) -> Key {
        Key(format!("{hash_hex}-{:04o}", mode & 0o7777))
    }

    /// A key as `new` writes it (64 lowercase hex digits, `-`, 4 octal digits), read back from
    /// a file in the common dir: anything else (`../x`, a short name) is no key.
    pub fn parse(text: &str) -> Option<Key> {
        let (hash, mode) = text.split_once('-')?;
        let hex = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let octal = mode.len() == 4 && mode.bytes().all(|b| (b'0'..=b'7').contains(&b));
        (hex && octal).then(|| Key(text.to_string()))
    }
}

/// The content of a file: its hash, and whether it names `needle` (the main worktree's path).
#[derive(Debug)]
pub struct Scanned {
    pub hash_hex: String,
    pub embeds: bool,
}

/// Reads `path` once: hashes it and looks for `needle` in text files. A file with a NUL byte
/// counts as binary and is never rewritten (a compiled file's strings have fixed lengths).
pub fn scan(path: &Path, needle: Option<&[u8]>) -> io::Result<Scanned> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let (mut found, mut binary) = (false, false);
    // Carry the tail of each chunk so a needle split across two reads is still found.
    let keep = needle.map_or(0, |n| n.len().saturating_sub(1));
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        hasher.update(chunk);
        if let Some(needle) = needle.filter(|_| !binary) {
            binary = memchr::memchr(0, chunk).is_some();
            if !found && !binary {
                carry.extend_from_slice(chunk);
                found = crate::share::rewrite::contains_path(&carry, needle);
                let drop = carry.len().saturating_sub(keep);
                carry.drain(..drop);
            }
        }
    }
    Ok(Scanned { hash_hex: hex(&hasher.finalize()), embeds: found && !binary })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where the entry stands relative to the file just hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adopted {
    /// The entry is the hashed file itself (the store took a hard link to it).
    SameInode,
    /// The entry is another inode with the same content.
    Separate,
}

#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    /// Entries this process has read and checked.
    verified: Mutex<HashSet<Key>>,
    counter: AtomicU64,
    _lock: Flock<File>,
}

impl Store {
    /// Opens (creating) the store under `state_dir`, holding its lock shared, or exclusive for
    /// garbage collection.
    pub fn open(state_dir: &Path, exclusive: bool) -> Result<Store, Error> {
        let root = state_dir.join("store");
        for sub in ["files", "tmp", "cache"] {
            fs::create_dir_all(root.join(sub)).map_err(|e| Error::io(root.join(sub).display(), e))?;
        }
        let lock_path = root.join("store.lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(lock_path.display(), e))?;
        let arg = if exclusive { FlockArg::LockExclusive } else { FlockArg::LockShared };
        let lock = Flock::lock(file, arg)
            .map_err(|(_, e)| Error::env("lock-failed", format!("cannot lock {}: {e}", lock_path.display())))?;
        Ok(Store { root, verified: Mutex::new(HashSet::new()), counter: AtomicU64::new(0), _lock: lock })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn files_dir(&self) -> PathBuf {
        self.root.join("files")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn entry(&self, key: &Key) -> PathBuf {
        self.root.join("files").join(&key.0[..2]).join(&key.0[2..])
    }

    /// A temp name no other process or earlier run uses.
    pub fn tmp_name(&self) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.tmp_dir().join(format!("{}-{n}", std::process::id()))
    }

    /// Makes sure the store holds `file`'s content under `key` (`file` was just hashed to
    /// `key`): takes a hard link to it when there is none, and checks an entry already there.
    pub fn adopt(&self, file: &Path, id: &Ident, key: &Key) -> io::Result<Adopted> {
        let entry = self.entry(key);
        for _ in 0..3 {
            match fs::symlink_metadata(&entry) {
                Ok(m) if m.dev() == id.dev && m.ino() == id.ino => {
                    self.mark_verified(key);
                    return Ok(Adopted::SameInode);
                }
                Ok(_) if self.check(&entry, key)? => return Ok(Adopted::Separate),
                Ok(_) => {
                    // Not what its name says (edited in place through a hard link): replace it.
                    tracing::warn!("store entry {} does not match its hash; replacing it", entry.display());
                    fs::remove_file(&entry).or_else(ignore_missing)?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            if let Some(parent) = entry.parent() {
                fs::create_dir_all(parent)?;
            }
            match fs::hard_link(file, &entry) {
                Ok(()) => {
                    self.mark_verified(key);
                    return Ok(Adopted::SameInode);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue, // another sharer won
                Err(_) => {
                    self.put_copy(file, id.mode, &entry)?;
                    self.mark_verified(key);
                    return Ok(Adopted::Separate);
                }
            }
        }
        Err(io::Error::other(format!("store entry {} keeps changing", entry.display())))
    }

    /// A copy of `file` as the entry, for when it cannot be hard-linked (another file system):
    /// written to a temp name, synced, then renamed, so the entry is never seen half-written.
    fn put_copy(&self, file: &Path, mode: u32, entry: &Path) -> io::Result<()> {
        let tmp = self.tmp_name();
        let result = (|| {
            let mut to = File::create(&tmp)?;
            io::copy(&mut File::open(file)?, &mut to)?;
            to.flush()?;
            to.set_permissions(fs::Permissions::from_mode(mode & 0o7777))?;
            to.sync_all()?;
            wt_common::proc::failpoint::hit("share-store-before-rename");
            fs::rename(&tmp, entry)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Whether the entry's bytes hash to its key (read once per process).
    fn check(&self, entry: &Path, key: &Key) -> io::Result<bool> {
        if self.verified.lock().expect("verified set").contains(key) {
            return Ok(true);
        }
        let scanned = scan(entry, None)?;
        let meta = fs::symlink_metadata(entry)?;
        let ok = Key::new(&scanned.hash_hex, meta.mode()) == *key;
        if ok {
            self.mark_verified(key);
        }
        Ok(ok)
    }

    fn mark_verified(&self, key: &Key) {
        self.verified.lock().expect("verified set").insert(key.clone());
    }
}

pub fn ignore_missing(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

#[cfg(test)]
mod key_tests {
    use super::Key;

    #[test]
    fn a_key_read_back_is_one_new_writes() {
        let hash = "ab".repeat(32);
        let key = Key::new(&hash, 0o100755);
        assert_eq!(Key::parse(&key.0), Some(key));
        for bad in
            ["", "x", "ab-0644", &format!("{hash}-0648"), &format!("{hash}-644"), &format!("../{}-0644", &hash[3..])]
        {
            assert_eq!(Key::parse(bad), None, "{bad}");
        }
        assert_eq!(Key::parse(&format!("{}-0644", "AB".repeat(32))), None, "lowercase only");
    }
}
