//! The command line of wt-create.

use std::path::PathBuf;

use clap::Parser;
use wt_common::record::cli::GlobalArgs;

use crate::share::ShareMode;

/// Create git worktrees for parallel coding agents, one record per worktree on stdout.
///
/// Each worktree gets a branch `wt/<name>` from --base, at `<repo>.wt/<name>`, exactly as
/// `git worktree add` would make it. Gitignored files named by `.worktreeinclude` (gitignore
/// syntax) are copied from the main worktree. Creating a name that exists adopts it
/// ("created": false). Names may also come from stdin, as records or bare words.
#[derive(Debug, Parser)]
#[command(
    name = "wt-create",
    version,
    after_help = "Examples:\n  wt-create -n 4                       # agent-1 … agent-4 (next free names)\n  wt-create fix-login --base origin/main\n  wt-create ../elsewhere/tree          # adopt a worktree made by `git worktree add`\n  wt-create --list | jq -r .path\n  wt-create --list --status | jq -r 'select(.status.state == \"dirty\") | .name'\n  wt-create --remove agent-2\n  wt-create --remove --all --purge     # leave nothing of wt behind (asks first)\n  wt-create -n 4 --share node_modules  # dependencies linked, not installed again\n  wt-create --share-status             # what each worktree really costs on disk\n  wt-create --gc                       # what the disk budget would reclaim\n  wt-create --gc --yes --max-size 50G  # reclaim build dirs, least recently used first\n  wt-create --gc --yes --remove-idle   # and whole clean merged worktrees idle past max_age\n  wt-create --pool 4                   # 4 worktrees ready ahead of time\n  wt-create fix-login                  # claims one: a rename and a branch\n  wt-create --pool 0                   # drains the pool\n\nExit: 0 all done, 1 some record has an error, 2 usage or bad input, 3 unusable repository."
)]
pub struct Args {
    /// Worktree names to create or adopt; a PATH (anything with '/') adopts that worktree
    #[arg(value_name = "NAME|PATH", add = wt_common::record::complete::worktrees())]
    pub names: Vec<String>,

    /// Create N worktrees with the next free names PREFIX-1, PREFIX-2, …
    #[arg(short = 'n', long = "count", value_name = "N", conflicts_with_all = ["list", "remove"])]
    pub count: Option<usize>,

    /// Name prefix for -n [default: agent, or [create] prefix in wt.toml]
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,

    /// Start new branches from REF [default: HEAD of the main worktree, or [create] base]
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,

    /// Put worktrees in DIR [default: <repo>.wt, or [create] root in wt.toml]
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Check out at most N worktrees at once [default: number of CPUs]
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,

    /// Print a record for every worktree the tools manage
    #[arg(long, conflicts_with = "remove")]
    pub list: bool,

    /// With --list: every worktree git knows, the main one included
    #[arg(long, requires = "list")]
    pub all_git: bool,

    /// With --list: add each worktree's `status` (clean/dirty, ahead/behind) to its record;
    /// a table on a terminal always shows it. Two git processes per worktree
    #[arg(long, requires = "list")]
    pub status: bool,

    /// Remove the named worktrees (or those on stdin) and the branches wt-create made
    #[arg(long)]
    pub remove: bool,

    /// With --remove: remove even with uncommitted changes or unmerged commits
    #[arg(short, long, requires = "remove")]
    pub force: bool,

    /// With --remove: every worktree wt manages
    #[arg(long, requires = "remove", conflicts_with = "names")]
    pub all: bool,

    /// With --remove --all: leave nothing of wt behind: worktrees, the branches wt made, their
    /// panes, leases, kept databases, logs, share records and store, refs/wt/*, the empty
    /// <repo>.wt/. Says what it will delete and asks first (see --yes)
    #[arg(long, requires = "all")]
    pub purge: bool,

    /// With --purge: do not ask (needed where there is no terminal to ask on). With --gc:
    /// reclaim (without it, --gc only says what it would)
    #[arg(long)]
    pub yes: bool,

