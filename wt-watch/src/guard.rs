//! The guard: what an agent must not do to turn its tests green. Files it must not change (the
//! tests, the runner's configuration): a snapshot of the guarded files is taken at the first red
//! round; at green, any file added, removed or changed since is reported. And the number of
//! tests the runner executed may not drop below the first round's (`fewer_tests`). Either way
//! the status is `green-guard-touched`.
//!
//! Guarded by default: the detected runner's files (`runner_guard`), unless `--no-guard`;
//! `--guard GLOB` (or `[watch] guard`) adds globs, each of which must match a file.

use std::collections::BTreeMap;
use std::hash::Hasher;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};
use serde_json::{json, Value};
use wt_common::fs::untrusted::GUARD_HASH_MAX;
use wt_common::record::test_count::TestCount;
use wt_common::Error;

use crate::runner_guard::{self, TestRunner};

/// The guarded globs, matched against paths relative to the worktree (`*` stays in one
/// directory, `**` crosses them).
#[derive(Debug, Clone)]
pub struct Guard {
    set: GlobSet,
    /// Files of which one TOML table is guarded, not the whole (pytest's in pyproject.toml).
    sections: Vec<(GlobMatcher, &'static [&'static str])>,
    /// The runners whose default guard applies.
    runners: Vec<TestRunner>,
    /// Every glob that applies, the defaults' and the given.
    globs: Vec<String>,
}

/// Guarded files (relative paths; a guarded table as `pyproject.toml [tool.pytest]`) and a hash
/// of their contents.
pub type Snapshot = BTreeMap<String, u64>;

/// The most of a TOML file read to guard one table of it; a bigger one is guarded whole.
const SECTION_FILE_MAX: u64 = 1 << 20;

fn glob(g: &str) -> Result<Glob, Error> {
    GlobBuilder::new(g)
        .literal_separator(true)
        .build()
        .map_err(|e| Error::usage("bad-guard", format!("--guard {g}: {e} (write e.g. 'tests/**' or '**/*_test.go')")))
}

impl Guard {
    /// A guard of the given globs only.
    pub fn new(globs: &[String]) -> Result<Guard, Error> {
        Guard::with_runners(globs, &[])
    }

    /// A guard of the globs and of the default guard of each of `runners`.
    pub fn with_runners(given: &[String], runners: &[TestRunner]) -> Result<Guard, Error> {
        let mut b = GlobSetBuilder::new();
        let mut globs: Vec<String> = Vec::new();
        let mut sections = Vec::new();
        for r in runners {
            globs.extend(r.globs().iter().map(|g| g.to_string()));
            if *r == TestRunner::Pytest {
                let (pattern, table) = runner_guard::PYTEST_SECTION;
                sections.push((glob(pattern)?.compile_matcher(), table));
                globs.push(format!("{pattern} [{}]", table.join(".")));
            }
        }
        for g in runners.iter().flat_map(|r| r.globs()).map(|g| g.to_string()).chain(given.iter().cloned()) {
            b.add(glob(&g)?);
        }
        globs.extend(given.iter().cloned());
        let mut seen = std::collections::HashSet::new();
        globs.retain(|g| seen.insert(g.clone()));
        let set = b.build().map_err(|e| Error::usage("bad-guard", e.to_string()))?;
        Ok(Guard { set, sections, runners: runners.to_vec(), globs })
    }

    pub fn is_empty(&self) -> bool {
        self.globs.is_empty()
    }

    /// What the record says of the guard: `{"runners": ["pytest"], "globs": [...]}`.
    pub fn describe(&self) -> Value {
        json!({"runners": self.runners.iter().map(|r| r.name()).collect::<Vec<_>>(), "globs": self.globs})
    }

    /// The guarded files of the worktree at `root` now.
    pub fn snapshot(&self, root: &Path, exclude: Option<&Path>) -> Snapshot {
        let mut snap = Snapshot::new();
        if self.is_empty() {
            return snap;
        }
        for entry in crate::rules::walker(root, exclude).build().flatten() {
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            let Ok(rel) = entry.path().strip_prefix(root) else { continue };
            let name = rel.to_string_lossy().into_owned();
            if self.set.is_match(rel) {
                // Streamed, at most GUARD_HASH_MAX of it (and its size), never through a link or
                // waiting on a FIFO: the agent can put anything at a guarded name. One that is
                // not a regular file any more counts as removed.
                if let Some(h) = hash_file(entry.path()) {
                    snap.insert(name, h);
                }
            } else if let Some((_, table)) = self.sections.iter().find(|(m, _)| m.is_match(rel)) {
                if let Some(h) = hash_table(entry.path(), table) {
                    snap.insert(format!("{name} [{}]", table.join(".")), h);
                }
            }
        }
        snap
    }
}

