//! wt-status: one overview of every worktree, built from what the other tools keep (the
//! ledger, git, the pane supervisor, the kept outcomes, the logs), as records that carry
//! `status` (the checkout) and `overview` (leases, panes, last run, merge, and what needs the
//! person: `attention`); a table on a terminal, what needs the person first; `--watch` redraws
//! it; `--inbox` lists what needs the person across every repository.

pub mod args;
pub mod attention;
pub mod disk;
pub mod governor;
pub mod inbox;
pub mod overview;
pub mod panes;
pub mod table;

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use wt_common::git::repo::Repo;
use wt_common::ledger::{Ledger, LedgerFile};
use wt_common::record::notify;
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
    if args.inbox {
        // Outside any repository, the inbox still shows the listed ones.
        let repo = Repo::discover(&args.global.start_dir()).ok();
        return run_inbox(&args, repo.as_ref());
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
        let mut out = Output::new(TOOL, args.global.json, table::columns(args.disk));
        let mut recs = records(&repo, &ledger, &words, all, stdin, &mut out)?;
        if args.disk {
            disk::add(&repo, &*ledger.read()?, &mut recs)?;
        }
        let governed = governor::state();
        for mut rec in recs {
            governor::tag(&mut rec, governed.as_ref());
            out.emit(&rec);
        }
        let table = out.is_table();
        let exit = out.finish();
        if let Some(state) = governed.as_ref().filter(|_| table) {
            let _ = writeln!(std::io::stdout().lock(), "{}", governor::line(state));
        }
        return Ok(exit);
    };
    if stdin {
        return Err(Error::usage("usage", "--watch reads the ledger again each time: name the worktrees, or --all"));
    }
    let mut notifier = Notifier::new();
    loop {
        let mut out = Output::new(TOOL, args.global.json, table::columns(args.disk));
        let mut recs = records(&repo, &ledger, &words, all, false, &mut out)?;
        if args.disk {
            disk::add(&repo, &*ledger.read()?, &mut recs)?;
        }
        if out.is_table() {
            // Home and clear, then the inbox and the board: it is redrawn in place.
            let entries = inbox::entries(Some(&repo));
            to_terminal(b"\x1b[H\x1b[2J");
            if !entries.is_empty() {
                let mut top = Output::new(TOOL, false, inbox::columns());
                entries.iter().for_each(|e| top.emit(e));
                let _ = top.finish();
                to_terminal(b"\n");
            }
            notifier.seen(&entries);
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

/// `--inbox`: a table (redrawn with `--watch`) on a terminal; in a pipe, one record per entry,
/// and with `--watch` each new entry once, as it appears.
fn run_inbox(args: &Args, repo: Option<&Repo>) -> Result<Exit, Error> {
    let mut notifier = Notifier::new();
    let mut streamed = BTreeSet::new();
    loop {
        let entries = inbox::entries(repo);
        let mut out = Output::new(TOOL, args.global.json, inbox::columns());
        if args.watch.is_some() && out.is_table() {
            to_terminal(b"\x1b[H\x1b[2J");
        }
        if out.is_table() && entries.is_empty() {
            to_terminal(b"nothing needs you\n");
        }
        for e in &entries {
            if args.watch.is_none() || out.is_table() || streamed.insert(inbox::key(e)) {
                out.emit(e);
            }
        }
        if out.is_table() {
            notifier.seen(&entries);
        }
        let closed = out.closed();
        let status = out.finish();
        let Some(every) = args.watch else { return Ok(status) };
        if closed {
            return Ok(Exit::Ok);
        }
        std::thread::sleep(every);
    }
}

/// Tells the person's terminal of each new inbox entry (OSC 9, 99 or 777 as it understands,
/// through tmux when inside it). Entries there at the first look are not new; only a terminal
/// is told, never a pipe.
struct Notifier {
    style: notify::Style,
    known: Option<BTreeSet<String>>,
}

impl Notifier {
    fn new() -> Notifier {
        let style = if std::io::stdout().is_terminal() { notify::Style::from_env() } else { notify::Style::Off };
        Notifier { style, known: None }
    }

    fn seen(&mut self, entries: &[Record]) {
        let now = inbox::keys(entries);
        if let Some(known) = &self.known {
            for e in entries.iter().filter(|e| !known.contains(&inbox::key(e))) {
                to_terminal(&notify::for_terminal(notify::notification(self.style, "wt", &inbox::notification(e))));
            }
        }
        self.known = Some(now);
    }
}

/// Writes `bytes` to stdout (a terminal: the table's surroundings, escape sequences) at once.
fn to_terminal(bytes: &[u8]) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(bytes).and_then(|_| stdout.flush());
}

/// Whether stdin is a pipe, a socket or a file that may hold records; a terminal or
/// `/dev/null` (a script's, a cron job's) is not, and then the overview shows every worktree.
fn stdin_is_piped() -> bool {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::metadata("/proc/self/fd/0") else { return !std::io::stdin().is_terminal() };
    let kind = meta.file_type();
    kind.is_fifo() || kind.is_socket() || (kind.is_file() && meta.len() > 0)
}

/// The records of the worktrees asked about, each with `status` and `overview`; in a table,
/// those that need the person first (the longest waiting first), in records the order asked.
fn records(
    repo: &Repo,
    ledger: &LedgerFile,
    words: &[String],
    all: bool,
    stdin: bool,
    out: &mut Output,
) -> Result<Vec<Record>, Error> {
    let snapshot = ledger.read()?;
    let mut recs = overviews(repo, &snapshot, words, all, stdin, out, true);
    let first_need = |r: &Record| {
        let oldest = r.key("overview").and_then(|o| o["attention"][0]["since"].as_u64());
        oldest.map_or((1, 0), |since| (0, since))
    };
    if out.is_table() {
        recs.sort_by_key(first_need);
    }
    Ok(recs)
}

/// The records of `words`, every managed worktree (`all`) or stdin's, with `overview` and
/// (when `with_status`) `status`; in the order asked.
pub(crate) fn overviews(
    repo: &Repo,
    snapshot: &Ledger,
    words: &[String],
    all: bool,
    stdin: bool,
    out: &mut Output,
    with_status: bool,
) -> Vec<Record> {
    let panes = panes::list(&repo.common_dir);
    let targets = select::collect(TOOL, repo, snapshot, words, all, stdin, out);
    let paths: Vec<PathBuf> = targets
        .iter()
        .filter_map(|t| match t {
            Target::Worktree(r) => r.path.clone(),
            Target::PassThrough(_) => None,
        })
        .chain(snapshot.worktrees.values().map(|e| e.path.clone()))
        .collect();
    // The checkouts' states at once: a git process each, on every core.
    let asked: Vec<&Record> = targets
        .iter()
        .filter_map(|t| match t {
            Target::Worktree(r) if with_status => Some(&**r),
            _ => None,
        })
        .collect();
    let cores = wt_common::proc::parallel::cores();
    let mut statuses = checkout_state::of_many(repo, &asked, cores).into_iter();
    // Each worktree's record as asked, its `head` and `status` in; `true` for a worktree.
    let mut recs: Vec<(Record, bool)> = Vec::new();
    for t in targets {
        let mut rec = match t {
            Target::PassThrough(r) => {
                recs.push((*r, false));
                continue;
            }
            Target::Worktree(r) => *r,
        };
        if rec.head.is_none() {
            if let Some(branch) = &rec.branch {
                rec.head = overview::read_ref(repo, &format!("refs/heads/{branch}"));
            }
        }
        if let Some(status) = statuses.next().filter(|_| with_status) {
            rec.set_key("status", status);
        }
        recs.push((rec, true));
    }
    // The overviews' reads (a few small files and refs each) on every core too: at hundreds of
    // worktrees they cost as much as the checkouts' states.
    let overviews = wt_common::proc::parallel::map(&recs, cores, |(rec, worktree)| {
        worktree.then(|| {
            let entry = snapshot.worktrees.get(&rec.name).filter(|e| Some(&e.path) == rec.path.as_ref());
            let own = panes::of_worktree(&panes, &rec.name, rec.path.as_deref(), &paths);
            overview::of(repo, rec, entry, &own)
        })
    });
    recs.into_iter()
        .zip(overviews)
        .map(|((mut rec, _), overview)| {
            if let Some(o) = overview {
                rec.set_key("overview", o);
            }
            rec
        })
        .collect()
}
