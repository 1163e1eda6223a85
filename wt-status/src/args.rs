//! The command line of wt-status.

use clap::Parser;
use wt_common::record::cli::GlobalArgs;

/// One overview of every worktree: branch, uncommitted changes, commits ahead of and behind its
/// base, ports, database, pane, last run and merge, as records (a table on a terminal).
///
/// Without names, -w or --all it shows every worktree the tools manage, or the records piped
/// in (`wt-create --list | wt-status`). It only reads: the ledger, git, the pane supervisor and
/// the logs; it changes nothing.
#[derive(Debug, Parser)]
#[command(
    name = "wt-status",
    version,
    after_help = "Examples:\n  wt-status                          # every worktree, a table on a terminal\n  wt-status agent-2 --json | jq .overview\n  wt-status --watch                  # a board that refreshes every 2s (Ctrl-C ends it)\n  wt-status --watch=500ms\n\nExit: 0 shown, 1 some record has an error, 2 usage or bad input, 3 unusable repository."
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

    #[command(flatten)]
    pub global: GlobalArgs,
}
