//! What the watcher noticed since the last decision, and whether it matters once it has
//! settled. An event only says a path was touched; whether git sees a change there is decided
//! when the debounce ends, with every `.gitignore` read afresh. Judged on arrival it was not:
//! pytest makes `.pytest_cache` as a temporary directory (its files first, its self-ignoring
//! `.gitignore` after), then renames it into place, and those files looked like new untracked
//! files: every pytest run started another.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::rules::Fresh;

/// How many paths are kept between decisions; past that, the change counts.
const KEEP: usize = 512;

/// The paths touched since the last decision.
#[derive(Debug, Default)]
pub struct Noticed {
    /// (path, whether the event said it is a directory).
    paths: Vec<(PathBuf, bool)>,
    overflow: bool,
    /// The last event: the decision waits for the debounce after it.
    pub last: Option<Instant>,
}

impl Noticed {
    pub fn add(&mut self, path: PathBuf, is_dir: bool) {
        self.last = Some(Instant::now());
        if self.paths.iter().any(|(p, _)| *p == path) {
            return;
        }
        if self.paths.len() >= KEEP {
            self.overflow = true;
        } else {
            self.paths.push((path, is_dir));
        }
    }

    pub fn take(&mut self) -> Noticed {
        std::mem::take(self)
    }
}

/// What is at a touched path now, never through a link.
enum Now {
    Gone,
    Dir,
    /// A file, link or other non-directory: at the path, or at a directory above it that was
    /// replaced by one.
    Other(PathBuf),
}

fn now_at(root: &Path, path: &Path) -> Now {
    let Ok(rel) = path.strip_prefix(root) else { return Now::Gone };
    let mut at = root.to_path_buf();
    for c in rel.components() {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Err(_) => return Now::Gone,
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Now::Other(at),
        }
    }
    Now::Dir
}

/// Whether what was noticed in the worktree `root` is a change git can see: a file (or link)
/// git does not ignore, a new directory holding one (its own `.gitignore` read first), or a
/// path that is gone and that git tracked or that was seen before as a change (`visible`,
/// which this adds to). A directory by itself, empty or holding only what git ignores, is not.
pub fn matters(root: &Path, exclude: Option<&Path>, noticed: &Noticed, visible: &mut HashSet<PathBuf>) -> bool {
    seen(root, exclude, noticed, visible).any()
}

/// The changes git can see among what was noticed (as `matters` judges them).
#[derive(Debug, Default)]
pub struct Seen {
    /// Files (or links) that are there and that git does not ignore.
    pub files: Vec<PathBuf>,
    /// A change no file there names: a path gone that git tracked or that was seen before, or
    /// more paths touched than were kept.
    pub other: bool,
}

impl Seen {
    pub fn any(&self) -> bool {
        self.other || !self.files.is_empty()
    }
}

/// What `matters` decides on, path by path.
pub fn seen(root: &Path, exclude: Option<&Path>, noticed: &Noticed, visible: &mut HashSet<PathBuf>) -> Seen {
    if noticed.overflow {
        return Seen { files: Vec::new(), other: true };
    }
    let fresh = Fresh::new(root, exclude);
    let mut gone = Vec::new();
    let mut files = Vec::new();
    for (path, was_dir) in &noticed.paths {
        match now_at(root, path) {
            Now::Gone => gone.push((path, *was_dir)),
            Now::Other(p) => {
                if !fresh.ignores(&p, false) {
                    remember(visible, p.clone());
                    files.push(p);
                }
            }
            Now::Dir => {
                if let Some(shown) = (!fresh.ignores(path, true)).then(|| fresh.shown_in(path)).flatten() {
                    remember(visible, shown.clone());
                    files.push(shown);
                }
            }
        }
    }
    let gone: Vec<&PathBuf> = gone.into_iter().filter(|(p, d)| !fresh.ignores(p, *d)).map(|(p, _)| p).collect();
    let other = gone.iter().any(|p| visible.iter().any(|v| v.starts_with(p))) || tracked(root, &gone);
    files.dedup();
    Seen { files, other }
}

fn remember(visible: &mut HashSet<PathBuf>, path: PathBuf) {
    if visible.len() < 4 * KEEP {
        visible.insert(path);
    }
}

/// Whether git's index has any of `paths` (or anything under one). Unsure is yes.
pub fn tracked(root: &Path, paths: &[&PathBuf]) -> bool {
    if paths.is_empty() {
        return false;
    }
    let specs = paths.iter().filter_map(|p| p.strip_prefix(root).ok()).map(|rel| {
        let mut s = std::ffi::OsString::from(":(literal)");
        s.push(rel.as_os_str());
        s
    });
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["ls-files", "-z", "--"])
        .args(specs)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => !o.stdout.is_empty(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noticed(paths: &[(&Path, bool)]) -> Noticed {
        let mut n = Noticed::default();
        for (p, d) in paths {
            n.add(p.to_path_buf(), *d);
        }
        n
    }

    /// A temporary directory with a self-ignoring `.gitignore`, renamed into place, is no change;
    /// nor is an empty directory, or what was in a directory now gone and never tracked. A file,
    /// a link (never followed) and a seen file that is removed are.
    #[test]
    fn only_what_git_can_see_matters() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        let git = std::process::Command::new("git").arg("init").arg("-q").arg(&root).status().unwrap();
        assert!(git.success());
        let mut visible = HashSet::new();
        let tmp = root.join("cache-tmp");
        std::fs::create_dir_all(tmp.join("v")).unwrap();
        std::fs::write(tmp.join("README.md"), "x").unwrap();
        std::fs::write(tmp.join(".gitignore"), "*\n").unwrap();
        let early = noticed(&[(&tmp, true), (&tmp.join("README.md"), false), (&tmp.join("v"), true)]);
        std::fs::rename(&tmp, root.join(".cache")).unwrap();
        std::fs::write(root.join(".cache/v/data"), "x").unwrap();
        let cache = root.join(".cache");
        let settled = noticed(&[(&cache, true), (&cache.join("v/data"), false), (&cache.join(".gitignore"), false)]);
        assert!(!matters(&root, None, &early, &mut visible), "gone and never tracked");
        assert!(!matters(&root, None, &settled, &mut visible), "all of it ignored by its own .gitignore");
        std::fs::create_dir(root.join("empty")).unwrap();
        assert!(!matters(&root, None, &noticed(&[(&root.join("empty"), true)]), &mut visible));
        std::fs::write(root.join("empty/new.py"), "x").unwrap();
        assert!(matters(&root, None, &noticed(&[(&root.join("empty"), true)]), &mut visible), "a new file in it");
        std::fs::remove_file(root.join("empty/new.py")).unwrap();
        let gone = noticed(&[(&root.join("empty/new.py"), false)]);
        assert!(matters(&root, None, &gone, &mut visible), "a file seen before, removed");
        // A link is a change of its own, never followed: followed, it leads to a directory
        // holding only a file git ignores, which would be none.
        std::fs::write(root.join(".gitignore"), "*.log\n").unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(elsewhere.path().join("only.log"), "x").unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), root.join("link")).unwrap();
        assert!(matters(&root, None, &noticed(&[(&root.join("link/only.log"), false)]), &mut visible), "the link");
    }
}