    /// Share the main worktree's gitignored directory DIR (node_modules, .venv, …) into each
    /// worktree, linked from a content-addressed store; repeatable. Given names that exist are
    /// shared again. `--share pnpm` writes pnpm's one-store settings into each worktree
    #[arg(long = "share", value_name = "DIR", conflicts_with_all = ["list", "remove"])]
    pub share: Vec<String>,

    /// How shared files are placed: auto (reflink, else hard link, else copy), hardlink,
    /// reflink, copy [default: auto, or [create] share_mode]
    #[arg(long, value_enum, value_name = "MODE")]
    pub share_mode: Option<ShareMode>,

    /// Print the disk the shared directories use, per worktree and in total, against full copies
    #[arg(long, conflicts_with_all = ["list", "remove", "share", "store_gc", "count"])]
    pub share_status: bool,

    /// Remove store files that no worktree links to any more
    #[arg(long, conflicts_with_all = ["list", "remove", "share", "count"])]
    pub store_gc: bool,

    /// Keep wt's worktrees within the disk budget ([create] budget in wt.toml, or --max-size,
    /// --max-age, --max-count): reclaim the build dirs (target, node_modules, .venv, dist, …
    /// that git ignores) of the least recently used worktrees until it holds. Never a worktree
    /// with a live pane, a process in it, uncommitted work, or commits neither merged nor
    /// pushed. Says what it would reclaim; removes only with --yes
    #[arg(long, conflicts_with_all = ["list", "remove", "share", "count", "share_status", "store_gc", "names", "pool"])]
    pub gc: bool,

    /// With --gc: only say what would be reclaimed (the default without --yes)
    #[arg(long, requires = "gc", conflicts_with = "yes")]
    pub dry_run: bool,

    /// With --gc: also remove whole worktrees idle past max_age that are clean and merged, as
    /// `--remove` would (its checks apply)
    #[arg(long, requires = "gc")]
    pub remove_idle: bool,

    /// With --gc: the most wt's worktrees and share store may take (50G, 500M) [default:
    /// [create] budget.max_size]
    #[arg(long, requires = "gc", value_name = "SIZE", value_parser = crate::budget::limits::size_arg)]
    pub max_size: Option<u64>,

    /// With --gc: a worktree unused for longer is idle (7d, 12h) [default: [create]
    /// budget.max_age]
    #[arg(long, requires = "gc", value_name = "AGE", value_parser = crate::budget::limits::age_arg)]
    pub max_age: Option<std::time::Duration>,

    /// With --gc --remove-idle: the most worktrees to keep [default: [create] budget.max_count]
    #[arg(long, requires = "gc", value_name = "N")]
    pub max_count: Option<usize>,

    /// Keep N worktrees of --base made ahead of time (checked out, shared, include files
    /// copied), which `wt-create NAME` and `-n` claim in milliseconds; fills the pool now and
    /// refills it in the background after each claim. `--pool 0` drains it (without --base: every base's) [or [create] pool]
    #[arg(long, value_name = "N", conflicts_with_all = ["list", "remove", "count", "names", "share_status", "store_gc"])]
    pub pool: Option<usize>,

    /// The background refill a claim starts (see --pool)
    #[arg(long, hide = true, conflicts_with_all = ["list", "remove", "count", "names", "pool"])]
    pub pool_refill: bool,

    #[command(flatten)]
    pub global: GlobalArgs,
}

/// `[create]` in wt.toml.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub root: Option<PathBuf>,
    pub prefix: Option<String>,
    pub base: Option<String>,
    /// Directories to share into every new worktree (see --share).
    pub share: Option<Vec<String>>,
    pub share_mode: Option<ShareMode>,
    /// The disk budget `--gc` keeps (see `budget::limits`).
    pub budget: Option<crate::budget::limits::BudgetConfig>,
    /// Names of build directories beyond the defaults (`wt_common::git::build_dirs::DEFAULT`).
    pub build_dirs: Option<Vec<String>>,

    /// The pool's size for the default base (see --pool).
    pub pool: Option<usize>,
}
