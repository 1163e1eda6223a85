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
//! a worktree that changes between looks never pays for the listing, and a look lists at most
//! a quarter of its worktrees: see `Look`). The next look `lstat`s
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
//! is only the `clean` a board shows: removing a worktree asks git again (`refuse_dirty`). It
//! is written in place and sealed (`write_note`): a torn or mixed write proves nothing.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use crate::fs::fnv::fnv1a;
use crate::fs::stamp::Stamp;
use crate::git::repo::Repo;
use crate::git::worktree_check::Registered;

/// The note's format, first in it.
const MAGIC: &str = "wt-clean-proof 2";
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

/// What one look at many worktrees shares: the files outside them, and how many of them it may
/// still list.
#[derive(Debug)]
pub struct Look {
    outside: Outside,
    /// The listings this look may still make. Listing a worktree and noting every path in it
    /// costs about one and a half `git status`: a look lists at most `LISTED_SHARE` of the
    /// worktrees it asks about (at least `MIN_LISTINGS`), and the looks after it list the rest,
    /// so that no look costs much more than a `git status` of each.
    listings_left: AtomicUsize,
}

/// The share of a look's worktrees it lists (1 in this many), and the fewest it may list.
const LISTED_SHARE: usize = 4;
const MIN_LISTINGS: usize = 16;

impl Look {
    /// A look at `worktrees` worktrees of `repo`.
    pub fn new(repo: &Repo, worktrees: usize) -> Look {
        // The notes are written without a look for temp files left beside each (`write_note`):
        // those of killed looks are swept here, once a look.
        crate::fs::sweep_stale_temps_in(&repo.state_dir().join("status"));
        Look {
            outside: Outside::of(repo),
            listings_left: AtomicUsize::new((worktrees / LISTED_SHARE).max(MIN_LISTINGS)),
        }
    }

    fn take_listing(&self) -> bool {
        self.listings_left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
    }
}

/// One worktree at one look: its note read once, its header (`header`) computed at most once.
#[derive(Debug)]
pub struct Checkout<'a> {
    look: &'a Look,
    reg: &'a Registered,
    file: Option<PathBuf>,
    note: Option<Vec<u8>>,
    header: OnceLock<Option<Header>>,
}

