//! Reading a file an agent or a merged branch could have placed: `wt.toml`, `.gitignore`,
//! `.worktreeinclude`, an agent's hook settings, a guarded test file, git's small files.
//!
//! The rule, for every such file: it is opened never through a symbolic link (`O_NOFOLLOW`; with
//! `read_untrusted_in`, no link anywhere below a trusted directory), never blocking
//! (`O_NONBLOCK`, so a FIFO or a device opens at once), and read only when what was opened is a
//! regular file (`fstat` on the descriptor, so a swap after a check changes nothing) of at most
//! a limit that depends on what the file is. A refusal is one line naming the file, what it was,
//! and the limit. `/dev/zero` behind a link, a FIFO, a directory and a sparse file of 2 GB are
//! each refused at once, without reading a byte.

use std::fmt;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, CWD};

use crate::record::size::human;

/// `wt.toml`.
pub const CONFIG_MAX: u64 = 1 << 20;
/// `.gitignore`, `.worktreeinclude`, `info/exclude`: gitignore-syntax pattern files.
pub const IGNORE_MAX: u64 = 4 << 20;
/// An agent's hook settings (`.claude/settings.local.json`, `.codex/hooks.json`).
pub const SETTINGS_MAX: u64 = 4 << 20;
/// git's config files read directly (the common dir's `config`).
pub const GIT_CONFIG_MAX: u64 = 4 << 20;
/// `packed-refs` read directly (100,000 refs take about 6 MiB); a bigger one is left to git.
pub const PACKED_REFS_MAX: u64 = 64 << 20;
/// wt's own state in the common dir (`.git/wt/`), which an unconfined agent can write: the
/// ledger (500 leases take about 200 KiB).
pub const LEDGER_MAX: u64 = 64 << 20;
/// wt's small state files there: markers, journals, notes of children, metadata.
pub const STATE_MAX: u64 = 1 << 20;
/// How much of a guarded file is hashed (streaming); beyond it only its size counts.
pub const GUARD_HASH_MAX: u64 = 64 << 20;

const FILE_FLAGS: OFlags =
    OFlags::RDONLY.union(OFlags::NOFOLLOW).union(OFlags::NONBLOCK).union(OFlags::NOCTTY).union(OFlags::CLOEXEC);
const DIR_FLAGS: OFlags = FILE_FLAGS.union(OFlags::DIRECTORY);

/// Why a file was not read.
#[derive(Debug)]
pub enum Why {
    /// The file, or (with `read_untrusted_in`) a directory on its way, is a symbolic link.
    Link,
    /// A FIFO, a device, a socket, a directory: named.
    NotRegular(&'static str),
    /// Bigger than the limit (its size).
    TooBig(u64),
    /// Not UTF-8 text, where text was asked for.
    NotText,
    /// It could not be opened or read.
    Io(io::Error),
}

/// A file refused by `read_untrusted` and its kin; shown as one line naming the file, what it
/// was, and the limit.
#[derive(Debug)]
pub struct Refused {
    pub path: PathBuf,
    pub why: Why,
    pub max: u64,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.why {
            Why::Link => "is a symbolic link, or has one on its way".to_string(),
            Why::NotRegular(kind) => format!("is {kind}, not a regular file"),
            Why::TooBig(size) => format!("is {}", human(*size)),
            Why::NotText => "is not UTF-8 text".to_string(),
            Why::Io(e) => format!("cannot be read ({})", one_line(&e.to_string())),
        };
        write!(
            f,
            "{}: {what}; wt reads it only as a regular file of at most {}, not through a symbolic link",
            self.path.display(),
            human(self.max)
        )
    }
}

