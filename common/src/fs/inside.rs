//! Writing a file inside a worktree and nowhere else.
//!
//! The worktree is the agent's: any directory in it may have become a symbolic link to
//! somewhere else by the time wt writes there (`ln -s /etc sub`, then `--dotenv=sub/.env`). So
//! the path is walked one directory at a time from the worktree root with `openat` and
//! `O_NOFOLLOW`, never resolved by name, and the file is written to a temp file in the final
//! directory and renamed over the name, which must not be a symbolic link itself.

use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{openat, renameat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, Mode, SFlag};

use crate::error::Error;

/// Checks that `rel` names a file below a directory: relative, no `..`, not empty.
/// `flag` is how the user gave it (`--dotenv`), for the message.
pub fn check_relative(rel: &Path, flag: &str) -> Result<(), Error> {
    let ok = !rel.as_os_str().is_empty()
        && rel.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        && rel.file_name().is_some();
    if ok {
        Ok(())
    } else {
        Err(Error::usage(
            "bad-path",
            format!("{flag} {}: must be a relative path inside the worktree, without '..'", rel.display()),
        ))
    }
}

/// Writes `bytes` to `root/rel`, whole (temp file, then rename), without following any
/// symbolic link below `root`; missing directories on the way are made. Fails with
/// `outside-worktree` when a directory on the way or the file itself is a symbolic link, or
/// `rel` leaves `root`.
pub fn write(root: &Path, rel: &Path, bytes: &[u8]) -> Result<PathBuf, Error> {
    write_mode(root, rel, bytes, 0o644)
}

/// `write`, readable by its owner only (`0600`): a file that holds a secret (an env file with
/// the worktree's database password).
pub fn write_private(root: &Path, rel: &Path, bytes: &[u8]) -> Result<PathBuf, Error> {
    write_mode(root, rel, bytes, 0o600)
}

fn write_mode(root: &Path, rel: &Path, bytes: &[u8], mode: u32) -> Result<PathBuf, Error> {
    let (dir, file) = open_parent(root, rel)?;
    let target = root.join(rel);
    match fstatat(&dir, file, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if kind(&st) == SFlag::S_IFLNK => return Err(outside(&target, "it is a symbolic link")),
        Ok(st) if kind(&st) == SFlag::S_IFDIR => return Err(outside(&target, "it is a directory")),
        _ => {}
    }
    put(&dir, file, &target, mode, |f| f.write_all(bytes))?;
    Ok(target)
}

/// Copies `src` to `root/rel` as `write` does, unless something (even a dangling link) is
/// there already: that is kept. Returns whether it copied.
pub fn copy_new(root: &Path, rel: &Path, src: &Path) -> Result<bool, Error> {
    let (dir, file) = open_parent(root, rel)?;
    if fstatat(&dir, file, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok() {
        return Ok(false);
    }
    let target = root.join(rel);
    let mut from = std::fs::File::open(src).map_err(|e| Error::io(src.display(), e))?;
    put(&dir, file, &target, 0o644, |f| std::io::copy(&mut from, f).map(|_| ()))?;
    Ok(true)
}

fn kind(st: &nix::sys::stat::FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT
}

fn outside(target: &Path, why: &str) -> Error {
    Error::failed(
        "outside-worktree",
        format!(
            "{}: {why}; wt writes only inside the worktree (remove the link, or choose another file)",
            target.display()
        ),
    )
}

/// The directory that will hold `root/rel`, opened one component at a time from `root`
/// without following links (and made where missing), and the file's name in it.
pub(crate) fn open_parent<'r>(root: &Path, rel: &'r Path) -> Result<(OwnedFd, &'r OsStr), Error> {
    let target = root.join(rel);
    check_relative(rel, "the file").map_err(|e| outside(&target, &e.message))?;
    let dir_flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
    let io = |e: nix::Error| Error::io(target.display(), std::io::Error::from(e));
    let mut dir: OwnedFd = nix::fcntl::open(root, dir_flags, Mode::empty()).map_err(io)?;
    let parts: Vec<&OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p),
            _ => None,
        })
        .collect();
    let (file, dirs) = parts.split_last().ok_or_else(|| outside(&target, "no file name"))?;
    for part in dirs {
        match nix::sys::stat::mkdirat(&dir, *part, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(nix::Error::EEXIST) => {}
            Err(e) => return Err(io(e)),
        }
        dir = openat(&dir, *part, dir_flags, Mode::empty()).map_err(|e| match e {
            nix::Error::ELOOP | nix::Error::ENOTDIR => {
                outside(&target, &format!("{} is a symbolic link or not a directory", Path::new(part).display()))
            }
            e => io(e),
        })?;
    }
    Ok((dir, file))
}

