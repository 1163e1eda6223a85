//! What the store already knows about the main worktree's files, so that sharing into the next
//! worktree does not read them again: per shared directory, each file's inode, size and
//! modification time when it was hashed, and what came of it. A file whose inode, size and
//! mtime are unchanged (git's own test for "unchanged") is not read again. The cache is a
//! hint: a missing or unreadable one only means hashing again.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wt_common::fsutil::write_atomic;

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub kind: Kind,
}

impl Known {
    pub fn new(meta: &fs::Metadata, kind: Kind) -> Known {
        Known { dev: meta.dev(), ino: meta.ino(), size: meta.size(), mtime_ns: mtime_ns(meta), kind }
    }

    /// The file is as it was when it was hashed.
    pub fn still(&self, meta: &fs::Metadata) -> bool {
        self.dev == meta.dev() && self.ino == meta.ino() && self.size == meta.size() && self.mtime_ns == mtime_ns(meta)
    }
}

fn mtime_ns(meta: &fs::Metadata) -> i128 {
    meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128
}

/// The cache file of one shared directory of the main worktree.
pub fn path_for(store_root: &Path, source: &Path) -> PathBuf {
    let digest = Sha256::digest(source.as_os_str().as_encoded_bytes());
    let name: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    store_root.join("cache").join(name)
}

/// Relative path → what is known; empty when there is no cache or it cannot be read.
pub fn load(path: &Path) -> HashMap<String, Known> {
    let Ok(text) = fs::read_to_string(path) else { return HashMap::new() };
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<(String, Known)> {
    let mut f = line.splitn(7, '\t');
    let (dev, ino, size, mtime) = (f.next()?, f.next()?, f.next()?, f.next()?);
    let (tag, key, rel) = (f.next()?, f.next()?, f.next()?);
    let kind = match tag {
        "s" => Kind::InStore(Key(key.to_string())),
        "c" => Kind::Stored(Key(key.to_string())),
        "r" => Kind::Rewrite,
        _ => return None,
    };
    let known = Known {
        dev: dev.parse().ok()?,
        ino: ino.parse().ok()?,
        size: size.parse().ok()?,
        mtime_ns: mtime.parse().ok()?,
        kind,
    };
    Some((rel.to_string(), known))
}

/// Writes the cache atomically (a reader sees the old one or the new one).
pub fn save(path: &Path, entries: &HashMap<String, Known>) -> std::io::Result<()> {
    let mut text = String::with_capacity(entries.len() * 120);
    for (rel, k) in entries {
        if rel.contains(['\n', '\t']) {
            continue; // such names are hashed each time rather than mis-parsed
        }
        let (tag, key) = match &k.kind {
            Kind::InStore(key) => ("s", key.0.as_str()),
            Kind::Stored(key) => ("c", key.0.as_str()),
            Kind::Rewrite => ("r", "-"),
        };
        text.push_str(&format!("{}\t{}\t{}\t{}\t{tag}\t{key}\t{rel}\n", k.dev, k.ino, k.size, k.mtime_ns));
    }
    write_atomic(path, text.as_bytes())
}
