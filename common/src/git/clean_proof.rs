//! Proof that a worktree `git status` found clean is still clean, without asking git again:
//! what wt-status (and `wt-create --list`) show of hundreds of idle worktrees.
//!
//! `git status` of a clean worktree reads: the index (its own stat data for each tracked file),
//! `HEAD` and the commit it names, each tracked file's stat data (`lstat`), the directories'
//! entries (for untracked files), and the ignore rules and config. When git found a worktree
//! clean, and found it clean again at the next look with nothing outside the files changed, wt
//! notes all of it (`<state>/status/<name>`): the index's, the config files' and the ignore
//! files' stat data, `HEAD` and its commit, and the stat data of every tracked file, every
//! directory holding one and every empty directory git does not ignore (listed by one `git
//! ls-files`, which at that second look also stands in for `git status`: see `prove_pending`;
//! a worktree that changes between looks never pays for the listing). The next look `lstat`s
//! the same paths, as git would: if every one is
//! as noted, nothing git would look at changed, and the worktree is clean. Anything different,
//! missing or unreadable, and git is asked. Stat data includes `ctime`, which no program can
//! set back; a file changed within `RACY` of the note is not trusted (a change within the file
//! system's timestamp step of the note would keep its times), so such a worktree is noted only
//! once it has been still for that long. Not noted: worktrees with a submodule or a tracked
//! path that is a directory, or more than `MAX_PATHS` paths.
//!
//! The note is in wt's state directory, where an agent may be able to write: it is read with a
//! size cap and parsed strictly (a path is relative, without `..`), and what it can make wrong
//! is only the `clean` a board shows: removing a worktree asks git again (`refuse_dirty`).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::fs::stamp::Stamp;
use crate::git::repo::Repo;
use crate::git::worktree_check::Registered;

/// The note's format, first in it.
const MAGIC: &str = "wt-clean-proof 1";
/// How long before the note a path must have last changed for its times to prove anything.
const RACY: Duration = Duration::from_secs(2);
/// Worktrees with more paths are not noted (the note would be large; git is as quick).
const MAX_PATHS: usize = 200_000;
/// The largest note read.
const MAX_NOTE: u64 = 64 << 20;

/// What one board's looks share: the files outside the worktrees whose change changes what
/// git ignores or how it reads the files.
#[derive(Debug, Clone)]
pub struct Outside {
    files: Vec<PathBuf>,
    /// Why no note can prove anything this look (git's reading of the config depends on the
    /// worktree in ways the files alone do not show); `None` when notes can.
    unprovable: Option<&'static str>,
}

impl Outside {
    /// The repository's exclude and attributes files, the user's (default) ignore and
    /// attributes files, and every config file git reads (with those it includes), and the
    /// excludes file the config names (`core.excludesFile`): asked of git once per look.
    pub fn of(repo: &Repo) -> Outside {
        let common = &repo.common_dir;
        let mut files = vec![common.join("config"), common.join("info/exclude"), common.join("info/attributes")];
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let xdg =
            std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(".config")));
        match std::env::var_os("GIT_CONFIG_GLOBAL") {
            Some(g) => files.push(PathBuf::from(g)),
            None => files.extend(home.iter().map(|h| h.join(".gitconfig"))),
        }
        files.extend(xdg.iter().flat_map(|x| [x.join("git/config"), x.join("git/ignore"), x.join("git/attributes")]));
        files.push(PathBuf::from("/etc/gitconfig"));
        let mut unprovable = None;
        let mut cmd = crate::git::command(repo.git_dir());
        cmd.args(["config", "--list", "--show-origin", "-z"]);
        if let Ok(out) = crate::git::raw_output(&mut cmd) {
            let mut fields = out.stdout.split(|b| *b == 0);
            while let (Some(origin), Some(entry)) = (fields.next(), fields.next()) {
                let origin = String::from_utf8_lossy(origin);
                if let Some(file) = origin.strip_prefix("file:") {
                    files.push(repo.git_dir().join(file));
                }
                let entry = String::from_utf8_lossy(entry);
                if let Some((key, value)) = entry.split_once('\n') {
                    // A conditional include may hold for a worktree and not for the main one
                    // (`onbranch:`, `gitdir:`): what it names is not among these files.
                    if key.to_ascii_lowercase().starts_with("includeif.") {
                        unprovable = Some("a conditional include (includeIf) in git's config");
                    }
                    if key.eq_ignore_ascii_case("core.excludesfile") {
                        match (value.strip_prefix("~/"), &home) {
                            (Some(rest), Some(h)) => files.push(h.join(rest)),
                            _ if Path::new(value).is_absolute() => files.push(PathBuf::from(value)),
                            // Relative: git resolves it from each worktree's top directory.
                            _ => unprovable = Some("a relative core.excludesFile"),
                        }
                    }
                }
            }
        }
        files.sort();
        files.dedup();
        Outside { files, unprovable }
    }
}

