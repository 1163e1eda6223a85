//! What a change to a worktree is worth a test run for: not `.git`, not what git ignores. The
//! rules are git's: every `.gitignore` in the tree (each relative to its own directory, the
//! deepest deciding), the repository's `info/exclude`, the user's global excludes file. The same
//! walk lists the directories to watch, so ignored trees (`target/`, `node_modules/`) cost no
//! watches at all.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::{Match, WalkBuilder};
use wt_common::fs::untrusted::{Why, IGNORE_MAX};

/// The ignore rules of one worktree.
#[derive(Debug)]
pub struct Rules {
    root: PathBuf,
    /// Per `.gitignore`: its directory and its matcher, deepest first.
    nested: Vec<(PathBuf, Gitignore)>,
    exclude: Gitignore,
    global: Gitignore,
}

/// A walk of `root` that skips `.git` and what git ignores, hidden files included.
///
/// The `ignore` crate's own reading of `.gitignore` files is off: it opens them as they come
/// (a FIFO an agent put there hung the walk, and SIGTERM with it; `/dev/zero` behind a link was
/// read without end). Each `.gitignore` is read here instead, as `fs::read_untrusted` says, and
/// one that is not a regular file of at most 4 MiB is left out with a warning, as git leaves out
/// a `.gitignore` that is a link.
pub fn walker(root: &Path, exclude: Option<&Path>) -> WalkBuilder {
    walk_with(Arc::new(Mutex::new(Loader::new(root, exclude))), root)
}

/// A walk of `start` (the root or a directory under it) with the root's rules.
fn walk_with(loader: Arc<Mutex<Loader>>, start: &Path) -> WalkBuilder {
    let mut w = WalkBuilder::new(start);
    w.standard_filters(false).follow_links(false);
    w.filter_entry(move |e| {
        if e.file_name() == ".git" {
            return false;
        }
        let is_dir = e.file_type().is_some_and(|t| t.is_dir());
        !loader.lock().expect("loader").ignores(e.path(), is_dir)
    });
    w
}

/// The `.gitignore` files met on a walk, each read once, safely.
#[derive(Debug)]
struct Loader {
    root: PathBuf,
    /// Per directory: its `.gitignore`'s matcher, if it has one that could be read.
    dirs: HashMap<PathBuf, Option<Gitignore>>,
    exclude: Gitignore,
    global: Gitignore,
}

impl Loader {
    fn new(root: &Path, exclude: Option<&Path>) -> Loader {
        let exclude = exclude.and_then(|x| matcher(root, x)).unwrap_or_else(Gitignore::empty);
        let global = global_excludes(root).and_then(|x| matcher(root, &x)).unwrap_or_else(Gitignore::empty);
        Loader { root: root.to_path_buf(), dirs: HashMap::new(), exclude, global }
    }

    /// Whether the walk leaves out `path`: the deepest `.gitignore` that says anything decides,
    /// then `info/exclude`, then the global excludes. A directory left out is not entered, so
    /// only the directories above `path` up to the root are asked.
    fn ignores(&mut self, path: &Path, is_dir: bool) -> bool {
        let Ok(rel) = path.strip_prefix(&self.root) else { return false };
        if rel.as_os_str().is_empty() {
            return false;
        }
        let dirs: Vec<PathBuf> =
            path.ancestors().skip(1).take_while(|d| d.starts_with(&self.root)).map(Path::to_path_buf).collect();
        for dir in dirs {
            let m = self.dirs.entry(dir.clone()).or_insert_with(|| matcher(&dir, &dir.join(".gitignore")));
            match m.as_ref().map(|m| m.matched(path, is_dir)) {
                Some(Match::Ignore(_)) => return true,
                Some(Match::Whitelist(_)) => return false,
                _ => {}
            }
        }
        for m in [&self.exclude, &self.global] {
            match m.matched(path, is_dir) {
                Match::Ignore(_) => return true,
                Match::Whitelist(_) => return false,
                Match::None => {}
            }
        }
        false
    }
}

/// The user's global excludes file, as git finds it: `core.excludesFile` (asked of git, so
/// `GIT_CONFIG_GLOBAL` and the repository's own config count), else `$XDG_CONFIG_HOME/git/ignore`
/// or `~/.config/git/ignore`. Asked once per process.
fn global_excludes(root: &Path) -> Option<PathBuf> {
    static FILE: OnceLock<Option<PathBuf>> = OnceLock::new();
    FILE.get_or_init(|| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["config", "--path", "--get", "core.excludesFile"])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        let configured = String::from_utf8_lossy(&out.stdout).trim_end_matches('\n').to_string();
        if out.status.success() && !configured.is_empty() {
            return Some(PathBuf::from(configured));
        }
        match std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
            Some(xdg) => Some(PathBuf::from(xdg).join("git/ignore")),
            None => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/git/ignore")),
        }
    })
    .clone()
}

