//! Building one shared directory in a worktree: a real directory tree (never a symlink to the
//! main checkout) whose files are links to, or clones of, the store's entries; relative symlinks
//! are kept as they are, so workspace packages resolve inside the worktree; files and symlinks
//! naming the main worktree's path are rewritten; modes are kept.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use wt_common::progress::Counter;

use super::cache::{Kind, Known};
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
}

/// Fills the new directory `dest` (which must not exist) from `b.source`. `known` is the cache
/// of the source; the return value is the cache as it is now.
pub fn build(
    b: &Build,
    dest: &Path,
    mut known: HashMap<String, Known>,
) -> io::Result<(Counts, HashMap<String, Known>)> {
    let mut counts = Counts::default();
    let mut now = HashMap::with_capacity(known.len());
    // Directory modes are set last, deepest first, so read-only directories can be filled.
    let mut dir_modes: Vec<(PathBuf, u32)> = Vec::new();
    let mut stack: Vec<(PathBuf, PathBuf, String)> = vec![(b.source.to_path_buf(), dest.to_path_buf(), String::new())];
    let root_mode = fs::symlink_metadata(b.source)?.mode();
    fs::create_dir(dest)?;
    dir_modes.push((dest.to_path_buf(), root_mode));
    while let Some((src_dir, dst_dir, rel_dir)) = stack.pop() {
        for entry in fs::read_dir(&src_dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let (src, dst) = (entry.path(), dst_dir.join(&name));
            let rel = format!("{rel_dir}{}", name.to_string_lossy());
            let meta = entry.metadata()?; // lstat: a symlink is seen as a symlink
            let ft = meta.file_type();
            if ft.is_dir() {
                fs::create_dir(&dst)?;
                dir_modes.push((dst.clone(), meta.mode()));
                counts.dirs += 1;
                stack.push((src, dst, format!("{rel}/")));
            } else if ft.is_symlink() {
                let target = rewrite::symlink_target(&fs::read_link(&src)?, b.main, b.worktree);
                std::os::unix::fs::symlink(target, &dst)?;
                counts.symlinks += 1;
            } else if ft.is_file() {
                let cached = known.remove(&rel).filter(|k| k.still(&meta));
                let kind = place_file(b, &src, &dst, &meta, cached, &mut counts)?;
                if let (Some(kind), Some(_)) = (kind, name.to_str()) {
                    now.insert(rel, Known::new(&meta, kind));
                }
                counts.files += 1;
                b.progress.add(1);
            } else {
                counts.skipped += 1;
            }
        }
    }
    for (dir, mode) in dir_modes.iter().rev() {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode & 0o7777))?;
    }
    Ok((counts, now))
}

/// Places one regular file; returns what it is, for the cache (`None`: not cached).
fn place_file(
    b: &Build,
    src: &Path,
    dst: &Path,
    meta: &fs::Metadata,
    cached: Option<Known>,
    counts: &mut Counts,
) -> io::Result<Option<Kind>> {
    let kind = match cached.map(|k| k.kind) {
        Some(kind) => kind,
        None => classify(b, src, meta)?,
    };
    let from: PathBuf = match (&kind, b.store) {
        (Kind::Rewrite, _) => {
            write_rewritten(src, dst, meta.mode(), b.main, b.worktree)?;
            counts.rewritten += 1;
            return Ok(Some(kind));
        }
        (Kind::Stored(key), Some(store)) => store.entry(key),
        _ => src.to_path_buf(),
    };
    let placed = match method::place(&from, dst, b.method, meta.mode()) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && from != src => {
            // The store entry went away (garbage-collected): hash again.
            let kind = classify(b, src, meta)?;
            return place_file(b, src, dst, meta, Some(Known::new(meta, kind)), counts);
        }
        other => other?,
    };
    match placed {
        Placed::As(Method::Copy) | Placed::CopiedInstead => counts.copied += 1,
        Placed::As(_) => counts.linked += 1,
    }
    Ok(b.store.map(|_| kind))
}

/// Reads a file once: does it name the main worktree, and if not, which store entry is it.
fn classify(b: &Build, src: &Path, meta: &fs::Metadata) -> io::Result<Kind> {
    let needle = b.main.as_os_str().as_encoded_bytes();
    let scanned = scan(src, Some(needle))?;
    if scanned.embeds {
        return Ok(Kind::Rewrite);
    }
    let key = Key::new(&scanned.hash_hex, meta.mode());
    Ok(match b.store {
        None => Kind::InStore(key), // unused: such directories are placed from the source
        Some(store) => match store.adopt(src, meta, &key)? {
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
