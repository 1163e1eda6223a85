//! `wt-create --pool N` and the background refill: brings the pool of a base to its target
//! size. One step at a time, each decided under the worktree lock from what the journals say:
//! a pooled worktree on an old commit of the base is advanced (when that is a checkout of a few
//! files and no dependency file changed) or removed; one too many is removed; one too few is
//! made, exactly as `create` makes a worktree (registered under the lock with
//! `git worktree add --no-checkout`, checked out with `git reset --hard` outside it, include
//! files copied, directories shared), on a detached HEAD at `<root>/.pool/<id>`.
//!
//! Fills take turns (`<state>/pool/fill.lock`), so two refills never race; a refill started
//! while another runs waits for it, then finds the pool full and ends.

use std::time::Duration;

use wt_common::git::repo::GitWorktree;
use wt_common::proc::lock::FileLock;
use wt_common::record::output::Output;
use wt_common::{git, proc::failpoint, Error, Record};

use super::{Pooled, State, Target, Targets, POOL_DIR};
use crate::context::{Base, Context, TOOL};

/// How long a fill waits for the one before it.
const FILL_WAIT: Duration = Duration::from_secs(600);

/// At most this many changed files, and a pooled worktree is advanced rather than made again.
pub const ADVANCE_MAX: usize = 200;

/// `--pool N`: records N as the target for the base (with the sharing asked), then fills.
pub fn set_and_fill(
    ctx: &mut Context,
    size: usize,
    base: Option<&str>,
    share: &[String],
    mode: Option<String>,
    out: &mut Output,
) -> Result<(), Error> {
    let base = ctx.base(base)?;
    let mut targets = Targets::read(ctx);
    // Kept at 0 too: a `[create] pool` in wt.toml would otherwise fill it again.
    targets.0.insert(base.name.clone(), Target { size, share: share.to_vec(), share_mode: mode });
    targets.write(ctx)?;
    fill(ctx, &base, out)
}

/// `--pool 0` without `--base`: drains the pool of every base (each recorded, each a pooled
/// worktree has, and the default one), recording 0 for each.
pub fn drain_all(ctx: &mut Context, out: &mut Output) -> Result<(), Error> {
    let mut names: std::collections::BTreeSet<String> = Targets::read(ctx).0.into_keys().collect();
    names.extend(super::read_all(ctx).into_iter().map(|p| p.base));
    names.extend(ctx.base(None).ok().map(|b| b.name));
    for name in names {
        // A base that no longer resolves is drained all the same (size 0 needs no commit).
        let base = ctx.base(Some(&name)).unwrap_or(Base { name: name.clone(), commit: String::new() });
        let mut targets = Targets::read(ctx);
        targets.0.entry(name).or_default().size = 0;
        targets.write(ctx)?;
        fill(ctx, &base, out)?;
    }
    Ok(())
}

/// The background refill: fills the pool of `base` to its recorded size.
pub fn refill(ctx: &mut Context, base: Option<&str>, out: &mut Output) -> Result<(), Error> {
    let base = ctx.base(base)?;
    fill(ctx, &base, out)
}

/// The lock fills take turns with.
pub fn lock_path(ctx: &Context) -> std::path::PathBuf {
    super::dir(ctx).join("fill.lock")
}

/// This fill's turn: the fill lock, taken here or handed down by the claimer (`refill`).
#[allow(dead_code)] // held, never read
enum Turn {
    Taken(FileLock),
    Handed(std::fs::File),
}

/// What one step of a fill does, decided under the worktree lock.
enum Step {
    Advance(Pooled, FileLock),
    Make(Pooled, FileLock),
    Done,
}

pub fn fill(ctx: &mut Context, base: &Base, out: &mut Output) -> Result<(), Error> {
    std::fs::create_dir_all(super::dir(ctx)).map_err(|e| Error::io(super::dir(ctx).display(), e))?;
    std::fs::create_dir_all(&ctx.root).map_err(|e| Error::io(ctx.root.display(), e))?;
    ctx.root = ctx.root.canonicalize().map_err(|e| Error::io(ctx.root.display(), e))?;
    let ctx = &*ctx;
    let _turn = match super::refill::inherited_lock(&lock_path(ctx)) {
        Some(handed) => Turn::Handed(handed),
        None => Turn::Taken(FileLock::acquire(&lock_path(ctx), FILL_WAIT)?),
    };
    let fingerprint = super::fingerprint::of(ctx);
    reverify(ctx, &base.name, out);
    loop {
        // The base may move while the pool fills: each step looks again.
        let base = Base {
            commit: ctx.base(Some(&base.name)).map(|b| b.commit).unwrap_or(base.commit.clone()),
            ..base.clone()
        };
        // So does the size: a `--pool 0` while this fill runs stops it making more.
        let size = super::target_size(ctx, &base.name);
        match step(ctx, &base, size, &fingerprint, out)? {
            Step::Done => {
                super::refill::clear_failure(ctx);
                return Ok(());
            }
            Step::Advance(pooled, lock) => advance(ctx, pooled, &base, &lock, out),
            // A make that failed would fail again (the same base, include files and shares):
            // the fill stops at the first, and the next claim does not start a refill at once.
            Step::Make(pooled, lock) => make(ctx, pooled, &lock, out).inspect_err(|e| {
                super::refill::note_failure(ctx, e);
            })?,
        }
    }
}

