//! Building one shared directory in a worktree: a real directory tree (never a symlink to the
//! main checkout) whose files are links to, or clones of, the store's entries; relative symlinks
//! are kept as they are, so workspace packages resolve inside the worktree; files and symlinks
//! naming the main worktree's path are rewritten; modes are kept.
//!
//! Directories are walked by a few threads at once, each working relative to open directory
//! descriptors (`*at` calls), so that sharing a large tree is no slower than `cp -al` of it.

use std::ffi::{CStr, OsStr};
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use wt_common::record::progress::Counter;

use super::cache::{lookup, Cache, Ident, Kind};
use super::method::{self, Method, Placed};
use super::rewrite;
use super::store::{scan, Adopted, Key, Store};

/// What went into one shared directory.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Regular files placed.
    pub files: u64,
    /// Placed by the method (hard links or reflinks).
    pub linked: u64,
    /// Copied: by `--share-mode copy`, or because linking was impossible (another file system).
    pub copied: u64,
    /// Copied with the main worktree's path rewritten.
    pub rewritten: u64,
    pub symlinks: u64,
    pub dirs: u64,
    /// Sockets, FIFOs and devices, which are not shared.
    pub skipped: u64,
    /// Files read and hashed (new or changed since the last share from this directory).
    pub hashed: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.files += o.files;
        self.linked += o.linked;
        self.copied += o.copied;
        self.rewritten += o.rewritten;
        self.symlinks += o.symlinks;
        self.dirs += o.dirs;
        self.skipped += o.skipped;
        self.hashed += o.hashed;
    }
}

/// Everything one build needs.
#[derive(Debug)]
pub struct Build<'a> {
    /// The directory in the main worktree.
    pub source: &'a Path,
    /// The main worktree and the worktree, for rewriting paths.
    pub main: &'a Path,
    pub worktree: &'a Path,
    pub method: Method,
    /// The store, for link-shared directories; `None` for directories whose tools rewrite files
    /// in place, which are cloned or copied straight from the main worktree.
    pub store: Option<&'a Store>,
    pub progress: &'a Counter,
    /// What is known about the source's files (see `cache`).
    pub known: &'a Cache,
}

/// The outcome of one build.
#[derive(Debug)]
pub struct Built {
    pub counts: Counts,
    /// The source's cache as it is now.
    pub known: Cache,
    /// Whether that differs from the cache the build started with.
    pub changed: bool,
}

/// One directory to copy the entries of: `src` into the (already made) `dst`.
#[derive(Debug)]
struct Job {
    src: PathBuf,
    dst: PathBuf,
}

/// What one thread did.
#[derive(Debug, Default)]
struct Part {
    counts: Counts,
    known: Cache,
    /// Directories whose mode must be set once they are filled.
    dir_modes: Vec<(PathBuf, u32)>,
}

/// The shared state of the walking threads.
#[derive(Debug)]
struct Walk<'a> {
    b: &'a Build<'a>,
    umask: u32,
    /// Directories to do, and how many are queued or being done (the walk is over at zero).
    queue: Mutex<(Vec<Job>, usize)>,
    /// Signalled when a job is queued or the walk is over.
    wake: Condvar,
    failed: AtomicBool,
}

/// Fills the new directory `dest` (which must not exist) from `b.source`.
pub fn build(b: &Build, dest: &Path) -> io::Result<Built> {
    let umask = process_umask();
    let root = rustix::fs::stat(b.source)?;
    let mut first = Part::default();
    make_dir(dest, root.st_mode, umask, &mut first.dir_modes)?;
    let walk = Walk {
        b,
        umask,
        queue: Mutex::new((vec![Job { src: b.source.to_path_buf(), dst: dest.to_path_buf() }], 1)),
        wake: Condvar::new(),
        failed: AtomicBool::new(false),
    };
    // At least two: a link waits on the file system's journal as often as on a CPU.
    let threads = wt_common::proc::parallel::cores().clamp(2, 4);
    let results: Vec<io::Result<Part>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(|| walk.work())).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(io::Error::other("a share thread panicked"))))
            .collect()
    });
    let mut all = first;
    for part in results {
        let part = part?;
        all.counts.add(&part.counts);
        all.known.extend(part.known);
        all.dir_modes.extend(part.dir_modes);
    }
    // Deepest first, so a read-only directory is closed only once everything is in it.
    all.dir_modes.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (dir, mode) in &all.dir_modes {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode & 0o7777))?;
    }
    let changed = all.counts.hashed > 0 || all.known.len() != b.known.len();
    Ok(Built { counts: all.counts, known: all.known, changed })
}

