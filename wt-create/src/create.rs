//! Creating and adopting worktrees.
//!
//! Three steps, so that many wt-create processes can run at once and none fails on git's own
//! races:
//! 1. Under the worktree lock (milliseconds): decide for each name whether to adopt or create,
//!    leave a crash marker, and register the new worktree with `git worktree add --no-checkout`.
//! 2. Without the lock, in parallel: check the files out with `git reset --hard`, run the
//!    post-checkout hook, copy `.worktreeinclude` files. This is byte for byte what
//!    `git worktree add` does (it runs `reset --hard` itself; the admin dir, index and reflogs
//!    come out identical), but the slow part no longer holds the lock. Checking out with git
//!    rather than libgit2 keeps us at git's speed, which is the file system's: libgit2's checkout
//!    took about twice as long here.
//! 3. Record the worktree in the ledger (for a checkout running alone, staged while it runs and
//!    put in place once all is done), drop the marker, print the record.
//!
//! Records come out in the order the names were asked for, each as soon as it and those
//! before it are done.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex};

use wt_common::git::repo::GitWorktree;
use wt_common::ledger::Entry;
use wt_common::record::output::Output;
use wt_common::{git, ledger::name, proc::failpoint, Error, Record};

use crate::context::{Base, Context, Snapshot, TOOL};
use crate::include;
use crate::pending::{self, Marker, Pending};
use wt_common::proc::lock::FileLock;

/// One thing the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    Name(String),
    Path(PathBuf),
}

impl Want {
    pub fn parse(word: &str) -> Want {
        if name::is_path(word) {
            Want::Path(PathBuf::from(word))
        } else {
            Want::Name(word.to_string())
        }
    }
}

/// A worktree registered with git in step 1, to be checked out in step 2.
#[derive(Debug)]
struct NewWorktree {
    record: Record,
    entry: Entry,
    pending: Pending,
}

#[derive(Debug)]
enum Plan {
    /// Adopted, or failed: the record is final; the entry (if any) goes into the ledger.
    Ready(Record, Option<Entry>),
    Checkout(NewWorktree),
    /// Registered, and already handed to a checkout thread (see `make`).
    Started,
    /// Another wt-create is making this name right now: wait for it, then adopt.
    Busy(String),
}

/// Where `plan` hands each registered worktree (with its record's position among the records),
/// so that its checkout starts while the next one is being registered.
type HandOff<'a> = &'a dyn Fn(usize, NewWorktree);

/// What one invocation asks for.
#[derive(Debug)]
pub struct Request {
    pub wants: Vec<Want>,
    pub count: usize,
    pub prefix: String,
    pub base: Option<String>,
    /// `-j`; by default, as many as there are cores (looked up only when there are several
    /// worktrees to check out).
    pub jobs: Option<usize>,
}

/// How many times a name another run is making is waited for before it is reported busy.
const BUSY_ROUNDS: usize = 5;

pub fn run(ctx: &mut Context, req: &Request, out: &mut Output) -> Result<(), Error> {
    let base = ctx.base(req.base.as_deref())?;
    let root_existed = ctx.root.exists();
    std::fs::create_dir_all(&ctx.root).map_err(|e| Error::io(ctx.root.display(), e))?;
    ctx.root = ctx.root.canonicalize().map_err(|e| Error::io(ctx.root.display(), e))?;

    let ctx = &*ctx;
    let most = req.wants.len() + req.count;
    let mut busy = make(ctx, req.jobs, most, out, |h| plan(ctx, &base, &req.wants, req.count, &req.prefix, h))?;
    // A name another wt-create is making is waited for, then adopted (or made here, if its
    // maker died). Another run may take the name up again meanwhile, so a few rounds; a name
    // still busy after them gets a failure record, never silence.
    for _ in 0..BUSY_ROUNDS {
        if busy.is_empty() {
            break;
        }
        let mut wants = Vec::new();
        for name in busy {
            match pending::wait_for(&ctx.repo, &name) {
                Ok(()) => wants.push(Want::Name(name)),
                Err(e) => out.emit(&Record::failed(&name, TOOL, &e)),
            }
        }
        busy = make(ctx, req.jobs, wants.len(), out, |h| plan(ctx, &base, &wants, 0, &req.prefix, h))?;
    }
    for name in busy {
        let e = Error::failed("busy", format!("other wt-create runs kept making '{name}'; try again"));
        out.emit(&Record::failed(&name, TOOL, &e));
    }
    if !root_existed {
        let _ = std::fs::remove_dir(&ctx.root); // only if nothing was made in it
    }
    crate::pool::refill::spawn_if_short(ctx, &base);
    Ok(())
}

