//! How far many branches are ahead of (and behind) their bases, in one git process per base:
//! `git for-each-ref --format=%(ahead-behind:BASE)` (git 2.41 and later) walks the history
//! once for every branch named, where a `git rev-list --left-right --count BASE...BRANCH` per
//! branch started 500 processes for a board of 500 worktrees (most of them with one base). An
//! older git, a base the format cannot carry, or a base git cannot resolve fall back to the
//! one `rev-list` per branch.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::git;

/// `(ahead, behind)` of `refs/heads/<branch>` against `base`, for each `(base, branch)` of
/// `pairs`, in their order: `None` where git cannot tell (no such base or branch).
pub fn of_all(dir: &Path, pairs: &[(&str, &str)]) -> Vec<Option<(u64, u64)>> {
    let mut by_base: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, (base, _)) in pairs.iter().enumerate() {
        by_base.entry(base).or_default().push(i);
    }
    let mut found = vec![None; pairs.len()];
    for (base, items) in by_base {
        let branches: Vec<&str> = items.iter().map(|&i| pairs[i].1).collect();
        let batch = (items.len() > 1 && carried(base)).then(|| batch(dir, base, &branches)).flatten();
        for (&i, branch) in items.iter().zip(&branches) {
            found[i] = match &batch {
                Some(counts) => counts.get(*branch).copied(),
                None => one(dir, base, branch),
            };
        }
    }
    found
}

/// Whether `base` can go into the format `%(ahead-behind:BASE)` as it is: a ref name or a
/// commit, nothing that ends the atom (`)`) or could be read as an option.
fn carried(base: &str) -> bool {
    !base.is_empty()
        && !base.starts_with('-')
        && base.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._+@^~{}-".contains(&b))
}

/// One `git for-each-ref` for every branch of one base: branch → `(ahead, behind)`; `None`
/// when git cannot answer so (too old for the atom, or the base does not resolve).
fn batch(dir: &Path, base: &str, branches: &[&str]) -> Option<HashMap<String, (u64, u64)>> {
    let mut cmd = git::command(dir);
    cmd.arg("for-each-ref").arg(format!("--format=%(refname)%00%(ahead-behind:{base})")).arg("--");
    cmd.args(branches.iter().map(|b| format!("refs/heads/{b}")));
    let out = git::output(&mut cmd).ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let mut counts = HashMap::new();
    for line in text.lines() {
        let (name, nums) = line.split_once('\0')?;
        let (ahead, behind) = nums.split_once(' ')?;
        // A pattern also matches the refs below it: only the names asked for are kept.
        if let Some(branch) = name.strip_prefix("refs/heads/").filter(|b| branches.contains(b)) {
            counts.insert(branch.to_string(), (ahead.parse().ok()?, behind.parse().ok()?));
        }
    }
    Some(counts)
}

/// `git rev-list --left-right --count BASE...refs/heads/BRANCH`: behind, then ahead.
fn one(dir: &Path, base: &str, branch: &str) -> Option<(u64, u64)> {
    let range = format!("{base}...refs/heads/{branch}");
    let counts = git::run(dir, ["rev-list", "--left-right", "--count", &range]).ok()?;
    let mut n = counts.split_whitespace().map(|n| n.parse::<u64>().ok());
    match (n.next(), n.next()) {
        (Some(Some(behind)), Some(Some(ahead))) => Some((ahead, behind)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::test_git;

    #[test]
    fn one_process_per_base_counts_as_rev_list_does() {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path().to_path_buf();
        let git = |args: &[&str]| test_git::git(&repo, args);
        git(&["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("f"), "f").unwrap();
        git(&["add", "."]);
        git(&["commit", "-qm", "f"]);
        git(&["branch", "wt/a"]);
        git(&["branch", "wt/b"]);
        git(&["checkout", "-q", "wt/a"]);
        for i in 0..3 {
            std::fs::write(repo.join(format!("a{i}")), "a").unwrap();
            git(&["add", "."]);
            git(&["commit", "-qm", "a"]);
        }
        git(&["checkout", "-q", "main"]);
        std::fs::write(repo.join("m"), "m").unwrap();
        git(&["add", "."]);
        git(&["commit", "-qm", "m"]);
        let pairs = [("main", "wt/a"), ("main", "wt/b"), ("main", "wt/none"), ("nobase", "wt/a"), ("wt/a", "wt/b")];
        let counts = of_all(&repo, &pairs);
        assert_eq!(counts, [Some((3, 1)), Some((0, 1)), None, None, Some((0, 3))]);
        for (i, (base, branch)) in pairs.iter().enumerate() {
            assert_eq!(one(&repo, base, branch), counts[i], "{base}...{branch}");
        }
        assert!(batch(&repo, "main", &["wt/a", "wt/b"]).is_some(), "this git has %(ahead-behind)");
        assert!(!carried("main)") && !carried("--output=x") && carried("origin/main") && carried("main~2"));
    }
}