/// Whether the worktree's note proves it clean now.
pub fn still_clean(state_dir: &Path, name: &str, reg: &Registered, outside: &Outside) -> bool {
    let Some(file) = note_file(state_dir, name) else { return false };
    let Ok(Some(bytes)) = crate::fs::untrusted::read_untrusted_bytes(&file, MAX_NOTE) else { return false };
    let mut records = bytes.split(|b| *b == 0);
    let Some(head) = records.next() else { return false };
    if Some(head) != header(reg, outside).as_ref().map(String::as_bytes) {
        return false;
    }
    let tree = Tree::open(&reg.path);
    for (seen, rec) in records.filter(|r| !r.is_empty()).enumerate() {
        // The last record counts the others: a note cut short (a write killed half way) has
        // none, and proves nothing.
        if let Some(count) = rec.strip_prefix(b"end ") {
            return seen > 0 && count == seen.to_string().as_bytes();
        }
        let Some(space) = rec.iter().position(|b| *b == b' ') else { return false };
        let (Ok(stat), Ok(rel)) = (std::str::from_utf8(&rec[..space]), std::str::from_utf8(&rec[space + 1..])) else {
            return false;
        };
        if !plain_relative(rel) || tree.stat(rel).is_none_or(|now| stat != stat_text(&now)) {
            return false;
        }
    }
    false
}

/// After a `git status` that started at `asked` found the worktree clean: a short note that it
/// was (`pending`), which the next look turns into the full note (`prove_pending`). So a
/// worktree that changes between looks never pays for the listing, and one that stays still
/// pays once. Nothing is noted while the index or the files outside changed within `RACY` of
/// `asked`; a worktree already found unprovable with the same header stays so (it is listed
/// again only once its index, `HEAD` or config changed).
pub fn note_clean(state_dir: &Path, name: &str, reg: &Registered, outside: &Outside, asked: SystemTime) {
    let Some(file) = note_file(state_dir, name) else { return };
    let Some(header) = header(reg, outside).filter(|_| still_outside(reg, outside, asked)) else {
        return forget(state_dir, name);
    };
    let unprovable = marked(&header, UNPROVABLE);
    let before = crate::fs::untrusted::read_untrusted_bytes(&file, unprovable.len() as u64).ok().flatten();
    if before.as_deref() != Some(&unprovable[..]) {
        write_note(&file, &marked(&header, PENDING));
    }
}

/// The look after one whose `git status` found the worktree clean (its `pending` note), with
/// the index, `HEAD`, config and the files outside as they were then: whether it is still
/// clean, answered by one `git ls-files` that also lists what the full note watches, which it
/// then writes. That look used to run `git status` and then `git ls-files`: twice the git of a
/// plain `git status` loop. The index as it was means nothing was staged since (that status
/// found index and `HEAD` alike); `--modified --deleted` is git's own check of each tracked
/// file against the index (its stat data, then the content where the stat data cannot say);
/// `--others` shows anything untracked git does not ignore. `false`: ask `git status` (the
/// worktree changed, or cannot be proved: then it is marked so, and not listed again until its
/// header changes).
pub fn prove_pending(state_dir: &Path, name: &str, reg: &Registered, outside: &Outside) -> bool {
    let Some(file) = note_file(state_dir, name) else { return false };
    let asked = SystemTime::now();
    let Some(header) = header(reg, outside).filter(|_| still_outside(reg, outside, asked)) else {
        return false;
    };
    let pending = marked(&header, PENDING);
    let before = crate::fs::untrusted::read_untrusted_bytes(&file, pending.len() as u64).ok().flatten();
    if before.as_deref() != Some(&pending[..]) {
        return false;
    }
    match listing(reg) {
        Listing::Clean(paths) => match note(reg, header.clone(), &paths, asked) {
            Ok(note) => {
                write_note(&file, &note);
                true
            }
            // A path changed within `RACY`, or since the listing: `git status` answers; the next
            // look tries again.
            Err(Unnoted::Changing) => false,
            Err(Unnoted::Unprovable) => {
                write_note(&file, &marked(&header, UNPROVABLE));
                false
            }
        },
        Listing::Changed => {
            forget(state_dir, name);
            false
        }
        Listing::Unprovable => {
            write_note(&file, &marked(&header, UNPROVABLE));
            false
        }
    }
}

/// What follows the header in a note that lists no paths.
const PENDING: &str = "pending";
const UNPROVABLE: &str = "unprovable";

fn marked(header: &str, mark: &str) -> Vec<u8> {
    [header.as_bytes(), b"\0", mark.as_bytes(), b"\0"].concat()
}

fn write_note(file: &Path, note: &[u8]) {
    let _ = std::fs::create_dir_all(file.parent().expect("in a directory"));
    // Not synced: a note lost or cut short only means git is asked again.
    let _ = crate::fs::write_replace(file, note);
}