/// Step 1, under the worktree lock. With `hand_off`, each registered worktree goes there at
/// once (its place in `plans` holds `Plan::Started`).
fn plan(
    ctx: &Context,
    base: &Base,
    wants: &[Want],
    count: usize,
    prefix: &str,
    hand_off: Option<HandOff>,
) -> Result<Vec<Plan>, Error> {
    let lock = ctx.worktree_lock()?;
    // Locks a killed git left go first: rolling back deletes the half-made worktree's branch,
    // which takes `packed-refs.lock`; with a stale one there the branch stayed, and its name
    // was skipped as taken.
    wt_common::proc::stale_lock::sweep_repository(&ctx.repo);
    pending::reap_dead(&ctx.repo, &ctx.ledger)?;
    crate::pool::recover(ctx)?;
    wt_common::fs::sweep_removing(&ctx.root);
    let snap = Snapshot::take(ctx)?;
    let live: BTreeSet<String> = pending::reserved_names(&ctx.repo).into_iter().collect();
    let mut claimed = BTreeSet::new();
    let mut plans = Vec::new();
    // Each plan but a busy one becomes a record, in this order.
    let push = |plans: &mut Vec<Plan>, plan: Plan| {
        let record_index = plans.iter().filter(|p| !matches!(p, Plan::Busy(_))).count();
        match (plan, hand_off) {
            (Plan::Checkout(nw), Some(hand_off)) => {
                hand_off(record_index, nw);
                plans.push(Plan::Started);
            }
            (plan, _) => plans.push(plan),
        }
    };
    for want in wants {
        if let Some(plan) = plan_want(ctx, &lock, &snap, base, &live, &mut claimed, want) {
            push(&mut plans, plan);
        }
    }
    let mut k = 0;
    for _ in 0..count {
        let name = loop {
            k += 1;
            let candidate = format!("{prefix}-{k}");
            let taken = snap.ledger.worktrees.contains_key(&candidate)
                || snap.wt_branches.contains_key(&candidate)
                || live.contains(&candidate)
                || claimed.contains(&candidate)
                || ctx.root.join(&candidate).symlink_metadata().is_ok();
            if !taken {
                break candidate;
            }
        };
        claimed.insert(name.clone());
        push(&mut plans, plan_new(ctx, &lock, &snap, base, &name));
    }
    Ok(plans)
}

/// Steps 1 to 3 for the worktrees `plan` makes (at most `most`). With one (the usual call) or
/// one job, each is checked out right here once all are registered. With more, the checkout
/// threads start first and each worktree goes to them as soon as it is registered, so
/// checkouts run while the rest are still being registered under the lock. Records come out
/// in the order asked, each as soon as it and those before it are done. Returns the names that
/// were busy in another process.
fn make(
    ctx: &Context,
    jobs: Option<usize>,
    most: usize,
    out: &mut Output,
    plan: impl FnOnce(Option<HandOff>) -> Result<Vec<Plan>, Error>,
) -> Result<Vec<String>, Error> {
    let includes = ctx.repo.main_worktree.as_deref().map(|main| include::selected(&ctx.repo, main));
    let checkouts = Checkouts::default();
    let threads = match most {
        0 | 1 => 1,
        _ => jobs.unwrap_or_else(wt_common::proc::parallel::cores).clamp(1, most),
    };
    if threads == 1 {
        let (mut done, queue, busy) = sort_out(ctx, &includes, plan(None)?);
        let mut next = 0;
        emit_ready(&mut done, &mut next, out);
        for (i, nw) in queue {
            done[i] = Some(complete(ctx, nw, &includes, &checkouts));
            emit_ready(&mut done, &mut next, out);
        }
        return Ok(busy);
    }
    let (job_tx, job_rx) = mpsc::channel::<(usize, NewWorktree)>();
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (done_tx, job_rx, includes, checkouts) = (done_tx.clone(), &job_rx, &includes, &checkouts);
            s.spawn(move || loop {
                let job = job_rx.lock().expect("job queue").recv();
                let Ok((i, nw)) = job else { break };
                let _ = done_tx.send((i, complete(ctx, nw, includes, checkouts)));
            });
        }
        drop(done_tx);
        let hand_off = |i: usize, nw: NewWorktree| {
            let _ = job_tx.send((i, nw));
        };
        let planned = plan(Some(&hand_off));
        drop(job_tx); // the threads end once the queue is empty
        let (mut done, queue, busy) = sort_out(ctx, &includes, planned?);
        debug_assert!(queue.is_empty(), "every checkout was handed off");
        let mut next = 0;
        emit_ready(&mut done, &mut next, out);
        for (i, rec) in done_rx {
            done[i] = Some(rec);
            emit_ready(&mut done, &mut next, out);
        }
        Ok(busy)
    })
}

