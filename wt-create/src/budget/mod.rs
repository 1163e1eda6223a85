//! `--gc`: keeps wt's worktrees within the disk budget the person sets (`limits`), reclaiming
//! from the least recently used worktrees first (`used`): first their build directories
//! (`target/`, `node_modules`, … that git ignores and holds no tracked file in: rebuildable),
//! then, only with `--remove-idle`, whole worktrees idle past `max_age`, through `--remove`'s
//! own path and checks. It stops once the budget holds.
//!
//! Never touched: a worktree in use (`busy`: a live pane, a process running in it, a port of its
//! lease listened on), one with uncommitted work, one whose branch has commits neither merged
//! into its base nor pushed, one whose git files do not agree with its registration. Their
//! build directories stay too: a build dir may be what a running build writes, and an agent in
//! the middle of its work should not find its `node_modules` gone. A whole worktree is kept too
//! when a file git ignores there may be work (`ignored`: a `.env`, a `dev.sqlite3`).
//!
//! Nothing is removed without `--yes`: without it, anywhere (a terminal or a pipe), `--gc`
//! says what it would reclaim, and how to do it. `wt-create` itself, when a budget is set,
//! reclaims build directories after creating (never whole worktrees), saying so on stderr
//! only: its stdout is the created worktrees' records.
//!
//! Record (one per worktree reclaimed from, or kept while over budget), key `gc`:
//! ```json
//! "gc": {"action": "reclaimed", "bytes": 1048576, "idle_secs": 86400,
//!        "dirs": [{"dir": "target", "bytes": 1048576, "full_bytes": 1048576, "shared": false,
//!                  "restore": "cargo build (or the project's build)"}]}
//! "gc": {"action": "kept", "why": "2 uncommitted changes (a, b)", "idle_secs": 86400}
//! ```
//! `action`: `reclaimed` / `would_reclaim` (build dirs), `removed` / `would_remove` (the whole
//! worktree, with `--remove-idle`), `kept` (with `why`).

pub mod busy;
pub mod ignored;
pub mod limits;
pub mod trash;
pub mod used;

use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use wt_common::git::build_dirs;
use wt_common::git::worktree_cost::{self, WorktreeCost};
use wt_common::record::output::Output;
use wt_common::record::size::human;
use wt_common::{git, Error, Record};

use crate::context::Context;
use crate::create::Want;
use limits::Budget;

/// How `--gc` runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Opts {
    pub budget: Budget,
    /// `--yes`: remove; otherwise only say what would go.
    pub act: bool,
    pub remove_idle: bool,
    /// Run by `wt-create` after a create: no records on stdout, a line on stderr.
    pub after_create: bool,
}

/// The names of build directories: the defaults and `[create] build_dirs`.
pub fn build_names(ctx: &Context) -> Result<Vec<String>, Error> {
    build_dirs::names(ctx.config.build_dirs.as_deref().unwrap_or_default())
}

/// A worktree as `--gc` weighs it.
struct Candidate {
    wt: WorktreeCost,
    idle: Duration,
}

impl Candidate {
    fn idle_past(&self, budget: &Budget) -> bool {
        budget.max_age.is_some_and(|age| self.idle > age)
    }
}