fn hash_file(path: &Path) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match wt_common::fs::untrusted::hash_untrusted(path, GUARD_HASH_MAX, &mut h) {
        Ok(Some(_)) => Some(h.finish()),
        _ => None,
    }
}

/// A hash of the table at `keys` of the TOML file at `path`; `None` when it has no such table.
/// A file that is too big or does not parse is hashed whole: what it says cannot be told, so
/// any change to it counts.
fn hash_table(path: &Path, keys: &[&str]) -> Option<u64> {
    let bytes = match wt_common::fs::untrusted::read_untrusted_bytes(path, SECTION_FILE_MAX) {
        Ok(Some(b)) => b,
        Ok(None) => return None,
        Err(_) => return hash_file(path),
    };
    let parsed = std::str::from_utf8(&bytes).ok().and_then(|t| t.parse::<toml::Table>().ok());
    let Some(doc) = parsed else { return hash_file(path) };
    let mut at = doc.get(keys[0])?;
    for k in &keys[1..] {
        at = at.get(k)?;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(at.to_string().as_bytes());
    Some(h.finish())
}

/// The guarded files that differ between two snapshots: changed, added or removed.
pub fn touched(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let mut out: Vec<String> =
        after.iter().filter(|(k, v)| before.get(*k) != Some(v)).map(|(k, _)| k.clone()).collect();
    out.extend(before.keys().filter(|k| !after.contains_key(*k)).cloned());
    out.sort();
    out
}

/// The most missing tests a record names.
const MISSING_MAX: usize = 50;

/// When the green round executed fewer tests than the first round (`base`), what the record
/// says of it (`tests_dropped`): `{"runner", "unit", "base", "ran", "missing"}`, `missing` the
/// tests the base ran and this round did not, where the runner names them. A base whose count
/// the runner's summary gave, and a round without one, counts as a drop (`ran` null): the
/// summary is gone.
pub fn fewer_tests(base: Option<&TestCount>, now: Option<&TestCount>) -> Option<Value> {
    let base = base?;
    let Some(now) = now else {
        return Some(json!({"runner": base.runner.name(), "unit": base.unit.name(), "base": base.ran, "ran": null}));
    };
    if !now.dropped_below(base) {
        return None;
    }
    let mut missing = now.missing_from(base);
    missing.truncate(MISSING_MAX);
    Some(json!({"runner": base.runner.name(), "unit": base.unit.name(), "base": base.ran, "ran": now.ran,
                "missing": missing}))
}

/// `--guard` globs that match nothing in any of the worktrees at `roots` (the main worktree and
/// those named on the command line): a usage error naming the glob and what it could have
/// meant (the files and directories whose names are like its words).
pub fn check_matches(given: &[String], roots: &[PathBuf], exclude: Option<&Path>) -> Result<(), Error> {
    if given.is_empty() || roots.is_empty() {
        return Ok(());
    }
    let mut paths: Vec<(String, bool)> = Vec::new();
    for root in roots {
        for entry in crate::rules::walker(root, exclude).build().flatten() {
            let Ok(rel) = entry.path().strip_prefix(root) else { continue };
            if rel.as_os_str().is_empty() {
                continue;
            }
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            paths.push((rel.to_string_lossy().into_owned(), is_dir));
        }
    }
    paths.sort();
    paths.dedup();
    for g in given {
        let m = glob(g)?.compile_matcher();
        if paths.iter().any(|(p, _)| m.is_match(p)) {
            continue;
        }
        let stems: Vec<String> = g
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.len() >= 3)
            .map(|w| w.to_lowercase().chars().take(4).collect())
            .collect();
        let mut like: Vec<String> = paths
            .iter()
            .filter(|(p, _)| p.matches('/').count() < 3)
            .filter(|(p, _)| {
                let base = p.rsplit('/').next().unwrap_or(p).to_lowercase();
                stems.iter().any(|s| base.contains(s.as_str()))
            })
            .map(|(p, dir)| if *dir { format!("{p}/") } else { p.clone() })
            .collect();
        like.sort_by_key(|p| (p.matches('/').count(), p.clone()));
        like.truncate(5);
        let hint = if like.is_empty() {
            "check the glob (paths are relative to the worktree; `**` crosses directories)".to_string()
        } else {
            format!("there is {}", like.join(", "))
        };
        let place = match roots {
            [one] => one.display().to_string(),
            _ => format!("{} or the worktrees named", roots[0].display()),
        };
        return Err(Error::usage("guard-matches-nothing", format!("--guard {g} matches no file in {place}; {hint}")));
    }
    Ok(())
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
    fn of_pyproject_toml_only_pytests_table_is_guarded() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let py = "[project]\nname = \"x\"\n\n[tool.pytest.ini_options]\ntestpaths = [\"tests\"]\n";
        std::fs::write(root.join("pyproject.toml"), py).unwrap();
        let g = Guard::with_runners(&[], &[TestRunner::Pytest]).unwrap();
        let before = g.snapshot(root, None);
        assert_eq!(before.keys().collect::<Vec<_>>(), ["pyproject.toml [tool.pytest]"]);
        std::fs::write(root.join("pyproject.toml"), py.replace("\"x\"", "\"y\"")).unwrap();
        assert!(touched(&before, &g.snapshot(root, None)).is_empty(), "[project] is not guarded");
        let gamed = py.replace("testpaths", "addopts = \"-k 'not a'\"\ntestpaths");
        std::fs::write(root.join("pyproject.toml"), gamed).unwrap();
        assert_eq!(touched(&before, &g.snapshot(root, None)), ["pyproject.toml [tool.pytest]"]);
        // One that does not parse is guarded whole: what it says cannot be told.
        std::fs::write(root.join("pyproject.toml"), "[tool.pytest\n").unwrap();
        assert_eq!(touched(&before, &g.snapshot(root, None)), ["pyproject.toml [tool.pytest]"]);
        // Named with --guard, it is guarded whole.
        let whole = Guard::with_runners(&["pyproject.toml".into()], &[TestRunner::Pytest]).unwrap();
        assert_eq!(whole.snapshot(root, None).keys().collect::<Vec<_>>(), ["pyproject.toml"]);
    }

    #[test]
    fn a_glob_that_matches_no_file_is_an_error_naming_what_is_there() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("test/unit")).unwrap();
        std::fs::write(t.path().join("test/unit/a.js"), "").unwrap();
        std::fs::write(t.path().join("README"), "").unwrap();
        let roots = [t.path().to_path_buf()];
        check_matches(&["test/**".into(), "**/*.js".into(), "test/unit".into()], &roots, None).unwrap();
        let e = check_matches(&["tests/**".into()], &roots, None).unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.kind),
            ("guard-matches-nothing", wt_common::error::ErrorKind::Usage),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("--guard tests/** matches no file") && e.message.contains("there is test/"),
            "{}",
            e.message
        );
        // A worktree named on the command line counts too.
        let other = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(other.path().join("tests")).unwrap();
        std::fs::write(other.path().join("tests/a.py"), "").unwrap();
        check_matches(&["tests/**".into()], &[roots[0].clone(), other.path().to_path_buf()], None).unwrap();
    }

    #[test]
    fn fewer_tests_than_the_base_names_the_missing_ones() {
        use wt_common::record::test_count::count;
        let base = count("test a ... ok\ntest b ... FAILED\n\ntest result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n");
        let same = count("test a ... ok\ntest b ... ok\n\ntest result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n");
        let fewer = count("test a ... ok\n\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n");
        assert_eq!(fewer_tests(base.as_ref(), same.as_ref()), None);
        let d = fewer_tests(base.as_ref(), fewer.as_ref()).unwrap();
        assert_eq!((d["base"].as_u64(), d["ran"].as_u64(), d["missing"].clone()), (Some(2), Some(1), json!(["b"])));
        assert_eq!(fewer_tests(base.as_ref(), None).unwrap()["ran"], Value::Null, "the summary is gone");
        assert_eq!(fewer_tests(None, fewer.as_ref()), None, "no base, nothing to hold it to");
    }

    #[test]
    fn a_bad_glob_is_a_usage_error() {
        assert_eq!(Guard::new(&["tests/[".into()]).unwrap_err().code, "bad-guard");
    }
}
