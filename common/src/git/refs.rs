//! Reading branch refs from the files git keeps them in, without starting git: the loose ref
//! `refs/heads/<name>` in the common dir, else its line in `packed-refs`. This is what a git
//! library does to resolve a ref, and it costs microseconds where a `git` process costs
//! milliseconds. Anything unusual (the reftable format, a symbolic or unreadable ref, a name
//! git would refuse) answers `None`, and the caller asks git instead.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::fs::{read_small, Small};

/// The commits of the branches in `names` that exist (branch → commit), or `None` when the
/// files cannot answer for certain.
pub fn read_branches<'a>(common: &Path, names: impl IntoIterator<Item = &'a str>) -> Option<HashMap<String, String>> {
    let reader = BranchReader::new(common)?;
    let mut found = HashMap::new();
    for name in names {
        if let Some(commit) = reader.commit(name)? {
            found.insert(name.to_string(), commit);
        }
    }
    Some(found)
}

/// Reads branches one at a time, with what holds for all of them done once: the reftable check
/// and reading `packed-refs` (at most once, when a branch is not loose). Branches under a
/// prefix that the caller has just listed (`branches_under`) are taken from its list, not read
/// again: the registry of 500 worktrees on `wt/` branches reads 500 files fewer.
#[derive(Debug)]
pub struct BranchReader<'a> {
    common: &'a Path,
    /// `refs/heads/<prefix>/…`: every such branch, by the name after the prefix.
    listed: Option<(&'a str, &'a BTreeMap<String, String>)>,
    packed: std::sync::OnceLock<Option<HashMap<String, String>>>,
}

impl<'a> BranchReader<'a> {
    /// `None` when the repository keeps its refs in reftable (ask git).
    pub fn new(common: &'a Path) -> Option<Self> {
        if common.join("reftable").exists() {
            return None;
        }
        Some(BranchReader { common, listed: None, packed: std::sync::OnceLock::new() })
    }

    pub fn common(&self) -> &'a Path {
        self.common
    }

    /// Takes the branches under `refs/heads/<prefix>/` from `listed`, every one of them.
    pub fn listed(mut self, prefix: &'a str, listed: &'a BTreeMap<String, String>) -> Self {
        self.listed = Some((prefix, listed));
        self
    }

    /// The commit of branch `name` (`Some(None)`: no such branch); `None`: ask git.
    pub fn commit(&self, name: &str) -> Option<Option<String>> {
        if !plain_branch(name) {
            return None;
        }
        if let Some((prefix, listed)) = self.listed {
            if let Some(rest) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) {
                return Some(listed.get(rest).cloned());
            }
        }
        self.full_ref(&format!("refs/heads/{name}"))
    }

    /// The commit of any ref by its full name (`refs/wt/merged/agent-2`; `Some(None)`: no such
    /// ref); `None`: ask git.
    pub fn full_ref(&self, full: &str) -> Option<Option<String>> {
        if !full.starts_with("refs/") || !plain_branch(full) {
            return None;
        }
        // Read without following a link (git's symbolic-link refs are left to git) or blocking.
        match read_small(&self.common.join(full)) {
            Small::Text(text) => Some(Some(object_id(text.trim_end_matches('\n'))?.to_string())),
            Small::Missing => {
                let packed = self.packed.get_or_init(|| read_packed(self.common)).as_ref()?;
                Some(packed.get(full).cloned())
            }
            // A directory (`refs/heads/a` when only `a/b` exists) is no branch.
            Small::Directory => Some(None),
            Small::Other => None,
        }
    }
}

/// Every branch under `refs/heads/<prefix>/` (name after the prefix → commit), loose and
/// packed, as `git for-each-ref refs/heads/<prefix>/` lists them; `None` when the files cannot
/// answer for certain.
pub fn branches_under(common: &Path, prefix: &str) -> Option<BTreeMap<String, String>> {
    if common.join("reftable").exists() || !plain_branch(prefix) {
        return None;
    }
    let full_prefix = format!("refs/heads/{prefix}/");
    let mut found: BTreeMap<String, String> = read_packed(common)?
        .into_iter()
        .filter_map(|(name, id)| Some((name.strip_prefix(&full_prefix)?.to_string(), id)))
        .collect();
    let root = common.join(&full_prefix);
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(_) => return None,
        };
        for entry in entries {
            let path = entry.ok()?.path();
            let name = path.strip_prefix(&root).ok()?.to_str()?.to_string();
            if name.ends_with(".lock") {
                continue;
            }
            match read_small(&path) {
                Small::Directory => dirs.push(path),
                Small::Text(text) if plain_branch(&name) => {
                    found.insert(name, object_id(text.trim_end_matches('\n'))?.to_string());
                }
                Small::Text(_) | Small::Other => return None,
                Small::Missing => {} // deleted since it was listed
            }
        }
    }
    Some(found)
}

/// The branch the main worktree (or the bare repository) has checked out, from its `HEAD`
/// file; `None` when that is not a plain symbolic ref to a branch (ask git).
pub fn main_branch(common: &Path) -> Option<String> {
    let head = read_small(&common.join("HEAD")).text()?;
    let name = head.strip_prefix("ref: refs/heads/")?.strip_suffix('\n')?;
    plain_branch(name).then(|| name.to_string())
}

