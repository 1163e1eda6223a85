//! `--guard GLOB`: files an agent must not change to turn its tests green (the tests themselves).
//! A snapshot of the guarded files is taken at the first red round; at green, any file added,
//! removed or changed since is reported, and the status is `green-guard-touched`.

use std::collections::BTreeMap;
use std::hash::Hasher;
use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use wt_common::fs::untrusted::GUARD_HASH_MAX;
use wt_common::Error;

/// The guarded globs, matched against paths relative to the worktree (`*` stays in one
/// directory, `**` crosses them).
#[derive(Debug, Clone)]
pub struct Guard {
    set: GlobSet,
    empty: bool,
}

/// Guarded files (relative paths) and a hash of their contents.
pub type Snapshot = BTreeMap<String, u64>;

impl Guard {
    pub fn new(globs: &[String]) -> Result<Guard, Error> {
        let mut b = GlobSetBuilder::new();
        for g in globs {
            let glob = GlobBuilder::new(g).literal_separator(true).build().map_err(|e| {
                Error::usage("bad-guard", format!("--guard {g}: {e} (write e.g. 'tests/**' or '**/*_test.go')"))
            })?;
            b.add(glob);
        }
        let set = b.build().map_err(|e| Error::usage("bad-guard", e.to_string()))?;
        Ok(Guard { set, empty: globs.is_empty() })
    }

    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// The guarded files of the worktree at `root` now.
    pub fn snapshot(&self, root: &Path, exclude: Option<&Path>) -> Snapshot {
        let mut snap = Snapshot::new();
        if self.empty {
            return snap;
        }
        for entry in crate::rules::walker(root, exclude).build().flatten() {
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            let Ok(rel) = entry.path().strip_prefix(root) else { continue };
            if self.set.is_match(rel) {
                // Streamed, at most GUARD_HASH_MAX of it (and its size), never through a link or
                // waiting on a FIFO: the agent can put anything at a guarded name. One that is
                // not a regular file any more counts as removed.
                let mut h = std::collections::hash_map::DefaultHasher::new();
                if let Ok(Some(_)) = wt_common::fs::untrusted::hash_untrusted(entry.path(), GUARD_HASH_MAX, &mut h) {
                    snap.insert(rel.to_string_lossy().into_owned(), h.finish());
                }
            }
        }
        snap
    }
}

/// The guarded files that differ between two snapshots: changed, added or removed.
pub fn touched(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let mut out: Vec<String> =
        after.iter().filter(|(k, v)| before.get(*k) != Some(v)).map(|(k, _)| k.clone()).collect();
    out.extend(before.keys().filter(|k| !after.contains_key(*k)).cloned());
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_changed_added_and_removed_guarded_files_only() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("tests/unit")).unwrap();
        std::fs::create_dir_all(root.join("pkg")).unwrap();
        std::fs::write(root.join("tests/a.py"), "1").unwrap();
        std::fs::write(root.join("tests/unit/b.py"), "1").unwrap();
        std::fs::write(root.join("pkg/x_test.go"), "1").unwrap();
        std::fs::write(root.join("pkg/x.go"), "1").unwrap();
        let g = Guard::new(&["tests/**".into(), "**/*_test.go".into()]).unwrap();
        let before = g.snapshot(root, None);
        assert_eq!(before.len(), 3, "{before:?}");
        std::fs::write(root.join("pkg/x.go"), "2").unwrap(); // not guarded
        assert!(touched(&before, &g.snapshot(root, None)).is_empty());
        std::fs::write(root.join("tests/unit/b.py"), "2").unwrap();
        std::fs::remove_file(root.join("pkg/x_test.go")).unwrap();
        std::fs::write(root.join("tests/c.py"), "new").unwrap();
        assert_eq!(
            touched(&before, &g.snapshot(root, None)),
            vec!["pkg/x_test.go".to_string(), "tests/c.py".into(), "tests/unit/b.py".into()]
        );
    }

    #[test]
    fn a_bad_glob_is_a_usage_error() {
        assert_eq!(Guard::new(&["tests/[".into()]).unwrap_err().code, "bad-guard");
    }
}
