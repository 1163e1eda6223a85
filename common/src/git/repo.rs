//! Finding the repository, its main worktree, its worktrees and the tools' state directory.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::Error;
use crate::git;

/// One repository, seen from any of its worktrees (or from a bare repository).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    /// `git rev-parse --git-common-dir`, canonical: shared by every worktree.
    pub common_dir: PathBuf,
    /// The main worktree; `None` for a bare repository.
    pub main_worktree: Option<PathBuf>,
    /// What only git can say (hooks path, HEAD of the main worktree), asked once, when needed.
    details: OnceLock<Result<Details, Error>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Details {
    hooks_dir: PathBuf,
    main_head: Option<MainHead>,
}

/// HEAD of the main worktree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MainHead {
    pub commit: String,
    /// Short branch name; `None` when detached.
    pub branch: Option<String>,
}

/// One entry of `git worktree list --porcelain`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GitWorktree {
    pub path: PathBuf,
    pub head: Option<String>,
    /// Short branch name (`wt/agent-1`); `None` when detached or bare.
    pub branch: Option<String>,
    pub bare: bool,
    pub detached: bool,
    pub locked: bool,
    pub prunable: bool,
}

impl Repo {
    /// Finds the repository that `start` is in. The common layouts are found by reading the
    /// file system (as git does) without starting git, which matters for tools that run in a
    /// few milliseconds; anything unusual is left to `git rev-parse`.
    pub fn discover(start: &Path) -> Result<Repo, Error> {
        if !start.is_dir() {
            return Err(Error::usage("no-such-directory", format!("{}: no such directory", start.display())));
        }
        let repo = match discover_natively(start) {
            Some(repo) => Ok(repo),
            None => Self::discover_with_git(start).or_else(|e| match Self::beside_worktrees(start) {
                Some(repo) if e.code == "not-a-repository" => Ok(repo),
                _ => Err(e),
            }),
        }?;
        tracing::debug!("repository {}, state in {}", repo.root().display(), repo.state_dir().display());
        Ok(repo)
    }

    /// From the directory that holds the worktrees (`proj.wt`, beside `proj` or `proj.git`),
    /// the repository they belong to: `cd proj.wt && wt-create --list` works.
    fn beside_worktrees(start: &Path) -> Option<Repo> {
        let dir = start.canonicalize().ok()?;
        let stem = dir.file_name()?.to_str()?.strip_suffix(".wt")?;
        let parent = dir.parent()?;
        [stem.to_string(), format!("{stem}.git")].iter().find_map(|n| {
            let candidate = parent.join(n);
            let repo = Self::discover_with_git(&candidate).ok()?;
            tracing::info!("{} holds worktrees of {}", dir.display(), repo.root().display());
            Some(repo)
        })
    }

    /// Discovery by asking git: the reference the file-system walk must agree with.
    pub fn discover_with_git(start: &Path) -> Result<Repo, Error> {
        let (text, ok) = rev_parse_all(start)?;
        let lines: Vec<&str> = text.lines().collect();
        let (common, bare) = (lines[0], lines[2]);
        let common_dir = canonical(Path::new(common))?;
        // git's own rule (worktree.c, get_main_worktree): the main worktree is the parent of a
        // common dir named `.git`; any other common dir belongs to a bare repository.
        let main_worktree = match (bare, common_dir.file_name()) {
            ("false", Some(n)) if n == ".git" => common_dir.parent().map(Path::to_path_buf),
            _ => None,
        };
        let details = OnceLock::new();
        let _ = details.set(Ok(Details::parse(&lines, ok)));
        Ok(Repo { common_dir, main_worktree, details })
    }

    /// Where git looks for hooks (honours `core.hooksPath`): `<common dir>/hooks` when no
    /// config file git reads can say otherwise (`hooks_path`), else as git answers.
    pub fn hooks_dir(&self) -> Result<PathBuf, Error> {
        if crate::git::hooks_path::is_default(&self.common_dir) {
            return Ok(self.common_dir.join("hooks"));
        }
        self.details().map(|d| d.hooks_dir.clone())
    }

    /// Runs the post-checkout hook in a worktree just checked out at `commit`, with the
    /// arguments `git worktree add` gives it (a null old commit: a new worktree), for the tools
    /// that register with `--no-checkout` and check out themselves.
    pub fn run_post_checkout_hook(&self, worktree: &Path, commit: &str) -> Result<(), Error> {
        if !self.hooks_dir()?.join("post-checkout").is_file() {
            return Ok(());
        }
        let null = "0".repeat(commit.len());
        crate::git::run(worktree, ["hook", "run", "--ignore-missing", "post-checkout", "--", &null, commit, "1"])
            .map(|_| ())
            .map_err(|e| Error::failed("hook-failed", format!("post-checkout hook failed: {}", e.message)))
    }

    /// What the main worktree (or the bare repository) has checked out; `None` before the
    /// first commit. Read from the `HEAD` file and the refs when they can answer (`registry`).
    pub fn main_head(&self) -> Result<Option<MainHead>, Error> {
        if let Some((commit, branch)) = crate::git::registry::read_head(&self.common_dir, &self.common_dir) {
            return Ok(Some(MainHead { commit, branch }));
        }
        self.details().map(|d| d.main_head.clone())
    }

