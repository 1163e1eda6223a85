//! File-system helpers: atomic replacement and copying trees as they are.

pub mod append;
pub mod beneath;
pub mod disk_usage;
pub mod fnv;
pub mod inside;
pub mod stamp;
pub mod untrusted;

pub use untrusted::{read_untrusted, read_untrusted_in};

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::symlink;
use std::path::Path;

/// Replaces `path` with `bytes` atomically: a reader sees the old file or the new one, never a
/// half-written one, and a crash leaves at worst a stray temp file beside it. The data is
/// synced before the rename, so after a power loss the file is the old version or the new one,
/// whole. The directory is not synced: that would only make the newest version durable, and it
/// costs a second journal commit on every write (measured: most of the time of a lease).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, true)
}

/// Like `write_atomic`, without the sync: for scratch state that is rebuilt when lost, where a
/// journal commit per write would be most of the cost (a confined run's private store).
pub fn write_replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, false)
}

/// `write_replace` without the look for stale temp files beside `path` (a read of the whole
/// directory): for the many files of one directory written by one run, which sweeps the
/// directory once (`sweep_stale_temps_in`). A look at 500 worktrees read its directory of 500
/// notes once per note written.
pub fn write_replace_unswept(path: &Path, bytes: &[u8]) -> io::Result<()> {
    put_in_place(path, bytes, false, None)
}

/// `write_atomic` of a file readable by its owner only (`0600`): the ledger, which holds the
/// worktrees' database passwords.
pub fn write_atomic_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace_as(path, bytes, true, Some(0o600))
}

fn replace(path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    replace_as(path, bytes, sync, None)
}

/// `replace`, the temp file given `mode` before it takes the name (no moment where a private
/// file is readable by others).
fn replace_as(path: &Path, bytes: &[u8], sync: bool, mode: Option<u32>) -> io::Result<()> {
    sweep_stale_temps(path);
    put_in_place(path, bytes, sync, mode)
}

/// `replace_as` without the sweep: the temp file written, then renamed over `path`.
fn put_in_place(path: &Path, bytes: &[u8], sync: bool, mode: Option<u32>) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(temp_name(&name));
    write_new(&tmp, bytes, sync, mode)?;
    crate::proc::failpoint::hit("before-rename");
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Writes `bytes` to the file `tmp` (made or emptied; made with `mode` when given), synced if
/// asked; on failure, removes it.
fn write_new(tmp: &Path, bytes: &[u8], sync: bool, mode: Option<u32>) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    // Made new, never through what is there: the directory may be an agent's (a worktree's
    // admin dir), and the temp name is predictable, so a link planted under it would otherwise
    // be followed and the file it points at overwritten.
    let _ = fs::remove_file(tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true).custom_flags(nix::libc::O_NOFOLLOW);
    if let Some(mode) = mode {
        options.mode(mode);
    }
    let written = options.open(tmp).and_then(|mut f| {
        if let Some(mode) = mode {
            // The umask may have cleared bits of the mode: set it exactly.
            f.set_permissions(fs::Permissions::from_mode(mode))?;
        }
        f.write_all(bytes)?;
        if sync {
            f.sync_all()?;
        }
        Ok(())
    });
    written.inspect_err(|_| {
        let _ = fs::remove_file(tmp);
    })
}

/// Writes `bytes` to a new temp file beside `path` and syncs it, without putting it in place:
/// the caller renames it over `path` later (or removes it). Each call has a temp file of its
/// own (`.<name>.tmp.<pid>.<n>`), so threads of one process never share one; one a killed
/// process left is swept here, as `write_atomic` sweeps: a run whose staged writes are all put
/// in place by rename never calls `write_atomic`.
pub fn write_synced_aside(path: &Path, bytes: &[u8]) -> io::Result<std::path::PathBuf> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    sweep_stale_temps(path);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!("{}.{n}", temp_name(&name)));
    write_new(&tmp, bytes, true, None)?;
    Ok(tmp)
}

