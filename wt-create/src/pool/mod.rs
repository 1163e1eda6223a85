//! The pool of warm worktrees (`wt-create --pool N`): worktrees made ahead of time from a base,
//! checked out, with shared directories placed and `.worktreeinclude` files copied, but with no
//! branch (a detached HEAD), no name and no lease. `wt-create NAME` claims one (`claim`): a rename
//! and a branch, not a checkout. A detached, low-priority `wt-create --pool-refill` makes new
//! ones after a claim (`refill`).
//!
//! A pooled worktree lives at `<root>/.pool/<id>` (admin dir `.git/worktrees/<id>`), where no
//! name can point (names are valid ref components, and a component never starts with a dot);
//! the ledger does not know it, so `--list`, wt-status, wt-env and wt-merge never see it.
//!
//! Its state is a journal, `<state>/pool/<id>.json`, replaced atomically at each step, beside a
//! lock `<id>.lock` that whoever works on it holds (the filler during its checkout; a claimer
//! also holds the worktree lock throughout). A journal whose lock is free and whose state is not
//! `ready` belongs to a process that died: the next run, under the worktree lock (`recover`),
//! finishes a claim (every step of it can be redone) and removes a pooled worktree that was
//! being filled, advanced or removed (nothing in it is anyone's work).

pub mod claim;
pub mod fill;
pub mod fingerprint;
pub mod refill;
pub mod seal;
pub mod untouched;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wt_common::proc::lock::FileLock;
use wt_common::{git, Error};

use crate::context::Context;
use crate::pending::{self, Marker};

/// The directory under the worktree root that holds the pooled worktrees.
pub use wt_common::ledger::root_layout::POOL_DIR;

/// The most of a journal (or the targets file) that is read.
const JOURNAL_MAX: u64 = 1 << 20;

/// Where a pooled worktree is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Registered with git, being checked out (its filler holds its lock).
    Filling,
    /// Whole, waiting to be claimed.
    Ready,
    /// Being moved to a newer commit of its base.
    Advancing,
    /// Being claimed: `claim` says as what. Finished by whoever finds it dead.
    Claiming,
    /// Being removed (drained, or replaced).
    Removing,
}

/// What a claim turns a pooled worktree into (the names a fresh `wt-create NAME` gives).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub name: String,
    pub path: PathBuf,
    pub branch: String,
    /// The admin dir's new name under `.git/worktrees/`.
    pub admin: String,
    /// The commit the branch starts at (the base's, which may be newer than `Pooled::commit`).
    pub commit: String,
    pub base: String,
    /// The ledger entry the claim writes carries it (`pending::MADE_BY`).
    pub made_by: String,
}

/// The journal of one pooled worktree.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pooled {
    pub id: String,
    pub path: PathBuf,
    /// The base as named (`main`, `origin/main`) and the commit it is checked out at.
    pub base: String,
    pub commit: String,
    /// What the main worktree's dependency files, the shared directories and the include files
    /// were when it was filled (`fingerprint`): a claim needs the same.
    pub fingerprint: String,
    pub state: State,
    /// What was shared into it (the record's `share`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<Claim>,
}

pub fn dir(ctx: &Context) -> PathBuf {
    ctx.repo.state_dir().join("pool")
}

fn journal_file(ctx: &Context, id: &str) -> PathBuf {
    dir(ctx).join(format!("{id}.json"))
}

fn lock_file(ctx: &Context, id: &str) -> PathBuf {
    dir(ctx).join(format!("{id}.lock"))
}

/// Refuses a worktree name shaped like a pooled worktree's id (`p<digits>x<digits>`): the
/// pool keeps notes (what was shared into it) under its id, as a worktree's are kept under its
/// name.
pub fn check_name(name: &str) -> Result<(), Error> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let pool_like =
        name.strip_prefix('p').and_then(|rest| rest.split_once('x')).is_some_and(|(a, b)| digits(a) && digits(b));
    match pool_like {
        true => Err(Error::usage(
            "invalid-name",
            format!("invalid worktree name '{name}': names like p<digits>x<digits> are the pool's; choose another"),
        )),
        false => Ok(()),
    }
}

/// Whether `path` is a pooled worktree's place (`<root>/.pool/<id>`).
pub fn is_pooled_path(ctx: &Context, path: &Path) -> bool {
    path.parent().is_some_and(|p| p == ctx.root.join(POOL_DIR))
}

impl Pooled {
    /// Writes the journal (atomically: a reader sees the old state or the new one).
    pub fn save(&self, ctx: &Context) -> Result<(), Error> {
        let file = journal_file(ctx, &self.id);
        let bytes = serde_json::to_vec(self).expect("a journal serializes");
        wt_common::fs::write_replace(&file, &bytes).map_err(|e| Error::io(file.display(), e))
    }

    /// The lock of this pooled worktree, if nobody holds it.
    pub fn try_lock(&self, ctx: &Context) -> Result<Option<FileLock>, Error> {
        FileLock::try_acquire(&lock_file(ctx, &self.id))
    }

    fn forget(&self, ctx: &Context) {
        let _ = fs::remove_file(journal_file(ctx, &self.id));
        let _ = fs::remove_file(lock_file(ctx, &self.id));
        seal::forget(ctx, &self.id);
    }
}

