//! A file cloned or copied from the main worktree keeps its modification time, as `cp -a` does
//! (a hard link shares it anyway). cargo judges a `target/` by mtimes: a unit whose
//! dependency's output is newer than its own dep-info is compiled again, so a clone of
//! `target/` stamped with the time of the clone recompiled 19 of ripgrep's 33 crates where one
//! keeping the times recompiles only the workspace's own (docs/rust-target.md).

use std::ffi::CStr;
use std::io;
use std::os::fd::BorrowedFd;

use rustix::fs::{AtFlags, Timespec, Timestamps, UTIME_OMIT};

/// Sets the mtime of `name` in the directory `dir` (never through a symbolic link) to
/// `mtime_ns` nanoseconds since the epoch; the access time is left as it is.
pub fn keep(dir: BorrowedFd<'_>, name: &CStr, mtime_ns: i128) -> io::Result<()> {
    let times = Timestamps {
        last_access: Timespec { tv_sec: 0, tv_nsec: UTIME_OMIT },
        last_modification: Timespec {
            tv_sec: mtime_ns.div_euclid(1_000_000_000) as i64,
            tv_nsec: mtime_ns.rem_euclid(1_000_000_000) as _,
        },
    };
    rustix::fs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(io::Error::from)
}
