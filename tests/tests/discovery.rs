//! Finding the repository without starting git must agree with git on every layout.

use std::path::Path;

use wt_common::git::repo::Repo;
use wt_tests::TestRepo;

fn agree(dir: &Path) {
    let native = Repo::discover(dir).unwrap();
    let git = Repo::discover_with_git(dir).unwrap();
    assert_eq!((&native.common_dir, &native.main_worktree), (&git.common_dir, &git.main_worktree), "{}", dir.display());
    assert_eq!(native.main_head().unwrap(), git.main_head().unwrap(), "{}", dir.display());
    assert_eq!(native.hooks_dir().unwrap(), git.hooks_dir().unwrap(), "{}", dir.display());
}

#[test]
fn native_discovery_agrees_with_git_on_every_layout() {
    let t = TestRepo::new();
    // Config must come from the fixture, not from whoever runs the test.
    std::env::set_var("GIT_CONFIG_GLOBAL", t.root().join("gitconfig"));
    std::env::set_var("GIT_CONFIG_NOSYSTEM", "1");
    let linked = t.root().join("linked");
    t.git(["worktree", "add", "-q", linked.to_str().unwrap()]);
    let bare = t.root().join("b.git");
    t.git(["clone", "-q", "--bare", t.repo.to_str().unwrap(), bare.to_str().unwrap()]);
    let bare_linked = t.root().join("bare-linked");
    t.git_in(&bare, ["worktree", "add", "-q", bare_linked.to_str().unwrap()]);
    for dir in [&t.repo, &t.repo.join("src"), &t.repo.join(".git"), &linked, &linked.join("src"), &bare, &bare_linked] {
        agree(dir);
    }
    let hooks = t.root().join("myhooks");
    t.git(["config", "core.hooksPath", hooks.to_str().unwrap()]);
    agree(&linked);
    assert_eq!(Repo::discover(&linked).unwrap().hooks_dir().unwrap(), hooks);
    // Set in the global config (as some hook managers do), or in a file the config includes.
    t.git(["config", "--unset", "core.hooksPath"]);
    assert_eq!(Repo::discover(&linked).unwrap().hooks_dir().unwrap(), t.repo.join(".git/hooks"));
    let global = t.root().join("gitconfig");
    let before = std::fs::read_to_string(&global).unwrap_or_default();
    std::fs::write(&global, format!("{before}[core]\n\thooksPath = {}\n", hooks.display())).unwrap();
    agree(&t.repo);
    assert_eq!(Repo::discover(&t.repo).unwrap().hooks_dir().unwrap(), hooks);
    std::fs::write(&global, &before).unwrap();
    let included = t.root().join("more.gitconfig");
    std::fs::write(&included, format!("[core]\n\thooksPath = {}\n", hooks.display())).unwrap();
    t.git(["config", "include.path", included.to_str().unwrap()]);
    agree(&t.repo);
    assert_eq!(Repo::discover(&t.repo).unwrap().hooks_dir().unwrap(), hooks);
}
