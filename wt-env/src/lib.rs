//! wt-env: a stable index, a block of free ports and a database per worktree, and the env
//! file that carries them. See `lease` for how leases are kept, `ports` for how a port is
//! judged free, `database` for PostgreSQL and SQLite.

pub mod args;
pub mod database;
pub mod envfile;
pub mod grant;
pub mod lease;
pub mod manage;
pub mod pg_role;
pub mod ports;
pub mod rust_cache;

use std::io::Write;

use serde_json::Value;
use wt_common::git::repo::Repo;
use wt_common::host::{self, Router};
use wt_common::ledger::LedgerFile;
use wt_common::record::output::{core_columns, status_or_error, Column, Output};
use wt_common::{config, Error, Exit, Record};

use crate::args::{Args, Config};
use crate::database::DbSpec;
use crate::grant::Plan;
use crate::lease::PortRequest;
use crate::ports::PortRange;
use wt_common::record::select::{self, Target};

pub const TOOL: &str = "wt-env";

pub fn run(args: Args) -> Result<Exit, Error> {
    wt_common::record::cli::init_logging(args.global.verbose)?;
    let repo = Repo::discover(&args.global.start_dir())?;
    let root = repo.main_worktree.as_deref();
    if let Some(host) = &args.global.host {
        host::quote::check_names(&args.names)?;
        host::quote::check_names(&args.select.worktrees)?;
        if args.export {
            return Ok(match host::remote::exec_raw(root, host, TOOL, false)? {
                0 => Exit::Ok,
                _ => Exit::Failed,
            });
        }
        let stdin = args.names.is_empty() && args.select.from_stdin() && !args.list && !args.gc;
        let forwarded = wt_common::host::router::forwarded_args();
        return Ok(Router::at_host(TOOL, root, host, forwarded, stdin)?.finish(Exit::Ok));
    }
    let config: Config = config::section(repo.main_worktree.as_deref(), "env")?;
    let ledger = LedgerFile::new(&repo.state_dir());
    let mut out = Output::new(TOOL, args.global.json || args.export, columns());
    if args.list && args.machine {
        manage::list_machine(&repo, &ledger, &mut out)?;
        return Ok(out.finish());
    }
    if args.list && args.kept {
        let mut out = Output::new(TOOL, args.global.json, kept_columns());
        manage::list_kept(&repo, &ledger, &mut out)?;
        return Ok(out.finish());
    }
    if args.drop_kept {
        let mut out = Output::new(TOOL, args.global.json, kept_columns());
        let mut names = args.names.clone();
        names.extend(args.select.worktrees.iter().cloned());
        manage::drop_kept_named(&repo, &ledger, &names, &mut out)?;
        return Ok(out.finish());
    }
    if args.list {
        manage::list(&repo, &ledger, &mut out)?;
        return Ok(out.finish());
    }
    if args.gc {
        manage::gc(&repo, &ledger, args.drop_database, &mut out)?;
        return Ok(out.finish());
    }
    if args.drop_database && !args.release {
        return Err(Error::usage("usage", "--drop-database goes with --release or --gc"));
    }
    args.select.require_some(&args.names)?;
    let plan = if args.release { None } else { Some(plan(&args, &config)?) };
    let snapshot = ledger.read()?;
    let mut words = args.names.clone();
    words.extend(args.select.worktrees.iter().cloned());
    if args.release && args.drop_database {
        // A removed worktree is no longer managed, but the databases kept from it can still
        // be dropped by its name.
        let kept = wt_common::ledger::kept_db::all(&snapshot);
        let (gone, managed): (Vec<String>, Vec<String>) = words
            .into_iter()
            .partition(|w| !snapshot.worktrees.contains_key(w) && kept.values().any(|k| &k.worktree == w));
        words = managed;
        for name in gone {
            let mut rec = Record::named(&name);
            rec.repo = Some(repo.root().to_path_buf());
            out.emit(&manage::release(&repo, &ledger, rec, true, false));
        }
        if words.is_empty() && (!args.names.is_empty() || !args.select.worktrees.is_empty()) {
            return Ok(out.finish());
        }
    }
    let use_stdin = words.is_empty() && !args.select.all;
    // Leases of a worktree at a host are granted there, by wt-env at that host.
    let hosts = if use_stdin { Router::split_stdin(TOOL, root)? } else { Router::local() };
    let targets = select::collect(TOOL, &repo, &snapshot, &words, args.select.all, use_stdin, &mut out);
    if args.export && targets.len() != 1 {
        return Err(Error::usage(
            "export-one",
            format!("--export prints one worktree's env, but {} were given", targets.len()),
        ));
    }
    for t in targets {
        let rec = match (t, &plan) {
            (Target::PassThrough(r), _) => *r,
            (Target::Worktree(r), None) => manage::release(&repo, &ledger, *r, args.drop_database, false),
            (Target::Worktree(r), Some(plan)) => grant::grant(&repo, &ledger, plan, *r),
        };
        if args.export {
            export(&rec, &mut out);
        } else {
            out.emit(&rec);
        }
        if out.closed() {
            break;
        }
    }
    Ok(hosts.finish(out.finish()))
}

