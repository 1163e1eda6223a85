//! What a change to a worktree is worth a test run for: not `.git`, not what git ignores. The
//! rules are git's: every `.gitignore` in the tree (each relative to its own directory, the
//! deepest deciding), the repository's `info/exclude`, the user's global excludes file. The same
//! walk lists the directories to watch, so ignored trees (`target/`, `node_modules/`) cost no
//! watches at all.

use std::path::{Component, Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::{Match, WalkBuilder};

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
pub fn walker(root: &Path, exclude: Option<&Path>) -> WalkBuilder {
    let mut w = WalkBuilder::new(root);
    w.hidden(false).require_git(false).parents(false).follow_links(false);
    w.filter_entry(|e| e.file_name() != ".git");
    if let Some(x) = exclude {
        w.add_ignore(x);
    }
    w
}

/// The directories of a worktree to watch, and its rules.
pub fn scan(root: &Path, exclude: Option<&Path>) -> (Vec<PathBuf>, Rules) {
    let mut dirs = Vec::new();
    let mut ignores = Vec::new();
    for entry in walker(root, exclude).build().flatten() {
        match entry.file_type() {
            Some(t) if t.is_dir() => dirs.push(entry.into_path()),
            Some(t) if t.is_file() && entry.file_name() == ".gitignore" => ignores.push(entry.into_path()),
            _ => {}
        }
    }
    (dirs, Rules::build(root, &ignores, exclude))
}

impl Rules {
    fn build(root: &Path, gitignores: &[PathBuf], exclude: Option<&Path>) -> Rules {
        let mut nested: Vec<(PathBuf, Gitignore)> = gitignores
            .iter()
            .filter_map(|file| {
                let dir = file.parent()?.to_path_buf();
                let mut b = GitignoreBuilder::new(&dir);
                b.add(file);
                Some((dir, b.build().ok()?))
            })
            .collect();
        nested.sort_by_key(|(d, _)| std::cmp::Reverse(d.components().count()));
        let exclude = exclude
            .and_then(|x| {
                let mut b = GitignoreBuilder::new(root);
                b.add(x);
                b.build().ok()
            })
            .unwrap_or_else(Gitignore::empty);
        let global = GitignoreBuilder::new(root).build_global().0;
        Rules { root: root.to_path_buf(), nested, exclude, global }
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
}
