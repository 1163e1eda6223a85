//! git's worktree registry read from its files, as `git worktree list --porcelain` reads them
//! (worktree.c, `get_worktrees`), without starting git: the main worktree (or the bare
//! repository) from the common dir's `HEAD`, each linked worktree from its admin dir under
//! `<common dir>/worktrees/`: `gitdir` (where its `.git` file is), `HEAD`, `locked`. A git
//! process costs milliseconds, and wt-create reads the registry on every call, under the lock
//! that serialises registrations. Anything the files cannot answer for certain (the reftable
//! format, a relative `gitdir`, an admin dir being written, a HEAD on a branch not yet born)
//! answers `None`, and the caller asks git.

use std::path::{Path, PathBuf};

use crate::fs::{read_small, Small};
use crate::git::refs;
use crate::git::repo::GitWorktree;

/// Every worktree git would list, main (or bare) first, the linked ones sorted by path as git
/// sorts them; `None` when git must be asked.
pub fn read(common: &Path, main: Option<&Path>) -> Option<Vec<GitWorktree>> {
    read_with(&refs::BranchReader::new(common)?, main)
}

/// `read`, resolving branches with `refs` (which may know some already).
pub fn read_with(refs: &refs::BranchReader, main: Option<&Path>) -> Option<Vec<GitWorktree>> {
    let common = refs.common();
    let mut all = vec![match main {
        Some(path) => {
            let (head, branch) = read_head_with(refs, common)?;
            GitWorktree {
                path: path.to_path_buf(),
                detached: branch.is_none(),
                head: Some(head),
                branch,
                ..Default::default()
            }
        }
        // A common dir not named `.git` whose config does not say bare is a checkout's
        // separate git dir (`--separate-git-dir`, a submodule): git lists it as checked out.
        None if crate::git::repo::config_says_bare(common) => {
            GitWorktree { path: common.to_path_buf(), bare: true, ..Default::default() }
        }
        None => return None,
    }];
    let entries = match std::fs::read_dir(common.join("worktrees")) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(all),
        Err(_) => return None,
    };
    let mut admins = Vec::new();
    for entry in entries {
        let entry = entry.ok()?;
        // git reads only directories there (a symbolic link to one too).
        if entry.file_type().ok()?.is_dir() || entry.path().is_dir() {
            admins.push(entry.path());
        }
    }
    // A few file reads per worktree: with hundreds of worktrees, on every core.
    let threads = if admins.len() < 64 { 1 } else { crate::proc::parallel::cores() };
    let linked: Option<Vec<Option<GitWorktree>>> =
        crate::proc::parallel::map(&admins, threads, |a| read_linked(refs, a)).into_iter().collect();
    all.extend(linked?.into_iter().flatten());
    all[1..].sort_by(|a, b| a.path.as_os_str().as_encoded_bytes().cmp(b.path.as_os_str().as_encoded_bytes()));
    Some(all)
}

/// One admin dir: `Some(None)` for one git does not list (no `gitdir`: git skips it), `None`
/// when git must be asked.
fn read_linked(refs: &refs::BranchReader, admin: &Path) -> Option<Option<GitWorktree>> {
    let gitdir = match read_small(&admin.join("gitdir")) {
        Small::Text(text) => text,
        Small::Missing => return Some(None),
        Small::Directory | Small::Other => return None,
    };
    let dot_git = Path::new(gitdir.trim_end());
    if !dot_git.is_absolute() || gitdir.trim_end().is_empty() {
        return None;
    }
    let path = match gitdir.trim_end().strip_suffix("/.git") {
        Some(p) => PathBuf::from(p),
        None => dot_git.to_path_buf(),
    };
    let (head, branch) = read_head_with(refs, admin)?;
    let locked = admin.join("locked").exists();
    // git's rule (should_prune_worktree): a worktree whose `.git` is gone may be pruned, unless
    // it is locked.
    let prunable = !locked && !dot_git.exists();
    Some(Some(GitWorktree {
        path,
        detached: branch.is_none(),
        head: Some(head),
        branch,
        locked,
        prunable,
        bare: false,
    }))
}

/// A `HEAD` file: (commit, branch). A symbolic ref to a plain branch that exists, or an object
/// id (detached); anything else asks git.
pub(crate) fn read_head(common: &Path, dir: &Path) -> Option<(String, Option<String>)> {
    read_head_with(&refs::BranchReader::new(common)?, dir)
}

