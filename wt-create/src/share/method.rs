//! How one file of a shared tree is placed in a worktree: a hard link to the store's copy, a
//! reflink (a copy-on-write clone that shares the blocks until either side writes), or a plain
//! copy. `--share-mode auto` prefers a reflink, then a hard link, then a copy.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// What `--share-mode` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShareMode {
    /// A reflink where the file system can, else a hard link, else a copy.
    Auto,
    Hardlink,
    Reflink,
    Copy,
}

/// How files are actually placed, once `auto` is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Hardlink,
    Reflink,
    Copy,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Hardlink => "hardlink",
            Method::Reflink => "reflink",
            Method::Copy => "copy",
        }
    }
}

/// How one file ended up placed: what was asked, or a copy when that was impossible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    As(Method),
    /// The method could not be used for this file (another file system, too many links).
    CopiedInstead,
}

/// Places `src` at `dst` (which must not exist) by `method`; a file that cannot be linked or
/// cloned (another file system) is copied.
pub fn place(src: &Path, dst: &Path, method: Method, mode: u32) -> io::Result<Placed> {
    let attempt = match method {
        Method::Hardlink => fs::hard_link(src, dst),
        Method::Reflink => reflink(src, dst, mode),
        Method::Copy => return copy(src, dst, mode).map(|()| Placed::As(Method::Copy)),
    };
    match attempt {
        Ok(()) => Ok(Placed::As(method)),
        Err(e) if cannot_share(&e) => {
            let _ = fs::remove_file(dst); // a clone that failed leaves an empty file
            copy(src, dst, mode).map(|()| Placed::CopiedInstead)
        }
        Err(e) => Err(e),
    }
}

/// Errors that mean "this file cannot be linked or cloned here", not "something is broken".
fn cannot_share(e: &io::Error) -> bool {
    use rustix::io::Errno;
    let errno = e.raw_os_error().map(Errno::from_raw_os_error);
    matches!(errno, Some(Errno::XDEV | Errno::MLINK | Errno::OPNOTSUPP | Errno::INVAL | Errno::NOTTY | Errno::PERM))
}

/// A copy-on-write clone (FICLONE): btrfs, XFS, bcachefs, and others that support it.
pub fn reflink(src: &Path, dst: &Path, mode: u32) -> io::Result<()> {
    let from = File::open(src)?;
    let to = OpenOptions::new().write(true).create_new(true).mode(mode & 0o7777).open(dst)?;
    rustix::fs::ioctl_ficlone(&to, &from).map_err(io::Error::from)?;
    // The umask may have cleared bits of the mode: set it exactly.
    to.set_permissions(fs::Permissions::from_mode(mode & 0o7777))
}

/// A plain copy with the file's mode (the executable bit above all).
pub fn copy(src: &Path, dst: &Path, mode: u32) -> io::Result<()> {
    let mut from = File::open(src)?;
    let mut to = OpenOptions::new().write(true).create_new(true).mode(mode & 0o7777).open(dst)?;
    io::copy(&mut from, &mut to)?;
    to.set_permissions(fs::Permissions::from_mode(mode & 0o7777))
}

/// Whether reflinks work from the file system of `src_dir` to that of `dst_dir`: one tiny clone.
pub fn reflinks_work(src_dir: &Path, dst_dir: &Path) -> bool {
    let probe = format!(".wt-reflink-probe-{}", std::process::id());
    let (src, dst) = (src_dir.join(&probe), dst_dir.join(&probe));
    let works = fs::write(&src, b"probe").is_ok() && reflink(&src, &dst, 0o600).is_ok();
    let _ = fs::remove_file(&src);
    let _ = fs::remove_file(&dst);
    works
}

/// Resolves `auto` (and checks `reflink`) for sharing from `src_dir` into `dst_dir`.
pub fn resolve(mode: ShareMode, src_dir: &Path, dst_dir: &Path) -> Result<Method, String> {
    match mode {
        ShareMode::Hardlink => Ok(Method::Hardlink),
        ShareMode::Copy => Ok(Method::Copy),
        ShareMode::Reflink if reflinks_work(src_dir, dst_dir) => Ok(Method::Reflink),
        ShareMode::Reflink => Err(format!(
            "the file system of {} cannot make reflinks (copy-on-write clones); use --share-mode auto",
            dst_dir.display()
        )),
        ShareMode::Auto if reflinks_work(src_dir, dst_dir) => Ok(Method::Reflink),
        ShareMode::Auto => Ok(Method::Hardlink),
    }
}