impl std::error::Error for Refused {}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Opens the file at `path` as the rule says (its last component not a link; the directories
/// on its way are the caller's to trust): the open file and its size, `None` when nothing is
/// there, refused when it is not a regular file of at most `max` bytes.
pub fn open_untrusted(path: &Path, max: u64) -> Result<Option<(std::fs::File, u64)>, Refused> {
    let refused = |why| Refused { path: path.to_path_buf(), why, max };
    match rustix::fs::openat(CWD, path, FILE_FLAGS, Mode::empty()) {
        Ok(fd) => checked(fd, max).map(Some).map_err(refused),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(refused(open_error(e))),
    }
}

/// `open_untrusted` of `root/rel`, with no symbolic link anywhere below `root` (each directory
/// opened from the one before with `O_NOFOLLOW`): for a file deep in a worktree
/// (`.claude/settings.local.json`), where the agent could make `.claude` a link elsewhere.
/// `rel` must be relative, without `..`.
pub fn open_untrusted_in(root: &Path, rel: &Path, max: u64) -> Result<Option<(std::fs::File, u64)>, Refused> {
    let path = root.join(rel);
    let refused = |why| Refused { path: path.clone(), why, max };
    let parts: Vec<&std::ffi::OsStr> = rel
        .components()
        .map(|c| match c {
            Component::Normal(p) => Ok(p),
            _ => Err(refused(Why::Io(io::Error::other("not a plain relative path")))),
        })
        .collect::<Result<_, _>>()?;
    let Some((file, dirs)) = parts.split_last() else {
        return Err(refused(Why::Io(io::Error::other("no file name"))));
    };
    let mut dir: OwnedFd = match rustix::fs::openat(CWD, root, DIR_FLAGS.difference(OFlags::NOFOLLOW), Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(refused(Why::Io(e.into()))),
    };
    for part in dirs {
        dir = match rustix::fs::openat(&dir, *part, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => return Err(refused(Why::Link)),
            Err(e) => return Err(refused(Why::Io(e.into()))),
        };
    }
    match rustix::fs::openat(&dir, *file, FILE_FLAGS, Mode::empty()) {
        Ok(fd) => checked(fd, max).map(Some).map_err(refused),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(refused(open_error(e))),
    }
}

/// Opens `path` with `options` (a log to print, or one wt appends to) as the rule says: never
/// through a symbolic link, never blocking on a FIFO; an error unless what was opened is a
/// regular file. For files used as a stream, so no size limit.
pub fn open_regular(path: &Path, options: &mut std::fs::OpenOptions) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = options.custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK).open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(file)
}

/// Reads the file at `path` as the rule says, whole, as UTF-8 text: `None` when nothing is
/// there. The one helper for every file an agent or a merge could have placed.
pub fn read_untrusted(path: &Path, max: u64) -> Result<Option<String>, Refused> {
    let opened = open_untrusted(path, max)?;
    read_text(path, opened, max)
}

/// `read_untrusted` of `root/rel`, with no symbolic link anywhere below `root`.
pub fn read_untrusted_in(root: &Path, rel: &Path, max: u64) -> Result<Option<String>, Refused> {
    let opened = open_untrusted_in(root, rel, max)?;
    read_text(&root.join(rel), opened, max)
}

/// `read_untrusted`, the bytes as they are.
pub fn read_untrusted_bytes(path: &Path, max: u64) -> Result<Option<Vec<u8>>, Refused> {
    let Some((file, size)) = open_untrusted(path, max)? else { return Ok(None) };
    read_all(file, size, max).map(Some).map_err(|why| Refused { path: path.to_path_buf(), why, max })
}

/// Feeds the regular file at `path` to `hasher` in blocks, at most `max` bytes of it, without
/// ever holding more than a block (a guarded file); its size is hashed too, so a file longer
/// than `max` still changes the hash when its length does. Returns its size, `None` when
/// nothing is there; refused when it is not a regular file (never opened through a link, never
/// blocking).
pub fn hash_untrusted(path: &Path, max: u64, hasher: &mut impl std::hash::Hasher) -> Result<Option<u64>, Refused> {
    let refused = |why| Refused { path: path.to_path_buf(), why, max };
    let Some((file, size)) = open_untrusted(path, u64::MAX)? else { return Ok(None) };
    hasher.write_u64(size);
    let mut reader = file.take(max);
    let mut block = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut block) {
            Ok(0) => break,
            Ok(n) => hasher.write(&block[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(refused(Why::Io(e))),
        }
    }
    Ok(Some(size))
}

fn read_text(path: &Path, opened: Option<(std::fs::File, u64)>, max: u64) -> Result<Option<String>, Refused> {
    let Some((file, size)) = opened else { return Ok(None) };
    let refused = |why| Refused { path: path.to_path_buf(), why, max };
    let bytes = read_all(file, size, max).map_err(refused)?;
    String::from_utf8(bytes).map(Some).map_err(|_| refused(Why::NotText))
}

/// Reads an opened regular file whole, refusing one that grew past `max` since its `fstat`.
fn read_all(file: std::fs::File, size: u64, max: u64) -> Result<Vec<u8>, Why> {
    let mut bytes = Vec::with_capacity(size.min(max) as usize);
    file.take(max + 1).read_to_end(&mut bytes).map_err(Why::Io)?;
    if bytes.len() as u64 > max {
        return Err(Why::TooBig(bytes.len() as u64));
    }
    Ok(bytes)
}