    fn details(&self) -> Result<&Details, Error> {
        let got = self.details.get_or_init(|| {
            let (text, ok) = rev_parse_all(self.root())?;
            Ok(Details::parse(&text.lines().collect::<Vec<_>>(), ok))
        });
        got.as_ref().map_err(Clone::clone)
    }

    /// The repository as records name it: the main worktree, or the bare repository.
    pub fn root(&self) -> &Path {
        self.main_worktree.as_deref().unwrap_or(&self.common_dir)
    }

    /// Where git commands about the whole repository run.
    pub fn git_dir(&self) -> &Path {
        self.root()
    }

    /// The tools' state: `<common dir>/wt`. It goes with the repository.
    pub fn state_dir(&self) -> PathBuf {
        self.common_dir.join("wt")
    }

    /// Creates the state directory if needed and returns it.
    pub fn ensure_state_dir(&self) -> Result<PathBuf, Error> {
        let dir = self.state_dir();
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::env("state-dir", format!("cannot create {}: {e}", dir.display())))?;
        // The person's list of repositories with wt state, for `wt-status --inbox`.
        crate::ledger::repos::register(self.root());
        Ok(dir)
    }

    /// Serialises every change to git's worktree registry made by wt tools in this repository.
    /// git itself does not lock it: concurrent `git worktree add` fail while a sibling's admin
    /// directory is half-written (`failed to read .git/worktrees/<x>/commondir`).
    pub fn worktree_lock(&self) -> Result<crate::proc::lock::FileLock, Error> {
        let state = self.ensure_state_dir()?;
        crate::proc::lock::FileLock::acquire(&state.join("worktrees.lock"), crate::proc::lock::default_timeout())
    }

    /// `<repo>.wt`: where worktrees go unless `--root` or `wt.toml` says otherwise. A bare
    /// repository's `.git` suffix is dropped (`proj.git` → `proj.wt`).
    pub fn default_worktree_root(&self) -> PathBuf {
        let root = self.root();
        let name = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let stem = name.strip_suffix(".git").filter(|s| !s.is_empty()).unwrap_or(&name);
        root.with_file_name(format!("{stem}.wt"))
    }

    /// Every worktree git knows, main (or bare) first: read from git's files when they can
    /// answer (`registry`), else from `git worktree list`, retried a few times, since git can
    /// fail while a sibling's admin directory is being written by another process.
    pub fn worktrees(&self) -> Result<Vec<GitWorktree>, Error> {
        if let Some(all) = crate::git::registry::read(&self.common_dir, self.main_worktree.as_deref()) {
            return Ok(all);
        }
        self.worktrees_by_git()
    }

    /// `worktrees`, taking the commits of the branches under `refs/heads/<prefix>/` from
    /// `listed` (every one of them, just read by `refs::branches_under`) rather than reading
    /// each again.
    pub fn worktrees_knowing(
        &self,
        prefix: &str,
        listed: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<GitWorktree>, Error> {
        let refs = crate::git::refs::BranchReader::new(&self.common_dir).map(|r| r.listed(prefix, listed));
        match refs.and_then(|refs| crate::git::registry::read_with(&refs, self.main_worktree.as_deref())) {
            Some(all) => Ok(all),
            None => self.worktrees_by_git(),
        }
    }

    fn worktrees_by_git(&self) -> Result<Vec<GitWorktree>, Error> {
        let mut last = None;
        for attempt in 0..5 {
            match git::run(self.git_dir(), ["worktree", "list", "--porcelain", "-z"]) {
                Ok(text) => return Ok(parse_worktree_list(&text)),
                Err(e) if e.kind == crate::ErrorKind::Environment => return Err(e),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(std::time::Duration::from_millis(5 << attempt));
        }
        Err(last.expect("at least one attempt"))
    }
}

/// One git process for everything discovery needs: rev-parse applies each flag to the
/// arguments after it, and `main-worktree/HEAD` names the main worktree's HEAD from any
/// worktree. Returns stdout and whether HEAD resolved. Before the first commit git fails, but
/// only after printing the first three answers.
fn rev_parse_all(dir: &Path) -> Result<(String, bool), Error> {
    let mut cmd = git::command(dir);
    cmd.args([
        "rev-parse",
        "--path-format=absolute",
        "--git-common-dir",
        "--git-path",
        "hooks",
        "--is-bare-repository",
    ]);
    cmd.args(["main-worktree/HEAD", "--symbolic-full-name", "main-worktree/HEAD"]);
    let out = git::raw_output(&mut cmd)?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() && text.lines().count() < 3 {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("not a git repository") {
            return Err(Error::env(
                "not-a-repository",
                format!(
                    "not a git repository: {} (run inside a repository or its worktrees' directory, or pass -C DIR)",
                    dir.display()
                ),
            ));
        }
        return Err(Error::env("git-failed", git::failure_message(&cmd, &out)));
    }
    Ok((text, out.status.success()))
}

impl Details {
    fn parse(lines: &[&str], head_resolved: bool) -> Details {
        let main_head = match (head_resolved, lines.get(3), lines.get(4)) {
            (true, Some(commit), Some(symbolic)) => Some(MainHead {
                commit: commit.to_string(),
                branch: symbolic.strip_prefix("refs/heads/").map(str::to_string),
            }),
            _ => None,
        };
        Details { hooks_dir: PathBuf::from(lines.get(1).copied().unwrap_or_default()), main_head }
    }
}

/// Variables that change how git finds a repository; with any of them set, git decides.
const DISCOVERY_VARS: &[&str] =
    &["GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_CEILING_DIRECTORIES", "GIT_DISCOVERY_ACROSS_FILESYSTEM"];

/// git's discovery for the ordinary layouts: the nearest `.git` directory, `.git` file
/// (`gitdir: …`, a linked worktree) or bare repository, then its `commondir`. `None` when in
/// doubt, so that git itself answers (and explains a failure).
fn discover_natively(start: &Path) -> Option<Repo> {
    if DISCOVERY_VARS.iter().any(|v| std::env::var_os(v).is_some()) {
        return None;
    }
    let start = start.canonicalize().ok()?;
    for dir in start.ancestors() {
        let dot = dir.join(".git");
        let gitdir = match std::fs::metadata(&dot) {
            Ok(m) if m.is_dir() => dot,
            // A worktree's `.git` is the agent's to replace: read as git's small files are.
            Ok(m) if m.is_file() => dir.join(crate::fs::read_small(&dot).text()?.trim_end().strip_prefix("gitdir: ")?),
            _ if is_git_dir(dir) => dir.to_path_buf(),
            _ => continue,
        };
        if !is_git_dir(&gitdir) {
            return None;
        }
        let common = match crate::fs::read_small(&gitdir.join("commondir")) {
            crate::fs::Small::Text(rel) => gitdir.join(rel.trim_end()),
            crate::fs::Small::Missing => gitdir,
            _ => return None,
        };
        let common_dir = common.canonicalize().ok()?;
        let named_dot_git = common_dir.file_name().is_some_and(|n| n == ".git");
        let main_worktree = if named_dot_git && !config_says_bare(&common_dir) {
            common_dir.parent().map(Path::to_path_buf)
        } else {
            None
        };
        return Some(Repo { common_dir, main_worktree, details: OnceLock::new() });
    }
    None
}

/// A repository directory, or a linked worktree's admin directory.
fn is_git_dir(dir: &Path) -> bool {
    dir.join("HEAD").is_file() && (dir.join("objects").is_dir() || dir.join("commondir").is_file())
}

/// `core.bare = true` in the repository's config.
pub(crate) fn config_says_bare(common_dir: &Path) -> bool {
    let config = crate::fs::read_untrusted(&common_dir.join("config"), crate::fs::untrusted::GIT_CONFIG_MAX);
    let Ok(Some(text)) = config else { return false };
    let mut in_core = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_core = line.trim_start_matches('[').trim_end_matches(']').trim().eq_ignore_ascii_case("core");
        } else if in_core {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim().eq_ignore_ascii_case("bare") {
                    return v.trim().eq_ignore_ascii_case("true");
                }
            }
        }
    }
    false
}