/// Every journal, as read (unreadable ones are skipped: a journal is written atomically, so
/// one that does not parse is not wt's).
pub fn read_all(ctx: &Context) -> Vec<Pooled> {
    let Ok(entries) = fs::read_dir(dir(ctx)) else { return Vec::new() };
    let mut all: Vec<Pooled> = entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(".json") && !n.starts_with('.')))
        .filter_map(|e| {
            let text = wt_common::fs::read_untrusted(&e.path(), JOURNAL_MAX).ok()??;
            serde_json::from_str(&text).ok()
        })
        .collect();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    all
}

/// Finishes or undoes what dead processes left: claims are finished, pooled worktrees being
/// filled, advanced or removed are removed. Call under the worktree lock.
pub fn recover(ctx: &Context) -> Result<(), Error> {
    let pool = dir(ctx);
    if !pool.exists() {
        return Ok(());
    }
    wt_common::fs::sweep_stale_temps(&pool);
    for pooled in read_all(ctx) {
        if pooled.state == State::Ready {
            continue;
        }
        let Some(held) = pooled.try_lock(ctx)? else { continue };
        match (pooled.state, &pooled.claim) {
            (State::Claiming, Some(c)) => {
                tracing::warn!(
                    "finishing the claim of pooled worktree {} as '{}', left by a wt-create that died",
                    pooled.id,
                    c.name
                );
                match claim::finish(ctx, &pooled, c, &held) {
                    Err(e) if e.code == "claim-lost" => {
                        tracing::warn!("{}: {}; dropping the claim", c.name, e.message);
                        claim::drop_lost(ctx, &pooled, c);
                    }
                    Err(e) => tracing::warn!("{}: {}", c.name, e.message),
                    Ok(_) => {}
                }
            }
            _ => {
                tracing::warn!("removing pooled worktree {}, left half-made by a wt-create that died", pooled.id);
                remove(ctx, &pooled);
            }
        }
    }
    Ok(())
}

/// `recover`, for a reader (`--list`) that otherwise takes no lock: only when some journal is
/// not `ready` (the usual case costs one directory read).
pub fn recover_if_needed(ctx: &Context) -> Result<(), Error> {
    if read_all(ctx).iter().all(|p| p.state == State::Ready) {
        return Ok(());
    }
    let _lock = ctx.worktree_lock()?;
    recover(ctx)
}

/// Removes a pooled worktree: its admin dir, its directory, what was noted of its share, its
/// journal. Under the worktree lock, with its lock held. A pooled worktree holds nobody's work.
pub fn remove(ctx: &Context, pooled: &Pooled) {
    if pooled.state != State::Removing {
        let mut removing = pooled.clone();
        removing.state = State::Removing;
        let _ = removing.save(ctx);
    }
    wt_common::proc::failpoint::hit("pool-removing");
    let marker = Marker {
        name: pooled.id.clone(),
        path: pooled.path.clone(),
        branch: String::new(),
        branch_created: false,
        start_commit: pooled.commit.clone(),
        id: None,
    };
    pending::roll_back(&ctx.repo, &marker, pending::By::Maker);
    let _ = fs::remove_file(wt_common::ledger::shared_dirs::file(&ctx.repo.state_dir(), &pooled.id));
    pooled.forget(ctx);
    let _ = fs::remove_dir(ctx.root.join(POOL_DIR)); // only once empty
}

/// The pool's target sizes, by base name, with what they share: `<state>/pool/target.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Targets(pub BTreeMap<String, Target>);

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Target {
    pub size: usize,
    /// `--share` words the pool was asked with (else `[create] share` applies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub share: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_mode: Option<String>,
}

impl Targets {
    fn file(ctx: &Context) -> PathBuf {
        dir(ctx).join("target.json")
    }

    pub fn read(ctx: &Context) -> Targets {
        let text = wt_common::fs::read_untrusted(&Targets::file(ctx), JOURNAL_MAX).ok().flatten();
        text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
    }

    pub fn write(&self, ctx: &Context) -> Result<(), Error> {
        let file = Targets::file(ctx);
        fs::create_dir_all(dir(ctx)).map_err(|e| Error::io(dir(ctx).display(), e))?;
        let bytes = serde_json::to_vec_pretty(self).expect("targets serialize");
        wt_common::fs::write_atomic(&file, &bytes).map_err(|e| Error::io(file.display(), e))
    }
}

/// The pool size for `base`: as `--pool` recorded it, else `[create] pool` for the default
/// base (a create with `--base B` does not start a pool of B).
pub fn target_size(ctx: &Context, base: &str) -> usize {
    match Targets::read(ctx).0.get(base) {
        Some(t) => t.size,
        None if ctx.config.pool.is_some() && ctx.base(None).is_ok_and(|b| b.name == base) => {
            ctx.config.pool.unwrap_or(0)
        }
        None => 0,
    }
}

/// The commit HEAD of a pooled worktree's admin dir names (it is detached).
pub(super) fn admin_head(admin: &Path) -> Option<String> {
    let text = wt_common::fs::read_small(&admin.join("HEAD")).text()?;
    let head = text.trim();
    (head.len() >= 40 && head.bytes().all(|b| b.is_ascii_hexdigit())).then(|| head.to_string())
}

/// Whether a branch exists (read from the ref files where they can answer: no git process).
fn branch_exists(ctx: &Context, branch: &str) -> bool {
    git::branch_heads(ctx.repo.git_dir(), &ctx.repo.common_dir, [branch])
        .map_or(true, |found| found.contains_key(branch))
}
