//! Shared mechanisms of the wt tools.
//!
//! Every wt tool is a small binary that reads and writes newline-delimited JSON records
//! (protocol `wt/1`, see `docs/protocol.md`). What more than one tool needs lives here, once:
//! the record itself, the JSON-lines reader and writer, the exit codes, repository discovery,
//! the locked ledger, command-line conventions and logging.

pub mod beneath;
pub mod checkout_state;
pub mod cli;
pub mod config;
pub mod confine_store;
pub mod confine_via;
pub mod duration;
pub mod error;
pub mod excerpt;
pub mod failpoint;
pub mod fsutil;
pub mod git;
pub mod hooks_path;
pub mod host;
pub mod ignore;
pub mod inside;
pub mod jsonl;
pub mod kept_db;
pub mod lease;
pub mod ledger;
pub mod lock;
pub mod name;
pub mod output;
pub mod panes;
pub mod parallel;
pub mod process;
pub mod progress;
pub mod reaper;
pub mod record;
pub mod refs;
pub mod registry;
pub mod repo;
pub mod runlog;
pub mod secret_files;
pub mod select;
pub mod shared_dirs;
pub mod sibling;
pub mod signals;
pub mod stale_lock;
pub mod supervisor;
#[cfg(test)]
mod test_git;
pub mod tested;
pub mod worktree;
pub mod worktree_check;

pub use error::{Error, ErrorKind, Exit, Result};
pub use record::{ErrorInfo, Record};
