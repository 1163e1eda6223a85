//! Which worktrees a run is about: records and words on stdin, names as arguments (`-w`),
//! `--all`. Shared by the tools that act on existing worktrees.

use std::path::Path;

use crate::jsonl::{Input, Malformed};
use crate::ledger::{Entry, Ledger};
use crate::output::Output;
use crate::repo::Repo;
use crate::{name, Error, Record};

/// One worktree to work on, or a record to pass through as it is.
#[derive(Debug)]
pub enum Target {
    Worktree(Box<Record>),
    PassThrough(Box<Record>),
}

/// The record of a managed worktree, from the ledger.
pub fn record_from_entry(repo: &Repo, name: &str, e: &Entry) -> Record {
    let mut rec = Record::named(name);
    rec.repo = Some(repo.root().to_path_buf());
    rec.path = Some(e.path.clone());
    rec.branch = e.branch.clone();
    rec.base = e.base.clone();
    rec.base_commit = e.base_commit.clone();
    rec.index = e.index;
    rec
}

/// Resolves a bare word: a managed name, or a path of a worktree.
pub fn from_word(repo: &Repo, ledger: &Ledger, word: &str) -> Result<Record, (String, Error)> {
    let fail = |e: Error| (word.to_string(), e);
    if name::is_path(word) {
        let path = Path::new(word).canonicalize().map_err(|_| fail(missing(word)))?;
        let found = ledger.name_of_path(&path).map(|n| (n.to_string(), ledger.worktrees[n].clone()));
        let (n, entry) = found.unwrap_or_else(|| {
            let n = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            (n, Entry::new(path.clone()))
        });
        return Ok(record_from_entry(repo, &n, &entry));
    }
    name::validate(word).map_err(|e| fail(e.with_kind(crate::ErrorKind::Failed)))?;
    match ledger.worktrees.get(word) {
        Some(e) => Ok(record_from_entry(repo, word, e)),
        None => Err(fail(Error::failed(
            "no-such-worktree",
            format!("no worktree '{word}' is managed in this repository; create it with `wt-create {word}`"),
        ))),
    }
}

fn missing(what: &str) -> Error {
    Error::failed(
        "worktree-missing",
        format!("the worktree directory {what} does not exist (removed? `wt-env --gc` releases its leases)"),
    )
}

/// Checks that a record names a worktree whose directory exists.
pub fn check(rec: &Record) -> Result<(), Error> {
    if rec.name.is_empty() {
        return Err(Error::failed("no-name", "the record has no name; pass records from wt-create, or names"));
    }
    match &rec.path {
        Some(p) if p.is_dir() => Ok(()),
        Some(p) => Err(missing(&p.display().to_string())),
        None => Err(Error::failed("no-path", format!("the record of '{}' has no path", rec.name))),
    }
}

/// Everything a run is asked about, in order: `words` (names or paths), then every managed
/// worktree with `all`, then stdin when `stdin` is set. What cannot be resolved becomes a
/// record with an error from `tool`.
pub fn collect(
    tool: &str,
    repo: &Repo,
    ledger: &Ledger,
    words: &[String],
    all: bool,
    stdin: bool,
    out: &mut Output,
) -> Vec<Target> {
    let mut targets = Vec::new();
    let push_word = |w: &str, targets: &mut Vec<Target>| match from_word(repo, ledger, w) {
        Ok(rec) => targets.push(Target::Worktree(Box::new(rec))),
        Err((n, e)) => targets.push(Target::PassThrough(Box::new(Record::failed(&n, tool, &e)))),
    };
    for w in words {
        push_word(w, &mut targets);
    }
    if all {
        for (n, e) in &ledger.worktrees {
            targets.push(Target::Worktree(Box::new(record_from_entry(repo, n, e))));
        }
    }
    if stdin {
        if let Some(mut reader) = crate::cli::stdin_records() {
            while let Some(input) = reader.next() {
                match input {
                    Ok(Input::Word(w)) => push_word(&w, &mut targets),
                    Ok(Input::Record(r)) if r.has_error() => targets.push(Target::PassThrough(r)),
                    Ok(Input::Record(r)) if r.name.is_empty() && r.path.is_none() => out.malformed(&Malformed {
                        line: reader.line(),
                        message: "record has neither name nor path".into(),
                    }),
                    Ok(Input::Record(r)) => targets.push(Target::Worktree(r)),
                    Err(m) => out.malformed(&m),
                }
            }
        }
    }
    targets
}
