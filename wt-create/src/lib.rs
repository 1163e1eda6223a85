//! wt-create: creates, adopts, lists and removes git worktrees for parallel coding agents.
//!
//! The library holds the logic; `main.rs` only parses the command line and maps the outcome to
//! an exit code. See `create` for how worktrees are made safely under concurrency, and
//! `pending` for how a killed run is rolled back.

pub mod args;
pub mod budget;
pub mod context;
pub mod create;
pub mod include;
pub mod list;
pub mod pending;
pub mod pool;
pub mod purge;
pub mod remote;
pub mod remove;
pub mod share;

use wt_common::host::Router;
use wt_common::record::cli::stdin_records;
use wt_common::record::jsonl::Input;
use wt_common::record::output::{core_columns, status_or_error, Column, Output};
use wt_common::{ledger::name, Error, Exit, Record};

use crate::args::Args;
use crate::context::{Context, TOOL};
use crate::create::{Request, Want};

/// Runs wt-create with parsed arguments; `Ok` carries the exit status of a completed run.
pub fn run(args: Args) -> Result<Exit, Error> {
    wt_common::record::cli::init_logging(args.global.verbose)?;
    for word in &args.names {
        match Want::parse(word) {
            Want::Name(n) => name::validate(&n).and_then(|()| pool::check_name(&n))?,
            Want::Path(p) if !p.exists() && !name::written_as_path(word) => {
                return Err(name::slash_refused(word).with_kind(wt_common::ErrorKind::Usage))
            }
            Want::Path(_) => {}
        }
    }
    let mut ctx = Context::new(&args)?;
    let mut out = Output::new(TOOL, args.global.json, columns());
    if let Some(host) = args.global.host.clone() {
        let exit = remote::create_at(&ctx, &args, &host, &mut out)?;
        return Ok(exit.worst(out.finish()));
    }
    if args.list {
        list::run(
            &ctx,
            args.all_git,
            args.status,
            args.jobs.unwrap_or_else(wt_common::proc::parallel::cores),
            &mut out,
        )?;
        return Ok(out.finish());
    }
    if args.share_status {
        share::status::run(&ctx, &mut out)?;
        return Ok(out.finish());
    }
    if args.store_gc {
        share::gc::run(&ctx)?;
        return Ok(out.finish());
    }
    if args.yes && !args.purge && !args.gc {
        return Err(Error::usage("yes-without-action", "--yes goes with --purge or --gc (see --help)"));
    }
    if args.gc {
        let opts = budget::Opts {
            budget: budget_of(&ctx, &args)?,
            act: args.yes,
            remove_idle: args.remove_idle,
            after_create: false,
        };
        budget::run(&ctx, opts, &mut out)?;
        return Ok(out.finish());
    }
    if args.pool.is_some() || args.pool_refill {
        return pool_run(&mut ctx, &args, out);
    }
    if args.purge {
        purge::run(&ctx, args.force, args.yes, &mut out)?;
        return Ok(out.finish());
    }
    let mut wants: Vec<Want> = args.names.iter().map(|w| Want::parse(w)).collect();
    let mut hosts = Router::local();
    if args.all {
        wants = ctx.ledger.read()?.worktrees.keys().map(|n| Want::Name(n.clone())).collect();
    } else if wants.is_empty() && args.count.is_none() {
        // Records with `host` go to wt-create at their host; the rest are read here.
        hosts = Router::split_stdin(TOOL, ctx.repo.main_worktree.as_deref())?;
        wants = read_stdin(&ctx, args.remove, &mut out);
    }
    if args.remove {
        if wants.is_empty() && out_is_idle() && !args.all {
            return Err(wt_common::record::cli::nothing_selected());
        }
        remove::run(&ctx, &wants, args.force, &mut out)?;
    } else {
        let prefix = args.prefix.clone().or_else(|| ctx.config.prefix.clone()).unwrap_or_else(|| "agent".into());
        name::validate(&format!("{prefix}-1"))
            .map_err(|e| Error::usage("invalid-prefix", format!("invalid --prefix: {e}")))?;
        if wants.is_empty() && args.count.is_none() && out_is_idle() {
            return Err(Error::usage(
                "nothing-to-do",
                "nothing to do: give names, -n N, or records on stdin (see --help)",
            ));
        }
        ctx.share = sharing(&ctx, &args)?;
        let req = Request { wants, count: args.count.unwrap_or(0), prefix, base: args.base.clone(), jobs: args.jobs };
        create::run(&mut ctx, &req, &mut out)?;
        let budget = budget_of(&ctx, &args)?;
        if budget.is_set() {
            // Build dirs only, never whole worktrees; said on stderr (stdout is the new records).
            let opts = budget::Opts { budget, act: true, remove_idle: false, after_create: true };
            if let Err(e) = budget::run(&ctx, opts, &mut out) {
                eprintln!("wt-create: gc after create: {}", e.message);
            }
        }
    }
    Ok(hosts.finish(out.finish()))
}