/// Removes the temp files of `path` (`.<name>.tmp.<pid>`) that `write_atomic` runs killed
/// before their rename left, judged by their pid: one whose process is gone is stale.
pub fn sweep_stale_temps(path: &Path) {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if entry.file_name().to_str().is_some_and(|f| is_stale_temp(f, &name)) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Removes every temp file in `dir` (`.<name>.tmp.<pid>`, whatever the name) whose writer is
/// gone: `sweep_stale_temps` for a directory written by `write_replace_unswept`.
pub fn sweep_stale_temps_in(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let named = file.strip_prefix('.').and_then(|f| f.rsplit_once(".tmp.")).map(|(name, _)| name);
        if named.is_some_and(|name| is_stale_temp(file, name)) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The temp file this process writes `name` through: `.<name>.tmp.<pid>`.
pub fn temp_name(name: &str) -> String {
    format!(".{name}.tmp.{}", std::process::id())
}

/// Whether `file` is a temp file of `name` (`.<name>.tmp.<pid>`, or `.<pid>.<n>` from
/// `write_synced_aside`) whose writer is gone.
pub fn is_stale_temp(file: &str, name: &str) -> bool {
    let Some(rest) = file.strip_prefix(&format!(".{name}.tmp.")) else { return false };
    let pid = match rest.split_once('.') {
        Some((pid, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => pid,
        Some(_) => return false,
        None => rest,
    };
    pid.parse::<i32>().is_ok_and(|pid| !crate::proc::process::is_alive(pid))
}

/// The pattern, relative to `path`'s directory, that `write_atomic`'s temp files of `path`
/// match: for a file in a worktree, git must ignore them as it ignores the file.
pub fn temp_pattern(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    format!(".{name}.tmp.*")
}

/// How many logs of one kind are kept per worktree, and for how long at most.
pub const KEEP_LOGS: usize = 50;
pub const KEEP_LOGS_FOR: std::time::Duration = std::time::Duration::from_secs(14 * 24 * 3600);

/// Deletes the files of `dir` that `is_log` selects beyond the newest `keep`, and any older than
/// `max_age`, so that logs written per run do not pile up forever.
pub fn prune_logs(dir: &Path, is_log: impl Fn(&str) -> bool, keep: usize, max_age: std::time::Duration) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let mut logs: Vec<(std::time::SystemTime, std::path::PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(&is_log))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    logs.sort_by_key(|l| std::cmp::Reverse(l.0));
    let now = std::time::SystemTime::now();
    for (i, (modified, path)) in logs.iter().enumerate() {
        let old = now.duration_since(*modified).is_ok_and(|age| age > max_age);
        if i >= keep || old {
            let _ = fs::remove_file(path);
        }
    }
}

/// Copies a file, directory tree or symlink from `src` to `dst`, keeping permissions and
/// recreating symlinks as links. Fails if `dst` exists.
pub fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(src)?;
    if meta.file_type().is_symlink() {
        symlink(fs::read_link(src)?, dst)
    } else if meta.is_dir() {
        fs::create_dir(dst)?;
        for entry in fs::read_dir(src)? {
            let entry = entry?;
            copy_tree(&entry.path(), &dst.join(entry.file_name()))?;
        }
        fs::set_permissions(dst, meta.permissions())
    } else if !meta.is_file() {
        // A FIFO would block the copy; a device would be read forever.
        Err(io::Error::other(format!("{} is not a regular file, a directory or a link", src.display())))
    } else {
        if dst.symlink_metadata().is_ok() {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} exists", dst.display())));
        }
        fs::copy(src, dst).map(|_| ())
    }
}

/// Removes the directory tree at `path` so that a kill part-way leaves nothing at `path`: it is
/// renamed beside itself to `.<name>.removing.<pid>` first (one atomic step), then deleted.
/// Deleting in place, a kill half-way left a directory that no longer looked like a worktree
/// (its `.git` gone, other files still there) and blocked the name for good. What a killed
/// removal left under such a name is deleted by `sweep_removing`. Where the rename cannot be
/// done, the tree is deleted in place.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return remove_any(path) };
    let trash = dir.join(format!(".{}.removing.{}", name.to_string_lossy(), std::process::id()));
    match fs::rename(path, &trash) {
        Ok(()) => {
            crate::proc::failpoint::hit("tree-renamed");
            remove_any(&trash)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(_) => remove_any(path),
    }
}

/// Deletes what `remove_tree` runs that were killed left in `dir`: `.<name>.removing.<pid>`
/// whose process is gone.
pub fn sweep_removing(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let pid =
            file.strip_prefix('.').and_then(|f| f.rsplit_once(".removing.")).and_then(|(_, p)| p.parse::<i32>().ok());
        if pid.is_some_and(|pid| !crate::proc::process::is_alive(pid)) {
            let _ = remove_any(&entry.path());
        }
    }
}