/// The records of `plans`, in order, with `None` where a checkout is still to finish; the
/// checkouts not yet started (with their record's place); the names busy in another process.
type SortedOut = (Vec<Option<Record>>, Vec<(usize, NewWorktree)>, Vec<String>);

fn sort_out(ctx: &Context, includes: &Includes, plans: Vec<Plan>) -> SortedOut {
    let (mut done, mut queue, mut busy) = (Vec::new(), Vec::new(), Vec::new());
    for plan in plans {
        match plan {
            Plan::Ready(rec, entry) => done.push(Some(finish_ready(ctx, includes, rec, entry))),
            Plan::Checkout(nw) => {
                queue.push((done.len(), nw));
                done.push(None);
            }
            Plan::Started => done.push(None),
            Plan::Busy(name) => busy.push(name),
        }
    }
    (done, queue, busy)
}

fn plan_want(
    ctx: &Context,
    lock: &FileLock,
    snap: &Snapshot,
    base: &Base,
    live: &BTreeSet<String>,
    claimed: &mut BTreeSet<String>,
    want: &Want,
) -> Option<Plan> {
    let label = match want {
        Want::Name(n) => n.clone(),
        Want::Path(p) => p.display().to_string(),
    };
    let fail = |e: Error| Some(Plan::Ready(Record::failed(&label, TOOL, &e), None));
    let (name, existing) = match want {
        Want::Name(n) => match name::validate(n).and_then(|()| crate::pool::check_name(n)) {
            Err(e) => return fail(e.with_kind(wt_common::ErrorKind::Failed)),
            Ok(()) => (n.clone(), existing_by_name(ctx, snap, n)),
        },
        Want::Path(p) => match adoptable_path(snap, p) {
            Err(e) => return fail(e),
            Ok((n, wt)) => (n, Some(wt)),
        },
    };
    if !claimed.insert(name.clone()) {
        return None; // asked twice in one run: one record
    }
    if live.contains(&name) {
        return Some(Plan::Busy(name));
    }
    match existing {
        Some(wt) => Some(adopt(ctx, snap, base, &name, wt)),
        None => Some(plan_new(ctx, lock, snap, base, &name)),
    }
}

/// The worktree a name already stands for: the ledger's, the one at `<root>/<name>`, or the one
/// on branch `wt/<name>`.
fn existing_by_name<'s>(ctx: &Context, snap: &'s Snapshot, name: &str) -> Option<&'s GitWorktree> {
    snap.managed(name)
        .map(|(_, wt)| wt)
        .or_else(|| snap.worktree_at(&ctx.root.join(name)))
        .or_else(|| snap.worktree_on_branch(&format!("wt/{name}")))
}