fn step(ctx: &Context, base: &Base, size: usize, fingerprint: &str, out: &mut Output) -> Result<Step, Error> {
    let lock = ctx.worktree_lock()?;
    wt_common::proc::stale_lock::sweep_repository(&ctx.repo);
    crate::pending::reap_dead(&ctx.repo, &ctx.ledger)?;
    super::recover(ctx)?;
    let ours: Vec<Pooled> =
        super::read_all(ctx).into_iter().filter(|p| p.base == base.name && p.state == State::Ready).collect();
    let (good, stale): (Vec<Pooled>, Vec<Pooled>) =
        ours.into_iter().partition(|p| p.commit == base.commit && p.fingerprint == fingerprint);
    for pooled in stale {
        let Some(held) = pooled.try_lock(ctx)? else { continue };
        if good.len() < size && pooled.fingerprint == fingerprint && advanceable(ctx, &pooled.commit, &base.commit) {
            let mut advancing = pooled.clone();
            advancing.state = State::Advancing;
            advancing.save(ctx)?;
            return Ok(Step::Advance(advancing, held));
        }
        super::remove(ctx, &pooled);
        out.emit(&removed_record(ctx, &pooled));
    }
    if good.len() > size {
        for pooled in &good[size..] {
            if let Some(_held) = pooled.try_lock(ctx)? {
                super::remove(ctx, pooled);
                out.emit(&removed_record(ctx, pooled));
            }
        }
        return Ok(Step::Done);
    }
    if good.len() == size {
        return Ok(Step::Done);
    }
    register(ctx, &lock, base, fingerprint).map(|(p, l)| Step::Make(p, l))
}

/// Checks every ready pooled worktree of `base` whole (`untouched`): one written into since it
/// was sealed — a tracked file rewritten in place, which its seal cannot see — is removed
/// (`make` replaces it); one found untouched whose seal broke (a `git status` in it rewrote its
/// index) is sealed again. The check holds no lock, so a claim is never held up by it; what it
/// found is acted on under the locks, and only if the pooled worktree is still in the pool.
fn reverify(ctx: &Context, base: &str, out: &mut Output) {
    for pooled in super::read_all(ctx).into_iter().filter(|p| p.base == base && p.state == State::Ready) {
        let sealed = super::seal::intact(ctx, &pooled);
        let before = (!sealed).then(|| super::seal::settled_snapshot(ctx, &pooled)).flatten();
        let clean = super::untouched::untouched(ctx, &pooled);
        if clean && sealed {
            continue;
        }
        let Ok(_lock) = ctx.worktree_lock() else { continue };
        let Ok(Some(_held)) = pooled.try_lock(ctx) else { continue };
        let still = super::read_all(ctx).into_iter().find(|p| {
            p.id == pooled.id && p.state == State::Ready && p.commit == pooled.commit && p.path == pooled.path
        });
        let Some(pooled) = still else { continue };
        if clean {
            super::seal::store_if_unchanged(ctx, &pooled, before);
            continue;
        }
        tracing::warn!("pooled worktree {} was written into since it was filled; replacing it", pooled.id);
        super::remove(ctx, &pooled);
        out.emit(&removed_record(ctx, &pooled));
    }
}

/// Whether the change from `old` to `new` is a checkout of a few files, none of them a
/// dependency file (the shared directories were placed for the old ones).
pub(super) fn advanceable(ctx: &Context, old: &str, new: &str) -> bool {
    let Ok(names) = git::run(ctx.repo.git_dir(), ["diff", "--name-only", "--no-renames", "-z", old, new]) else {
        return false;
    };
    let changed: Vec<&str> = names.split('\0').filter(|n| !n.is_empty()).collect();
    changed.len() <= ADVANCE_MAX
        && !changed.iter().any(|p| {
            let file = p.rsplit('/').next().unwrap_or(p);
            crate::share::lockfiles::is_lock_file(file) || crate::share::lockfiles::MANIFESTS.contains(&file)
        })
}