/// Removes a file or a directory tree; a missing path is fine.
pub fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
    }
}

/// What a path holds, as `read_small` finds it.
#[derive(Debug, PartialEq, Eq)]
pub enum Small {
    /// A regular file of at most 4 KiB, in UTF-8.
    Text(String),
    Directory,
    Missing,
    /// Anything else: a symbolic link, a FIFO or device, a bigger file, one not in UTF-8, or
    /// one that cannot be read.
    Other,
}

impl Small {
    pub fn text(self) -> Option<String> {
        match self {
            Small::Text(t) => Some(t),
            _ => None,
        }
    }
}

/// Reads one of git's small files (`HEAD`, `gitdir`, a loose ref, a worktree's `.git`) where
/// an agent may have put something else: never through a symbolic link, never blocking (a
/// FIFO opened for reading would hang the tool), never more than 4 KiB, in one `read`.
pub fn read_small(path: &Path) -> Small {
    match read_untrusted(path, 4096) {
        Ok(Some(text)) => Small::Text(text),
        Ok(None) => Small::Missing,
        Err(untrusted::Refused { why: untrusted::Why::NotRegular("a directory"), .. }) => Small::Directory,
        Err(_) => Small::Other,
    }
}

/// The last `max_bytes` of the regular file at `path`, opened without following a link or
/// blocking (a log in an agent's reach: a symlink or a FIFO put in its place gives `None`); text
/// not in UTF-8 reads as U+FFFD.
pub fn read_end(path: &Path, max_bytes: u64) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::OpenOptionsExt;
    let flags = nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK;
    let mut file = std::fs::OpenOptions::new().read(true).custom_flags(flags).open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    file.seek(SeekFrom::Start(meta.len().saturating_sub(max_bytes))).ok()?;
    let mut bytes = Vec::new();
    file.take(max_bytes).read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The first `head` and the last `tail` bytes of the regular file at `path` (all of it when it
/// is no longer), opened as [`read_end`] opens it. Between the two, cut at lines, a line says
/// how much was not read: `[… 1843200 bytes not read …]`. A huge log keeps both where a runner
/// starts reporting (pytest's FAILURES before a test's megabytes of captured output) and where it
/// sums up. A carriage return ends a line as a newline does (progress redrawn in place), and a
/// window with no line break in it is kept whole: a log of `\r` progress keeps its last bytes.
pub fn read_ends(path: &Path, head: u64, tail: u64) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::OpenOptionsExt;
    let flags = nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK;
    let mut file = std::fs::OpenOptions::new().read(true).custom_flags(flags).open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let len = meta.len();
    let whole = len <= head.saturating_add(tail);
    let mut first = Vec::new();
    (&mut file).take(if whole { head.saturating_add(tail) } else { head }).read_to_end(&mut first).ok()?;
    if whole {
        return Some(String::from_utf8_lossy(&first).into_owned());
    }
    // Cut at lines: the head at its last line break, the tail after its first.
    let line_break = |b: &u8| *b == b'\n' || *b == b'\r';
    if let Some(i) = first.iter().rposition(line_break) {
        first.truncate(i + 1);
    }
    let head_end = first.len();
    file.seek(SeekFrom::Start(len.saturating_sub(tail).max(head_end as u64))).ok()?;
    let mut last = Vec::new();
    file.take(tail).read_to_end(&mut last).ok()?;
    // No line break: from the first whole character (not a U+FFFD for the one the window cut).
    let skip = match last.iter().position(line_break) {
        Some(i) => i + 1,
        None => last.iter().position(|b| b & 0xc0 != 0x80).unwrap_or(last.len()),
    };
    let not_read = len.saturating_sub(head_end as u64 + last.len() as u64) + skip as u64;
    let mut text = String::from_utf8_lossy(&first).into_owned();
    if !text.is_empty() && !text.ends_with(['\n', '\r']) {
        text.push('\n');
    }
    text.push_str(&format!("[… {not_read} bytes not read …]\n"));
    text.push_str(&String::from_utf8_lossy(&last[skip..]));
    Some(text)
}