pub fn run(ctx: &Context, opts: Opts, out: &mut Output) -> Result<(), Error> {
    if !opts.budget.is_set() {
        return Err(Error::usage(
            "no-budget",
            "no disk budget: set [create] budget = { max_size = \"50G\", max_age = \"7d\" } in wt.toml, or pass --max-size / --max-age / --max-count",
        ));
    }
    let state = ctx.repo.ensure_state_dir()?;
    let _lock =
        wt_common::proc::lock::FileLock::acquire(&state.join("gc.lock"), wt_common::proc::lock::default_timeout())?;
    // Made only to remove: a look (no --yes) changes nothing on disk.
    let mut trash = match opts.act && ctx.root.is_dir() {
        true => Some(trash::Trash::open(&ctx.root).map_err(|e| Error::io(ctx.root.join(trash::DIR).display(), e))?),
        false => None,
    };
    let ledger = ctx.ledger.read()?;
    let measured = worktree_cost::measure(&ctx.repo, &ledger, &build_names(ctx)?, Some(&ctx.root))?;
    let before = measured.total();
    let measured_pool = (measured.pooled, measured.pool);
    let now = SystemTime::now();
    let mut lru: Vec<Candidate> = measured
        .worktrees
        .into_iter()
        .map(|wt| {
            let admin = wt.registered.as_ref().map(|r| r.admin_dir.clone());
            let used = used::last_used(&state, &wt.name, admin.as_deref());
            Candidate { idle: now.duration_since(used).unwrap_or_default(), wt }
        })
        .collect();
    lru.sort_by(|a, b| b.idle.cmp(&a.idle).then_with(|| a.wt.name.cmp(&b.wt.name)));
    let busy = busy::Busy::scan();
    let budget = opts.budget;
    let mut total = before;
    let mut count = lru.len();
    let (mut reclaimed, mut touched, mut unlinked_shared) = (0u64, 0usize, false);
    // One record per worktree touched (by its place in `lru`), emitted at the end in that order.
    let mut records: Vec<Option<Record>> = lru.iter().map(|_| None).collect();
    let mut freed: Vec<u64> = lru.iter().map(|_| 0).collect();

    // Build directories, least recently used first. Whether a worktree may be touched (git
    // status and the like, tens of ms each) is asked of a batch at once, on every core: of
    // those the budget could still reach (it only comes closer to holding as the loop goes).
    let batch = (wt_common::proc::parallel::cores() * 2).max(4);
    let mut checked: Vec<Option<Option<String>>> = lru.iter().map(|_| None).collect();
    // A dir mostly shared (a `node_modules` hard-linked from the store) frees next to nothing:
    // the size alone does not take it from a worktree in use lately. One idle past max_age
    // loses it still (its links then let --store-gc free files).
    let worth = |c: &Candidate, d: &wt_common::fs::disk_usage::BuildDir| {
        d.full > 0 && (c.idle_past(&budget) || !frees_next_to_nothing(d.bytes, d.full))
    };
    let has_dirs = |c: &Candidate| c.wt.cost.build_dirs.iter().any(|d| worth(c, d));
    for (i, c) in lru.iter().enumerate() {
        let over_size = budget.max_size.is_some_and(|max| total > max);
        if !over_size && !c.idle_past(&budget) {
            // The size holds, and every later one was used more recently than this one: none
            // is idle past max_age either.
            break;
        }
        if !has_dirs(c) {
            if let Some(why) = &c.wt.unconfirmed {
                records[i] = Some(kept_record(ctx, c, why));
            }
            continue;
        }
        if checked[i].is_none() {
            let ahead: Vec<usize> = (i..lru.len())
                .filter(|&j| has_dirs(&lru[j]) && (over_size || lru[j].idle_past(&budget)))
                .take(batch)
                .collect();
            let found = wt_common::proc::parallel::map(&ahead, batch, |&j| protected(ctx, &busy, &ledger, &lru[j]));
            for (j, why) in ahead.into_iter().zip(found) {
                checked[j] = Some(why);
            }
        }
        let dirs: Vec<_> = c.wt.cost.build_dirs.iter().filter(|d| worth(c, d)).collect();
        if let Some(why) = checked[i].take().flatten() {
            records[i] = Some(kept_record(ctx, c, &why));
            continue;
        }
        let mut listed = Vec::new();
        let mut bytes = 0;
        // Set when the worktree turned out in use meanwhile: its other dirs stay.
        let mut in_use: Option<String> = None;
        for d in dirs {
            let shared = c.wt.shared.iter().any(|s| s == &d.rel);
            let mut item = json!({"dir": d.rel, "bytes": d.bytes, "full_bytes": d.full, "shared": shared,
                                  "restore": build_dirs::how_to_rebuild(&c.wt.name, &d.rel, shared)});
            if opts.act {
                if let Some(why) = &in_use {
                    item["error"] = json!(format!("not removed: {why}"));
                    listed.push(item);
                    continue;
                }
                wt_common::proc::failpoint::hit("gc-before-move");
                let label = format!("{}.{}", c.wt.name, d.rel.display());
                // Asked again just before the move: a build or an agent may have started in it
                // since the look at the start, or work been made.
                let still = || protected(ctx, &busy::Busy::scan(), &ledger, c);
                let done = match trash.as_mut() {
                    Some(t) => t.remove(&c.wt.worktree.path, &label, &d.rel, still),
                    None => Err(std::io::Error::other("no trash directory")),
                };
                match done {
                    Ok(trash::Outcome::Removed) => {}
                    Ok(trash::Outcome::InUse(why)) => {
                        item["error"] = json!(format!("not removed: {why}"));
                        listed.push(item);
                        in_use = Some(why);
                        continue;
                    }
                    Err(e) => {
                        item["error"] = json!(format!("not removed: {e}"));
                        listed.push(item);
                        continue;
                    }
                }
                unlinked_shared |= shared;
            }
            bytes += d.bytes;
            listed.push(item);
        }
        if let (0, Some(why)) = (bytes, &in_use) {
            records[i] = Some(kept_record(ctx, c, why));
            continue;
        }
        total = total.saturating_sub(bytes);
        reclaimed += bytes;
        freed[i] = bytes;
        touched += 1;
        let mut rec = record_of(ctx, c);
        rec.set_key(
            "gc",
            json!({"action": if opts.act { "reclaimed" } else { "would_reclaim" }, "bytes": bytes,
                   "idle_secs": c.idle.as_secs(), "dirs": listed}),
        );
        records[i] = Some(rec);
    }

    // Whole idle worktrees, least recently used first, through `--remove`'s checks.
    let mut removed = 0usize;
    if opts.remove_idle && !opts.after_create {
        for (i, c) in lru.iter().enumerate() {
            // Idle past max_age; or, while there are more than max_count, the least recently
            // used (with or without max_age).
            let over_count = budget.max_count.is_some_and(|max| count > max);
            if !over_count && !c.idle_past(&budget) {
                continue;
            }
            // Looked at afresh: the build-dir pass may have taken a while.
            if let Some(why) = protected(ctx, &busy::Busy::scan(), &ledger, c) {
                records[i] = Some(kept_record(ctx, c, &why));
                continue;
            }
            // `git status` lists no ignored file; a `.env` or a `dev.sqlite3` may be work.
            if let Some(why) = ignored_work(ctx, &state, c) {
                keep(ctx, &mut records[i], c, &why);
                continue;
            }
            let restore = restore_of(ctx, ledger.worktrees.get(&c.wt.name), c);
            let how = crate::remove::How { check_only: !opts.act, pushed_is_kept: true, ..Default::default() };
            match crate::remove::remove_one(ctx, &Want::Name(c.wt.name.clone()), how) {
                Ok(mut rec) => {
                    // What its build dirs freed is counted already.
                    let bytes = c.wt.cost.total().saturating_sub(freed[i]);
                    let dirs = records[i].as_ref().and_then(|r| r.key("gc")).map(|g| g["dirs"].clone());
                    rec.set_key(
                        "gc",
                        json!({"action": if opts.act { "removed" } else { "would_remove" },
                               "bytes": bytes + freed[i], "idle_secs": c.idle.as_secs(),
                               "dirs": dirs.unwrap_or_else(|| json!([])),
                               "restore": restore}),
                    );
                    total = total.saturating_sub(bytes);
                    reclaimed += bytes;
                    count -= 1;
                    removed += 1;
                    records[i] = Some(rec);
                }
                // `--remove`'s own checks refused (a pane started meanwhile, say): its record
                // of what was reclaimed stays, with why it was kept.
                Err((_, e)) => keep(ctx, &mut records[i], c, &e.message),
            }
        }
    }
    if !opts.after_create {
        for rec in records.into_iter().flatten() {
            out.emit(&rec);
        }
    }
    if opts.act && unlinked_shared {
        // What only the removed shared dirs linked to goes from the store too.
        crate::share::gc::run(ctx)?;
    }
    if let Some(t) = trash {
        // Only when empty: `--purge` removes the worktrees' root when nothing is left in it.
        let _ = std::fs::remove_dir(t.path());
    }
    let pool = (measured_pool.0 > 0).then_some(measured_pool);
    summary(&opts, before, total, reclaimed, touched, removed, pool);
    Ok(())
}