/// Drops the worktree's note: it is not clean, or cannot be proved so.
pub fn forget(state_dir: &Path, name: &str) {
    if let Some(file) = note_file(state_dir, name) {
        let _ = std::fs::remove_file(file);
    }
}

fn note_file(state_dir: &Path, name: &str) -> Option<PathBuf> {
    crate::ledger::name::validate(name).ok()?;
    Some(state_dir.join("status").join(name))
}

/// Whether the index, `HEAD`, the worktree's config and the files outside last changed more
/// than `RACY` before `asked`.
fn still_outside(reg: &Registered, outside: &Outside, asked: SystemTime) -> bool {
    let Some(before) = asked.checked_sub(RACY) else { return false };
    let mut checked: Vec<PathBuf> =
        ["index", "HEAD", "config.worktree"].iter().map(|f| reg.admin_dir.join(f)).collect();
    checked.extend(outside.files.iter().cloned());
    checked
        .iter()
        .all(|file| std::fs::symlink_metadata(file).map_or(true, |m| Stamp::of_metadata(&m).still_since(before)))
}

/// Why no note was written.
enum Unnoted {
    /// A path changed within `RACY` of the look, or since the listing, or is gone.
    Changing,
    /// A tracked path is a directory (a submodule, or a file replaced by one).
    Unprovable,
}

/// The full note: the header, then `<stat> <path>` for each path, then `end <count>`, each
/// NUL-ended. `paths` maps each path to whether it is a tracked file (which must not be a
/// directory: the one `lstat` here says so, not one more in the listing).
fn note(
    reg: &Registered,
    header: String,
    paths: &BTreeMap<String, bool>,
    asked: SystemTime,
) -> Result<Vec<u8>, Unnoted> {
    let before = asked.checked_sub(RACY).ok_or(Unnoted::Changing)?;
    let mut note = header.into_bytes();
    note.push(0);
    let tree = Tree::open(&reg.path);
    for (rel, tracked_file) in paths {
        let stat = tree.stat(rel).ok_or(Unnoted::Changing)?;
        if *tracked_file && stat.is_dir() {
            return Err(Unnoted::Unprovable);
        }
        if !stat.still_since(before) {
            return Err(Unnoted::Changing);
        }
        note.extend_from_slice(stat_text(&stat).as_bytes());
        note.push(b' ');
        note.extend_from_slice(rel.as_bytes());
        note.push(0);
    }
    note.extend_from_slice(format!("end {}", paths.len()).as_bytes());
    note.push(0);
    Ok(note)
}

/// What one `git ls-files` says of a worktree found clean at the last look.
enum Listing {
    /// Still clean: every path whose stat data git's answer rests on (the root, each tracked
    /// file and the directories above it, each empty directory git does not ignore, with what
    /// is below it), each with whether it is a tracked file.
    Clean(BTreeMap<String, bool>),
    /// A tracked file changed or is gone, or an untracked file is there.
    Changed,
    /// Clean or not, no note can prove it: a submodule, a tracked path that is a directory, an
    /// untracked directory holding files (ignored ones, or not: `git status` tells), too many
    /// paths, a path that is not plain.
    Unprovable,
}

/// The worktree's tracked files (`H`), those changed (`C`) or gone (`R`) since the index, and
/// what is untracked and not ignored (`?`, a directory once), in one `git ls-files -t`.
fn listing(reg: &Registered) -> Listing {
    let mut cmd = crate::git::in_worktree(reg);
    cmd.env("GIT_OPTIONAL_LOCKS", "0").args([
        "ls-files",
        "-z",
        "-t",
        "--cached",
        "--modified",
        "--deleted",
        "--others",
        "--directory",
        "--exclude-standard",
    ]);
    let Ok(out) = crate::git::output_within(&mut cmd, crate::git::read_timeout(), &reg.path) else {
        return Listing::Unprovable;
    };
    let mut paths = BTreeMap::from([(".".to_string(), false)]);
    for entry in out.stdout.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        let Some((tag, entry)) = std::str::from_utf8(entry).ok().and_then(|e| e.split_once(' ')) else {
            return Listing::Unprovable;
        };
        match (tag, entry.strip_suffix('/')) {
            ("C" | "R", _) | ("?", None) => return Listing::Changed,
            // An untracked directory in a clean worktree holds no file git shows: what is below
            // it is empty directories, each watched.
            ("?", Some(dir)) => {
                if empty_tree(&reg.path, dir, &mut paths).is_none() {
                    return Listing::Unprovable;
                }
            }
            ("H", None) => {
                paths.insert(entry.to_string(), true);
            }
            // Skip-worktree (`S`), unmerged (`M`), anything else: git's answer rests on more.
            _ => return Listing::Unprovable,
        }
        let mut parent = Path::new(entry.trim_end_matches('/')).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            let Some(p) = p.to_str() else { return Listing::Unprovable };
            if paths.contains_key(p) {
                break; // and so are the directories above it
            }
            paths.insert(p.to_string(), false);
            parent = Path::new(p).parent();
        }
        if paths.len() > MAX_PATHS {
            return Listing::Unprovable;
        }
    }
    if paths.keys().all(|p| plain_relative(p)) {
        Listing::Clean(paths)
    } else {
        Listing::Unprovable
    }
}

