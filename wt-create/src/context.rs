//! What every wt-create operation needs: the repository, where worktrees go, the ledger, and
//! the lock that serialises registering worktrees with git.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wt_common::git::repo::{GitWorktree, Repo};
use wt_common::ledger::{Entry, Ledger, LedgerFile};
use wt_common::proc::lock::FileLock;
use wt_common::{config, git, Error, Record};

use crate::args::{Args, Config};

pub const TOOL: &str = "wt-create";

#[derive(Debug)]
pub struct Context {
    pub repo: Repo,
    /// Where new worktrees go (absolute; canonical once it exists).
    pub root: PathBuf,
    pub ledger: LedgerFile,
    pub config: Config,
    /// What to share into the worktrees made (or, with `--share`, adopted) by this run.
    pub share: Option<crate::share::Sharing>,
}

/// The ref a new worktree starts from, as named and as resolved.
#[derive(Debug, Clone)]
pub struct Base {
    pub name: String,
    pub commit: String,
}

impl Context {
    pub fn new(args: &Args) -> Result<Context, Error> {
        let start = args.global.start_dir();
        let repo = Repo::discover(&start)?;
        let config: Config = config::section(repo.main_worktree.as_deref(), "create")?;
        let root = match (&args.root, &config.root) {
            (Some(dir), _) => absolute(&start, dir),
            (None, Some(dir)) => absolute(repo.root(), dir),
            (None, None) => repo.default_worktree_root(),
        };
        let root = root.canonicalize().unwrap_or(root);
        let ledger = LedgerFile::new(&repo.state_dir());
        Ok(Context { repo, root, ledger, config, share: None })
    }

    /// The repository's worktree lock (see `Repo::worktree_lock`).
    pub fn worktree_lock(&self) -> Result<FileLock, Error> {
        self.repo.worktree_lock()
    }

    /// Resolves `--base` (or `[create] base`, or HEAD of the main worktree) to a commit.
    pub fn base(&self, given: Option<&str>) -> Result<Base, Error> {
        let dir = self.repo.git_dir();
        match given.or(self.config.base.as_deref()) {
            Some(name) => {
                match git::run(dir, ["rev-parse", "--verify", "-q", "--end-of-options", &format!("{name}^{{commit}}")])
                {
                    Ok(commit) if !commit.is_empty() => Ok(Base { name: name.to_string(), commit }),
                    _ => Err(Error::usage(
                        "unknown-base",
                        format!(
                            "base '{name}' is not a commit in this repository (list branches with `git branch -a`)"
                        ),
                    )),
                }
            }
            None => match &self.repo.main_head()? {
                Some(head) => Ok(Base {
                    name: head.branch.clone().unwrap_or_else(|| head.commit.clone()),
                    commit: head.commit.clone(),
                }),
                None => Err(Error::env(
                    "no-commits",
                    format!(
                        "the repository {} has no commits yet; make a first commit, then create worktrees",
                        self.repo.root().display()
                    ),
                )),
            },
        }
    }

    /// The record of a worktree, from git's view of it and the ledger's.
    pub fn record(&self, name: &str, wt: &GitWorktree, entry: Option<&Entry>) -> Record {
        let mut rec = Record::named(name);
        rec.index = entry.and_then(|e| e.index);
        rec.repo = Some(self.repo.root().to_path_buf());
        rec.path = Some(wt.path.clone());
        rec.branch = wt.branch.clone();
        rec.base = entry.and_then(|e| e.base.clone());
        rec.base_commit = entry.and_then(|e| e.base_commit.clone());
        rec.head = wt.head.clone();
        rec
    }
}

fn absolute(base: &Path, p: &Path) -> PathBuf {
    let joined = if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
    std::path::absolute(&joined).unwrap_or(joined)
}

/// What git and the ledger say about the repository's worktrees, taken under the lock.
#[derive(Debug)]
pub struct Snapshot {
    pub worktrees: Vec<GitWorktree>,
    /// `wt/<name>` branches: name → commit.
    pub wt_branches: BTreeMap<String, String>,
    pub ledger: std::sync::Arc<Ledger>,
}

impl Snapshot {
    pub fn take(ctx: &Context) -> Result<Snapshot, Error> {
        let (wt_branches, worktrees) = match wt_common::git::refs::branches_under(&ctx.repo.common_dir, "wt") {
            // The worktrees on those branches are not read twice.
            Some(found) => {
                let worktrees = ctx.repo.worktrees_knowing("wt", &found)?;
                (found, worktrees)
            }
            None => {
                let refs = git::run(
                    ctx.repo.git_dir(),
                    ["for-each-ref", "--format=%(refname:lstrip=3)%00%(objectname)", "refs/heads/wt/"],
                )?;
                let found = refs
                    .lines()
                    .filter_map(|l| l.split_once('\0'))
                    .map(|(n, c)| (n.to_string(), c.to_string()))
                    .collect();
                (found, ctx.repo.worktrees()?)
            }
        };
        Ok(Snapshot { worktrees, wt_branches, ledger: ctx.ledger.read()? })
    }

    pub fn worktree_at(&self, path: &Path) -> Option<&GitWorktree> {
        self.worktrees.iter().find(|w| w.path == path)
    }

    pub fn worktree_on_branch(&self, branch: &str) -> Option<&GitWorktree> {
        self.worktrees.iter().find(|w| w.branch.as_deref() == Some(branch))
    }

    /// The live worktree of a managed name, if its directory still exists for git.
    pub fn managed(&self, name: &str) -> Option<(&Entry, &GitWorktree)> {
        let entry = self.ledger.worktrees.get(name)?;
        Some((entry, self.worktree_at(&entry.path)?))
    }
}