/// Whether removing a dir of `full` bytes, `own` of them its own (not linked from elsewhere),
/// frees next to nothing: under 1% of it, or under 1 MiB and under half of it.
fn frees_next_to_nothing(own: u64, full: u64) -> bool {
    own.saturating_mul(100) < full || (own < 1 << 20 && own.saturating_mul(2) < full)
}

/// Why a worktree is never reclaimed from, or `None`.
fn protected(ctx: &Context, busy: &busy::Busy, ledger: &wt_common::ledger::Ledger, c: &Candidate) -> Option<String> {
    let Some(reg) = &c.wt.registered else {
        return Some("its git files do not agree with its registration; not checked".into());
    };
    let entry = ledger.worktrees.get(&c.wt.name);
    if let Some(why) = busy.why(&ctx.repo, &c.wt.worktree.path, entry) {
        return Some(why);
    }
    match git::checkout_state::changed_paths(reg) {
        Ok(paths) if !paths.is_empty() => return Some(git::checkout_state::changes_named(&paths)),
        Ok(_) => {}
        Err(e) => return Some(format!("cannot tell whether it has uncommitted work: {}", e.message)),
    }
    // Its branch's tip as well as HEAD: with HEAD detached elsewhere, the branch still holds
    // the work.
    let tips = tips_of(entry, c);
    if tips.is_empty() {
        return None;
    }
    // Its base as the ledger has it (checked when it was made); where that is gone, HEAD of
    // the main worktree, as `--remove` judges. One git process in the usual case.
    let count = |base: &str| {
        let mut args = vec!["rev-list", "--count", "--ignore-missing"];
        args.extend(tips.iter().map(String::as_str));
        args.extend(["--not", base, "--remotes"]);
        git::run(ctx.repo.git_dir(), &args)
    };
    let named = entry.and_then(|e| e.base.as_deref().or(e.base_commit.as_deref())).filter(|b| !b.starts_with('-'));
    let (base, ahead) = match named.map(|b| (b, count(b))) {
        Some((b, Ok(n))) => (b, Ok(n)),
        _ => ("HEAD", count("HEAD")),
    };
    match ahead.as_deref().map(str::trim) {
        Ok("0") => None,
        Ok(n) => Some(format!("{n} commit(s) neither merged into {base} nor pushed")),
        Err(e) => Some(format!("cannot tell whether its commits are merged: {}", e.message)),
    }
}

