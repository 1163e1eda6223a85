//! What a person wants to know of a worktree's checkout before acting on it: is it there,
//! has it uncommitted changes, how far is its branch ahead of (and behind) its base. The
//! record's `status` key, written by `wt-create --list` and read by tables and the overview.
//!
//! ```json
//! "status": {"state": "dirty", "changed": 3, "ahead": 2, "behind": 0}
//! ```

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::git::clean_proof;
use crate::git::repo::Repo;
use crate::git::worktree_check::{self, Registered};
use crate::{git, Error, Record};

/// The `status` of a worktree record: `state` (`clean`, `dirty`, `missing`), `changed` (paths
/// `git status` lists, changes inside a submodule's own checkout not counted: see
/// `status_command`), and `ahead`/`behind` of its base when both are known.
pub fn of(repo: &Repo, rec: &Record) -> Value {
    of_many(repo, &[rec], 1).remove(0)
}

/// `of` for many records, in their order: the `git status` of each on up to `jobs` threads (one
/// git process a worktree, the whole cost of a board of hundreds), and how far each branch is
/// ahead and behind in one git process per base (`ahead_behind`), not one per worktree.
pub fn of_many(repo: &Repo, recs: &[&Record], jobs: usize) -> Vec<Value> {
    let look = clean_proof::Look::new(repo, recs.len());
    let state = repo.state_dir();
    // The listings a look may make go to the worktrees it reaches first: it starts at a place
    // that moves from look to look, so that worktrees that cannot be proved yet (files that
    // change every few seconds) cannot keep the others from being listed for good.
    let start = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_micros());
    let order: Vec<usize> = (0..recs.len()).map(|i| (i + start as usize) % recs.len()).collect();
    let found = crate::proc::parallel::map(&order, jobs, |i| checkout(repo, recs[*i], &state, &look));
    let mut statuses = vec![Value::Null; recs.len()];
    for (i, status) in order.into_iter().zip(found) {
        statuses[i] = status;
    }
    let pairs: Vec<(usize, (&str, &str))> = recs
        .iter()
        .enumerate()
        .filter_map(|(i, rec)| {
            let base = rec.base.as_deref().or(rec.base_commit.as_deref())?;
            Some((i, (base, rec.branch.as_deref()?)))
        })
        .collect();
    let just_pairs: Vec<(&str, &str)> = pairs.iter().map(|(_, p)| *p).collect();
    let counts = crate::git::ahead_behind::of_all(repo.git_dir(), &just_pairs);
    for ((i, _), count) in pairs.iter().zip(counts) {
        if let (Some((ahead, behind)), false) = (count, statuses[*i]["state"] == "missing") {
            statuses[*i]["ahead"] = json!(ahead);
            statuses[*i]["behind"] = json!(behind);
        }
    }
    statuses
}

/// `state` and `changed` of one worktree, from its `git status`; a worktree found clean before
/// and unchanged since is clean without asking git again, and one found clean by the last look
/// is asked by the `git ls-files` that notes it (`clean_proof`).
fn checkout(repo: &Repo, rec: &Record, state: &Path, look: &clean_proof::Look) -> Value {
    let Some(path) = rec.path.as_deref().filter(|p| p.is_dir()) else {
        return json!({"state": "missing"});
    };
    // git is asked about the worktree git registered, never through its own `.git` file.
    // The tools checked it already (`verify`); one tampered with since is not asked about.
    let Some(reg) = worktree_check::verify_if_agreed(repo, path).and_then(Result::ok) else {
        return json!({"state": "unknown"});
    };
    let proof = clean_proof::Checkout::new(state, &rec.name, &reg, look);
    if proof.proved_clean() {
        return json!({"state": "clean"});
    }
    let asked = std::time::SystemTime::now();
    match changes(&reg) {
        Ok(0) => {
            proof.found_clean(asked);
            json!({"state": "clean"})
        }
        Ok(n) => {
            proof.found_changed();
            json!({"state": "dirty", "changed": n})
        }
        Err(_) => {
            proof.found_changed();
            json!({"state": "unknown"})
        }
    }
}

/// `git status` in a worktree an agent works in, run by wt unconfined, that runs nothing the
/// agent could have planted. Everything in the worktree is the agent's, a nested repository
/// or a submodule included: git recursing into a submodule runs `git status` there, under the
/// submodule's own config (`sub/.git/config`), whose filter drivers (`filter.x.clean`, with a
/// `.gitattributes` of the submodule naming it) git runs on any file whose stat changed. So:
/// `--ignore-submodules=dirty` (a submodule counts as changed when its checked-out commit
/// differs from the recorded one, which git reads without starting anything in it; changes
/// inside its checkout are not looked at), `git::in_worktree` (git dir, common dir and work
/// tree from git's registration, hooks off, `core.fsmonitor` off for git and every git it
/// starts), and no optional locks (the agent's index is never written). Output: one NUL-ended
/// path per change (`--porcelain -z --no-renames`).
pub fn status_command(reg: &Registered) -> Command {
    let mut cmd = git::in_worktree(reg);
    cmd.env("GIT_OPTIONAL_LOCKS", "0").args([
        "status",
        "--porcelain",
        "-z",
        "--untracked-files=normal",
        "--ignore-submodules=dirty",
        "--no-renames",
    ]);
    cmd
}

