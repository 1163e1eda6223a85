//! The command line of wt-status.

use clap::Parser;
use wt_common::record::cli::GlobalArgs;

/// One overview of every worktree: branch, uncommitted changes, commits ahead of and behind its
/// base, ports, database, panes, last run (pass or red) and merge, and what needs you (REASON:
/// waiting, red, conflict, verify-failed, exited), as records (a table on a terminal, the
/// worktrees that need you first).
///
/// Without names, -w or --all it shows every worktree the tools manage, or the records piped
/// in (`wt-create --list | wt-status`). It only reads: the ledger, git, the pane supervisor and
/// the logs; it changes nothing.
#[derive(Debug, Parser)]
#[command(
    name = "wt-status",
    version,
    after_help = "Examples:\n  wt-status                          # every worktree, what needs you first, a table on a terminal\n  wt-status agent-2 --json | jq .overview.attention\n  wt-status --watch                  # the board every 2s, the inbox on top (Ctrl-C ends)\n  wt-status --watch=500ms\n  wt-status --inbox                  # what needs you in every repository, oldest first\n  wt-status --inbox --watch | jq -r .attention.next   # each new entry once, as it comes\n  wt-status --disk                   # what each worktree really costs on disk, and the total\n\nOn a terminal, --watch tells the terminal of each new inbox entry (OSC 9, 99 or 777, as it\nunderstands; WT_NOTIFY=osc9|osc99|osc777|off overrides).\n\nExit: 0 shown, 1 some record has an error, 2 usage or bad input, 3 unusable repository."
)]
pub struct Args {
    /// Worktrees by name (or path, with '/') [default: every managed worktree]
    #[arg(value_name = "NAME|PATH", add = wt_common::record::complete::worktrees())]
    pub names: Vec<String>,

    #[command(flatten)]
    pub select: wt_common::record::cli::Selection,

    /// Show it again every DUR (default 2s), redrawn in place on a terminal, until Ctrl-C;
    /// `--watch=DUR` for another interval
    #[arg(long, value_name = "DUR", num_args = 0..=1, require_equals = true, default_missing_value = "2s",
          value_parser = wt_common::record::duration::parse_arg)]
    pub watch: Option<std::time::Duration>,

    /// What needs you, across every repository you run wt in, oldest first: waiting agents,
    /// red test rounds, merge conflicts, failed verifications, panes that exited badly; each
    /// with the command to run next. With --watch: a table redrawn on a terminal, or each new
    /// entry once as a record in a pipe
    #[arg(long, conflicts_with_all = ["names", "worktrees", "all"])]
    pub inbox: bool,

    /// Add each worktree's real disk cost (`disk`: its checkout and its build dirs, a file
    /// shared with the store, the main worktree or another worktree counted once) and, on
    /// stderr, the total of all of wt's worktrees. Walks every file of every worktree, so
    /// asked for, not shown by default
    #[arg(long, conflicts_with = "inbox")]
    pub disk: bool,

    #[command(flatten)]
    pub global: GlobalArgs,
}
