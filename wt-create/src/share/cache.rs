//! What the store already knows about the main worktree's files, so that sharing into the next
//! worktree does not read them again: per shared directory, each file's inode, size, mode and
//! modification time when it was hashed, and what came of it. A file whose inode, size, mode
//! and mtime are unchanged is not read again. The cache is a hint: a missing or unreadable one
//! only means hashing again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wt_common::fs::write_atomic;

use super::store::Key;

/// What a main-worktree file is for sharing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Its inode is the store entry `Key`: link to it directly.
    InStore(Key),
    /// The store has its content under `Key` as another inode.
    Stored(Key),
    /// It names the main worktree's path: copied with the path rewritten.
    Rewrite,
}

/// A file as `stat` sees it: which inode, and whether its content may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ident {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub mode: u32,
}

impl Ident {
    pub fn of(st: &rustix::fs::Stat) -> Ident {
        Ident {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size as u64,
            mtime_ns: st.st_mtime as i128 * 1_000_000_000 + st.st_mtime_nsec as i128,
            mode: st.st_mode,
        }
    }
}

/// Inode → what it was when it was hashed (inode numbers rather than paths: no path strings are
/// built while sharing, and names of one inode share one line).
pub type Cache = HashMap<(u64, u64), (Ident, Kind)>;

/// The entry for `id`, if the file is as it was when it was hashed (git's own test for
/// "unchanged": same inode, size, mode and modification time).
pub fn lookup(cache: &Cache, id: &Ident) -> Option<Kind> {
    cache.get(&(id.dev, id.ino)).filter(|(was, _)| was == id).map(|(_, kind)| kind.clone())
}

/// The cache file of one shared directory of the main worktree.
pub fn path_for(store_root: &Path, source: &Path) -> PathBuf {
    let digest = Sha256::digest(source.as_os_str().as_encoded_bytes());
    let name: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    store_root.join("cache").join(name)
}

/// How big a cache file is read (a line a file: about 12 MiB for 100,000 files).
const CACHE_MAX: u64 = 256 << 20;

/// The cache of a source directory; empty when there is none or it cannot be read. It is in
/// the common dir, which an unconfined agent can write: read as an untrusted file, and every
/// key strictly (a line naming another path is no entry).
pub fn load(path: &Path) -> Cache {
    let Ok(Some(text)) = wt_common::fs::read_untrusted(path, CACHE_MAX) else { return HashMap::new() };
    text.lines().filter_map(parse_line).map(|(id, kind)| ((id.dev, id.ino), (id, kind))).collect()
}

fn parse_line(line: &str) -> Option<(Ident, Kind)> {
    let mut f = line.split(' ');
    let mut num = || f.next()?.parse::<i128>().ok();
    let (dev, ino, size, mtime_ns, mode) = (num()? as u64, num()? as u64, num()? as u64, num()?, num()? as u32);
    let kind = match (f.next()?, f.next()?) {
        ("s", key) => Kind::InStore(Key::parse(key)?),
        ("c", key) => Kind::Stored(Key::parse(key)?),
        ("r", _) => Kind::Rewrite,
        _ => return None,
    };
    Some((Ident { dev, ino, size, mtime_ns, mode }, kind))
}

/// Writes the cache atomically (a reader sees the old one or the new one).
pub fn save(path: &Path, cache: &Cache) -> std::io::Result<()> {
    let mut text = String::with_capacity(cache.len() * 120);
    for (id, kind) in cache.values() {
        let (tag, key) = match kind {
            Kind::InStore(key) => ("s", key.0.as_str()),
            Kind::Stored(key) => ("c", key.0.as_str()),
            Kind::Rewrite => ("r", "-"),
        };
        text.push_str(&format!("{} {} {} {} {} {tag} {key}\n", id.dev, id.ino, id.size, id.mtime_ns, id.mode));
    }
    write_atomic(path, text.as_bytes())
}