/// Fills a new temp file in `dir` and renames it to `file`; the temp file never outlives a
/// failure.
fn put(
    dir: &OwnedFd,
    file: &OsStr,
    target: &Path,
    mode: u32,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<(), Error> {
    let name = Path::new(file).display().to_string();
    sweep_stale_temps(dir, &name);
    let tmp = crate::fs::temp_name(&name);
    let create = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(dir, tmp.as_str(), create, Mode::from_bits_truncate(mode))
        .map_err(|e| Error::io(target.display(), std::io::Error::from(e)))?;
    let written = (|| {
        let mut f = std::fs::File::from(fd);
        fill(&mut f)?;
        f.sync_all()?;
        renameat(dir, tmp.as_str(), dir, file).map_err(std::io::Error::from)
    })();
    if let Err(e) = written {
        let _ = nix::unistd::unlinkat(dir, tmp.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
        return Err(Error::io(target.display(), e));
    }
    Ok(())
}

/// Removes the temp files of `name` in `dir` that writers killed before their rename left
/// (see `fs::is_stale_temp`), through the directory already opened without links.
fn sweep_stale_temps(dir: &OwnedFd, name: &str) {
    use std::os::fd::AsRawFd;
    let Ok(entries) = std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd())) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name();
        if file.to_str().is_some_and(|f| crate::fs::is_stale_temp(f, name)) {
            let _ = nix::unistd::unlinkat(dir, file.as_os_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn writes_inside_and_refuses_every_way_out() {
        let t = tempfile::tempdir().unwrap();
        let (root, outside) = (t.path().join("wt"), t.path().join("outside"));
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        assert_eq!(write(&root, Path::new("sub/.env"), b"A=1\n").unwrap(), root.join("sub/.env"));
        assert_eq!(std::fs::read(root.join("sub/.env")).unwrap(), b"A=1\n");
        symlink(&outside, root.join("link")).unwrap();
        symlink(outside.join("f"), root.join("final")).unwrap();
        for rel in ["link/.env", "final", "../outside/f", "/tmp/x", "sub/../../outside/f", "link/new/.env"] {
            let err = write(&root, Path::new(rel), b"x").unwrap_err();
            assert_eq!(err.code, "outside-worktree", "{rel}: {err:?}");
        }
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "nothing written outside");
        assert_eq!(std::fs::read_dir(root.join("sub")).unwrap().count(), 1, "no temp file left");
        let src = t.path().join("app.db");
        std::fs::write(&src, b"db").unwrap();
        assert!(copy_new(&root, Path::new("data/app.db"), &src).unwrap(), "copied, its directory made");
        assert!(!copy_new(&root, Path::new("data/app.db"), &src).unwrap(), "never overwritten");
        symlink(outside.join("db"), root.join("dangling.db")).unwrap();
        assert!(!copy_new(&root, Path::new("dangling.db"), &src).unwrap(), "a planted link is left alone");
        assert_eq!(copy_new(&root, Path::new("link/app.db"), &src).unwrap_err().code, "outside-worktree");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "nothing written outside");
    }
}
