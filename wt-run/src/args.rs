//! The command line of wt-run.

use clap::Parser;
use wt_common::cli::GlobalArgs;

/// Run a command in each worktree, with the worktree's environment, and print a record per run.
///
/// Worktrees come from records on stdin (from wt-create or wt-env), `-w NAME` or `--all`. Each
/// run is its own process group, in its worktree, with WT_* variables and the record's
/// env.vars on top of the caller's environment. Output goes to a log file (and, on a terminal,
/// to stderr with a `name |` prefix); the record gets `run` (exit, signal, duration, log, tail).
#[derive(Debug, Parser)]
#[command(
    name = "wt-run",
    version,
    after_help = "Examples:\n  wt-create --list | wt-env | wt-run -j 4 -- cargo test\n  wt-run -w agent-1 --timeout 10m -- npm test\n  wt-run --all --shell -- 'make lint && make test'\n  wt-run -w agent-2 --confine -- claude -p \"fix issue 12\"\n\nExit: with one worktree, the command's own exit code (124 on timeout, 128+N on signal N);\nwith several, 0 if every run succeeded, else 1. 2 usage, 3 unusable repository."
)]
pub struct Args {
    /// A worktree by name (repeatable)
    #[arg(short = 'w', long = "worktree", value_name = "NAME")]
    pub worktrees: Vec<String>,

    /// Every worktree the tools manage
    #[arg(long)]
    pub all: bool,

    /// Runs at once [default: number of CPUs]
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,

    /// Stop a run after DUR (500ms, 30s, 5m): SIGTERM to its group, SIGKILL after --grace
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,

    /// How long a group has between SIGTERM and SIGKILL
    #[arg(long, value_name = "DUR", default_value = "2s", value_parser = parse_duration)]
    pub grace: std::time::Duration,

    /// Run CMD through `sh -c` (one string: pipes, &&, globs)
    #[arg(long)]
    pub shell: bool,

    /// Enforce the worktree's boundaries with Landlock: write only in the worktree (and what git
    /// needs, the temp dir, --allow-write), bind only its leased ports. `best-effort` runs
    /// anyway where the kernel cannot enforce all of it
    #[arg(long, value_name = "MODE", num_args = 0..=1, default_missing_value = "strict", value_parser = ["strict", "best-effort"])]
    pub confine: Option<String>,

    /// With --confine: also allow writing under PATH (repeatable)
    #[arg(long = "allow-write", value_name = "PATH", requires = "confine")]
    pub allow_write: Vec<std::path::PathBuf>,

    /// The command and its arguments
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,

    #[command(flatten)]
    pub global: GlobalArgs,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    wt_common::duration::parse(s).map_err(|e| e.message)
}
