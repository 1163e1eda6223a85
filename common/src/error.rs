//! Errors with a kind that maps to an exit code, and the exit codes every tool shares.
//!
//! Exit codes (docs/protocol.md): 0 every record done; 1 at least one record carries an `error`;
//! 2 usage or malformed input; 3 the environment is unusable (not a git repository, git missing,
//! lock timeout, unreadable ledger).

use std::fmt;

/// The process exit status shared by every wt tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    Ok = 0,
    Failed = 1,
    Usage = 2,
    Environment = 3,
}

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The worse of two outcomes: a run that met a usage problem and a failed record exits 2.
    pub fn worst(self, other: Exit) -> Exit {
        self.max(other)
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}

/// What went wrong, coarsely: decides the exit code when the error ends the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// One record could not be done; the tool goes on with the others.
    Failed,
    /// The command line or the input is wrong; the user must change what they typed.
    Usage,
    /// The machine or repository is not usable as it is (not a repository, git missing, lock
    /// timeout, unreadable ledger).
    Environment,
}

impl ErrorKind {
    pub fn exit(self) -> Exit {
        match self {
            ErrorKind::Failed => Exit::Failed,
            ErrorKind::Usage => Exit::Usage,
            ErrorKind::Environment => Exit::Environment,
        }
    }
}

/// An error every wt tool can report: a stable kebab-case `code` for scripts, a one-line
/// `message` for people (naming the problem and the fix), and a `kind` for the exit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    pub kind: ErrorKind,
    pub code: String,
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error {
    pub fn new(kind: ErrorKind, code: &str, message: impl Into<String>) -> Self {
        Error { kind, code: code.to_string(), message: message.into() }
    }
    pub fn failed(code: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Failed, code, message)
    }
    pub fn usage(code: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, code, message)
    }
    pub fn env(code: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Environment, code, message)
    }
    /// An I/O error on `what`, a path or a short description.
    pub fn io(what: impl fmt::Display, err: std::io::Error) -> Self {
        Self::failed("io", format!("{what}: {err}"))
    }
    /// The same error, with a different kind (a record error that must end the run, say).
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