/// Keeps `c` whole: its record says why, beside what was reclaimed from its build dirs.
fn keep(ctx: &Context, record: &mut Option<Record>, c: &Candidate, why: &str) {
    let rec = record.get_or_insert_with(|| kept_record(ctx, c, why));
    if let Some(gc) = rec.key("gc").cloned().filter(|g| g["action"] != "kept") {
        let mut gc = gc;
        gc["kept_because"] = json!(why);
        rec.set_key("gc", gc);
    }
}

/// Why the ignored files of `c` keep it whole (`ignored`), or `None`.
fn ignored_work(ctx: &Context, state: &std::path::Path, c: &Candidate) -> Option<String> {
    let reg = c.wt.registered.as_ref()?;
    let builds: Vec<std::path::PathBuf> = c.wt.cost.build_dirs.iter().map(|d| d.rel.clone()).collect();
    let mut wt_files = wt_common::ledger::secret_files::read(state);
    wt_files.push(".env.wt".into());
    match ignored::work(reg, &builds, &wt_files, ctx.repo.main_worktree.as_deref()) {
        Ok(work) if work.is_empty() => None,
        Ok(work) => Some(format!(
            "ignored files that may be work (git status does not list them): {}; move them out or delete them, and the next --gc --remove-idle removes it",
            ignored::named(&work)
        )),
        Err(e) => Some(format!("cannot tell whether its ignored files are work: {}", e.message)),
    }
}

/// How to get a worktree removed by `--remove-idle` back: from the base when its commits are
/// merged; from the remote-tracking branch that holds them when they are only pushed.
fn restore_of(ctx: &Context, entry: Option<&wt_common::ledger::Entry>, c: &Candidate) -> String {
    let name = &c.wt.name;
    let from_base = format!(
        "nothing of its work is lost (it was clean, its commits merged): `wt-create {name}` makes it again from the base"
    );
    let tips = tips_of(entry, c);
    let Some(tip) = tips.first() else { return from_base };
    let base = entry.and_then(|e| e.base.as_deref().or(e.base_commit.as_deref())).filter(|b| !b.starts_with('-'));
    let mut args = vec!["rev-list", "--count", "--ignore-missing"];
    args.extend(tips.iter().map(String::as_str));
    args.extend(["--not", base.unwrap_or("HEAD")]);
    if git::run(ctx.repo.git_dir(), &args).is_ok_and(|n| n.trim() == "0") {
        return from_base;
    }
    let holder = git::run(
        ctx.repo.git_dir(),
        ["for-each-ref", "--contains", tip.as_str(), "--format=%(refname:short)", "refs/remotes"],
    )
    .ok()
    .and_then(|out| out.lines().next().map(str::to_string));
    let branch = entry.and_then(|e| e.branch.clone()).unwrap_or_else(|| format!("wt/{name}"));
    match holder {
        Some(r) => format!(
            "its commits are pushed to {r}, not merged: `git switch -c {branch} {r}` (in a new worktree) gets them back"
        ),
        None => format!("its commits were pushed, not merged: find them on the remote; `wt-create {name}` makes it again from the base"),
    }
}

