//! The gate a candidate passes, and what it may not do to it.
//!
//! - **A candidate cannot weaken the gate.** The queue's verify command, prepare command and
//!   timeout come from the command line or the person's `wt.toml` as the queue read it when it
//!   started. A candidate whose merge result changes `[merge]` or `[watch]` (the watch's test
//!   command and its guard) of `wt.toml` is held (`gate-changed`) until a person passes
//!   `--allow-gate-change`: once merged, the change would judge every later candidate.
//! - **A verify command tests the candidate.** One that names a path inside the main worktree
//!   or another worktree (`/repo/.venv/bin/pytest`: an editable install there imports that
//!   worktree's code) would pass or fail on code other than the candidate's, so it is refused
//!   before anything is merged.

use std::path::Path;

use wt_common::git::repo::Repo;
use wt_common::{git, Error};

/// The sections of wt.toml that make the gate, or run commands outside any sandbox, or say
/// where things go: `[merge]` (the verify command), `[watch]` (the test command and its guard),
/// `[run]` (`on_waiting`, a command run for the person), `[agents]` (what an agent's screen
/// means) and `[hosts]` (where records are sent).
const GATE_SECTIONS: [&str; 5] = ["merge", "watch", "run", "agents", "hosts"];

/// The largest wt.toml read from a commit; a bigger one counts as a change to the gate.
const MAX_CONFIG: u64 = 256 * 1024;

/// What a commit has at `wt.toml`.
#[derive(Debug, PartialEq)]
enum Config {
    Missing,
    File(Vec<u8>),
    /// A symbolic link, a submodule, a directory, or a file too large to be a config: what the
    /// tools would read through it cannot be told from this entry.
    Other(String),
}

/// What in wt.toml's gate differs between commits `old` and `new`: the sections (`[merge]`), or
/// `wt.toml` itself when either commit's is not a plain file (a symbolic link's target could
/// change unseen). Empty when nothing does.
pub fn changed(git_dir: &Path, old: &str, new: &str) -> Result<Vec<String>, Error> {
    let (before, after) = (config_at(git_dir, old)?, config_at(git_dir, new)?);
    if matches!(before, Config::Other(_)) || matches!(after, Config::Other(_)) {
        return Ok(vec!["wt.toml (not a plain file: what it leads to cannot be compared)".into()]);
    }
    if before == after {
        return Ok(Vec::new());
    }
    // No wt.toml reads as an empty one; one that is not TOML may say anything.
    let table = |c: &Config| match c {
        Config::File(bytes) => parse(bytes),
        _ => Some(toml::Table::new()),
    };
    Ok(match (table(&before), table(&after)) {
        (Some(b), Some(a)) => differing(&b, &a),
        _ => GATE_SECTIONS.iter().map(|s| format!("[{s}]")).collect(),
    })
}

/// The gate sections whose values differ.
fn differing(before: &toml::Table, after: &toml::Table) -> Vec<String> {
    GATE_SECTIONS.iter().filter(|s| before.get(**s) != after.get(**s)).map(|s| format!("[{s}]")).collect()
}

fn parse(bytes: &[u8]) -> Option<toml::Table> {
    std::str::from_utf8(bytes).ok()?.parse::<toml::Table>().ok()
}

/// What `commit` has at the root's `wt.toml`.
fn config_at(git_dir: &Path, commit: &str) -> Result<Config, Error> {
    let mut ls = git::command(git_dir);
    ls.args(["ls-tree", "-l", "-z", commit, "--", wt_common::config::FILE_NAME]);
    let listed = git::output(&mut ls)?.stdout;
    let Some(entry) = listed.split(|b| *b == 0).find(|e| !e.is_empty()) else { return Ok(Config::Missing) };
    // `<mode> <type> <oid> <size>\t<name>`
    let meta = String::from_utf8_lossy(entry.split(|b| *b == b'\t').next().unwrap_or_default()).into_owned();
    let fields: Vec<&str> = meta.split_whitespace().collect();
    let regular = matches!(fields.first(), Some(&"100644" | &"100755"));
    let size = fields.get(3).and_then(|s| s.parse::<u64>().ok());
    if !regular || size.is_none_or(|s| s > MAX_CONFIG) {
        return Ok(Config::Other(meta));
    }
    let mut show = git::command(git_dir);
    show.args(["cat-file", "blob", fields.get(2).copied().unwrap_or_default()]);
    Ok(Config::File(git::output(&mut show)?.stdout))
}