/// `dir` and the directories below it, when it holds nothing else.
fn empty_tree(root: &Path, dir: &str, paths: &mut BTreeMap<String, bool>) -> Option<()> {
    paths.insert(dir.to_string(), false);
    if paths.len() > MAX_PATHS {
        return None;
    }
    for entry in std::fs::read_dir(root.join(dir)).ok()? {
        let entry = entry.ok()?;
        if !entry.file_type().ok()?.is_dir() {
            return None;
        }
        empty_tree(root, &format!("{dir}/{}", entry.file_name().to_str()?), paths)?;
    }
    Some(())
}

/// What must be the same for the note to hold, besides the paths: where the worktree and its
/// admin dir are, the index's stat data, `HEAD` and the commit it names, the files outside.
/// `None` when the commit cannot be read from git's files (a reftable, an unborn branch): a
/// `git reset --soft` changes it and nothing else.
fn header(reg: &Registered, outside: &Outside) -> Option<String> {
    if let Some(why) = outside.unprovable {
        tracing::debug!("no worktree is proved clean by its note: {why}");
        return None;
    }
    let head = crate::fs::read_untrusted(&reg.admin_dir.join("HEAD"), 4096).ok().flatten()?;
    let commit = match head.trim_end().strip_prefix("ref: ") {
        Some(full) => crate::git::refs::BranchReader::new(&reg.common_dir)?.full_ref(full).flatten()?,
        None => head.trim_end().to_string(),
    };
    let mut lines = vec![
        MAGIC.to_string(),
        format!("path {}", reg.path.display()),
        format!("admin {}", reg.admin_dir.display()),
        format!("head {}", head.escape_debug()),
        format!("commit {commit}"),
        format!("index {}", stat_of(&reg.admin_dir.join("index"))),
        format!("worktree-config {}", stat_of(&reg.admin_dir.join("config.worktree"))),
    ];
    for file in &outside.files {
        // Followed too: a dotfile manager links `~/.gitconfig` or `~/.config/git/ignore` to the
        // file that changes (these are the person's files, not the worktree's).
        let followed =
            std::fs::metadata(file).map(|m| stat_text(&Stamp::of_metadata(&m))).unwrap_or_else(|_| "-".into());
        lines.push(format!("file {} {followed} {}", stat_of(file), file.display()));
    }
    Some(lines.join("\n"))
}

/// A path's stat data as a note keeps it: `mode(octal):dev:ino:size:mtime.ns:ctime.ns`.
fn stat_text(stamp: &Stamp) -> String {
    let Stamp { mode, dev, ino, size, mtime, ctime } = stamp;
    format!("{mode:o}:{dev}:{ino}:{size}:{}.{}:{}.{}", mtime.0, mtime.1, ctime.0, ctime.1)
}

/// A worktree's directory, opened once: the stat data of each path in it is taken relative to
/// it, not by its absolute path (walking the path was half of each `lstat`'s cost, and a look
/// takes one per tracked file). Opened through a link as the path itself would be; each path
/// below it is taken without following its last component, as `lstat` does.
struct Tree(Option<rustix::fd::OwnedFd>);

impl Tree {
    fn open(root: &Path) -> Tree {
        use rustix::fs::{Mode, OFlags, CWD};
        Tree(rustix::fs::openat(CWD, root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).ok())
    }

    fn stat(&self, rel: &str) -> Option<Stamp> {
        Stamp::at(self.0.as_ref()?, rel)
    }
}

/// A path's stat data as noted: `-` when there is nothing there.
fn stat_of(path: &Path) -> String {
    Stamp::of(path).map_or_else(|| "-".into(), |s| stat_text(&s))
}

/// `.`, or a relative path of normal components (no `..`, no root, nothing empty).
fn plain_relative(rel: &str) -> bool {
    rel == "."
        || (!rel.is_empty()
            && !rel.contains("//")
            && !rel.ends_with('/')
            && Path::new(rel).components().all(|c| matches!(c, Component::Normal(_))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_read_from_a_note() {
        for ok in [".", "a", "src/a.rs", "a b/c"] {
            assert!(plain_relative(ok), "{ok}");
        }
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a//b", "a/", "./a"] {
            assert!(!plain_relative(bad), "{bad}");
        }
    }
}
