//! A path's stat data as wt notes it, to tell later whether anything wrote it without reading
//! it: which file (device and inode), its mode and size, and both times to the nanosecond
//! (`ctime` moves on any change, and no program can set it back: a `touch -m` that restores an
//! mtime still moves it). Taken with `lstat` (a link planted in place of a file or directory is
//! a change, never followed). Used by a pooled worktree's seal and a clean worktree's proof.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    /// A directory's size is its entries' blocks on some file systems: compared anyway.
    pub size: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl Stamp {
    pub fn of_metadata(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            mode: m.mode(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    /// The stamp of `path` (`lstat`), if there is anything there.
    pub fn of(path: &Path) -> Option<Stamp> {
        std::fs::symlink_metadata(path).ok().map(|m| Stamp::of_metadata(&m))
    }

    /// The stamp of `rel` below the directory `dir` (`fstatat`, the last component not
    /// followed): walking a long absolute path is half the cost of a stat, and a look at a
    /// worktree takes one per tracked file.
    pub fn at(dir: &impl std::os::fd::AsFd, rel: &str) -> Option<Stamp> {
        let st = rustix::fs::statat(dir, rel, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).ok()?;
        Some(Stamp {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            mode: st.st_mode as u32,
            size: st.st_size as u64,
            mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
        })
    }

    pub fn is_dir(&self) -> bool {
        self.mode & nix::libc::S_IFMT == nix::libc::S_IFDIR
    }

    /// The newer of its two times, in nanoseconds since the epoch.
    pub fn newest_nanos(&self) -> i128 {
        let at = |(s, ns): (i64, i64)| i128::from(s) * 1_000_000_000 + i128::from(ns);
        at(self.mtime).max(at(self.ctime))
    }

    /// Whether the path last changed before `before` (its `mtime` and `ctime`).
    pub fn still_since(&self, before: SystemTime) -> bool {
        let at = |(s, ns): (i64, i64)| {
            SystemTime::UNIX_EPOCH + Duration::new(s.max(0) as u64, ns.clamp(0, 999_999_999) as u32)
        };
        at(self.mtime) < before && at(self.ctime) < before
    }
}