/// `--pool N` (records the size and fills the pool now), or the background refill.
fn pool_run(ctx: &mut Context, args: &Args, mut out: Output) -> Result<Exit, Error> {
    let base = ctx.base(args.base.as_deref())?;
    let target = pool::Targets::read(ctx).0.get(&base.name).cloned().unwrap_or_default();
    let words = match (&args.share, args.pool_refill) {
        (flags, false) if !flags.is_empty() => flags.clone(),
        _ => target.share.clone(),
    };
    let mode = args.share_mode.map(|m| format!("{m:?}").to_lowercase()).or(target.share_mode.clone());
    ctx.share = match words.is_empty() {
        true => sharing(ctx, args)?,
        false => {
            let mode = mode.as_deref().and_then(|m| <share::ShareMode as clap::ValueEnum>::from_str(m, true).ok());
            share::Sharing::new(&ctx.repo, &words, share::Origin::Flag, mode.unwrap_or(share::ShareMode::Auto))?
        }
    };
    match args.pool {
        Some(0) if args.base.is_none() => pool::fill::drain_all(ctx, &mut out)?,
        Some(size) => pool::fill::set_and_fill(ctx, size, Some(&base.name), &words, mode, &mut out)?,
        None => pool::fill::refill(ctx, Some(&base.name), &mut out)?,
    }
    Ok(out.finish())
}

/// `--share` (or else `[create] share`), checked before anything is made.
fn sharing(ctx: &Context, args: &Args) -> Result<Option<share::Sharing>, Error> {
    let mode = args.share_mode.or(ctx.config.share_mode).unwrap_or(share::ShareMode::Auto);
    match (&args.share, &ctx.config.share) {
        (flags, _) if !flags.is_empty() => share::Sharing::new(&ctx.repo, flags, share::Origin::Flag, mode),
        (_, Some(words)) => share::Sharing::new(&ctx.repo, words, share::Origin::Config, mode),
        _ => Ok(None),
    }
}

/// `[create] budget`, with `--max-size`, `--max-age` and `--max-count` over it.
fn budget_of(ctx: &Context, args: &Args) -> Result<budget::limits::Budget, Error> {
    let config = match &ctx.config.budget {
        Some(c) => budget::limits::Budget::from_config(c)?,
        None => budget::limits::Budget::default(),
    };
    Ok(config.over(budget::limits::Budget {
        max_size: args.max_size,
        max_age: args.max_age,
        max_count: args.max_count,
    }))
}

/// No names on the command line and stdin is a terminal: the user typed a bare `wt-create`.
fn out_is_idle() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}

/// Names, paths and records from stdin. Records that carry an error pass through untouched.
/// A record to remove must name a worktree of this repository by its own name and path
/// (`select::admit`): a record is untrusted input.
fn read_stdin(ctx: &Context, remove: bool, out: &mut Output) -> Vec<Want> {
    let ledger = if remove { ctx.ledger.read().ok() } else { None };
    let mut wants = Vec::new();
    let Some(mut reader) = stdin_records() else { return wants };
    while let Some(input) = reader.next() {
        match input {
            Ok(Input::Word(w)) => wants.push(Want::parse(&w)),
            Ok(Input::Record(rec)) if rec.has_error() => out.emit(&rec),
            Ok(Input::Record(mut rec)) if ledger.is_some() && rec.path.is_some() => {
                let ledger = ledger.as_ref().expect("checked");
                match wt_common::record::select::admit(&ctx.repo, ledger, &mut rec) {
                    Ok(_) if ledger.worktrees.contains_key(&rec.name) => wants.push(Want::Name(rec.name.clone())),
                    Ok(_) => wants.push(Want::Path(rec.path.clone().unwrap_or_default())),
                    Err(e) => out.emit(&Record::failed(&rec.name, TOOL, &e)),
                }
            }
            Ok(Input::Record(rec)) => match (&rec.path, rec.name.is_empty()) {
                (_, false) => wants.push(Want::Name(rec.name.clone())),
                (Some(p), true) => wants.push(Want::Path(p.clone())),
                (None, true) => out.malformed(&wt_common::record::jsonl::Malformed {
                    line: reader.line(),
                    message: "record has neither name nor path".into(),
                }),
            },
            Err(m) => out.malformed(&m),
        }
    }
    wants
}

fn columns() -> Vec<Column> {
    let mut cols = core_columns();
    cols.push(Column {
        title: "STATUS",
        value: |r| {
            let ok = match (r.removed, r.created, r.key("status")) {
                (Some(true), _, _) => "removed".to_string(),
                (_, Some(true), _) if r.key("claimed").is_some() => "claimed".to_string(),
                (_, Some(true), _) => "created".to_string(),
                _ if r.key("pooled").is_some() => "pooled".to_string(),
                (_, Some(false), _) => "adopted".to_string(),
                (_, _, Some(status)) => wt_common::git::checkout_state::text(status),
                _ if r.key("gc").is_some() => budget::text(r.key("gc").expect("checked")),
                _ => String::new(),
            };
            status_or_error(r, &ok)
        },
    });
    cols
}
