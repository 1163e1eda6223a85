//! The command line of wt-env.

use std::path::PathBuf;

use clap::Parser;
use wt_common::record::cli::GlobalArgs;

/// Lease each worktree a stable index, a block of free ports and a database of its own.
///
/// Reads worktree records (from wt-create) or names on stdin, or takes names as arguments,
/// `-w NAME` or `--all`; prints each record with `index` and `env` added. Leases live in the
/// repository's ledger: asking again gives the same index, block and database.
#[derive(Debug, Parser)]
#[command(
    name = "wt-env",
    version,
    after_help = "Examples:\n  wt-create -n 4 | wt-env --ports web,api --database postgres:///app --dotenv\n  eval \"$(wt-env --export agent-1)\"\n  wt-env --list\n  wt-env --list --machine          # every block on this machine, and whose it is\n  wt-env --release --drop-database agent-3\n  wt-env --gc                      # leases of worktrees that no longer exist\n  wt-env --list --kept             # databases kept after their worktree was removed\n  wt-env --drop-kept agent-3       # drop those kept from agent-3 (no name: every one)\n  wt-env --rust-cache sccache --dotenv agent-2   # its cargo builds share one sccache cache\n\nExit: 0 all done, 1 some record has an error, 2 usage or bad input, 3 unusable repository."
)]
pub struct Args {
    /// Worktrees by name (or path, with '/')
    #[arg(value_name = "NAME|PATH", add = wt_common::record::complete::worktrees())]
    pub names: Vec<String>,

    #[command(flatten)]
    pub select: wt_common::record::cli::Selection,

    /// Names for the first ports of the block: PORT and WT_PORT_<NAME> [wt.toml: [env] ports]
    #[arg(long, value_name = "NAME,…", value_delimiter = ',')]
    pub ports: Option<Vec<String>>,

    /// Ports per block [default: 10]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub block: Option<u16>,

    /// Take blocks from LO-HI [default: 20000 up to the kernel's ephemeral range]
    #[arg(long, value_name = "LO-HI")]
    pub range: Option<String>,

    /// A database per worktree: postgres://…/TEMPLATE (cloned) or sqlite:///abs/file.db (copied)
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,

    /// Write the env into a file in the worktree, ignored by git: `--dotenv` writes .env.wt,
    /// `--dotenv=FILE` writes FILE (the `=` is needed, so a name after it stays a name)
    #[arg(long, value_name = "FILE", num_args = 0..=1, require_equals = true, default_missing_value = ".env.wt")]
    pub dotenv: Option<PathBuf>,

    /// Print `export K='V'` lines for one worktree (for eval) instead of a record
    #[arg(long)]
    pub export: bool,

    /// Write a note for the agent into FILE in the worktree (e.g. CLAUDE.local.md), ignored by git
    #[arg(long, value_name = "FILE")]
    pub brief: Option<PathBuf>,

    /// Send the worktree's Rust builds through a compiler cache the worktrees share:
    /// RUSTC_WRAPPER in its env (see docs/rust-target.md) [wt.toml: [env] rust_cache]
    #[arg(long, value_name = "CACHE")]
    pub rust_cache: Option<crate::rust_cache::RustCache>,

    /// Print the leases in the ledger as records
    #[arg(long, conflicts_with_all = ["release", "gc", "export"])]
    pub list: bool,

    /// With --list: the databases kept after their worktree was removed (name, worktree, since
    /// when, size), which no lease holds any more
    #[arg(long, requires = "list", conflicts_with = "machine")]
    pub kept: bool,

    /// Drop the kept databases of the named worktrees (or of these database names); without
    /// names, every kept database. Says what it drops first
    #[arg(long, conflicts_with_all = ["list", "release", "gc", "export", "database", "dotenv", "brief"])]
    pub drop_kept: bool,

    /// With --list: every port block leased on this machine, of every repository and user
    /// (the machine's port registry), with its owner and whether it still holds
    #[arg(long, requires = "list")]
    pub machine: bool,

    /// Give the worktrees' leases back
    #[arg(long, conflicts_with_all = ["gc", "export"])]
    pub release: bool,

    /// Release the leases of worktrees that no longer exist, however they were removed
    #[arg(long, conflicts_with = "export")]
    pub gc: bool,

    /// With --release or --gc: also drop the database (postgres) or delete its copy (sqlite)
    #[arg(long)]
    pub drop_database: bool,

    #[command(flatten)]
    pub global: GlobalArgs,
}

/// `[env]` in wt.toml.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub ports: Option<Vec<String>>,
    pub block: Option<u16>,
    pub range: Option<String>,
    pub database: Option<String>,
    pub dotenv: Option<PathBuf>,
    pub brief: Option<PathBuf>,
    pub rust_cache: Option<crate::rust_cache::RustCache>,
}