/// A new pooled worktree, registered with git (under the worktree lock).
fn register(ctx: &Context, lock: &FileLock, base: &Base, fingerprint: &str) -> Result<(Pooled, FileLock), Error> {
    let id = format!("p{}", crate::pending::Marker::new_id().replace('-', "x"));
    let path = ctx.root.join(POOL_DIR).join(&id);
    // A link (or anything else) planted in place of `.pool` is removed, never followed: the
    // pool is filled under the root.
    wt_common::fs::beneath::Dir::open(&ctx.root)
        .and_then(|root| root.ensure_dir(POOL_DIR))
        .map_err(|e| Error::io(ctx.root.join(POOL_DIR).display(), e))?;
    let pooled = Pooled {
        id: id.clone(),
        path: path.clone(),
        base: base.name.clone(),
        commit: base.commit.clone(),
        fingerprint: fingerprint.to_string(),
        state: State::Filling,
        share: None,
        claim: None,
    };
    let held = FileLock::acquire(&super::lock_file(ctx, &id), Duration::from_secs(5))?;
    pooled.save(ctx)?;
    failpoint::hit("pool-after-journal");
    let mut add = git::command(ctx.repo.git_dir());
    add.args(["worktree", "add", "--no-checkout", "--detach", "--quiet"]).arg(&path).arg(&base.commit);
    if let Err(e) = git::output_under(&mut add, lock) {
        super::remove(ctx, &pooled);
        return Err(e);
    }
    failpoint::hit("pool-after-register");
    Ok((pooled, held))
}

/// Checks a registered pooled worktree out, copies include files, shares; then it is ready.
/// On failure it is removed and the error returned.
fn make(ctx: &Context, mut pooled: Pooled, held: &FileLock, out: &mut Output) -> Result<(), Error> {
    let made = (|| {
        let mut reset = git::command(&pooled.path);
        reset.args(["reset", "--hard", "--no-recurse-submodules", "--quiet"]);
        git::output_under(&mut reset, held)?;
        failpoint::hit("pool-after-checkout");
        if let Some(main) = ctx.repo.main_worktree.as_deref() {
            let selected = crate::include::selected(&ctx.repo, main)?;
            crate::include::copy(main, &pooled.path, &selected)?;
        }
        failpoint::hit("pool-after-include");
        ctx.share.as_ref().map(|s| s.share_into(&pooled.id, &pooled.path)).transpose()
    })();
    match made {
        Ok(share) => {
            pooled.share = share;
            super::seal::refresh_and_take(ctx, &pooled, held);
            pooled.state = State::Ready;
            match pooled.save(ctx) {
                Ok(()) => out.emit(&pooled_record(ctx, &pooled)),
                Err(e) => out.emit(&Record::failed(&pooled.id, TOOL, &e)),
            }
            Ok(())
        }
        Err(e) => {
            let _lock = ctx.worktree_lock();
            super::remove(ctx, &pooled);
            Err(Error::failed(
                "pool-fill-failed",
                format!("cannot make a pooled worktree: {}; fix that, then run `wt-create --pool N` again", e.message),
            ))
        }
    }
}

/// Moves a pooled worktree to the base's new commit (a checkout of the few files that changed).
fn advance(ctx: &Context, mut pooled: Pooled, base: &Base, held: &FileLock, out: &mut Output) {
    let mut checkout = git::command(&pooled.path);
    checkout.args(["-c", "core.hooksPath=/dev/null", "checkout", "--quiet", "--detach", &base.commit]);
    let moved = git::output_under(&mut checkout, held);
    failpoint::hit("pool-after-advance");
    match moved {
        Ok(_) => {
            pooled.commit = base.commit.clone();
            super::seal::refresh_and_take(ctx, &pooled, held);
            pooled.state = State::Ready;
            match pooled.save(ctx) {
                Ok(()) => out.emit(&pooled_record(ctx, &pooled)),
                Err(e) => out.emit(&Record::failed(&pooled.id, TOOL, &e)),
            }
        }
        Err(e) => {
            tracing::warn!("pooled worktree {}: {}; making it again", pooled.id, e.message);
            let _lock = ctx.worktree_lock();
            super::remove(ctx, &pooled);
        }
    }
}

/// The record of a pooled worktree: its id for a name, `"pooled": true`.
pub fn pooled_record(ctx: &Context, pooled: &Pooled) -> Record {
    let wt = GitWorktree { path: pooled.path.clone(), head: Some(pooled.commit.clone()), ..Default::default() };
    let mut rec = ctx.record(&pooled.id, &wt, None);
    rec.base = Some(pooled.base.clone());
    rec.base_commit = Some(pooled.commit.clone());
    rec.set_key("pooled", serde_json::Value::Bool(true));
    if let Some(share) = &pooled.share {
        rec.set_key("share", share.clone());
    }
    rec
}

fn removed_record(ctx: &Context, pooled: &Pooled) -> Record {
    let mut rec = pooled_record(ctx, pooled);
    rec.removed = Some(true);
    rec
}
