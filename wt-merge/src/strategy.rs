//! Building the commit the target would move to, without touching any worktree: merge and
//! squash from `git merge-tree` + `git commit-tree`, rebase with `git replay`, fast-forward
//! when the branch already contains the target.

use wt_common::{git, Error};

use crate::check::merge_many;

/// What a strategy made of a branch.
#[derive(Debug)]
pub enum Built {
    Commit(String),
    Conflict(Vec<String>),
    NotFastForward,
}

pub fn build(
    dir: &std::path::Path,
    strategy: &str,
    into: &str,
    branch: &str,
    old: &str,
    head: &str,
) -> Result<Built, Error> {
    if strategy == "ff" {
        return Ok(if is_ancestor(dir, old, head) { Built::Commit(head.to_string()) } else { Built::NotFastForward });
    }
    let conflicts = merge_many(dir, &[(old.to_string(), head.to_string())])?.remove(0);
    if !conflicts.is_empty() {
        return Ok(Built::Conflict(conflicts));
    }
    match strategy {
        "merge" => {
            let tree = merged_tree(dir, old, head)?;
            let msg = format!("Merge branch '{branch}' into {into}");
            commit_tree(dir, &tree, &[old, head], &msg, None).map(Built::Commit)
        }
        "squash" => {
            let tree = merged_tree(dir, old, head)?;
            let (msg, author) = squash_message(dir, branch, into, old, head)?;
            commit_tree(dir, &tree, &[old], &msg, Some(&author)).map(Built::Commit)
        }
        _ => rebase(dir, old, branch),
    }
}

pub fn is_ancestor(dir: &std::path::Path, a: &str, b: &str) -> bool {
    git::run(dir, ["merge-base", "--is-ancestor", a, b]).is_ok()
}

/// Merging `head` into `old` would leave `old`'s tree as it is: every change of the branch is
/// in already. A conflict is not "nothing".
pub fn brings_nothing(dir: &std::path::Path, old: &str, head: &str) -> bool {
    let mut cmd = git::command(dir);
    cmd.args(["merge-tree", "--write-tree", "--no-messages", old, head]);
    let Ok(out) = git::raw_output(&mut cmd) else { return false };
    let tree = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_string();
    out.status.success() && git::run(dir, ["rev-parse", &format!("{old}^{{tree}}")]).is_ok_and(|t| t == tree)
}

fn merged_tree(dir: &std::path::Path, old: &str, head: &str) -> Result<String, Error> {
    let out = git::run(dir, ["merge-tree", "--write-tree", "--no-messages", old, head])?;
    Ok(out.lines().next().unwrap_or_default().to_string())
}

/// The author the squashed commit keeps: the branch's last author, with its date.
#[derive(Debug)]
struct Author {
    name: String,
    email: String,
    date: String,
}

fn commit_tree(
    dir: &std::path::Path,
    tree: &str,
    parents: &[&str],
    msg: &str,
    author: Option<&Author>,
) -> Result<String, Error> {
    let mut cmd = git::command(dir);
    cmd.args(["commit-tree", tree]);
    for p in parents {
        cmd.args(["-p", p]);
    }
    cmd.args(["-m", msg]);
    if let Some(a) = author {
        cmd.env("GIT_AUTHOR_NAME", &a.name).env("GIT_AUTHOR_EMAIL", &a.email).env("GIT_AUTHOR_DATE", &a.date);
    }
    let out = git::output(&mut cmd)?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// "Squashed branch X into Y" and a line per squashed commit; other authors as Co-authored-by.
fn squash_message(
    dir: &std::path::Path,
    branch: &str,
    into: &str,
    old: &str,
    head: &str,
) -> Result<(String, Author), Error> {
    let log = git::run(dir, ["log", "--reverse", "--format=%h%x00%s%x00%an%x00%ae%x00%aD", &format!("{old}..{head}")])?;
    let commits: Vec<Vec<&str>> =
        log.lines().map(|l| l.split('\0').collect()).filter(|f: &Vec<&str>| f.len() == 5).collect();
    let last = commits
        .last()
        .ok_or_else(|| Error::failed("nothing-to-merge", format!("{branch} has no commits that {into} lacks")))?;
    let author = Author { name: last[2].into(), email: last[3].into(), date: last[4].into() };
    let mut msg = format!("Squashed branch '{branch}' into {into}\n\nSquashed commits:\n");
    for c in &commits {
        msg += &format!("* {} {} ({})\n", c[0], c[1], c[2]);
    }
    let mut others: Vec<String> =
        commits.iter().filter(|c| c[3] != author.email).map(|c| format!("{} <{}>", c[2], c[3])).collect();
    others.sort();
    others.dedup();
    if !others.is_empty() {
        msg += "\n";
        for o in others {
            msg += &format!("Co-authored-by: {o}\n");
        }
    }
    Ok((msg, author))
}

/// The branch's own commits replayed onto the target, authors kept (`git replay`, in memory;
/// the branch itself is not moved: only its replayed tip is printed).
fn rebase(dir: &std::path::Path, old: &str, branch: &str) -> Result<Built, Error> {
    let head = format!("refs/heads/{branch}");
    let mut cmd = git::command(dir);
    cmd.args(["replay", "--onto", old, &format!("{old}..{head}")]);
    let out = git::raw_output(&mut cmd)?;
    if !out.status.success() {
        let conflicts = merge_many(dir, &[(old.to_string(), head.clone())])?.remove(0);
        return Ok(Built::Conflict(if conflicts.is_empty() {
            vec!["(a commit of the branch does not apply)".into()]
        } else {
            conflicts
        }));
    }
    // `update refs/heads/<branch> <new tip> <old tip>`.
    let text = String::from_utf8_lossy(&out.stdout);
    let tip =
        text.lines().find(|l| l.starts_with(&format!("update {head} "))).and_then(|l| l.split_whitespace().nth(2));
    tip.map(|t| Built::Commit(t.to_string())).ok_or_else(|| {
        Error::failed("git-failed", format!("git replay printed no new tip for {branch}: {}", text.trim()))
    })
}
