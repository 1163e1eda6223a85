//! A directory an agent can write, read from unconfined code without trusting it: every name is
//! looked up relative to a directory already opened (`openat`), never through a symbolic link
//! (`O_NOFOLLOW`, and `fstat` says what was opened), never blocking on a FIFO or a device
//! (`O_NONBLOCK`, and only regular files are read), and what is removed is removed from the
//! very directory that was read (`unlinkat` on its descriptor), so an agent that swaps a
//! directory for a link to another repository meanwhile changes nothing there.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, CWD};

/// An opened directory.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

/// What an entry is, as `fstatat` without following a link says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    File,
    Dir,
    /// A link, a FIFO, a socket, a device: never opened.
    Other,
}

const DIR_FLAGS: OFlags =
    OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC).union(OFlags::NONBLOCK);
const FILE_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC).union(OFlags::NONBLOCK);

impl Dir {
    /// Opens `path`, whose last component must be a directory, not a link to one.
    pub fn open(path: &Path) -> std::io::Result<Dir> {
        Ok(Dir { fd: rustix::fs::openat(CWD, path, DIR_FLAGS, Mode::empty())? })
    }

    /// The subdirectory `name` of this one (not a link to one).
    pub fn dir(&self, name: &str) -> std::io::Result<Dir> {
        Ok(Dir { fd: rustix::fs::openat(&self.fd, plain(name)?, DIR_FLAGS, Mode::empty())? })
    }

