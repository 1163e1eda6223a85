//! Sharing is safe only when the worktree wants the same dependencies as the main worktree: a
//! branch whose lock file differs would otherwise run against the wrong packages. The lock
//! files beside the shared directory and in every directory above it (up to the worktree's
//! root) must be byte for byte the same in both. Where neither side has a lock file, the
//! manifests (`package.json`, `pyproject.toml`, `Cargo.toml`, …) are compared instead; where
//! there is neither, a match cannot be proven, and the caller says so.

use std::fs;
use std::path::Path;

/// Lock files of npm, pnpm, yarn, bun, uv, poetry, pipenv, cargo, bundler, composer and go;
/// `requirements*.txt` besides.
const LOCK_FILES: &[&str] = &[
    "package-lock.json",
    "npm-shrinkwrap.json",
    "pnpm-lock.yaml",
    "yarn.lock",
    "bun.lock",
    "bun.lockb",
    "uv.lock",
    "poetry.lock",
    "Pipfile.lock",
    "Cargo.lock",
    "Gemfile.lock",
    "composer.lock",
    "go.sum",
];

pub(crate) fn is_lock_file(name: &str) -> bool {
    LOCK_FILES.contains(&name) || (name.starts_with("requirements") && name.ends_with(".txt"))
}

/// Files that declare the dependencies without pinning them: compared when there is no lock
/// file (the same ranges can still resolve to other versions, but a changed one surely differs).
pub(crate) const MANIFESTS: &[&str] = &[
    "package.json",
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "Pipfile",
    "Cargo.toml",
    "Gemfile",
    "go.mod",
    "composer.json",
];

/// What comparing the main worktree's dependency files with a worktree's found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// These lock files (relative to the worktree root) are the same in both.
    Locked(Vec<String>),
    /// No lock file on either side; these manifests are the same in both.
    Manifests(Vec<String>),
    /// Neither a lock file nor a manifest beside the directory or above it.
    Unproven,
    /// This file differs (or is on one side only).
    Differs(String),
}

/// Compares the lock files for shared directory `dir`, or the manifests where there is none.
pub fn compare(main: &Path, worktree: &Path, dir: &Path) -> Verdict {
    let locks = match compare_files(main, worktree, dir, is_lock_file) {
        Err(differs) => return Verdict::Differs(differs),
        Ok(same) => same,
    };
    if !locks.is_empty() {
        return Verdict::Locked(locks);
    }
    match compare_files(main, worktree, dir, |n| MANIFESTS.contains(&n)) {
        Err(differs) => Verdict::Differs(differs),
        Ok(same) if same.is_empty() => Verdict::Unproven,
        Ok(same) => Verdict::Manifests(same),
    }
}

/// The files `wanted` picks beside `dir` and above it, on either side: `Ok` with their paths
/// when all are the same in both, `Err` with the first that is not.
fn compare_files(
    main: &Path,
    worktree: &Path,
    dir: &Path,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<String>, String> {
    let mut same = Vec::new();
    for rel in dir.ancestors().skip(1) {
        let mut names: Vec<String> = [main.join(rel), worktree.join(rel)]
            .iter()
            .filter_map(|d| fs::read_dir(d).ok())
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| wanted(n))
            .collect();
        names.sort();
        names.dedup();
        for name in names {
            let shown = rel.join(&name).display().to_string();
            if !same_content(&main.join(rel).join(&name), &worktree.join(rel).join(&name)) {
                return Err(shown);
            }
            same.push(shown);
        }
    }
    Ok(same)
}

/// Whether two files hold the same bytes (or are both missing), compared block by block. Each
/// is opened as files an agent or a merge could have placed are (`fs::untrusted`): one that is
/// a link, a FIFO or a device never matches, and is never waited on or read without end.
fn same_content(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let open = |p: &Path| wt_common::fs::untrusted::open_untrusted(p, u64::MAX);
    let (mut a, mut b) = match (open(a), open(b)) {
        (Ok(None), Ok(None)) => return true,
        (Ok(Some(a)), Ok(Some(b))) if a.1 == b.1 => (a.0, b.0),
        _ => return false,
    };
    let (mut x, mut y) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = match a.read(&mut x) {
            Ok(n) => n,
            Err(_) => return false,
        };
        if n == 0 {
            return b.read(&mut y[..1]).is_ok_and(|m| m == 0);
        }
        if b.read_exact(&mut y[..n]).is_err() || x[..n] != y[..n] {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_difference(main: &Path, wt: &Path, dir: &Path) -> Option<String> {
        match compare(main, wt, dir) {
            Verdict::Differs(file) => Some(file),
            _ => None,
        }
    }

    #[test]
    fn a_differing_or_missing_lock_file_is_named() {
        let t = tempfile::tempdir().unwrap();
        let (main, wt) = (t.path().join("m"), t.path().join("w"));
        for d in [&main, &wt] {
            fs::create_dir_all(d.join("app")).unwrap();
            fs::write(d.join("package-lock.json"), "{}").unwrap();
        }
        assert_eq!(first_difference(&main, &wt, Path::new("app/node_modules")), None);
        fs::write(wt.join("app/requirements-dev.txt"), "six\n").unwrap();
        assert_eq!(
            first_difference(&main, &wt, Path::new("app/node_modules")).as_deref(),
            Some("app/requirements-dev.txt")
        );
        fs::remove_file(wt.join("app/requirements-dev.txt")).unwrap();
        fs::write(wt.join("package-lock.json"), "{\"x\":1}").unwrap();
        assert_eq!(first_difference(&main, &wt, Path::new("node_modules")).as_deref(), Some("package-lock.json"));
    }

    #[test]
    fn without_lock_files_the_manifests_are_compared_and_without_both_nothing_is_proven() {
        let t = tempfile::tempdir().unwrap();
        let (main, wt) = (t.path().join("m"), t.path().join("w"));
        for d in [&main, &wt] {
            fs::create_dir_all(d).unwrap();
        }
        assert_eq!(compare(&main, &wt, Path::new("node_modules")), Verdict::Unproven);
        fs::write(main.join("package.json"), "{\"dependencies\":{\"a\":\"^1\"}}").unwrap();
        fs::write(wt.join("package.json"), "{\"dependencies\":{\"a\":\"^1\"}}").unwrap();
        assert_eq!(compare(&main, &wt, Path::new("node_modules")), Verdict::Manifests(vec!["package.json".into()]));
        fs::write(wt.join("package.json"), "{\"dependencies\":{\"a\":\"^2\"}}").unwrap();
        assert_eq!(compare(&main, &wt, Path::new("node_modules")), Verdict::Differs("package.json".into()));
        for d in [&main, &wt] {
            fs::write(d.join("package-lock.json"), "{}").unwrap();
        }
        assert_eq!(
            compare(&main, &wt, Path::new("node_modules")),
            Verdict::Locked(vec!["package-lock.json".into()]),
            "a lock file that matches is what counts"
        );
    }
}