/// A path given to adopt: it must be a linked worktree of this repository.
fn adoptable_path<'s>(snap: &'s Snapshot, path: &Path) -> Result<(String, &'s GitWorktree), Error> {
    let shown = path.display();
    // A word with '/' that names no directory was meant as a name (`feature/login`): refused
    // like any bad name. One written as a path (`../x`) is a worktree that is not there.
    let canonical = path.canonicalize().map_err(|_| {
        let word = path.to_string_lossy();
        if name::written_as_path(&word) {
            Error::failed("not-a-worktree", format!("{word}: no such directory (to adopt a worktree, give its path)"))
        } else {
            name::slash_refused(&word)
        }
    })?;
    let Some(idx) = snap.worktrees.iter().position(|w| w.path == canonical) else {
        return Err(Error::failed(
            "not-a-worktree",
            format!("{shown} is not a worktree of this repository (see `git worktree list`)"),
        ));
    };
    if idx == 0 {
        return Err(Error::failed(
            "main-worktree",
            format!("{shown} is the main worktree; only linked worktrees can be adopted"),
        ));
    }
    let wt = &snap.worktrees[idx];
    let name = match snap.ledger.name_of_path(&canonical) {
        Some(n) => n.to_string(),
        None => canonical.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    name::validate(&name).map_err(|e| e.with_kind(wt_common::ErrorKind::Failed))?;
    if let Some((entry, _)) = snap.managed(&name).filter(|(e, _)| e.path != canonical) {
        return Err(Error::failed(
            "name-taken",
            format!("the name '{name}' is already used by {}; remove that one first", entry.path.display()),
        ));
    }
    Ok((name, wt))
}

/// A worktree that exists already: its record, and the entry to add to the ledger when the
/// ledger does not know it yet (`None` when it does).
fn adopt(ctx: &Context, snap: &Snapshot, base: &Base, name: &str, wt: &GitWorktree) -> Plan {
    if let Some(known) = snap.ledger.worktrees.get(name).filter(|e| e.path == wt.path) {
        // Nothing to write: the entry is the ledger's. Written back from this snapshot, it
        // would bring back a worktree removed meanwhile, with the port block it held, which
        // another worktree may hold by then (the soak found two worktrees given one block).
        let mut rec = ctx.record(name, wt, Some(known));
        rec.created = Some(false);
        return Plan::Ready(rec, None);
    }
    let mut entry = Entry::new(wt.path.clone());
    entry.branch = wt.branch.clone();
    entry.base = Some(base.name.clone());
    entry.base_commit =
        wt.head.as_deref().and_then(|h| git::run(ctx.repo.git_dir(), ["merge-base", h, &base.commit]).ok());
    entry.branch_created = wt.branch.as_deref() == Some(&format!("wt/{name}"));
    let mut rec = ctx.record(name, wt, Some(&entry));
    rec.created = Some(false);
    tracing::info!("adopting '{name}' at {}", wt.path.display());
    Plan::Ready(rec, Some(entry))
}

/// Registers a new worktree with git (still under the lock).
fn plan_new(ctx: &Context, lock: &FileLock, snap: &Snapshot, base: &Base, name: &str) -> Plan {
    let path = ctx.root.join(name);
    let branch = format!("wt/{name}");
    let fail = |e: Error| Plan::Ready(Record::failed(name, TOOL, &e), None);
    if path.symlink_metadata().is_ok() && snap.worktree_at(&path).is_none() {
        // A directory a killed wt-create left holding nothing (at most a cut-off `.git` file)
        // would block the name forever; nothing in it can be lost.
        if pending::holds_nothing(&path, &ctx.repo.common_dir.join("worktrees")) {
            tracing::warn!("removing {}, left empty by a wt-create that died", path.display());
            let _ = wt_common::fs::remove_tree(&path);
        }
    }
    if path.symlink_metadata().is_ok() {
        return fail(Error::failed(
            "path-exists",
            format!(
                "{} exists and is not a worktree of this repository; move it away or choose another name",
                path.display()
            ),
        ));
    }
    // An entry of this name whose worktree is gone (its removal was killed) is retired first
    // (its database kept): a marker whose name is in the ledger at its path means a finished
    // worktree to the next run, so no entry may be there while this one is being made.
    if let Some(stale) = snap.ledger.worktrees.get(name) {
        let retired = ctx.ledger.update(|l| {
            if l.worktrees.get(name) == Some(stale) {
                l.worktrees.remove(name);
                wt_common::ledger::kept_db::keep(l, name, stale);
            }
            Ok(())
        });
        if let Err(e) = retired {
            return fail(e);
        }
    }
    forget_the_name(ctx, name);
    let existing_branch = snap.wt_branches.get(name);
    wt_common::git::worktree::clear_stale_branch_lock(&ctx.repo, &branch);
    if existing_branch.is_none() {
        match crate::pool::claim::try_claim(ctx, lock, base, name) {
            Some(Ok(record)) => return Plan::Ready(record, None),
            Some(Err(e)) => return fail(e),
            None => {}
        }
    }
    let start = existing_branch.cloned().unwrap_or_else(|| base.commit.clone());
    let marker = Marker {
        name: name.to_string(),
        path: path.clone(),
        branch: branch.clone(),
        branch_created: existing_branch.is_none(),
        start_commit: start.clone(),
        id: Some(Marker::new_id()),
    };
    let mut pending = match Pending::begin(&ctx.repo, marker) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    failpoint::hit("after-marker");
    if let Err((e, branch_made)) = register(ctx, lock, &pending.marker) {
        pending.marker.branch_created = branch_made;
        pending.roll_back(&ctx.repo);
        return fail(e);
    }
    failpoint::hit("after-register");
    let mut entry = Entry::new(path.clone());
    entry.branch = Some(branch.clone());
    entry.base = Some(base.name.clone());
    entry.base_commit = Some(base.commit.clone());
    entry.branch_created = true;
    let wt = GitWorktree { path, head: Some(start), branch: Some(branch), ..Default::default() };
    let mut record = ctx.record(name, &wt, Some(&entry));
    record.created = Some(true);
    tracing::info!("registered '{name}' at {} on {}, from {}", wt.path.display(), branch_shown(&wt), base.name);
    Plan::Checkout(NewWorktree { record, entry, pending })
}

/// What wt kept under a name about a worktree of that name that is gone: its last run's, round's
/// and merge's outcomes, its run logs, the note of what was shared into it, its best commit so far (wt-watch's),
/// and the refs of its last merge (`--undo` after `--cleanup`). A new worktree takes the name: kept, they told wt-status that
/// the new one was red, or merged, and gave wt-merge's verification worktrees its directories.
fn forget_the_name(ctx: &Context, name: &str) {
    let state = ctx.repo.state_dir();
    wt_common::ledger::outcome::forget(&state, name);
    let _ = std::fs::remove_file(wt_common::ledger::shared_dirs::file(&state, name));
    let _ = wt_common::fs::remove_tree(&state.join("logs").join(name));
    wt_common::git::best::forget(&ctx.repo, name);
    let reader = wt_common::git::refs::BranchReader::new(&ctx.repo.common_dir);
    for kind in ["merged", "backup"] {
        let full = format!("refs/wt/{kind}/{name}");
        // Asked of git only when the ref files may hold it (a packed ref, or a format git reads).
        if reader.as_ref().and_then(|r| r.full_ref(&full)) != Some(None) {
            let _ = git::run(ctx.repo.git_dir(), ["update-ref", "-d", &full]);
        }
    }
}

/// `git worktree add --no-checkout`, retried when another (non-wt) git process races it.
/// git registers the worktree while this process holds the worktree lock. If this process is
/// killed, git gets its parent-death SIGKILL a moment later and may still be writing the admin
/// dir, which the next wt-create, once it has the lock, rolls back: so git is noted with the
/// lock, and the next holder waits for it to end (`FileLock::note_children_of`).
///
/// A new branch is made first, by a `git branch` of our own, not by `git worktree add -b`: that
/// one runs `git branch` as its own child, which neither dies with this process nor is noted,
/// and so could make the branch after the next run had rolled the worktree back. On failure,
/// says whether the branch was made (a branch `git branch` refused to make is not ours to
/// delete).
fn register(ctx: &Context, lock: &FileLock, m: &Marker) -> Result<(), (Error, bool)> {
    let mut attempt = 0;
    loop {
        let branch = match m.branch_created {
            true => {
                let mut branch = git::command(ctx.repo.git_dir());
                branch.args(["branch", "--quiet"]).arg(&m.branch).arg(&m.start_commit);
                git::output_under(&mut branch, lock).map(|_| ())
            }
            false => Ok(()),
        };
        let branch_made = m.branch_created && branch.is_ok();
        let made = branch.and_then(|()| {
            let mut add = git::command(ctx.repo.git_dir());
            add.args(["worktree", "add", "--no-checkout", "--quiet"]).arg(&m.path).arg(&m.branch);
            git::output_under(&mut add, lock).map(|_| ())
        });
        match made {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 5 && is_transient(&e.message) => {
                tracing::info!("retrying git worktree add for {}: {}", m.name, e.message);
                let undo = Marker { branch_created: branch_made, ..m.clone() };
                pending::roll_back(&ctx.repo, &undo, pending::By::Maker);
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(10 << attempt));
            }
            Err(e) => return Err((e, branch_made)),
        }
    }
}