impl<'a> Checkout<'a> {
    /// The worktree `name` (registered as `reg`), its note read from `state_dir`.
    pub fn new(state_dir: &Path, name: &str, reg: &'a Registered, look: &'a Look) -> Checkout<'a> {
        let file = note_file(state_dir, name);
        let note = file
            .as_ref()
            .and_then(|f| crate::fs::untrusted::read_untrusted_bytes(f, MAX_NOTE).ok().flatten())
            .and_then(unsealed);
        Checkout { look, reg, file, note, header: OnceLock::new() }
    }

    fn header(&self) -> Option<&Header> {
        self.header
            .get_or_init(|| {
                let header = header(self.reg, &self.look.outside);
                crate::proc::failpoint::hit("clean-proof-header-read");
                header
            })
            .as_ref()
    }

    /// Whether the worktree is clean without asking `git status`: its note proves it, or (its
    /// note pending, and the look not yet done listing) one `git ls-files` does (`prove_pending`).
    pub fn proved_clean(&self) -> bool {
        let Some(note) = &self.note else { return false };
        let Some(header) = self.header() else { return false };
        let Some(rest) = note.strip_prefix(header.text.as_bytes()).and_then(|r| r.strip_prefix(b"\0")) else {
            return false;
        };
        match rest {
            r if r == [PENDING.as_bytes(), b"\0"].concat() => self.prove_pending(header),
            r if r == [UNPROVABLE.as_bytes(), b"\0"].concat() => false,
            paths => self.paths_unchanged(paths),
        }
    }

    /// Whether every path the note lists is as noted: `<stat> <path>` records, NUL-ended, the
    /// last one `end <count>`.
    fn paths_unchanged(&self, records: &[u8]) -> bool {
        let tree = Tree::open(&self.reg.path);
        let mut now = Vec::with_capacity(64);
        for (seen, rec) in records.split(|b| *b == 0).filter(|r| !r.is_empty()).enumerate() {
            // The last record counts the others: a note cut short (a write killed half way) has
            // none, and proves nothing.
            if let Some(count) = rec.strip_prefix(b"end ") {
                return seen > 0 && count == seen.to_string().as_bytes();
            }
            let Some(space) = rec.iter().position(|b| *b == b' ') else { return false };
            let Ok(rel) = std::str::from_utf8(&rec[space + 1..]) else { return false };
            if !plain_relative(rel) {
                return false;
            }
            let Some(stamp) = tree.stat(rel) else { return false };
            now.clear();
            write_stat(&mut now, &stamp);
            if rec[..space] != now[..] {
                return false;
            }
        }
        false
    }

    /// The look after one whose `git status` found the worktree clean (its `pending` note), with
    /// the index, `HEAD`, config and the files outside as they were then: whether it is still
    /// clean, answered by one `git ls-files` that also lists what the full note watches, which
    /// it then writes. That look used to run `git status` and then `git ls-files`: twice the git
    /// of a plain `git status` loop. The index as it was means nothing was staged since (that
    /// status found index and `HEAD` alike); `--modified --deleted` is git's own check of each
    /// tracked file against the index (its stat data, then the content where the stat data
    /// cannot say); `--others` shows anything untracked git does not ignore. `false`: ask `git
    /// status` (the worktree changed, or cannot be proved: then it is marked so, and not listed
    /// again until its header changes; or the look has listed its share: a later look lists it).
    fn prove_pending(&self, header: &Header) -> bool {
        let Some(file) = &self.file else { return false };
        let asked = SystemTime::now();
        if !still_outside(self.reg, header, &self.look.outside, asked) || !self.look.take_listing() {
            return false;
        }
        match listing(self.reg) {
            Listing::Clean(paths) => match note(self.reg, header, &paths, asked) {
                Ok(note) => {
                    write_note(file, &note);
                    true
                }
                // A path changed within `RACY`, or since the listing: `git status` answers; the next
                // look tries again.
                Err(Unnoted::Changing) => false,
                Err(Unnoted::Unprovable) => {
                    write_note(file, &marked(header, UNPROVABLE));
                    false
                }
            },
            Listing::Changed => {
                self.found_changed();
                false
            }
            Listing::Unprovable => {
                write_note(file, &marked(header, UNPROVABLE));
                false
            }
        }
    }

    /// After a `git status` that started at `asked` found the worktree clean: a short note that
    /// it was (`pending`), which a later look turns into the full note (`prove_pending`). So a
    /// worktree that changes between looks never pays for the listing, and one that stays still
    /// pays once. Nothing is noted while the index, `HEAD`, its branch or the files outside
    /// changed within `RACY` of `asked` or of the header's reading, the earlier of the two (the
    /// header is read before the status when a note was there, after it otherwise: either way
    /// it is what that status saw); a worktree already found unprovable with the same header stays so (it is
    /// listed again only once its index, `HEAD` or config changed), and a pending note already
    /// there is left as it is.
    pub fn found_clean(&self, asked: SystemTime) {
        let Some(file) = &self.file else { return };
        let Some(header) = self.header().filter(|h| still_outside(self.reg, h, &self.look.outside, asked)) else {
            return self.found_changed();
        };
        let pending = marked(header, PENDING);
        if self.note.as_ref().is_none_or(|n| *n != pending && *n != marked(header, UNPROVABLE)) {
            write_note(file, &pending);
        }
    }

    /// Drops the worktree's note: it is not clean, or cannot be proved so. Emptied where it is
    /// (an empty note proves nothing) rather than removed: the next note is then written into
    /// the same file, and a look after every worktree changed makes no new files.
    pub fn found_changed(&self) {
        let Some(file) = &self.file else { return };
        if (self.note.is_some() || std::fs::symlink_metadata(file).is_ok_and(|m| m.len() > 0)) && !overwrite(file, b"")
        {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// What follows the header in a note that lists no paths.
const PENDING: &str = "pending";
const UNPROVABLE: &str = "unprovable";

fn marked(header: &Header, mark: &str) -> Vec<u8> {
    [header.text.as_bytes(), b"\0", mark.as_bytes(), b"\0"].concat()
}

/// Writes a note, sealed (`sealed`). In place when the note is there (a plain file, its only
/// name, this user's): a new file per note written (then renamed over the old one) made the
/// file system find 500 new inodes a look, a third of a look's own cost. A reader that meets a
/// note half written, or two looks' writes mixed, finds the seal broken: that note proves
/// nothing, and git is asked.
fn write_note(file: &Path, content: &[u8]) {
    let note = sealed(content);
    let _ = std::fs::create_dir_all(file.parent().expect("in a directory"));
    // Not synced: a note lost or cut short only means git is asked again.
    if !overwrite(file, &note) && !create(file, &note) && !overwrite(file, &note) {
        let _ = crate::fs::write_replace_unswept(file, &note);
    }
}

/// Makes the note where there is none (`false` when something is there, or on failure): by its
/// own name, not a temp file renamed, as a torn note is harmless (`sealed`).
fn create(file: &Path, bytes: &[u8]) -> bool {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let made = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(file);
    made.and_then(|mut f| f.write_all(bytes)).is_ok()
}

/// Writes `bytes` over the file at `file` if it is a regular file of this user with no other
/// name: never through a link, a FIFO, or a hard link an agent made to a file of the person's
/// (those are replaced by a new file instead). `false` when not written.
fn overwrite(file: &Path, bytes: &[u8]) -> bool {
    use rustix::fs::{FileType, Mode, OFlags, CWD};
    let flags = OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let Ok(fd) = rustix::fs::openat(CWD, file, flags, Mode::empty()) else { return false };
    let Ok(st) = rustix::fs::fstat(&fd) else { return false };
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile
        || st.st_nlink != 1
        || st.st_uid != nix::unistd::geteuid().as_raw()
    {
        return false;
    }
    let mut written = 0;
    while written < bytes.len() {
        match rustix::io::pwrite(&fd, &bytes[written..], written as u64) {
            Ok(0) | Err(_) => return false,
            Ok(n) => written += n,
        }
    }
    rustix::fs::ftruncate(&fd, bytes.len() as u64).is_ok()
}

/// The note's bytes and, last, `sum <16 hex digits>` NUL-ended: an FNV-1a hash of all before
/// it. Not a defence against an agent (which can write a note whole): against a read that
/// meets a write half done.
fn sealed(content: &[u8]) -> Vec<u8> {
    let mut note = Vec::with_capacity(content.len() + SEAL_LEN);
    note.extend_from_slice(content);
    note.extend_from_slice(format!("sum {:016x}\0", fnv1a(content)).as_bytes());
    note
}

/// `sum ` + 16 hex digits + NUL.
const SEAL_LEN: usize = 21;

/// The content of a sealed note whose seal holds.
fn unsealed(mut note: Vec<u8>) -> Option<Vec<u8>> {
    let at = note.len().checked_sub(SEAL_LEN)?;
    let seal = note[at..].strip_prefix(b"sum ")?.strip_suffix(b"\0")?;
    let sum = u64::from_str_radix(std::str::from_utf8(seal).ok()?, 16).ok()?;
    note.truncate(at);
    (fnv1a(&note) == sum).then_some(note)
}

fn note_file(state_dir: &Path, name: &str) -> Option<PathBuf> {
    crate::ledger::name::validate(name).ok()?;
    Some(state_dir.join("status").join(name))
}

/// Whether the index, `HEAD`, the branch it names, the worktree's config and the files outside
/// last changed more than `RACY` before `asked`.
/// Measured from when the header was read when that was earlier (a look stopped for seconds
/// between the two, by a Ctrl-Z or a debugger, must not hide a change made meanwhile).
fn still_outside(reg: &Registered, header: &Header, outside: &Outside, asked: SystemTime) -> bool {
    let Some(before) = asked.min(header.read_at).checked_sub(RACY) else { return false };
    let still =
        |file: &Path| std::fs::symlink_metadata(file).map_or(true, |m| Stamp::of_metadata(&m).still_since(before));
    ["index", "HEAD", "config.worktree"].iter().all(|f| still(&reg.admin_dir.join(f)))
        && header.refs.iter().chain(&outside.files).all(|f| still(f))
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
    header: &Header,
    paths: &BTreeMap<String, bool>,
    asked: SystemTime,
) -> Result<Vec<u8>, Unnoted> {
    let before = asked.checked_sub(RACY).ok_or(Unnoted::Changing)?;
    let mut note = Vec::with_capacity(header.text.len() + 64 * paths.len());
    note.extend_from_slice(header.text.as_bytes());
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
        write_stat(&mut note, &stat);
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
#[derive(Debug)]
struct Header {
    text: String,
    /// When the reading began.
    read_at: SystemTime,
    /// The files that hold the commit `HEAD` names: the branch's ref and `packed-refs`.
    refs: Vec<PathBuf>,
}

/// The worktree's header; `None` when the commit cannot be read from git's files (a reftable,
/// an unborn branch): a `git reset --soft` changes it and nothing else.
fn header(reg: &Registered, outside: &Outside) -> Option<Header> {
    let read_at = SystemTime::now();
    if let Some(why) = outside.unprovable {
        tracing::debug!("no worktree is proved clean by its note: {why}");
        return None;
    }
    let head = crate::fs::read_untrusted(&reg.admin_dir.join("HEAD"), 4096).ok().flatten()?;
    let (commit, refs) = match head.trim_end().strip_prefix("ref: ") {
        Some(full) => (
            crate::git::refs::BranchReader::new(&reg.common_dir)?.full_ref(full).flatten()?,
            vec![reg.common_dir.join(full), reg.common_dir.join("packed-refs")],
        ),
        None => (head.trim_end().to_string(), Vec::new()),
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
    Some(Header { text: lines.join("\n"), read_at, refs })
}

/// A path's stat data as a note keeps it: `mode(octal):dev:ino:size:mtime.ns:ctime.ns`.
fn stat_text(stamp: &Stamp) -> String {
    let mut text = Vec::with_capacity(64);
    write_stat(&mut text, stamp);
    String::from_utf8(text).expect("digits and punctuation")
}

/// `stat_text`, written into `out`: a note holds one per path, and a look compares one per
/// path (without the formatting machinery: it was a fifth of the cost of noting a worktree).
fn write_stat(out: &mut Vec<u8>, stamp: &Stamp) {
    let Stamp { mode, dev, ino, size, mtime, ctime } = stamp;
    let mut digits = itoa::Buffer::new();
    let mut octal = [0u8; 11];
    let mut at = octal.len();
    let mut m = *mode;
    loop {
        at -= 1;
        octal[at] = b'0' + (m & 7) as u8;
        m >>= 3;
        if m == 0 {
            break;
        }
    }
    out.extend_from_slice(&octal[at..]);
    for (sep, n) in [(b':', *dev as i128), (b':', *ino as i128), (b':', *size as i128)] {
        out.push(sep);
        out.extend_from_slice(digits.format(n).as_bytes());
    }
    for (s, ns) in [mtime, ctime] {
        out.push(b':');
        out.extend_from_slice(digits.format(*s).as_bytes());
        out.push(b'.');
        out.extend_from_slice(digits.format(*ns).as_bytes());
    }
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
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn stat_data_is_written_as_it_always_was() {
        let stamp = Stamp {
            mode: 0o100644,
            dev: 2049,
            ino: 1 << 40,
            size: 0,
            mtime: (1_700_000_000, 5),
            ctime: (-1, 999_999_999),
        };
        let old = |s: &Stamp| {
            let Stamp { mode, dev, ino, size, mtime, ctime } = s;
            format!("{mode:o}:{dev}:{ino}:{size}:{}.{}:{}.{}", mtime.0, mtime.1, ctime.0, ctime.1)
        };
        assert_eq!(stat_text(&stamp), old(&stamp));
        let dir = Stamp { mode: 0o40755, dev: u64::MAX, ino: 0, size: u64::MAX, ..stamp };
        assert_eq!(stat_text(&dir), old(&dir));
        assert_eq!(stat_text(&Stamp { mode: 0, ..dir.clone() }), old(&Stamp { mode: 0, ..dir }));
    }

    #[test]
    fn a_note_whose_seal_is_broken_is_not_read() {
        let content = b"wt-clean-proof 2\npath /x\0pending\0".to_vec();
        let note = sealed(&content);
        assert_eq!(unsealed(note.clone()), Some(content.clone()));
        for cut in [0, 1, SEAL_LEN, note.len() - 1] {
            assert_eq!(unsealed(note[..cut].to_vec()), None, "cut at {cut}");
        }
        let mut changed = note.clone();
        changed[3] ^= 1;
        assert_eq!(unsealed(changed), None);
        // Two writes mixed: the start of a longer note, the end of a shorter one.
        let longer = sealed(b"wt-clean-proof 2\npath /x\x00600:1:2:3:4.5:6.7 a\0end 1\0");
        let mixed = [&longer[..40], &note[40..]].concat();
        assert_ne!(mixed, note);
        assert_eq!(unsealed(mixed), None);
    }

    #[test]
    fn a_note_is_written_over_in_place_but_never_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a");
        write_note(&file, b"one\0");
        let inode = std::fs::metadata(&file).unwrap().ino();
        write_note(&file, b"two, longer\0");
        assert_eq!(std::fs::metadata(&file).unwrap().ino(), inode, "written in place");
        write_note(&file, b"3\0");
        assert_eq!(unsealed(std::fs::read(&file).unwrap()), Some(b"3\0".to_vec()), "cut to its length");
        // A hard link to a file of the person's, a symbolic link: replaced, the file untouched.
        let theirs = dir.path().join("theirs");
        std::fs::write(&theirs, "keep").unwrap();
        std::fs::remove_file(&file).unwrap();
        std::fs::hard_link(&theirs, &file).unwrap();
        write_note(&file, b"four\0");
        assert_eq!(std::fs::read_to_string(&theirs).unwrap(), "keep");
        assert_eq!(unsealed(std::fs::read(&file).unwrap()), Some(b"four\0".to_vec()));
        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink(&theirs, &file).unwrap();
        write_note(&file, b"five\0");
        assert_eq!(std::fs::read_to_string(&theirs).unwrap(), "keep");
        assert!(std::fs::symlink_metadata(&file).unwrap().is_file());
    }

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