/// Refuses a verify (or prepare) command that names a path inside the main worktree or any
/// other worktree of the repository: it would run that worktree's code.
pub fn refuse_foreign_paths(repo: &Repo, what: &str, cmd: &str) -> Result<(), Error> {
    let mut roots: Vec<(std::path::PathBuf, &str)> = Vec::new();
    for wt in repo.worktrees()? {
        let kind =
            if Some(wt.path.as_path()) == repo.main_worktree.as_deref() { "the main worktree" } else { "a worktree" };
        if let Ok(real) = std::fs::canonicalize(&wt.path) {
            roots.push((real, kind));
        }
        roots.push((wt.path, kind));
    }
    // A relative path that climbs out (`../../app/.venv/bin/pytest`) is read as it would be from
    // the verification worktree, beside the agents' worktrees.
    let from = repo.default_worktree_root().join(".verify"); // no worktree has a name with a dot first
    let climbed: Vec<String> = words(cmd)
        .filter(|w| w.contains("..") && !w.starts_with('/'))
        .map(|w| wt_common::fs::lexical(&from.join(w)).to_string_lossy().into_owned())
        .collect();
    let cmd = &[cmd.to_string()].into_iter().chain(climbed).collect::<Vec<_>>().join(" ");
    for (root, kind) in roots {
        let Some(root) = root.to_str().filter(|r| r.len() > 1) else { continue };
        if let Some(at) = names_path_under(cmd, root) {
            let word = cmd[at..].split(|c: char| c.is_whitespace() || c == '\'' || c == '"').next().unwrap_or(root);
            let rel = Path::new(word).strip_prefix(root).map(|p| p.display().to_string()).unwrap_or_default();
            let instead =
                if rel.is_empty() { "a path relative to the worktree".to_string() } else { format!("'{rel}'") };
            return Err(Error::usage(
                "verify-outside",
                format!(
                    "{what} names {word}, inside {kind} {root}: it would test that worktree's code, not the candidate's; write {instead} instead (it runs in the verification worktree, where the shared directories point at the candidate); a cache or a report belongs outside the worktrees"
                ),
            ));
        }
    }
    Ok(())
}

/// The words of a shell command, split at blanks and quotes (enough to find paths in it).
fn words(cmd: &str) -> impl Iterator<Item = &str> {
    cmd.split(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | ';' | '=' | '&' | '|')).filter(|w| !w.is_empty())
}

/// Where `cmd` names `root` or a path under it: `root` followed by `/`, the end, a space or a
/// quote, and not preceded by a path character (so `/repo.wt/a` is not under `/repo`).
fn names_path_under(cmd: &str, root: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = cmd[from..].find(root) {
        let at = from + found;
        let after = cmd[at + root.len()..].chars().next();
        let before = cmd[..at].chars().next_back();
        let ends = after.is_none_or(|c| c == '/' || c.is_whitespace() || c == '\'' || c == '"' || c == ';');
        let starts = before.is_none_or(|c| !(c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')));
        if ends && starts {
            return Some(at);
        }
        from = at + root.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_under_a_root_is_found_and_a_sibling_with_a_longer_name_is_not() {
        assert_eq!(names_path_under("/r/main/.venv/bin/pytest -q", "/r/main"), Some(0));
        assert_eq!(names_path_under("cd '/r/main' && make", "/r/main"), Some(4));
        assert_eq!(names_path_under("/r/main.wt/a/x", "/r/main"), None);
        assert_eq!(names_path_under("/x/r/main/y", "/r/main"), None);
        assert_eq!(names_path_under(".venv/bin/pytest", "/r/main"), None);
        assert_eq!(names_path_under("x /r/main", "/r/main"), Some(2));
    }

    #[test]
    fn a_relative_path_is_resolved_by_its_names() {
        assert_eq!(
            wt_common::fs::lexical(Path::new("/r/app.wt/verify/../../app/.venv/bin/x")),
            Path::new("/r/app/.venv/bin/x")
        );
        assert_eq!(words("a=../b 'c d';e").collect::<Vec<_>>(), ["a", "../b", "c", "d", "e"]);
    }

    #[test]
    fn gate_sections_that_differ_are_named() {
        let t = |s: &str| parse(s.as_bytes()).unwrap();
        let before = t("[merge]\nverify = \"make test\"\n[env]\nports = [\"web\"]\n");
        assert!(differing(&before, &t("[merge]\nverify = \"make test\"\n")).is_empty());
        assert_eq!(differing(&before, &t("[merge]\nverify = \"true\"\n")), ["[merge]"]);
        assert_eq!(differing(&before, &t("[watch]\nguard = []\n[merge]\nverify = \"make test\"\n")), ["[watch]"]);
    }
}