    /// The entries' names and kinds (`.` and `..` left out).
    pub fn entries(&self) -> std::io::Result<Vec<(String, Kind)>> {
        let fd = rustix::fs::openat(&self.fd, ".", DIR_FLAGS, Mode::empty())?;
        let mut out = Vec::new();
        for entry in rustix::fs::Dir::read_from(&fd)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "." || name == ".." {
                continue;
            }
            out.push((name.clone(), self.kind(&name)));
        }
        Ok(out)
    }

    fn kind(&self, name: &str) -> Kind {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => Kind::File,
                FileType::Directory => Kind::Dir,
                _ => Kind::Other,
            },
            Err(_) => Kind::Other,
        }
    }

    /// The regular file `name`, opened for reading; its size. Refused when it is anything else
    /// (checked on what was opened, so a swap after the listing changes nothing).
    pub fn file(&self, name: &str) -> std::io::Result<(std::fs::File, u64)> {
        let fd = rustix::fs::openat(&self.fd, plain(name)?, FILE_FLAGS, Mode::empty())?;
        let st = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(std::io::Error::other(format!("{name} is not a regular file")));
        }
        Ok((std::fs::File::from(fd), st.st_size as u64))
    }

    /// Copies the regular file `name` to `to` (a new file), at most `max` bytes: a file that is
    /// longer (or grows meanwhile) is refused and `to` removed.
    pub fn copy_file(&self, name: &str, to: &Path, max: u64) -> std::io::Result<u64> {
        let (file, size) = self.file(name)?;
        if size > max {
            return Err(std::io::Error::other(format!("{name} is larger than {max} bytes")));
        }
        let mut out = std::fs::OpenOptions::new().write(true).create_new(true).open(to)?;
        let copied = std::io::copy(&mut file.take(max + 1), &mut out);
        match copied {
            Ok(n) if n <= max => Ok(n),
            Ok(_) => {
                let _ = std::fs::remove_file(to);
                Err(std::io::Error::other(format!("{name} grew past {max} bytes")))
            }
            Err(e) => {
                let _ = std::fs::remove_file(to);
                Err(e)
            }
        }
    }

    /// Removes the file (or link) `name` from this very directory.
    pub fn remove(&self, name: &str) -> std::io::Result<()> {
        Ok(rustix::fs::unlinkat(&self.fd, plain(name)?, AtFlags::empty())?)
    }

    /// What `name` is (`None`: nothing there), without following a link.
    pub fn kind_of(&self, name: &str) -> Option<Kind> {
        let name = plain(name).ok()?;
        rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).ok().map(|st| {
            match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => Kind::File,
                FileType::Directory => Kind::Dir,
                _ => Kind::Other,
            }
        })
    }

    /// Removes whatever `name` is: a file, a link (not what it points at), a FIFO, or a
    /// directory with everything in it, each entry from the directory it was read in. A
    /// directory this user owns but may not write (a Go module cache is 0555) is first made
    /// writable by its owner, through the very directory opened.
    pub fn remove_tree(&self, name: &str) -> std::io::Result<()> {
        match self.kind_of(name) {
            None => Ok(()),
            Some(Kind::Dir) => {
                let sub = self.dir(name)?;
                sub.let_owner_write();
                for (entry, _) in sub.entries()? {
                    sub.remove_tree(&entry)?;
                }
                Ok(rustix::fs::unlinkat(&self.fd, plain(name)?, AtFlags::REMOVEDIR)?)
            }
            Some(_) => self.remove(name),
        }
    }

    /// Adds `u+rwx` to this directory when this user owns it and lacks one of them.
    fn let_owner_write(&self) {
        if let Ok(st) = rustix::fs::fstat(&self.fd) {
            let mode = st.st_mode & 0o7777;
            if st.st_uid == nix::unistd::geteuid().as_raw() && mode & 0o700 != 0o700 {
                let _ = rustix::fs::fchmod(&self.fd, Mode::from_raw_mode(mode | 0o700));
            }
        }
    }

    /// The subdirectory `name`, made when missing; anything else in its place (a link, a file,
    /// a FIFO) is removed first.
    pub fn ensure_dir(&self, name: &str) -> std::io::Result<Dir> {
        if let Ok(dir) = self.dir(name) {
            return Ok(dir);
        }
        self.remove_tree(name)?;
        match rustix::fs::mkdirat(&self.fd, plain(name)?, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        self.dir(name)
    }

    /// The regular file `name` if it is one of at most `max` bytes (`None` otherwise: missing,
    /// bigger, or anything but a regular file).
    pub fn read(&self, name: &str, max: u64) -> Option<Vec<u8>> {
        let (file, size) = self.file(name).ok()?;
        if size > max {
            return None;
        }
        let mut bytes = Vec::new();
        file.take(max + 1).read_to_end(&mut bytes).ok()?;
        (bytes.len() as u64 <= max).then_some(bytes)
    }

    /// Replaces `name` with `bytes`, unless it is a regular file holding them already: written
    /// to a temp file made new in this directory (`O_EXCL|O_NOFOLLOW`: a link planted under the
    /// temp name is not followed), then renamed over whatever `name` is.
    pub fn write(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        if self.read(name, bytes.len() as u64).is_some_and(|old| old == bytes) {
            return Ok(());
        }
        let tmp = format!(".{}.tmp.{}", plain(name)?, std::process::id());
        let _ = self.remove_tree(&tmp);
        let flags =
            OFlags::WRONLY.union(OFlags::CREATE).union(OFlags::EXCL).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);
        let fd = rustix::fs::openat(&self.fd, tmp.as_str(), flags, Mode::from_raw_mode(0o644))?;
        let written = std::fs::File::from(fd).write_all(bytes);
        let renamed = written.and_then(|()| Ok(rustix::fs::renameat(&self.fd, tmp.as_str(), &self.fd, name)?));
        if renamed.is_err() {
            let _ = self.remove(&tmp);
        }
        renamed
    }

    /// Renames `from` to `to` within this directory, replacing what `to` was (a directory
    /// there is removed first).
    pub fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        self.remove_tree(to)?;
        Ok(rustix::fs::renameat(&self.fd, plain(from)?, &self.fd, plain(to)?)?)
    }

    /// Moves `from` (whatever it is, not followed) out of this very directory into `to` as
    /// `to_name`, which must not exist: one atomic step, on one file system (`EXDEV` else).
    pub fn move_to(&self, from: &str, to: &Dir, to_name: &str) -> std::io::Result<()> {
        Ok(rustix::fs::renameat_with(
            &self.fd,
            plain(from)?,
            &to.fd,
            plain(to_name)?,
            rustix::fs::RenameFlags::NOREPLACE,
        )?)
    }
}

