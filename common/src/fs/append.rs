//! Appending whole lines to a file another program follows (`tail -F`, an agent's monitor):
//! each line goes out in one `write` on a descriptor opened with `O_APPEND`, so a reader never
//! sees half a line from wt, and two writers' lines never interleave within a line. The file is
//! created `0600` (what a round's failure says about the code is the person's business), never
//! through a symbolic link (`O_NOFOLLOW`; a relative path is walked from the worktree root one
//! directory at a time as `inside` does), and never blocks: a FIFO or a device put in its place
//! is refused (`O_NONBLOCK`, then `fstat` of what was opened).

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fstat, Mode, SFlag};

use crate::error::Error;

/// Opens `path` for appending (creating it `0600`): relative paths below `root`, without
/// following any link there; absolute ones with their last component not a link. Fails with
/// `feed-refused` when it is a link, a FIFO or anything but a regular file.
pub fn open(root: &Path, path: &Path) -> Result<std::fs::File, Error> {
    let shown = root.join(path);
    let (dir, name): (OwnedFd, &std::ffi::OsStr) = if path.is_absolute() {
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("/"));
        let name = path.file_name().ok_or_else(|| refused(&shown, "it names no file"))?;
        let flags = OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
        let dir = nix::fcntl::open(parent, flags, Mode::empty())
            .map_err(|e| Error::io(parent.display(), std::io::Error::from(e)))?;
        (dir, name)
    } else {
        crate::fs::inside::open_parent(root, path)?
    };
    let flags =
        OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    let fd = openat(&dir, name, flags, Mode::from_bits_truncate(0o600)).map_err(|e| match e {
        nix::Error::ELOOP => refused(&shown, "it is a symbolic link"),
        nix::Error::ENXIO => refused(&shown, "it is a FIFO"),
        e => Error::io(shown.display(), std::io::Error::from(e)),
    })?;
    let st = fstat(&fd).map_err(|e| Error::io(shown.display(), std::io::Error::from(e)))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(refused(&shown, "it is not a regular file"));
    }
    Ok(std::fs::File::from(fd))
}

/// Appends `line` (a newline is added) to `path` in one `write`.
pub fn line(root: &Path, path: &Path, line: &str) -> Result<(), Error> {
    let file = open(root, path)?;
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    let shown = root.join(path);
    let n = nix::unistd::write(&file, &bytes).map_err(|e| Error::io(shown.display(), std::io::Error::from(e)))?;
    if n != bytes.len() {
        return Err(Error::failed(
            "feed-failed",
            format!(
                "{}: only {n} of {} bytes of a line were written (is the disk full?)",
                shown.display(),
                bytes.len()
            ),
        ));
    }
    Ok(())
}

fn refused(path: &Path, why: &str) -> Error {
    Error::failed(
        "feed-refused",
        format!("{}: {why}; wt-watch appends only to a regular file it can open without following a link (remove it, or choose another path)", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn lines_are_appended_to_a_private_file_and_links_and_fifos_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("wt");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        line(&root, Path::new("sub/feed.jsonl"), "{\"a\":1}").unwrap();
        line(&root, Path::new("sub/feed.jsonl"), "{\"a\":2}").unwrap();
        let file = root.join("sub/feed.jsonl");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "{\"a\":1}\n{\"a\":2}\n");
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        let abs = t.path().join("abs.jsonl");
        line(&root, &abs, "x").unwrap();
        assert_eq!(std::fs::read_to_string(&abs).unwrap(), "x\n");
        let target = t.path().join("target");
        std::fs::write(&target, "keep\n").unwrap();
        symlink(&target, root.join("link.jsonl")).unwrap();
        symlink(&target, t.path().join("abs-link.jsonl")).unwrap();
        symlink(t.path(), root.join("dirlink")).unwrap();
        for p in [root.join("link.jsonl"), t.path().join("abs-link.jsonl")] {
            assert_eq!(line(&root, &p, "x").unwrap_err().code, "feed-refused", "{}", p.display());
        }
        assert_eq!(line(&root, Path::new("link.jsonl"), "x").unwrap_err().code, "feed-refused");
        assert_eq!(line(&root, Path::new("dirlink/target"), "x").unwrap_err().code, "outside-worktree");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep\n", "nothing written through a link");
        nix::unistd::mkfifo(&root.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(line(&root, Path::new("fifo"), "x").unwrap_err().code, "feed-refused", "a FIFO never blocks");
        std::fs::create_dir(root.join("dir")).unwrap();
        assert!(line(&root, Path::new("dir"), "x").is_err());
    }
}
