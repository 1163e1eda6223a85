//! wt-watch: the self-healing loop. Watches worktrees (`watcher`, `rules`), runs the test
//! command when their files settle (`round`), and when it fails, cuts the output down to what
//! matters (`wt_common::record::excerpt`, which wt-merge shares) and hands it to the agent (`feed`),
//! until green; `guard` (with `runner_guard`, the runner's files guarded by default) catches an
//! agent that edits the tests instead of the code or runs fewer of them; `kept` is how a loop
//! ended, for wt-status's inbox. `session` is the loop that ties them.

pub mod args;
pub mod best;
pub mod feed;
pub mod feed_lines;
pub mod green_means_commit;
pub mod guard;
pub mod kept;
pub mod live;
pub mod narrow;
pub mod noticed;
pub mod own_writes;
pub mod preexisting;
pub mod round;
pub mod rules;
pub mod runner_guard;
pub mod session;
pub mod slot;
pub mod watcher;

use std::io::IsTerminal;
use std::sync::mpsc;

use serde_json::Value;
use signal_hook::consts::{SIGINT, SIGTERM};
use wt_common::git::repo::Repo;
use wt_common::host::Router;
use wt_common::ledger::LedgerFile;
use wt_common::record::output::{core_columns, status_or_error, Column, Output};
use wt_common::{record::select, Error, Exit};

use crate::args::{Args, Config, Settings};
use crate::session::{Ctx, Msg, Session};

pub const TOOL: &str = "wt-watch";

/// The whole run: the exit code.
pub fn run(args: Args) -> Result<u8, Error> {
    wt_common::record::cli::init_logging(args.global.verbose)?;
    args.select.require_some(&args.names)?;
    let repo = Repo::discover(&args.global.start_dir())?;
    let config: Config = wt_common::config::section(repo.main_worktree.as_deref(), "watch")?;
    let settings = Settings::resolve(&args, config)?;
    check_command(&settings.command)?;
    // Confined rounds run through the wt-run beside this one: missing, nothing is watched.
    let confine = match &settings.confine {
        Some((mode, allow, pass)) => Some(wt_common::confine::via::Via::new(
            mode.clone(),
            allow.clone(),
            pass.clone(),
            repo.main_worktree.as_deref(),
        )?),
        None => None,
    };
    let exclude = Some(repo.common_dir.join("info").join("exclude"));
    let main = repo.main_worktree.clone();
    let runners =
        if settings.default_guard { runner_guard::detect(&settings.command, main.as_deref()) } else { Vec::new() };
    let guard = guard::Guard::with_runners(&settings.guard, &runners)?;
    let ledger = LedgerFile::new(&repo.state_dir()).read()?;
    let socket = wt_common::proc::supervisor::socket_path(&repo.common_dir)?;
    let (tx, rx) = mpsc::channel();
    on_signals(tx.clone());
    let mut words = args.names.clone();
    words.extend(args.select.worktrees.iter().cloned());
    let from_stdin = args.names.is_empty() && args.select.from_stdin();
    // A worktree at a host is watched there, by wt-watch at that host; its records stream back.
    let hosts = if from_stdin { Router::split_stdin(TOOL, repo.main_worktree.as_deref())? } else { Router::local() };
    let mut out = Output::new(TOOL, args.global.json, columns());
    let targets = select::collect(TOOL, &repo, &ledger, &words, args.select.all, false, &mut out);
    // Each --guard glob must match something in the main worktree or a worktree named here.
    let roots: Vec<std::path::PathBuf> = main
        .iter()
        .cloned()
        .chain(targets.iter().filter_map(|t| match t {
            select::Target::Worktree(r) => r.path.clone(),
            select::Target::PassThrough(_) => None,
        }))
        .collect();
    guard::check_matches(&settings.guard, &roots, exclude.as_deref())?;
    let reading = from_stdin && read_stdin(tx.clone());
    let governor = wt_common::proc::governor::settings(repo.main_worktree.as_deref(), args.no_governor)?;
    let ctx = Ctx { repo, ledger, settings, guard, socket, exclude, confine, governor };
    let mut session = Session::new(ctx, out, tx, rx, reading)?;
    for t in targets {
        session.take(t)?;
    }
    let local = session.run()?;
    // The worse of the two; a signal's 130/143 here outranks what the hosts say.
    let remote = hosts.finish(Exit::Ok).code() as u8;
    Ok(local.max(remote))
}

/// A test command that names a program not on PATH is a mistake in the command line: said
/// once, before anything is watched. (A relative path is looked up in each worktree.)
fn check_command(argv: &[String]) -> Result<(), Error> {
    let program = &argv[0];
    if program.contains('/') {
        return Ok(());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).any(|dir| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(dir.join(program)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    });
    if found {
        Ok(())
    } else {
        Err(Error::usage("not-found", format!("test command not found: {program} (check the name and PATH)")))
    }
}

/// Reads stdin on a thread of its own, so worktrees can join while others are watched. False
/// when stdin is a terminal (nobody will type records).
fn read_stdin(tx: mpsc::Sender<Msg>) -> bool {
    if std::io::stdin().is_terminal() {
        return false;
    }
    std::thread::spawn(move || {
        let mut reader = wt_common::record::jsonl::Reader::new(std::io::stdin().lock());
        while let Some(line) = reader.next() {
            if tx.send(Msg::Line(line, reader.line())).is_err() {
                return;
            }
        }
        let _ = tx.send(Msg::InputEnd);
    });
    true
}

/// SIGINT and SIGTERM go to the loop, which ends every run's process group before exiting.
/// Should the loop be stuck (in a git that waits on something an agent planted in its
/// worktree), the tool exits all the same once the runs' grace and 3 s more have passed:
/// a signal always ends wt-watch.
fn on_signals(tx: mpsc::Sender<Msg>) {
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else { return };
    std::thread::spawn(move || {
        for sig in signals.forever() {
            let _ = tx.send(Msg::Signal(sig));
            std::thread::spawn(move || {
                let backstop = round::GRACE + std::time::Duration::from_secs(3);
                std::thread::sleep(backstop);
                tracing::warn!("still busy {backstop:?} after the signal; exiting");
                std::process::exit(128 + sig);
            });
        }
    });
}

fn columns() -> Vec<Column> {
    let mut cols = core_columns();
    cols.truncate(1);
    cols.push(Column {
        title: "STATUS",
        value: |r| {
            let watch = r.key("watch").and_then(|w| w.get("status")).and_then(Value::as_str).unwrap_or_default();
            status_or_error(r, watch)
        },
    });
    cols.push(Column {
        title: "ROUNDS",
        value: |r| r.key("watch").and_then(|w| w.get("rounds")).map(Value::to_string).unwrap_or_default(),
    });
    cols.push(Column {
        title: "LOG",
        value: |r| {
            let run = r.key("watch").and_then(|w| w.get("run"));
            run.and_then(|x| x.get("log")).and_then(Value::as_str).unwrap_or_default().to_string()
        },
    });
    cols
}
