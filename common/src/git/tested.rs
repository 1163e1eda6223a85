//! What a run tested: the commit checked out in a worktree when the run started, and whether
//! the checkout then held changes that commit does not (tracked files modified, changes
//! staged, untracked files git does not ignore). wt-run writes them as `run.head` and
//! `run.dirty`, wt-watch as `watch.commit` and `watch.dirty`; a record proves a commit only
//! when it names that commit and a clean tree.
//!
//! Everything in the worktree is the agent's, so nothing here runs what it could have planted.
//! HEAD is read from the admin dir that git's registration names (`worktree_check::verify`),
//! and its branch from the shared ref files (`refs`), after what a confined run committed in
//! its private store is published (`store::publish`, as every tool that reads branches
//! does). The one git process, `git status`, is `git::in_worktree` (fsmonitor and hooks off;
//! git dir, common dir and work tree from the registration), takes no optional lock (it never
//! writes the agent's index) and does not look into submodules: git would run `git status` in
//! each, under the submodule's own config, whose filter drivers the agent can write. A worktree
//! with submodules (a `.gitmodules`) therefore counts as dirty. Whatever cannot be told for
//! certain leaves the commit out and counts as dirty.

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::git::repo::Repo;
use crate::git::worktree_check::{self, Registered};
use crate::{confine::store, git, git::refs};

/// The commit a run tested and whether the checkout had changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tested {
    /// The commit checked out (40 or 64 hex); `None` when it cannot be told.
    pub commit: Option<String>,
    /// Changes the commit does not hold; `true` when that cannot be told.
    pub dirty: bool,
}

impl Tested {
    /// Nothing known: no commit, dirty.
    pub fn unknown() -> Tested {
        Tested { commit: None, dirty: true }
    }

    /// Adds `<commit_key>` (when known) and `dirty` to a record's key.
    pub fn insert_into(&self, map: &mut Map<String, Value>, commit_key: &str) {
        if let Some(commit) = &self.commit {
            map.insert(commit_key.into(), json!(commit));
        }
        map.insert("dirty".into(), json!(self.dirty));
    }
}

/// The checkout of worktree `name` at `path`, now. Costs one `git status` (none with
/// submodules), a few small file reads, and a publish of a confined run's store when it holds
/// something new.
pub fn of(repo: &Repo, name: &str, path: &Path) -> Tested {
    with_changes(repo, name, path).0
}

/// The same, with the paths `git status` listed (relative to the worktree; empty when the
/// tree is clean or when what it holds cannot be told), so that a caller that knows some of
/// them for what they are (wt-watch: files the test command itself writes) can leave them out.
pub fn with_changes(repo: &Repo, name: &str, path: &Path) -> (Tested, Vec<String>) {
    if let Err(e) = store::publish(&repo.common_dir, name) {
        tracing::warn!("{name}: the commit under test is not known: {e}");
        return (Tested::unknown(), Vec::new());
    }
    let Some((reg, commit)) = head(repo, path) else { return (Tested::unknown(), Vec::new()) };
    let Some(changed) = changed_paths(&reg) else { return (Tested::unknown(), Vec::new()) };
    // A commit made while git looked (an agent in a pane) leaves no answer for either commit.
    if head(repo, path).map(|(_, c)| c).as_ref() != Some(&commit) {
        return (Tested::unknown(), Vec::new());
    }
    match changed {
        Some(paths) => (Tested { commit: Some(commit), dirty: !paths.is_empty() }, paths),
        None => (Tested { commit: Some(commit), dirty: true }, Vec::new()),
    }
}

/// The commit checked out in worktree `name` now, without asking `git status` about the tree:
/// cheap enough to look at again and again (wt-watch waiting for an agent's commit).
pub fn commit_of(repo: &Repo, name: &str, path: &Path) -> Option<String> {
    store::publish(&repo.common_dir, name).ok()?;
    head(repo, path).map(|(_, commit)| commit)
}

/// The worktree's registration and the commit its HEAD names: its branch's, read from the
/// shared refs (one `git for-each-ref` in the common dir when the files cannot answer), or a
/// detached HEAD's own. `None`: not a worktree git registered, no commit yet, or a HEAD that
/// names no plain branch of the shared store.
fn head(repo: &Repo, path: &Path) -> Option<(Registered, String)> {
    let reg = worktree_check::verify(repo, path).ok()?;
    let commit = match (&reg.branch, &reg.detached_head) {
        (Some(branch), _) => {
            git::branch_heads(&reg.common_dir, &reg.common_dir, [branch.as_str()]).ok()?.remove(branch)?
        }
        (None, Some(detached)) => refs::object_id(detached)?.to_string(),
        (None, None) => return None,
    };
    Some((reg, commit))
}