/// How many paths `status_command` lists: changes to tracked files, staged changes, untracked
/// files git does not ignore.
pub fn changes(reg: &Registered) -> Result<usize, Error> {
    changed_paths(reg).map(|paths| paths.len())
}

/// The paths `status_command` lists, as git lists them (relative to the worktree root).
pub fn changed_paths(reg: &Registered) -> Result<Vec<String>, Error> {
    let out = git::output_within(&mut status_command(reg), git::read_timeout(), &reg.path)?;
    Ok(porcelain_paths(&out.stdout))
}

/// The paths of `git status --porcelain -z --no-renames` output (`XY path`, NUL-ended).
pub fn porcelain_paths(stdout: &[u8]) -> Vec<String> {
    stdout.split(|b| *b == 0).filter(|s| s.len() > 3).map(|s| String::from_utf8_lossy(&s[3..]).into_owned()).collect()
}

/// How many changed paths a message names before it gives the count of the rest.
const NAMED: usize = 3;

/// Changed paths for a one-line message: `3 uncommitted changes (README, src/a.rs, x.txt)`,
/// `12 uncommitted changes (a, b, c and 9 more)`.
pub fn changes_named(paths: &[String]) -> String {
    let count = match paths.len() {
        1 => "1 uncommitted change".to_string(),
        n => format!("{n} uncommitted changes"),
    };
    let mut named = paths.iter().take(NAMED).cloned().collect::<Vec<_>>().join(", ");
    if paths.len() > NAMED {
        named.push_str(&format!(" and {} more", paths.len() - NAMED));
    }
    format!("{count} ({named})")
}

/// The submodules of the worktree's index that are checked out (their directory has a
/// `.git`): changes inside them are what `status_command` does not look at. Read from the
/// index by `git ls-files`, which starts nothing in them.
pub fn populated_submodules(reg: &Registered) -> Result<Vec<String>, Error> {
    let mut cmd = git::in_worktree(reg);
    cmd.env("GIT_OPTIONAL_LOCKS", "0").args(["ls-files", "--stage", "-z"]);
    let out = git::output(&mut cmd)?;
    let mut found = Vec::new();
    for entry in out.stdout.split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let entry = String::from_utf8_lossy(entry);
        let Some((meta, path)) = entry.split_once('\t') else { continue };
        if meta.starts_with("160000 ") && std::fs::symlink_metadata(reg.path.join(path).join(".git")).is_ok() {
            found.push(path.to_string());
        }
    }
    Ok(found)
}

/// `status` as a table cell: `clean`, `dirty (3)`, `missing`, with `2 ahead, 1 behind`.
pub fn text(status: &Value) -> String {
    let mut parts = Vec::new();
    match (status["state"].as_str(), status["changed"].as_u64()) {
        (Some(state), Some(n)) => parts.push(format!("{state} ({n})")),
        (Some(state), None) => parts.push(state.to_string()),
        _ => {}
    }
    for key in ["ahead", "behind"] {
        if let Some(n) = status[key].as_u64().filter(|n| *n > 0) {
            parts.push(format!("{n} {key}"));
        }
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_paths_are_named_first_few_then_counted() {
        let out = b" M README\0?? new file.txt\0A  src/a.rs\0 D gone\0";
        let paths = porcelain_paths(out);
        assert_eq!(paths, ["README", "new file.txt", "src/a.rs", "gone"]);
        assert_eq!(changes_named(&paths[..1]), "1 uncommitted change (README)");
        assert_eq!(changes_named(&paths[..3]), "3 uncommitted changes (README, new file.txt, src/a.rs)");
        assert_eq!(changes_named(&paths), "4 uncommitted changes (README, new file.txt, src/a.rs and 1 more)");
    }

    #[test]
    fn a_status_cell_reads_as_words() {
        assert_eq!(text(&json!({"state": "clean", "ahead": 0, "behind": 0})), "clean");
        assert_eq!(
            text(&json!({"state": "dirty", "changed": 3, "ahead": 2, "behind": 1})),
            "dirty (3), 2 ahead, 1 behind"
        );
        assert_eq!(text(&json!({"state": "missing"})), "missing");
    }
}