/// `packed-refs`: ref → commit (no file: none); `None` (ask git) for anything but a regular
/// file of text within the cap: never through a link, never blocking on a FIFO.
fn read_packed(common: &Path) -> Option<HashMap<String, String>> {
    let path = common.join("packed-refs");
    let text = crate::fs::read_untrusted(&path, crate::fs::untrusted::PACKED_REFS_MAX).ok()?.unwrap_or_default();
    let mut refs = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.starts_with('^')) {
        let (id, name) = line.split_once(' ')?;
        refs.insert(name.to_string(), object_id(id)?.to_string());
    }
    Some(refs)
}

/// A full object id (SHA-1 or SHA-256), lowercase hex.
pub(crate) fn object_id(text: &str) -> Option<&str> {
    let hex = text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (hex && (text.len() == 40 || text.len() == 64)).then_some(text)
}

/// A branch name that is a plain relative path of ordinary components (a subset of what
/// `git check-ref-format` allows), so that joining it to `refs/heads/` stays inside.
fn plain_branch(name: &str) -> bool {
    !name.is_empty()
        && name.split('/').all(|c| {
            !c.is_empty()
                && !c.starts_with('.')
                && !c.ends_with(".lock")
                && c.bytes().all(|b| b > b' ' && b != 0x7f && !b"\\:?*[~^".contains(&b))
        })
        && !name.contains("..")
        && !name.contains("@{")
}

/// A commit's name as a person reads it in a message: its first 12 hex digits.
pub fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::git::test_git::git;

    #[test]
    fn loose_and_packed_branches_read_as_git_reads_them() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        git(d, &["init", "-q", "-b", "main"]);
        git(d, &["-c", "user.name=a", "-c", "user.email=a@b", "commit", "-q", "--allow-empty", "-m", "one"]);
        git(d, &["branch", "wt/packed"]);
        git(d, &["branch", "deep/x"]);
        git(d, &["pack-refs", "--all"]);
        git(d, &["branch", "wt/loose"]);
        git(d, &["-c", "user.name=a", "-c", "user.email=a@b", "commit", "-q", "--allow-empty", "-m", "two"]);
        let common = d.join(".git");
        let got = read_branches(&common, ["main", "wt/packed", "wt/loose", "deep", "gone"]).unwrap();
        for b in ["main", "wt/packed", "wt/loose"] {
            assert_eq!(got.get(b), Some(&git(d, &["rev-parse", &format!("refs/heads/{b}")])), "{b}");
        }
        assert_eq!(got.len(), 3, "`deep` (a directory of branches) and `gone` are no branches: {got:?}");
        assert_eq!(main_branch(&common).as_deref(), Some("main"));
        git(d, &["checkout", "-q", "--detach"]);
        assert_eq!(main_branch(&common), None, "detached: git is asked");
        git(d, &["branch", "wt/deep/er"]);
        let listed = git(d, &["for-each-ref", "--format=%(refname:lstrip=3) %(objectname)", "refs/heads/wt/"]);
        let listed: BTreeMap<String, String> =
            listed.lines().map(|l| l.split_once(' ').unwrap()).map(|(a, b)| (a.into(), b.into())).collect();
        std::fs::write(common.join("refs/heads/wt/x.lock"), "").unwrap();
        assert_eq!(branches_under(&common, "wt").unwrap(), listed, "loose, packed and nested, no lock files");
        assert_eq!(branches_under(&common, "none").unwrap(), BTreeMap::new());
        // A FIFO or a symbolic link among the refs is left to git, and never blocks.
        nix::unistd::mkfifo(&common.join("refs/heads/wt/fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(branches_under(&common, "wt"), None);
        assert_eq!(read_branches(&common, ["wt/fifo"]), None);
        std::fs::remove_file(common.join("refs/heads/wt/fifo")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", common.join("refs/heads/wt/zero")).unwrap();
        assert_eq!(branches_under(&common, "wt"), None);
        std::fs::remove_file(common.join("refs/heads/wt/zero")).unwrap();
        // Names that could leave refs/heads/ are never joined to a path.
        assert_eq!(read_branches(&common, ["../../HEAD"]), None);
        assert_eq!(read_branches(&common, ["/etc/passwd"]), None);
        // Any ref by its full name, loose or packed.
        git(d, &["update-ref", "refs/wt/merged/a", "HEAD"]);
        git(d, &["update-ref", "refs/wt/merged/b", "HEAD~1"]);
        git(d, &["pack-refs", "--all"]);
        git(d, &["update-ref", "refs/wt/merged/c", "HEAD"]);
        let reader = BranchReader::new(&common).unwrap();
        for r in ["refs/wt/merged/a", "refs/wt/merged/b", "refs/wt/merged/c"] {
            assert_eq!(reader.full_ref(r), Some(Some(git(d, &["rev-parse", r]))), "{r}");
        }
        assert_eq!(reader.full_ref("refs/wt/merged/none"), Some(None));
        assert_eq!(reader.full_ref("refs/../../HEAD"), None);
        assert_eq!(reader.full_ref("HEAD"), None, "only refs/…");
        // So is a `packed-refs` that is a FIFO or a symbolic link.
        let packed = common.join("packed-refs");
        std::fs::remove_file(&packed).unwrap();
        nix::unistd::mkfifo(&packed, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(branches_under(&common, "wt"), None);
        assert_eq!(BranchReader::new(&common).unwrap().full_ref("refs/wt/merged/a"), None);
        std::fs::remove_file(&packed).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &packed).unwrap();
        assert_eq!(branches_under(&common, "wt"), None);
    }
}
