//! The command line of wt-merge.

use clap::Parser;
use wt_common::record::cli::GlobalArgs;

/// A local merge queue: merge each worktree's branch into a target branch that only ever moves
/// to a commit whose verification passed.
///
/// Records (from wt-create, wt-run, wt-watch) are handled as they arrive: a record with an
/// error, or whose run or watch failed, is skipped; a conflict is found in memory and
/// reported; otherwise the result is built, verified in a worktree made like an agent's (or
/// proven by a record that tested the branch's tip), and the target moves to it only if it
/// still points where it did (compare-and-swap). Several wt-merges on one repository (one per
/// `wt-watch | wt-merge` pipeline) take turns, first come first served: each holds the queue
/// only while it merges, and says on stderr whom it waits for.
#[derive(Debug, Parser)]
#[command(
    name = "wt-merge",
    version,
    after_help = "Examples:\n  wt-create --list | wt-merge --check                     # the conflict matrix, nothing moves\n  wt-merge agent-3 --verify 'make test'                    # one worktree, by name\n  wt-create --list | wt-merge --verify 'cargo test' --cleanup   # ready ones verified together\n  wt-create --list | wt-run -- make test | wt-merge        # the tips those runs proved green\n  wt-merge agent-4 --verify 'npm test' --prepare 'npm ci'  # its lock file differs from main's\n  wt-merge agent-5 --verify 'make test' --confine         # the branch's Makefile runs sandboxed\n  wt-merge -w agent-2 --strategy squash --into develop --unverified\n  wt-merge --undo agent-2\n\nVerification runs in <repo>.wt/<name>-verify-<commit>, made by wt-create and wt-env like an\nagent's worktree (shared directories, include files, its own ports and database); with\n--confine, in wt-run's sandbox there.\n\nExit: 0 all merged (or would merge), 1 a conflict, a failed verification, an error or a\nbranch held (untested, gate-changed, deps-differ), 2 usage, 3 unusable repository."
)]
pub struct Args {
    /// Worktrees by name (or path, with '/'), like -w
    #[arg(value_name = "NAME|PATH", add = wt_common::record::complete::worktrees())]
    pub names: Vec<String>,

    #[command(flatten)]
    pub select: wt_common::record::cli::Selection,

    /// The branch to merge into [default: [merge] into in wt.toml, or the branch checked out in
    /// the main worktree]
    #[arg(long, value_name = "BRANCH")]
    pub into: Option<String>,

    /// Only find conflicts, in memory: against the target and between the branches
    #[arg(long, conflicts_with_all = ["verify", "cleanup", "undo"])]
    pub check: bool,

    /// How a branch lands: a merge commit, one squashed commit, its commits rebased, or a
    /// fast-forward [default: merge, or [merge] strategy]
    #[arg(long, value_name = "HOW", value_parser = STRATEGIES)]
    pub strategy: Option<String>,

    /// Run CMD (through sh -c) in a scratch worktree of the result; the target moves only if it
    /// exits 0 [default: [merge] verify]
    #[arg(long, value_name = "CMD")]
    pub verify: Option<String>,

    /// Verify without the build governor: no job slot to wait for, no MAKEFLAGS jobserver for
    /// the command (see docs/governor.md) [env: WT_GOVERNOR=off]
    #[arg(long)]
    pub no_governor: bool,

    /// Before --verify, when a shared directory could not be placed from the store because its
    /// lock files differ from the main worktree's, run CMD in the verification worktree to
    /// install it (`npm ci`) [default: [merge] prepare]
    #[arg(long, value_name = "CMD", requires = "verify")]
    pub prepare: Option<String>,

    /// Run --prepare and --verify confined, in the sandbox of `wt-run --confine` (through the
    /// wt-run beside this one): the candidate's code they run (its Makefile, its tests) may
    /// write only in the verification worktree and commit only on its branch, never move the
    /// target or another ref. Off by default: it needs Linux 6.12 (Landlock ABI 6) and user
    /// namespaces, and caches in your home need --allow-write; turn it on when agents run
    /// confined, or their code leaves the sandbox here. `best-effort` runs where the kernel
    /// cannot enforce all of it; `off` overrides wt.toml. The record says what was enforced
    /// (`merge.verify.confined`) [default: [merge] confine, else off]
    #[arg(long, value_name = "MODE", num_args = 0..=1, require_equals = true, default_missing_value = "strict", value_parser = wt_common::confine::via::MODES)]
    pub confine: Option<String>,

    /// With --confine: the commands may also write under PATH (a cache: ~/.cargo, ~/.npm)
    /// (repeatable) [wt.toml: [merge] allow_write]
    #[arg(long = "allow-write", value_name = "PATH")]
    pub allow_write: Vec<std::path::PathBuf>,

    /// With --confine: the commands also keep the caller's variable NAME (repeatable, or
    /// comma-separated; `NAME_*` for a prefix), besides the worktree's own and [run] pass_env
    #[arg(long = "pass-env", value_name = "NAME", value_delimiter = ',')]
    pub pass_env: Vec<String>,

    /// Merge a branch that nothing proved green (no --verify, and no record of a test of its
    /// tip on a clean tree); its record says `verified: false`
    #[arg(long)]
    pub unverified: bool,

    /// Merge a branch that changes [merge] or [watch] of wt.toml (the gate of later merges)
    #[arg(long)]
    pub allow_gate_change: bool,

    /// Verify at most N ready branches together: merged one on top of the other, the result
    /// verified once, all landing if it passes; on failure the batch is split in halves until
    /// the branch that broke it is found, so every commit the target moves to is verified.
    /// `--batch 1` verifies one by one [default: all that are ready, or [merge] batch]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: Option<u64>,

    /// Give up a verification after DUR (it then counts as failed; its excerpt names the tests
    /// still running, and pytest is asked, through PYTEST_ADDOPTS, to dump a test's stack after
    /// half of DUR) [default: [merge] timeout, else 30m]
    #[arg(long, value_name = "DUR", value_parser = wt_common::record::duration::parse_arg)]
    pub timeout: Option<std::time::Duration>,

    /// Remove each merged worktree and its branch, and release its leases [default: [merge]
    /// cleanup]
    #[arg(long)]
    pub cleanup: bool,

    /// Move the target back to before NAME's merge, if nothing was merged on top since
    #[arg(long, value_name = "NAME")]
    pub undo: Option<String>,

    #[command(flatten)]
    pub global: GlobalArgs,
}

/// The values of `--strategy` (and `[merge] strategy`).
pub const STRATEGIES: [&str; 4] = ["merge", "squash", "rebase", "ff"];

/// `[merge]` in wt.toml.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub into: Option<String>,
    pub strategy: Option<String>,
    pub verify: Option<String>,
    /// A duration, as `--timeout` takes it (`10m`).
    pub timeout: Option<String>,
    /// See `--prepare`.
    pub prepare: Option<String>,
    /// See `--batch`.
    pub batch: Option<u64>,
    pub cleanup: Option<bool>,
    /// See `--confine`: `true`, `false`, `"strict"`, `"best-effort"`, `"off"`.
    pub confine: Option<wt_common::confine::via::Setting>,
    /// See `--allow-write`.
    pub allow_write: Option<Vec<std::path::PathBuf>>,
}