/// A name of one component: no `/`, not `.` or `..`.
fn plain(name: &str) -> std::io::Result<&str> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(std::io::Error::other(format!("{name:?} is not a plain name")));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_fifos_and_swapped_directories_are_never_followed() {
        let t = tempfile::tempdir().unwrap();
        let (mine, victim) = (t.path().join("mine"), t.path().join("victim"));
        std::fs::create_dir_all(mine.join("ab")).unwrap();
        std::fs::create_dir_all(&victim).unwrap();
        std::fs::write(victim.join("precious"), "keep").unwrap();
        std::fs::write(mine.join("ab/obj"), "data").unwrap();
        std::os::unix::fs::symlink(&victim, mine.join("cd")).unwrap();
        std::os::unix::fs::symlink(victim.join("precious"), mine.join("ab/link")).unwrap();
        nix::unistd::mkfifo(&mine.join("ab/fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let dir = Dir::open(&mine).unwrap();
        let mut entries = dir.entries().unwrap();
        entries.sort();
        assert_eq!(entries, [("ab".to_string(), Kind::Dir), ("cd".to_string(), Kind::Other)]);
        assert!(dir.dir("cd").is_err(), "a link to a directory is not opened");
        let ab = dir.dir("ab").unwrap();
        let mut inner = ab.entries().unwrap();
        inner.sort();
        assert_eq!(inner, [("fifo".into(), Kind::Other), ("link".into(), Kind::Other), ("obj".into(), Kind::File)]);
        assert!(ab.file("fifo").is_err() && ab.file("link").is_err(), "neither is opened, nor waited on");
        let copy = t.path().join("copy");
        assert_eq!(ab.copy_file("obj", &copy, 4).unwrap(), 4);
        assert!(ab.copy_file("obj", &t.path().join("c2"), 3).is_err() && !t.path().join("c2").exists());
        // The directory swapped for a link to the victim after it was opened: a removal still
        // happens in the directory that was read.
        std::fs::rename(mine.join("ab"), t.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&victim, mine.join("ab")).unwrap();
        std::fs::write(victim.join("obj"), "victim's").unwrap();
        ab.remove("obj").unwrap();
        assert!(victim.join("obj").exists() && !t.path().join("moved/obj").exists());
        assert!(Dir::open(&mine.join("ab")).is_err(), "the link itself is not opened");
    }

    #[test]
    fn writing_and_removing_never_reach_through_a_link() {
        let t = tempfile::tempdir().unwrap();
        let (mine, victim) = (t.path().join("mine"), t.path().join("victim"));
        std::fs::create_dir_all(&mine).unwrap();
        std::fs::create_dir_all(&victim).unwrap();
        std::fs::write(victim.join("alternates"), "theirs").unwrap();
        std::os::unix::fs::symlink(&victim, mine.join("info")).unwrap();
        let dir = Dir::open(&mine).unwrap();
        // A link where a directory should be is replaced by a directory; the victim is intact.
        let info = dir.ensure_dir("info").unwrap();
        info.write("alternates", b"ours").unwrap();
        assert_eq!(std::fs::read_to_string(victim.join("alternates")).unwrap(), "theirs");
        assert_eq!(std::fs::read_to_string(mine.join("info/alternates")).unwrap(), "ours");
        // A link planted under the temp name is not followed.
        std::os::unix::fs::symlink(victim.join("alternates"), mine.join(format!(".x.tmp.{}", std::process::id())))
            .unwrap();
        dir.write("x", b"new").unwrap();
        assert_eq!(std::fs::read_to_string(victim.join("alternates")).unwrap(), "theirs");
        // A tree with a link in it goes; what the link points at stays.
        std::fs::create_dir_all(mine.join("tree/sub")).unwrap();
        std::os::unix::fs::symlink(&victim, mine.join("tree/sub/link")).unwrap();
        nix::unistd::mkfifo(&mine.join("tree/fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        dir.remove_tree("tree").unwrap();
        assert!(!mine.join("tree").exists() && victim.join("alternates").exists());
        assert_eq!(dir.read("x", 3).unwrap(), b"new");
        assert!(dir.read("x", 2).is_none(), "bigger than asked");
    }
}