/// What `git status` lists (submodules left out, see the module's documentation): `Some(None)`
/// with submodules (dirty, what is changed not told), `None` when git fails.
fn changed_paths(reg: &Registered) -> Option<Option<Vec<String>>> {
    if std::fs::symlink_metadata(reg.path.join(".gitmodules")).is_ok() {
        return Some(None);
    }
    crate::git::checkout_state::changed_paths(reg).ok().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::git::test_git::git;

    /// A repository with a worktree `wt` on branch `b`, a tracked `a.txt`, and `build/` ignored.
    fn repo_with_worktree() -> (tempfile::TempDir, Repo, std::path::PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        let main = root.join("repo");
        std::fs::create_dir(&main).unwrap();
        git(&main, &["init", "-q", "-b", "main"]);
        std::fs::write(main.join("a.txt"), "a\n").unwrap();
        std::fs::write(main.join(".gitignore"), "build/\n").unwrap();
        git(&main, &["add", "-A"]);
        git(&main, &["commit", "-q", "-m", "init"]);
        let wt = root.join("wt");
        git(&main, &["worktree", "add", "-q", "-b", "b", wt.to_str().unwrap()]);
        (t, Repo::discover(&main).unwrap(), wt)
    }

    #[test]
    fn a_clean_checkout_names_its_commit_and_any_change_git_shows_makes_it_dirty() {
        let (_t, repo, wt) = repo_with_worktree();
        let tip = git(&wt, &["rev-parse", "refs/heads/b"]);
        let clean = Tested { commit: Some(tip.clone()), dirty: false };
        let dirty = Tested { commit: Some(tip.clone()), dirty: true };
        assert_eq!(of(&repo, "wt", &wt), clean);
        std::fs::create_dir(wt.join("build")).unwrap();
        std::fs::write(wt.join("build/out.o"), "x").unwrap();
        assert_eq!(of(&repo, "wt", &wt), clean, "ignored files are no change");
        std::fs::write(wt.join("a.txt"), "changed\n").unwrap();
        assert_eq!(of(&repo, "wt", &wt), dirty, "a tracked file modified");
        git(&wt, &["add", "a.txt"]);
        assert_eq!(of(&repo, "wt", &wt), dirty, "a change staged");
        git(&wt, &["reset", "-q", "--hard"]);
        std::fs::write(wt.join("new.txt"), "x").unwrap();
        assert_eq!(of(&repo, "wt", &wt), dirty, "an untracked file");
        std::fs::remove_file(wt.join("new.txt")).unwrap();
        git(&wt, &["commit", "-q", "--allow-empty", "-m", "two"]);
        let two = git(&wt, &["rev-parse", "HEAD"]);
        assert_ne!(two, tip);
        assert_eq!(of(&repo, "wt", &wt), Tested { commit: Some(two.clone()), dirty: false });
        git(&wt, &["checkout", "-q", "--detach", &tip]);
        assert_eq!(of(&repo, "wt", &wt), clean, "a detached HEAD names its own commit");
        git(&wt, &["checkout", "-q", "--orphan", "unborn"]);
        assert_eq!(of(&repo, "wt", &wt), Tested::unknown(), "a branch with no commit yet");
        assert_eq!(of(&repo, "wt", &repo.common_dir.join("nowhere")), Tested::unknown());
    }

    /// `git status` runs `git status` in each submodule, under that repository's own config:
    /// a filter driver planted there runs. Here it must not.
    #[test]
    fn code_planted_in_a_submodule_never_runs() {
        let (t, repo, wt) = repo_with_worktree();
        let marker = t.path().join("planted-code-ran");
        let sub = wt.join("sub");
        std::fs::create_dir(&sub).unwrap();
        git(&sub, &["init", "-q"]);
        std::fs::write(sub.join("f"), "x\n").unwrap();
        git(&sub, &["add", "f"]);
        git(&sub, &["commit", "-q", "-m", "s"]);
        let gitlink = format!("160000,{},sub", git(&sub, &["rev-parse", "HEAD"]));
        git(&wt, &["update-index", "--add", "--cacheinfo", &gitlink]);
        git(&wt, &["commit", "-q", "-m", "a submodule, no .gitmodules"]);
        let tip = git(&wt, &["rev-parse", "HEAD"]);
        // The agent plants a filter in the submodule, and a change (of the same size, so that
        // git must read the file through the filter to tell).
        git(&sub, &["config", "filter.evil.clean", &format!("touch {}; cat", marker.display())]);
        std::fs::write(sub.join(".gitattributes"), "* filter=evil\n").unwrap();
        std::fs::write(sub.join("f"), "y\n").unwrap();
        assert_eq!(of(&repo, "wt", &wt), Tested { commit: Some(tip.clone()), dirty: false });
        assert!(!marker.exists(), "the submodule's filter ran");
        // With a .gitmodules (ignored here, so that it is no untracked file), submodules are
        // known to be there, and what their checkouts hold cannot be told.
        std::fs::write(wt.join(".gitmodules"), "[submodule \"sub\"]\n\tpath = sub\n\turl = ./sub\n").unwrap();
        std::fs::write(repo.common_dir.join("info/exclude"), ".gitmodules\n").unwrap();
        assert_eq!(of(&repo, "wt", &wt), Tested { commit: Some(tip), dirty: true }, "submodules: not known clean");
        assert!(!marker.exists(), "the submodule's filter ran");
        // Plain `git status` does run it: the test above can fail.
        git(&wt, &["status", "--porcelain"]);
        assert!(marker.exists(), "git status did not read the submodule's file through its filter");
    }
}
