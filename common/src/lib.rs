//! Shared mechanisms of the wt tools.
//!
//! Every wt tool is a small binary that reads and writes newline-delimited JSON records
//! (protocol `wt/1`, see `docs/protocol.md`). What more than one tool needs lives here, once:
//! the record itself, the JSON-lines reader and writer, the exit codes, repository discovery,
//! the locked ledger, command-line conventions and logging.

pub mod config;
pub mod confine;
pub mod error;
pub mod fs;
pub mod git;
pub mod host;
pub mod ledger;
pub mod proc;
pub mod record;

pub use error::{Error, ErrorKind, Exit, Result};
pub use record::{ErrorInfo, Record};