/// The matcher of the pattern file `file`, relative to `dir`: `None` when there is none, or it
/// cannot be read safely (warned about once per file).
fn matcher(dir: &Path, file: &Path) -> Option<Gitignore> {
    let text = match wt_common::fs::read_untrusted(file, IGNORE_MAX) {
        Ok(text) => text?,
        Err(refused) => {
            if matches!(refused.why, Why::NotRegular("a FIFO")) {
                hold_open(file);
            }
            static WARNED: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
            let mut warned = WARNED.get_or_init(Default::default).lock().ok()?;
            if warned.insert(file.to_path_buf()) {
                tracing::warn!("{refused} (its ignore rules are left out)");
            }
            return None;
        }
    };
    let mut b = GitignoreBuilder::new(dir);
    for line in text.lines() {
        let _ = b.add_line(Some(file.to_path_buf()), line); // a bad pattern is skipped, as git does
    }
    b.build().ok()
}

/// Keeps the FIFO at `file` open for writing (without blocking) for as long as wt-watch runs.
/// git opens every `.gitignore` it meets, a FIFO too, and waits there for a writer: the
/// `git status` of each round hung for good. With a writer held here, git's open returns at
/// once and, finding no size, git reads nothing from it.
fn hold_open(file: &Path) {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    static HELD: OnceLock<Mutex<HashMap<PathBuf, std::fs::File>>> = OnceLock::new();
    let Ok(mut held) = HELD.get_or_init(Default::default).lock() else { return };
    let flags = nix::libc::O_NONBLOCK | nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC;
    let opened = std::fs::OpenOptions::new().read(true).write(true).custom_flags(flags).open(file);
    if let Ok(f) = opened {
        if f.metadata().is_ok_and(|m| m.file_type().is_fifo()) {
            held.insert(file.to_path_buf(), f);
        }
    }
}

/// The directories of a worktree to watch, and its rules.
pub fn scan(root: &Path, exclude: Option<&Path>) -> (Vec<PathBuf>, Rules) {
    scan_under(root, root, exclude)
}

/// The directories to watch at and under `start` (a directory of the worktree `root`, which
/// git does not ignore), and the rules as read on the way: the `.gitignore` of `start` and of
/// every directory under it is read before anything in that directory is judged.
pub fn scan_under(root: &Path, start: &Path, exclude: Option<&Path>) -> (Vec<PathBuf>, Rules) {
    let loader = Arc::new(Mutex::new(Loader::new(root, exclude)));
    let mut dirs = Vec::new();
    for entry in walk_with(Arc::clone(&loader), start).build().flatten() {
        if entry.file_type().is_some_and(|t| t.is_dir()) {
            dirs.push(entry.into_path());
        }
    }
    let loader = loader.lock().expect("loader");
    let mut nested: Vec<(PathBuf, Gitignore)> =
        loader.dirs.iter().filter_map(|(d, m)| Some((d.clone(), m.clone()?))).filter(|(_, m)| !m.is_empty()).collect();
    nested.sort_by_key(|(d, _)| std::cmp::Reverse(d.components().count()));
    let (exclude, global) = (loader.exclude.clone(), loader.global.clone());
    (dirs, Rules { root: root.to_path_buf(), nested, exclude, global })
}

/// The rules as they are on disk now, read afresh (every `.gitignore` at the moment it is
/// asked about): what decides, once a change has settled, whether git can see it.
#[derive(Debug)]
pub struct Fresh {
    loader: Arc<Mutex<Loader>>,
}

/// How many entries of a new directory are looked at for one git can see; past that it counts.
const LOOK_MAX: usize = 10_000;

impl Fresh {
    pub fn new(root: &Path, exclude: Option<&Path>) -> Fresh {
        Fresh { loader: Arc::new(Mutex::new(Loader::new(root, exclude))) }
    }

    /// Whether git ignores `path`: it is in `.git`, or it or a directory above it is ignored.
    pub fn ignores(&self, path: &Path, is_dir: bool) -> bool {
        let mut loader = self.loader.lock().expect("loader");
        let Ok(rel) = path.strip_prefix(&loader.root) else { return true };
        if rel.components().any(|c| c == Component::Normal(".git".as_ref())) {
            return true;
        }
        let root = loader.root.clone();
        let mut at = root;
        let parts: Vec<_> = rel.components().collect();
        for (i, c) in parts.iter().enumerate() {
            at.push(c);
            let last = i + 1 == parts.len();
            if loader.ignores(&at, if last { is_dir } else { true }) {
                return true;
            }
        }
        false
    }