fn plan(args: &Args, config: &Config) -> Result<Plan, Error> {
    let size = args.block.or(config.block).unwrap_or(10);
    if size == 0 || size > 1000 {
        return Err(Error::usage("bad-block", "--block must be 1 to 1000"));
    }
    let range = match args.range.as_deref().or(config.range.as_deref()) {
        Some(r) => PortRange::parse(r)?,
        None => PortRange::default_for_this_machine(),
    };
    if u32::from(size) > range.count() {
        return Err(Error::usage(
            "range-too-small",
            format!(
                "--range {} has {} ports, fewer than a block of {size}; widen --range or lower --block",
                range.show(),
                range.count()
            ),
        ));
    }
    let names = args.ports.clone().or_else(|| config.ports.clone());
    if let Some(n) = &names {
        envfile::validate_port_names(n, size)?;
    }
    let database = args.database.as_deref().or(config.database.as_deref()).map(DbSpec::parse).transpose()?;
    let dotenv = args.dotenv.clone().or_else(|| config.dotenv.clone());
    let brief = args.brief.clone().or_else(|| config.brief.clone());
    if let Some(p) = &dotenv {
        wt_common::fs::inside::check_relative(p, "--dotenv")?;
    }
    if let Some(p) = &brief {
        wt_common::fs::inside::check_relative(p, "--brief")?;
    }
    let rust_cache = args.rust_cache.or(config.rust_cache);
    Ok(Plan { ports: PortRequest { range, size, names }, database, dotenv, brief, rust_cache })
}

/// `--export`: the env as shell lines; an error goes to stderr as usual.
fn export(rec: &Record, out: &mut Output) {
    if rec.has_error() {
        out.emit_error_only(rec);
        return;
    }
    let vars = rec.key("env").and_then(|e| e.get("vars")).and_then(Value::as_object).cloned().unwrap_or_default();
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(envfile::export_text(&vars).as_bytes()).and_then(|_| stdout.flush()).is_err() {
        // A closed pipe: nothing more to say.
    }
}

/// The table of `--list --kept` and `--drop-kept`.
fn kept_columns() -> Vec<Column> {
    fn kept(r: &Record, key: &str) -> Option<Value> {
        r.key("env").and_then(|e| e.get("kept")).and_then(|k| k.get(key)).cloned()
    }
    vec![
        Column {
            title: "DATABASE",
            value: |r| kept(r, "database").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
        },
        Column { title: "WORKTREE", value: |r| r.name.clone() },
        Column {
            title: "KEPT SINCE",
            value: |r| kept(r, "since").and_then(|v| v.as_u64()).map(manage::ago).unwrap_or_else(|| "unknown".into()),
        },
        Column {
            title: "SIZE",
            value: |r| {
                kept(r, "size_bytes").and_then(|v| v.as_u64()).map(wt_common::record::size::human).unwrap_or_default()
            },
        },
        Column {
            title: "STATUS",
            value: |r| {
                let dropped = r.key("env").and_then(|e| e.get("dropped")).is_some();
                status_or_error(r, if dropped { "dropped" } else { "kept" })
            },
        },
    ]
}

fn columns() -> Vec<Column> {
    let mut cols = core_columns();
    cols.insert(1, Column { title: "INDEX", value: |r| r.index.map(|i| i.to_string()).unwrap_or_default() });
    cols.push(Column {
        title: "PORTS",
        value: |r| {
            let b = r.key("env").and_then(|e| e.get("block"));
            match b.and_then(|b| Some((b.get("start")?.as_u64()?, b.get("end")?.as_u64()?))) {
                Some((s, e)) => format!("{s}-{e}"),
                None => String::new(),
            }
        },
    });
    cols.push(Column {
        title: "DATABASE",
        value: |r| {
            r.key("env")
                .and_then(|e| e.pointer("/database/name"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        },
    });
    cols.push(Column { title: "STATUS", value: |r| status_or_error(r, "") });
    cols
}