fn read_head_with(refs: &refs::BranchReader, dir: &Path) -> Option<(String, Option<String>)> {
    // A symbolic link (`core.preferSymlinkRefs`) names its branch by where it points: git's.
    let Small::Text(text) = read_small(&dir.join("HEAD")) else { return None };
    let line = text.strip_suffix('\n')?;
    match line.strip_prefix("ref: refs/heads/") {
        Some(branch) => {
            let commit = refs.commit(branch)??;
            Some((commit, Some(branch.to_string())))
        }
        None => Some((refs::object_id(line)?.to_string(), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::git::test_git::git;

    fn listed_by_git(dir: &Path) -> Vec<GitWorktree> {
        crate::git::repo::parse_worktree_list(&git(dir, &["worktree", "list", "--porcelain", "-z"]))
    }

    #[test]
    fn the_files_read_as_git_lists_them() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path().join("r");
        std::fs::create_dir(&r).unwrap();
        git(&r, &["init", "-q", "-b", "main"]);
        git(&r, &["commit", "-q", "--allow-empty", "-m", "one"]);
        let common = r.join(".git").canonicalize().unwrap();
        let r = r.canonicalize().unwrap();
        let wt = |n: &str| t.path().join(n).to_string_lossy().into_owned();
        git(&r, &["worktree", "add", "-q", "-b", "wt/z", &wt("z")]);
        git(&r, &["worktree", "add", "-q", "-b", "wt/a-b", &wt("a b")]);
        git(&r, &["worktree", "add", "-q", "--detach", &wt("detached")]);
        git(&r, &["worktree", "add", "-q", "-b", "wt/locked", &wt("locked")]);
        git(&r, &["worktree", "lock", &wt("locked")]);
        git(&r, &["worktree", "add", "-q", "-b", "wt/gone", &wt("gone")]);
        std::fs::remove_dir_all(wt("gone")).unwrap();
        git(&r, &["branch", "packed"]);
        git(&r, &["pack-refs", "--all"]);
        git(&r, &["worktree", "add", "-q", &wt("p"), "packed"]);
        // An admin dir a killed git left without `gitdir`: git does not list it.
        std::fs::create_dir(common.join("worktrees/half")).unwrap();
        std::fs::write(common.join("worktrees/half/locked"), "initializing").unwrap();
        assert_eq!(read(&common, Some(&r)).unwrap(), listed_by_git(&r));
        // The `wt/` branches taken from their listing, not read again: the same list.
        let listed = refs::branches_under(&common, "wt").unwrap();
        assert_eq!(listed.len(), 4, "{listed:?}");
        let reader = refs::BranchReader::new(&common).unwrap().listed("wt", &listed);
        assert_eq!(read_with(&reader, Some(&r)).unwrap(), listed_by_git(&r));
        let mut told = listed.clone();
        told.insert("z".into(), "1".repeat(40));
        let reader = refs::BranchReader::new(&common).unwrap().listed("wt", &told);
        let z = read_with(&reader, Some(&r)).unwrap().into_iter().find(|w| w.branch.as_deref() == Some("wt/z"));
        assert_eq!(z.unwrap().head, Some("1".repeat(40)), "the listing is what is taken");
        // Detached main worktree.
        git(&r, &["checkout", "-q", "--detach"]);
        assert_eq!(read(&common, Some(&r)).unwrap(), listed_by_git(&r));
        // A symbolic-link HEAD, an unborn branch and a relative `gitdir` are left to git.
        let head = std::fs::read_to_string(common.join("HEAD")).unwrap();
        std::fs::remove_file(common.join("HEAD")).unwrap();
        std::os::unix::fs::symlink("refs/heads/main", common.join("HEAD")).unwrap();
        assert_eq!(read(&common, Some(&r)), None);
        std::fs::remove_file(common.join("HEAD")).unwrap();
        std::fs::write(common.join("HEAD"), head).unwrap();
        std::fs::write(common.join("HEAD"), "ref: refs/heads/unborn\n").unwrap();
        assert_eq!(read(&common, Some(&r)), None);
        git(&r, &["checkout", "-q", "main"]);
        std::fs::write(common.join("worktrees/z/gitdir"), "../z/.git\n").unwrap();
        assert_eq!(read(&common, Some(&r)), None);
    }

    #[test]
    fn a_bare_repository_reads_as_git_lists_it() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        std::fs::create_dir(&src).unwrap();
        git(&src, &["init", "-q", "-b", "main"]);
        git(&src, &["commit", "-q", "--allow-empty", "-m", "one"]);
        git(t.path(), &["clone", "-q", "--bare", "src", "b.git"]);
        let bare = t.path().join("b.git").canonicalize().unwrap();
        git(&bare, &["worktree", "add", "-q", "-b", "wt/x", &t.path().join("x").to_string_lossy()]);
        assert_eq!(read(&bare, None).unwrap(), listed_by_git(&bare));
        // A separate git dir (not named `.git`, not bare) is a checkout: left to git.
        let sep = t.path().join("sep.git");
        git(t.path(), &["init", "-q", "--separate-git-dir", &sep.to_string_lossy(), "checkout"]);
        assert_eq!(read(&sep.canonicalize().unwrap(), None), None);
    }
}