/// The commits whose work a worktree holds: its branch's tip (as the ledger names the branch),
/// and its HEAD, which may be detached from it.
fn tips_of(entry: Option<&wt_common::ledger::Entry>, c: &Candidate) -> Vec<String> {
    let mut tips = Vec::new();
    if let Some(b) = entry.and_then(|e| e.branch.as_deref()).filter(|b| !b.starts_with('-')) {
        tips.push(format!("refs/heads/{b}"));
    }
    tips.extend(c.wt.worktree.head.clone());
    tips
}

fn record_of(ctx: &Context, c: &Candidate) -> Record {
    let ledger = ctx.ledger.read().ok();
    let entry = ledger.as_ref().and_then(|l| l.worktrees.get(&c.wt.name));
    ctx.record(&c.wt.name, &c.wt.worktree, entry)
}

fn kept_record(ctx: &Context, c: &Candidate, why: &str) -> Record {
    let mut rec = record_of(ctx, c);
    rec.set_key("gc", json!({"action": "kept", "why": why, "idle_secs": c.idle.as_secs()}));
    rec
}

fn summary(
    opts: &Opts,
    before: u64,
    after: u64,
    reclaimed: u64,
    touched: usize,
    removed: usize,
    pool: Option<(usize, u64)>,
) {
    let limit = opts.budget.max_size.map(|m| format!(" (budget {})", human(m))).unwrap_or_default();
    let mut line = format!("wt-create: gc: wt's worktrees take {}{limit}", human(before));
    let whole = if removed > 0 { format!(" and {removed} whole worktree(s)") } else { String::new() };
    if opts.act {
        line.push_str(&format!(
            "; reclaimed {} from {touched} worktree(s)' build dirs{whole}; now {}",
            human(reclaimed),
            human(after)
        ));
    } else if touched + removed > 0 {
        line.push_str(&format!(
            "; would reclaim {} from {touched} worktree(s)' build dirs{whole}; run `wt-create --gc --yes{}` to do it",
            human(reclaimed),
            if opts.remove_idle { " --remove-idle" } else { "" }
        ));
    } else {
        line.push_str("; nothing to reclaim");
    }
    if let Some(max) = opts.budget.max_size.filter(|max| after > *max) {
        line.push_str(&format!(
            "; the budget cannot be met ({} over): what is left is checkouts, work, in use, or frees nothing (shared)",
            human(after - max)
        ));
        if let Some((n, bytes)) = pool {
            // Counted, never reclaimed here: the pool is as big as `--pool N` asked.
            line.push_str(&format!(
                "; the pool's {n} warm worktree(s) take {} of it (`wt-create --pool 0` frees them)",
                human(bytes)
            ));
        }
    }
    if opts.after_create && touched == 0 {
        return;
    }
    eprintln!("{line}");
}

/// A `gc` key as a table cell: `would reclaim 1.2 GiB (target, node_modules)`, `kept: …`.
pub fn text(gc: &Value) -> String {
    let bytes = human(gc["bytes"].as_u64().unwrap_or_default());
    let dirs: Vec<String> = gc["dirs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| d["dir"].as_str().unwrap_or_default().to_string())
        .collect();
    match gc["action"].as_str().unwrap_or_default() {
        "kept" => format!("kept: {}", gc["why"].as_str().unwrap_or_default()),
        "removed" => format!("removed ({bytes})"),
        "would_remove" => format!("would remove ({bytes})"),
        action => format!("{} {bytes} ({})", action.replace('_', " "), dirs.join(", ")),
    }
}