/// Failures caused by a concurrent git process, not by the request.
fn is_transient(message: &str) -> bool {
    ["commondir", ".lock", "File exists", "cannot lock", "Unable to create"].iter().any(|s| message.contains(s))
}

/// Prints every finished record from `next` on, stopping at the first one still running.
fn emit_ready(done: &mut [Option<Record>], next: &mut usize, out: &mut Output) {
    while *next < done.len() {
        let Some(rec) = done[*next].take() else { break };
        out.emit(&rec);
        *next += 1;
    }
}

/// What `.worktreeinclude` selects in the main worktree (`None` for a bare repository).
type Includes = Option<Result<Vec<String>, Error>>;

fn finish_ready(ctx: &Context, includes: &Includes, mut rec: Record, entry: Option<Entry>) -> Record {
    // Stopped here by a test: planned under the worktree lock, not written yet.
    failpoint::hit("ready-planned");
    includes_into_adopted(ctx, includes, &rec);
    crate::share::into_adopted(ctx, &mut rec);
    crate::pool::claim::after(ctx, &mut rec);
    if let Some(entry) = entry {
        let name = rec.name.clone();
        if let Err(e) = ctx.ledger.update(|l| {
            // Only a worktree still there: one removed since the plan gets no entry back.
            if entry.path.join(".git").symlink_metadata().is_ok() {
                l.worktrees.entry(name).or_insert(entry);
            }
            Ok(())
        }) {
            rec.set_error(TOOL, &e);
        }
    }
    rec
}

