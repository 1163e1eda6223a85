//! Sharing is safe only when the worktree wants the same dependencies as the main worktree: a
//! branch whose lock file differs would otherwise run against the wrong packages. The lock
//! files beside the shared directory and in every directory above it (up to the worktree's
//! root) must be byte for byte the same in both.

use std::fs;
use std::path::Path;

/// Lock files of npm, pnpm, yarn, bun, uv, poetry and pipenv; `requirements*.txt` besides.
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
];

fn is_lock_file(name: &str) -> bool {
    LOCK_FILES.contains(&name) || (name.starts_with("requirements") && name.ends_with(".txt"))
}

/// The first lock file (relative to the worktree root) that differs between the main worktree
/// and the worktree, for shared directory `dir`; `None` when all match.
pub fn first_difference(main: &Path, worktree: &Path, dir: &Path) -> Option<String> {
    for rel in dir.ancestors().skip(1) {
        let mut names: Vec<String> = [main.join(rel), worktree.join(rel)]
            .iter()
            .filter_map(|d| fs::read_dir(d).ok())
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| is_lock_file(n))
            .collect();
        names.sort();
        names.dedup();
        for name in names {
            if !same_content(&main.join(rel).join(&name), &worktree.join(rel).join(&name)) {
                return Some(rel.join(&name).display().to_string());
            }
        }
    }
    None
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
}