/// `path` with every symbolic link resolved, as `Path::canonicalize` gives it, in three system
/// calls instead of one `readlink` per component: the kernel already knows where an open
/// descriptor leads (`/proc/self/fd`). Falls back to `canonicalize` without `/proc`.
/// `wt-create --list` checks every worktree's files this way: at 500 worktrees the
/// per-component walk was most of its system time.
pub fn canonical(path: &Path) -> io::Result<std::path::PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let opened = fs::OpenOptions::new().read(true).custom_flags(nix::libc::O_PATH).open(path)?;
    use std::os::fd::AsRawFd;
    match fs::read_link(format!("/proc/self/fd/{}", opened.as_raw_fd())) {
        // A path removed in between is shown with " (deleted)"; the walk tells that case apart.
        Ok(p) if p.is_absolute() && !p.as_os_str().as_encoded_bytes().ends_with(b" (deleted)") => Ok(p),
        _ => path.canonicalize(),
    }
}

/// `path` with `.` and `..` resolved by their names alone (no link followed, nothing read): a
/// git's `GIT_DIR=../.git`, a command's `../../app`.
pub fn lexical(path: &Path) -> std::path::PathBuf {
    let mut out = std::path::PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A log of progress redrawn with `\r` and no newline, longer than what is read: its first
    /// and last bytes, cut at a `\r`, not nothing (the tail was cut after a newline it lacks).
    #[test]
    fn read_ends_keeps_a_tail_with_no_newline() {
        let t = tempfile::tempdir().unwrap();
        let log = t.path().join("run.log");
        let progress: String = (0..10_000).map(|i| format!("{i:05}%\r")).collect();
        fs::write(&log, &progress).unwrap();
        let read = read_ends(&log, 64, 256).unwrap();
        assert!(read.starts_with("00000%\r00001%\r") && read.ends_with("09998%\r09999%\r"), "{read:?}");
        let (head, tail) = read.split_once("\r[… ").unwrap();
        assert!(head.len() <= 64 && tail.len() <= 256 + 40, "{read:?}");
        // No line break at all: the last bytes, from a whole character.
        let dots = format!("é{}", "é".repeat(1000));
        fs::write(&log, &dots).unwrap();
        let read = read_ends(&log, 10, 101).unwrap();
        assert!(read.ends_with(&"é".repeat(50)) && !read.contains('\u{fffd}'), "{read:?}");
        assert!(read.contains("\n[… ") && read.contains(" bytes not read …]\né"), "{read:?}");
    }

    #[test]
    fn copy_tree_keeps_modes_and_links() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("sub/run.sh"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(src.join("sub/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        symlink("sub/run.sh", src.join("link")).unwrap();
        copy_tree(&src, &t.path().join("dst")).unwrap();
        let mode = fs::metadata(t.path().join("dst/sub/run.sh")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(fs::read_link(t.path().join("dst/link")).unwrap(), Path::new("sub/run.sh"));
    }

    #[test]
    fn prune_logs_keeps_the_newest_and_drops_the_old() {
        let t = tempfile::tempdir().unwrap();
        let now = std::time::SystemTime::now();
        for (i, age_h) in [(1, 1u64), (2, 2), (3, 3), (4, 24 * 30)] {
            let p = t.path().join(format!("{i}.log"));
            fs::write(&p, "x").unwrap();
            let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
            f.set_modified(now - std::time::Duration::from_secs(age_h * 3600)).unwrap();
        }
        fs::write(t.path().join("other.txt"), "kept").unwrap();
        prune_logs(t.path(), |n| n.ends_with(".log"), 2, std::time::Duration::from_secs(7 * 24 * 3600));
        let mut left: Vec<String> =
            fs::read_dir(t.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["1.log", "2.log", "other.txt"]);
    }

    /// A link planted under the (predictable) temp name, in a directory an agent can write,
    /// is not followed: the file it points at keeps its content, and the write still lands.
    #[test]
    fn a_link_planted_at_the_temp_name_is_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let path = t.path().join("HEAD");
        symlink(&victim, t.path().join(temp_name("HEAD"))).unwrap();
        write_atomic(&path, b"ref: refs/heads/main\n").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(fs::read_to_string(&path).unwrap(), "ref: refs/heads/main\n");
        symlink(&victim, t.path().join(temp_name("ledger.json"))).unwrap();
        write_atomic_private(&t.path().join("ledger.json"), b"{}").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    }

    #[test]
    fn write_atomic_replaces_whole_file() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 1, "no temp file left");
    }

    #[test]
    fn temp_files_written_aside_are_distinct_and_swept_once_their_writer_is_gone() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f.json");
        let (a, b) = (write_synced_aside(&p, b"a").unwrap(), write_synced_aside(&p, b"b").unwrap());
        assert_ne!(a, b, "one temp file per call");
        assert!(!p.exists(), "nothing is put in place");
        let name = |f: &Path| f.file_name().unwrap().to_str().unwrap().to_string();
        assert!(!is_stale_temp(&name(&a), "f.json"), "this process lives");
        // pid 2^22+1 exceeds any pid_max default, so no live process has it.
        for dead in [".f.json.tmp.4194305", ".f.json.tmp.4194305.7"] {
            assert!(is_stale_temp(dead, "f.json"), "{dead}");
        }
        for other in [".f.json.tmp.4194305.", ".f.json.tmp.4194305.x", ".g.json.tmp.4194305", "f.json"] {
            assert!(!is_stale_temp(other, "f.json"), "{other}");
        }
        fs::write(t.path().join(".f.json.tmp.4194305.3"), "half").unwrap();
        sweep_stale_temps(&p);
        let left: Vec<String> = fs::read_dir(t.path()).unwrap().flatten().map(|e| name(&e.path())).collect();
        assert_eq!(left.len(), 2, "only the live writer's temp files stay: {left:?}");
    }

    #[test]
    fn canonical_resolves_links_as_canonicalize_does() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real/deep");
        fs::create_dir_all(&real).unwrap();
        symlink(t.path().join("real"), t.path().join("link")).unwrap();
        let via = t.path().join("link/deep/../deep");
        assert_eq!(canonical(&via).unwrap(), via.canonicalize().unwrap());
        assert_eq!(canonical(&real.join("..")).unwrap(), t.path().join("real").canonicalize().unwrap());
        assert!(canonical(&t.path().join("missing")).is_err());
    }

    #[test]
    fn a_tree_removed_part_way_leaves_nothing_at_its_name_and_is_swept_later() {
        let t = tempfile::tempdir().unwrap();
        let wt = t.path().join("agent-1");
        fs::create_dir_all(wt.join("src")).unwrap();
        fs::write(wt.join("src/a"), "a").unwrap();
        remove_tree(&wt).unwrap();
        assert!(!wt.exists());
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 0, "nothing left beside it");
        // What a killed removal left (its pid is gone), and one still being removed (ours).
        let dead = t.path().join(".agent-2.removing.999999999");
        let live = t.path().join(format!(".agent-3.removing.{}", std::process::id()));
        for d in [&dead, &live] {
            fs::create_dir_all(d.join("src")).unwrap();
        }
        sweep_removing(t.path());
        assert!(!dead.exists() && live.exists());
    }
}