/// An adopted worktree gets the `.worktreeinclude` files it lacks (one made by plain
/// `git worktree add`, or before the file listed them). Not copying them is no reason to refuse
/// the adoption: it is said on stderr instead.
fn includes_into_adopted(ctx: &Context, includes: &Includes, rec: &Record) {
    let (Some(source), Some(path)) = (ctx.repo.main_worktree.as_deref(), rec.path.as_deref()) else { return };
    if rec.has_error() || rec.created != Some(false) {
        return;
    }
    let copied = includes.as_ref().map(|selected| {
        let paths = selected.as_ref().map_err(Clone::clone)?;
        include::copy_missing(source, path, paths)
    });
    match copied {
        Some(Ok(n)) if n > 0 => eprintln!("wt-create: {}: copied {n} missing {} file(s)", rec.name, include::FILE_NAME),
        Some(Err(e)) => eprintln!("wt-create: {}: {}", rec.name, e.message),
        _ => {}
    }
}

/// Checks a registered worktree out and records it; on failure, rolls it back.
///
/// A checkout that runs alone has its ledger entry written and synced beside the ledger while
/// git checks the files out, and put in place by a rename once all is done: the `fsync` costs
/// no time of its own. One that runs beside others writes its entry once all is done
/// (`Checkouts`). Either way the entry shows only for a finished worktree. The marker goes after that,
/// so a marker whose worktree is in the ledger means a finished worktree (`pending::reap_dead`).
fn complete(ctx: &Context, nw: NewWorktree, includes: &Includes, checkouts: &Checkouts) -> Record {
    let NewWorktree { mut record, entry, pending } = nw;
    let name = record.name.clone();
    let made_by = pending.marker.id.clone().map(serde_json::Value::String);
    let record_entry = |l: &mut wt_common::ledger::Ledger| {
        let mut new = entry.clone();
        match l.worktrees.get(&name).cloned() {
            // Leases taken for this very worktree while it was being made (a post-checkout
            // hook that runs wt-env) stay with it: an older entry at this path was retired
            // before the worktree was begun (`plan_new`).
            Some(old) if old.path == new.path => {
                new.index = old.index;
                new.extra = old.extra;
            }
            // An entry left by a worktree of this name that is gone (its removal was
            // killed): its database holds that worktree's data, so it is kept, not handed to
            // this one.
            Some(old) => {
                wt_common::ledger::kept_db::keep(l, &name, &old);
            }
            None => {}
        }
        if let Some(id) = &made_by {
            new.extra.insert(crate::pending::MADE_BY.into(), id.clone());
        }
        l.worktrees.insert(name.clone(), new);
        Ok(())
    };
    let running = checkouts.start();
    let (staged, made) = checkout(ctx, &pending, includes, || {
        let staged = running.alone.then(|| ctx.ledger.stage(record_entry));
        // Killed here: during the checkout, with the entry staged or (beside other checkouts)
        // not yet written.
        failpoint::hit("ledger-staged");
        staged
    });
    let saved = made.and_then(|shared| {
        failpoint::hit("before-ledger");
        match staged {
            Some(Ok(staged)) => ctx.ledger.commit(staged, record_entry),
            // Not staged, or staging failed (it fails again, or was a passing fault).
            _ => ctx.ledger.update(record_entry),
        }
        .map(|()| shared)
    });
    match saved {
        Ok(shared) => {
            if let Some(shared) = shared {
                record.set_key("share", shared);
            }
            failpoint::hit("after-ledger");
            pending.finish();
        }
        Err(e) => {
            roll_back_locked(ctx, pending);
            record = Record::failed(&name, TOOL, &e);
        }
    }
    record
}