impl Walk<'_> {
    /// One thread: takes directories off the queue until none is left anywhere.
    fn work(&self) -> io::Result<Part> {
        let mut part = Part::default();
        while let Some(job) = self.next_job() {
            let result = self.directory(&job, &mut part);
            let mut queue = self.queue.lock().expect("share queue");
            queue.1 -= 1;
            if let Err(e) = result {
                self.failed.store(true, Ordering::Relaxed);
                self.wake.notify_all();
                return Err(e);
            }
            if queue.1 == 0 {
                self.wake.notify_all();
            }
        }
        Ok(part)
    }

    /// The next directory to do; `None` once every directory is done (or one failed).
    fn next_job(&self) -> Option<Job> {
        let mut queue = self.queue.lock().expect("share queue");
        loop {
            if self.failed.load(Ordering::Relaxed) || queue.1 == 0 {
                return None;
            }
            if let Some(job) = queue.0.pop() {
                return Some(job);
            }
            queue = self.wake.wait(queue).expect("share queue");
        }
    }

    /// Copies the entries of one directory; its subdirectories become new jobs.
    fn directory(&self, job: &Job, part: &mut Part) -> io::Result<()> {
        let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let mut dir = rustix::fs::Dir::new(rustix::fs::open(&job.src, dir_flags, Mode::empty())?)?;
        let dst_fd: OwnedFd = rustix::fs::open(&job.dst, dir_flags, Mode::empty())?;
        let mut found = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry?;
            let src_fd = dir.fd()?;
            let name = entry.file_name();
            if name.to_bytes() == b"." || name.to_bytes() == b".." {
                continue;
            }
            let st = rustix::fs::statat(src_fd, name, AtFlags::SYMLINK_NOFOLLOW)?;
            let ft = FileType::from_raw_mode(st.st_mode);
            let os_name = OsStr::from_bytes(name.to_bytes());
            match ft {
                FileType::Directory => {
                    let dst = job.dst.join(os_name);
                    make_dir(&dst, st.st_mode, self.umask, &mut part.dir_modes)?;
                    part.counts.dirs += 1;
                    found.push(Job { src: job.src.join(os_name), dst });
                }
                FileType::Symlink => {
                    let target = rustix::fs::readlinkat(src_fd, name, Vec::new())?;
                    let target = Path::new(OsStr::from_bytes(target.to_bytes()));
                    let target = rewrite::symlink_target(target, self.b.main, self.b.worktree);
                    rustix::fs::symlinkat(target.as_path(), &dst_fd, name)?;
                    part.counts.symlinks += 1;
                }
                FileType::RegularFile => {
                    let file = File { src_fd, dst_fd: dst_fd.as_fd(), name, job, id: Ident::of(&st) };
                    let cached = lookup(self.b.known, &file.id);
                    let kind = self.place_file(&file, cached, &mut part.counts)?;
                    if let Some(kind) = kind {
                        part.known.insert((file.id.dev, file.id.ino), (file.id, kind));
                    }
                    part.counts.files += 1;
                    self.b.progress.add(1);
                }
                _ => part.counts.skipped += 1,
            }
        }
        if !found.is_empty() {
            let mut queue = self.queue.lock().expect("share queue");
            queue.1 += found.len();
            queue.0.extend(found);
            self.wake.notify_all();
        }
        Ok(())
    }

    /// Places one regular file; returns what it is, for the cache (`None`: not cached).
    fn place_file(&self, f: &File, cached: Option<Kind>, counts: &mut Counts) -> io::Result<Option<Kind>> {
        let b = self.b;
        let kind = match cached {
            Some(kind) => kind,
            None => {
                counts.hashed += 1;
                classify(b, &f.src(), &f.id)?
            }
        };
        let from = match (&kind, b.store) {
            (Kind::Rewrite, _) => {
                write_rewritten(&f.src(), &f.dst(), f.id.mode, b.main, b.worktree)?;
                super::mtime::keep(f.dst_fd, f.name, f.id.mtime_ns)?;
                counts.rewritten += 1;
                return Ok(Some(kind));
            }
            (Kind::Stored(key), Some(store)) => Some(store.entry(key)),
            _ => None,
        };
        let placed = match (&from, b.method) {
            // The common case, made cheap: a link to the main worktree's own inode (which is
            // the store's entry), by names relative to the two open directories.
            (None, Method::Hardlink) => {
                match rustix::fs::linkat(f.src_fd, f.name, f.dst_fd, f.name, AtFlags::empty()) {
                    Ok(()) => Ok(Placed::As(Method::Hardlink)),
                    Err(_) => method::place(&f.src(), &f.dst(), Method::Hardlink, f.id.mode),
                }
            }
            (None, m) => method::place(&f.src(), &f.dst(), m, f.id.mode),
            (Some(entry), m) => match method::place(entry, &f.dst(), m, f.id.mode) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // The store entry went away (garbage-collected): hash again.
                    let _ = fs::remove_file(f.dst());
                    counts.hashed += 1;
                    let kind = classify(b, &f.src(), &f.id)?;
                    return self.place_file(f, Some(kind), counts);
                }
                other => other,
            },
        }?;
        if from.is_none() && placed != Placed::As(Method::Hardlink) {
            super::mtime::keep(f.dst_fd, f.name, f.id.mtime_ns)?;
        }
        match placed {
            Placed::As(Method::Copy) | Placed::CopiedInstead => counts.copied += 1,
            Placed::As(_) => counts.linked += 1,
        }
        Ok(b.store.map(|_| kind))
    }
}