/// The opened descriptor if it is a regular file of at most `max` bytes.
fn checked(fd: OwnedFd, max: u64) -> Result<(std::fs::File, u64), Why> {
    let st = rustix::fs::fstat(&fd).map_err(|e| Why::Io(e.into()))?;
    let kind = match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => None,
        FileType::Directory => Some("a directory"),
        FileType::Fifo => Some("a FIFO"),
        FileType::CharacterDevice => Some("a character device"),
        FileType::BlockDevice => Some("a block device"),
        FileType::Socket => Some("a socket"),
        _ => Some("not a file"),
    };
    if let Some(kind) = kind {
        return Err(Why::NotRegular(kind));
    }
    let size = st.st_size as u64;
    if size > max {
        return Err(Why::TooBig(size));
    }
    Ok((std::fs::File::from(fd), size))
}

fn open_error(e: rustix::io::Errno) -> Why {
    match e {
        // O_NOFOLLOW on a link; a socket cannot be opened at all.
        rustix::io::Errno::LOOP => Why::Link,
        rustix::io::Errno::NXIO => Why::NotRegular("a socket"),
        e => Why::Io(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn fifo(path: &Path) {
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    }

    #[test]
    fn reads_a_regular_file_and_nothing_else_at_once() {
        let t = tempfile::tempdir().unwrap();
        let p = |n: &str| t.path().join(n);
        std::fs::write(p("ok"), "a = 1\n").unwrap();
        assert_eq!(read_untrusted(&p("ok"), CONFIG_MAX).unwrap().as_deref(), Some("a = 1\n"));
        assert!(read_untrusted(&p("missing"), CONFIG_MAX).unwrap().is_none());
        symlink("/dev/zero", p("zero")).unwrap();
        symlink(p("ok"), p("link")).unwrap();
        fifo(&p("fifo"));
        std::fs::create_dir(p("dir")).unwrap();
        let sparse = std::fs::File::create(p("sparse")).unwrap();
        sparse.set_len(2 << 30).unwrap();
        std::fs::write(p("binary"), [0xff, 0xfe]).unwrap();
        for (name, says) in [
            ("zero", "symbolic link"),
            ("link", "symbolic link"),
            ("fifo", "a FIFO"),
            ("dir", "a directory"),
            ("sparse", "is 2 GiB"),
            ("binary", "UTF-8"),
        ] {
            let e = read_untrusted(&p(name), CONFIG_MAX).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains("at most 1 MiB") && e.contains(name), "{name}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn below_a_root_no_directory_on_the_way_is_a_link() {
        let t = tempfile::tempdir().unwrap();
        let (root, elsewhere) = (t.path().join("wt"), t.path().join("elsewhere"));
        std::fs::create_dir_all(root.join(".claude")).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::write(root.join(".claude/s.json"), "{}").unwrap();
        std::fs::write(elsewhere.join("s.json"), "secret").unwrap();
        assert_eq!(read_untrusted_in(&root, Path::new(".claude/s.json"), 10).unwrap().as_deref(), Some("{}"));
        assert!(read_untrusted_in(&root, Path::new(".codex/s.json"), 10).unwrap().is_none());
        symlink(&elsewhere, root.join(".codex")).unwrap();
        let e = read_untrusted_in(&root, Path::new(".codex/s.json"), 10).unwrap_err();
        assert!(matches!(e.why, Why::Link), "{e}");
    }

    #[test]
    fn hashing_streams_and_caps() {
        use std::hash::Hasher;
        let t = tempfile::tempdir().unwrap();
        let sparse = t.path().join("sparse");
        std::fs::File::create(&sparse).unwrap().set_len(2 << 30).unwrap();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        assert_eq!(hash_untrusted(&sparse, 1 << 20, &mut h).unwrap(), Some(2 << 30));
        let before = h.finish();
        std::fs::File::options().write(true).open(&sparse).unwrap().set_len((2 << 30) + 1).unwrap();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        hash_untrusted(&sparse, 1 << 20, &mut h).unwrap();
        assert_ne!(h.finish(), before, "the size counts beyond the cap");
        fifo(&t.path().join("fifo"));
        let mut h = std::collections::hash_map::DefaultHasher::new();
        assert!(hash_untrusted(&t.path().join("fifo"), 1 << 20, &mut h).is_err());
    }
}