/// The checkouts of this run in progress. One that starts alone stages its ledger entry
/// during the checkout. One that starts beside others writes it at the end: another
/// checkout's entry would nearly always land between its stage and its commit, which must
/// then write the ledger again (`LedgerFile::commit`), so the staged write and its sync would
/// be wasted (`-n 8` synced the ledger 15 times, now 8).
#[derive(Debug, Default)]
struct Checkouts(std::sync::atomic::AtomicUsize);

impl Checkouts {
    fn start(&self) -> Running<'_> {
        let before = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Running { checkouts: self, alone: before == 0 }
    }
}

/// One checkout in progress, counted until dropped.
struct Running<'a> {
    checkouts: &'a Checkouts,
    alone: bool,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.checkouts.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn roll_back_locked(ctx: &Context, pending: Pending) {
    let _lock = ctx.worktree_lock();
    pending.roll_back(&ctx.repo);
}

/// Checks out (doing `meanwhile` while git does), runs the hook, copies `.worktreeinclude`
/// files and shares directories; returns what `meanwhile` returned, and what was shared, for
/// the record.
fn checkout<T>(
    ctx: &Context,
    pending: &Pending,
    includes: &Includes,
    meanwhile: impl FnOnce() -> T,
) -> (T, Result<Option<serde_json::Value>, Error>) {
    let m = &pending.marker;
    let mut reset = git::command(&m.path);
    reset.args(["reset", "--hard", "--no-recurse-submodules", "--quiet"]);
    let (done, reset) = git::output_under_while(&mut reset, pending.lock(), meanwhile);
    let rest = || {
        reset?;
        failpoint::hit("after-checkout");
        // git runs post-checkout after `worktree add`; since we checked out ourselves, so do we.
        ctx.repo.run_post_checkout_hook(&m.path, &m.start_commit)?;
        if let (Some(source), Some(selected)) = (ctx.repo.main_worktree.as_deref(), includes) {
            let paths = selected.as_ref().map_err(Clone::clone)?;
            include::copy(source, &m.path, paths)?;
        }
        failpoint::hit("after-include");
        ctx.share.as_ref().map(|s| s.share_into(&m.name, &m.path)).transpose()
    };
    (done, rest())
}

fn branch_shown(wt: &GitWorktree) -> &str {
    wt.branch.as_deref().unwrap_or("a detached HEAD")
}