/// One regular file being placed.
struct File<'a> {
    src_fd: BorrowedFd<'a>,
    dst_fd: BorrowedFd<'a>,
    name: &'a CStr,
    job: &'a Job,
    id: Ident,
}

impl File<'_> {
    fn src(&self) -> PathBuf {
        self.job.src.join(OsStr::from_bytes(self.name.to_bytes()))
    }
    fn dst(&self) -> PathBuf {
        self.job.dst.join(OsStr::from_bytes(self.name.to_bytes()))
    }
}

/// Creates a directory with `mode`; when the umask would strip bits of it, or it would not let
/// us fill it, its mode is set at the end instead (in `dir_modes`).
fn make_dir(path: &Path, mode: u32, umask: u32, dir_modes: &mut Vec<(PathBuf, u32)>) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let mode = mode & 0o7777;
    fs::DirBuilder::new().mode(mode | 0o700).create(path)?;
    if mode & !umask != mode || mode & 0o700 != 0o700 || mode & 0o7000 != 0 {
        dir_modes.push((path.to_path_buf(), mode));
    }
    Ok(())
}

/// The process's umask, from /proc (reading it with umask(2) would change it for a moment, for
/// every thread); when it cannot be read, assume the worst so every mode is set explicitly.
fn process_umask() -> u32 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        .unwrap_or(0o777)
}

/// Reads a file once: does it name the main worktree, and if not, which store entry is it.
fn classify(b: &Build, src: &Path, id: &Ident) -> io::Result<Kind> {
    let needle = b.main.as_os_str().as_encoded_bytes();
    let scanned = scan(src, Some(needle))?;
    if scanned.embeds {
        return Ok(Kind::Rewrite);
    }
    let key = Key::new(&scanned.hash_hex, id.mode);
    Ok(match b.store {
        None => Kind::InStore(key), // not cached: such directories are placed from the source
        Some(store) => match store.adopt(src, id, &key)? {
            Adopted::SameInode => Kind::InStore(key),
            Adopted::Separate => Kind::Stored(key),
        },
    })
}

/// A copy of `src` at `dst` with the main worktree's path replaced by the worktree's.
fn write_rewritten(src: &Path, dst: &Path, mode: u32, main: &Path, worktree: &Path) -> io::Result<()> {
    use std::io::Write;
    let bytes = fs::read(src)?;
    let out =
        rewrite::replace_path(&bytes, main.as_os_str().as_encoded_bytes(), worktree.as_os_str().as_encoded_bytes());
    let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(mode & 0o7777).open(dst)?;
    f.write_all(&out)?;
    f.set_permissions(fs::Permissions::from_mode(mode & 0o7777))
}