    /// The first thing git can see in the directory `dir` (not ignored): a file, a link,
    /// anything but a directory, not ignored; its own `.gitignore` is read first. Past
    /// `LOOK_MAX` entries, `dir` itself.
    pub fn shown_in(&self, dir: &Path) -> Option<PathBuf> {
        let walk = walk_with(Arc::clone(&self.loader), dir).build();
        for (n, entry) in walk.enumerate() {
            if n > LOOK_MAX {
                return Some(dir.to_path_buf());
            }
            match entry {
                Ok(e) if e.depth() > 0 && !e.file_type().is_some_and(|t| t.is_dir()) => return Some(e.into_path()),
                _ => {}
            }
        }
        None
    }
}

impl Rules {
    /// Takes in the rules read by a scan of `start`, a directory of this worktree: they replace
    /// what was known of `start` and below.
    pub fn merge(&mut self, start: &Path, scanned: Rules) {
        self.nested.retain(|(d, _)| !d.starts_with(start));
        self.nested.extend(scanned.nested.into_iter().filter(|(d, _)| d.starts_with(start)));
        self.nested.sort_by_key(|(d, _)| std::cmp::Reverse(d.components().count()));
    }

    /// True when a change at `path` (in this worktree) does not matter: it is in `.git`, or
    /// git ignores it.
    pub fn ignores(&self, path: &Path, is_dir: bool) -> bool {
        let Ok(rel) = path.strip_prefix(&self.root) else { return true };
        if rel.components().any(|c| c == Component::Normal(".git".as_ref())) {
            return true;
        }
        let matchers = self.nested.iter().filter(|(d, _)| path.starts_with(d)).map(|(_, m)| m);
        for m in matchers.chain([&self.exclude, &self.global]) {
            match m.matched_path_or_any_parents(path, is_dir) {
                Match::Ignore(_) => return true,
                Match::Whitelist(_) => return false,
                Match::None => {}
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_nested_gitignores_negations_and_excludes() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        for d in ["src/gen", "target/debug", "web/node_modules/x", ".git"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join(".gitignore"), "target/\n*.log\n!keep.log\n").unwrap();
        std::fs::write(root.join("web/.gitignore"), "node_modules\n").unwrap();
        std::fs::write(root.join("src/.gitignore"), "gen/\n").unwrap();
        std::fs::write(root.join("exclude"), "secret.txt\n").unwrap();
        let (dirs, rules) = scan(&root, Some(&root.join("exclude")));
        let rel: Vec<String> = dirs.iter().map(|d| d.strip_prefix(&root).unwrap().display().to_string()).collect();
        assert_eq!(rel.len(), 3, "{rel:?}");
        assert!(rel.contains(&"web".to_string()) && rel.contains(&"src".to_string()), "{rel:?}");
        let ignored = |p: &str| rules.ignores(&root.join(p), false);
        assert!(ignored(".git/index"));
        assert!(ignored("target/debug/app"));
        assert!(ignored("run.log"));
        assert!(!ignored("keep.log"));
        assert!(ignored("web/node_modules/x/a.js"));
        assert!(!ignored("web/app.js"));
        assert!(ignored("src/gen/out.rs"));
        assert!(!ignored("src/lib.rs"));
        assert!(ignored("secret.txt"));
        assert!(ignored("/elsewhere/file"));
    }

    /// A `.gitignore` that is a FIFO, a link to `/dev/zero` or a huge file is left out at once;
    /// the other rules still hold.
    #[test]
    fn a_planted_gitignore_is_left_out_not_waited_on() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        for d in ["fifo/deep", "zero", "huge", "target"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join(".gitignore"), "target/\n").unwrap();
        nix::unistd::mkfifo(&root.join("fifo/.gitignore"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        std::os::unix::fs::symlink("/dev/zero", root.join("zero/.gitignore")).unwrap();
        std::fs::File::create(root.join("huge/.gitignore")).unwrap().set_len(2 << 30).unwrap();
        let (dirs, rules) = scan(&root, None);
        assert_eq!(dirs.len(), 5, "{dirs:?}");
        assert!(rules.ignores(&root.join("target/x"), false));
        assert!(!rules.ignores(&root.join("fifo/deep/x"), false));
    }
}
