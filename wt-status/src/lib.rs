//! wt-status: one overview of every worktree, built from what the other tools keep (the
//! ledger, git, the pane supervisor, the logs), as records that carry `status` (the checkout)
//! and `overview` (leases, pane, last run, merge); a table on a terminal; `--watch` redraws it.

pub mod args;
pub mod overview;
pub mod panes;
pub mod table;

use std::io::{IsTerminal, Write};

use wt_common::git::repo::Repo;
use wt_common::ledger::LedgerFile;
use wt_common::record::output::Output;
use wt_common::record::select::{self, Target};
use wt_common::{git::checkout_state, Error, Exit, Record};

use crate::args::Args;

pub const TOOL: &str = "wt-status";

pub fn run(args: Args) -> Result<Exit, Error> {
    wt_common::record::cli::init_logging(args.global.verbose)?;
    if let Some(host) = &args.global.host {
        return Err(Error::usage(
            "usage",
            format!("wt-status shows the worktrees of this machine; for {host}'s, run it there (ssh {host} wt-status)"),
        ));
    }
    let repo = Repo::discover(&args.global.start_dir())?;
    let ledger = LedgerFile::new(&repo.state_dir());
    let mut words = args.names.clone();
    words.extend(args.select.worktrees.iter().cloned());
    // Nothing named: every managed worktree, unless records are piped in.
    let piped = stdin_is_piped();
    let all = args.select.all || (words.is_empty() && !piped);
    let stdin = words.is_empty() && !all;
    let Some(every) = args.watch else {
        let mut out = Output::new(TOOL, args.global.json, table::columns());
        for rec in records(&repo, &ledger, &words, all, stdin, &mut out)? {
            out.emit(&rec);
        }
        return Ok(out.finish());
    };
    if stdin {
        return Err(Error::usage("usage", "--watch reads the ledger again each time: name the worktrees, or --all"));
    }
    loop {
        let mut out = Output::new(TOOL, args.global.json, table::columns());
        let recs = records(&repo, &ledger, &words, all, false, &mut out)?;
        if out.is_table() {
            // Home and clear, then the board: it is redrawn in place.
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(b"\x1b[H\x1b[2J").and_then(|_| stdout.flush());
        }
        for rec in &recs {
            out.emit(rec);
        }
        if out.closed() {
            return Ok(Exit::Ok);
        }
        // A worktree that cannot be shown (a mistyped name, one removed meanwhile) ends the
        // board with its error, rather than redrawing the same error forever.
        let status = out.finish();
        if status != Exit::Ok {
            return Ok(status);
        }
        std::thread::sleep(every);
    }
}

/// Whether stdin is a pipe, a socket or a file that may hold records; a terminal or
/// `/dev/null` (a script's, a cron job's) is not, and then the overview shows every worktree.
fn stdin_is_piped() -> bool {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::metadata("/proc/self/fd/0") else { return !std::io::stdin().is_terminal() };
    let kind = meta.file_type();
    kind.is_fifo() || kind.is_socket() || (kind.is_file() && meta.len() > 0)
}

/// The records of the worktrees asked about, each with `status` and `overview`.
fn records(
    repo: &Repo,
    ledger: &LedgerFile,
    words: &[String],
    all: bool,
    stdin: bool,
    out: &mut Output,
) -> Result<Vec<Record>, Error> {
    let snapshot = ledger.read()?;
    let panes = panes::list(&repo.common_dir);
    let targets = select::collect(TOOL, repo, &snapshot, words, all, stdin, out);
    let mut recs = Vec::new();
    for t in targets {
        let mut rec = match t {
            Target::PassThrough(r) => {
                recs.push(*r);
                continue;
            }
            Target::Worktree(r) => *r,
        };
        let entry = snapshot.worktrees.get(&rec.name).filter(|e| Some(&e.path) == rec.path.as_ref());
        if rec.head.is_none() {
            if let Some(branch) = &rec.branch {
                rec.head = wt_common::git::run(
                    repo.git_dir(),
                    ["rev-parse", "--verify", "-q", &format!("refs/heads/{branch}")],
                )
                .ok();
            }
        }
        rec.set_key("status", checkout_state::of(repo, &rec));
        rec.set_key("overview", overview::of(repo, &rec, entry, &panes));
        recs.push(rec);
    }
    Ok(recs)
}