/// Canonical form of an existing path (symlinks resolved), as git records worktree paths.
pub fn canonical(path: &Path) -> Result<PathBuf, Error> {
    path.canonicalize().map_err(|e| Error::io(path.display(), e))
}

/// Parses `git worktree list --porcelain -z`: attributes end with NUL, entries with an empty one.
pub fn parse_worktree_list(text: &str) -> Vec<GitWorktree> {
    let mut out = Vec::new();
    let mut cur: Option<GitWorktree> = None;
    for field in text.split('\0') {
        if field.is_empty() {
            out.extend(cur.take());
            continue;
        }
        let (key, value) = field.split_once(' ').unwrap_or((field, ""));
        if key == "worktree" {
            out.extend(cur.take());
            cur = Some(GitWorktree { path: PathBuf::from(value), ..Default::default() });
            continue;
        }
        let Some(wt) = cur.as_mut() else { continue };
        match key {
            "HEAD" => wt.head = Some(value.to_string()),
            "branch" => wt.branch = Some(value.strip_prefix("refs/heads/").unwrap_or(value).to_string()),
            "bare" => wt.bare = true,
            "detached" => wt.detached = true,
            "locked" => wt.locked = true,
            "prunable" => wt.prunable = true,
            _ => {}
        }
    }
    out.extend(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_porcelain_z_including_odd_paths() {
        let text = "worktree /r\0HEAD abc\0branch refs/heads/main\0\0worktree /r.wt/a b\nc\0HEAD def\0detached\0locked why\0\0worktree /bare\0bare\0\0";
        let got = parse_worktree_list(text);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].branch.as_deref(), Some("main"));
        assert_eq!(got[1].path, Path::new("/r.wt/a b\nc"));
        assert!(got[1].detached && got[1].locked && got[1].branch.is_none());
        assert!(got[2].bare);
    }
}
