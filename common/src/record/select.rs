//! Which worktrees a run is about: records and words on stdin, names as arguments (`-w`),
//! `--all`. Shared by the tools that act on existing worktrees.

use std::path::Path;

use crate::git::repo::Repo;
use crate::git::worktree_check::{self, Registered};
use crate::ledger::{Entry, Ledger};
use crate::record::jsonl::{Input, Malformed};
use crate::record::output::Output;
use crate::{ledger::name, Error, Record};

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
        let path = Path::new(word).canonicalize().map_err(|_| fail(worktree_check::missing(Path::new(word))))?;
        let found = ledger.name_of_path(&path).map(|n| (n.to_string(), ledger.worktrees[n].clone()));
        let (n, entry) = found.unwrap_or_else(|| {
            let n = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            (n, Entry::new(path.clone()))
        });
        return Ok(record_from_entry(repo, &n, &entry));
    }
    name::validate(word).map_err(|e| fail(Error::failed("bad-name", e.message)))?;
    match ledger.worktrees.get(word) {
        Some(e) => Ok(record_from_entry(repo, word, e)),
        None => Err(fail(Error::failed(
            "no-such-worktree",
            format!("no worktree '{word}' is managed in this repository; create it with `wt-create {word}`"),
        ))),
    }
}

/// The gate every record passes before a tool acts on it: a record is untrusted input (an
/// agent can write one), so its `name` must be a valid worktree name (`bad-name`), its `path`
/// a registered worktree of this repository that the ledger gives that name (`not-a-worktree`,
/// `bad-name`), and the worktree's git files must be git's (`worktree_check::verify`). On
/// success the record's `path` and `branch` are the registration's and the ledger's. A managed
/// worktree whose directory is gone passes with no registration, so that its leases can still
/// be released; `check` then reports it to the tools that need the directory.
pub fn admit(repo: &Repo, ledger: &Ledger, rec: &mut Record) -> Result<Option<Registered>, Error> {
    if rec.name.is_empty() {
        return Err(Error::failed("no-name", "the record has no name; pass records from wt-create, or names"));
    }
    name::validate(&rec.name).map_err(|e| Error::failed("bad-name", e.message))?;
    let entry = ledger.worktrees.get(&rec.name);
    let given = match (&rec.path, entry) {
        (Some(p), _) => p.clone(),
        (None, Some(e)) => e.path.clone(),
        (None, None) => return Err(Error::failed("no-path", format!("the record of '{}' has no path", rec.name))),
    };
    let Ok(path) = given.canonicalize() else {
        return match entry {
            Some(e) if e.path == given => Ok(None),
            Some(e) => Err(not_its_worktree(&rec.name, &given, &e.path)),
            None => Err(worktree_check::missing(&given)),
        };
    };
    match entry {
        Some(e) if e.path.canonicalize().ok().as_ref() != Some(&path) => {
            return Err(not_its_worktree(&rec.name, &given, &e.path))
        }
        None => {
            if let Some(other) = ledger.name_of_path(&path) {
                return Err(Error::failed(
                    "bad-name",
                    format!("the worktree {} is '{other}', not '{}'", path.display(), rec.name),
                ));
            }
        }
        _ => {}
    }
    let reg = worktree_check::verify(repo, &path)?;
    // The branch wt acts on (merges, say) is the one the ledger gave the name, never one the
    // record or the worktree's HEAD names instead.
    let branch = entry.and_then(|e| e.branch.clone()).or_else(|| reg.branch.clone());
    if let (Some(said), Some(b)) = (&rec.branch, &branch) {
        if said != b {
            return Err(Error::failed(
                "not-a-worktree",
                format!("the record of '{}' names branch {said}, but its branch is {b}", rec.name),
            ));
        }
    }
    rec.branch = branch;
    rec.path = Some(reg.path.clone());
    Ok(Some(reg))
}

fn not_its_worktree(name: &str, given: &Path, its: &Path) -> Error {
    Error::failed(
        "not-a-worktree",
        format!("{} is not the worktree of '{name}' ({}); see `wt-create --list`", given.display(), its.display()),
    )
}

/// Passes a record through `admit`: the record to act on, or the same record with its error.
pub fn admitted(tool: &str, repo: &Repo, ledger: &Ledger, mut rec: Record) -> Target {
    match admit(repo, ledger, &mut rec) {
        Ok(_) => Target::Worktree(Box::new(rec)),
        Err(e) => {
            rec.set_error(tool, &e);
            Target::PassThrough(Box::new(rec))
        }
    }
}

/// Checks that a record names a worktree whose directory exists.
pub fn check(rec: &Record) -> Result<(), Error> {
    if rec.name.is_empty() {
        return Err(Error::failed("no-name", "the record has no name; pass records from wt-create, or names"));
    }
    match &rec.path {
        Some(p) if p.is_dir() => Ok(()),
        Some(p) => Err(worktree_check::missing(p)),
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
        Ok(rec) => targets.push(admitted(tool, repo, ledger, rec)),
        Err((n, e)) => targets.push(Target::PassThrough(Box::new(Record::failed(&n, tool, &e)))),
    };
    for w in words {
        push_word(w, &mut targets);
    }
    if all {
        for (n, e) in &ledger.worktrees {
            targets.push(admitted(tool, repo, ledger, record_from_entry(repo, n, e)));
        }
    }
    if stdin {
        if let Some(mut reader) = crate::record::cli::stdin_records() {
            while let Some(input) = reader.next() {
                match input.and_then(|i| target_of_input(tool, repo, ledger, i, reader.line())) {
                    Ok(t) => targets.push(t),
                    Err(m) => out.malformed(&m),
                }
            }
        }
    }
    targets
}

/// What one line read from stdin (line number `line`) asks for: a worktree, a record to pass
/// through (it carries an error, or its word could not be resolved), or a malformed line.
/// For tools that read stdin while they work (wt-watch), one line at a time.
pub fn target_of_input(
    tool: &str,
    repo: &Repo,
    ledger: &Ledger,
    input: Input,
    line: usize,
) -> Result<Target, Malformed> {
    Ok(match input {
        Input::Word(w) => match from_word(repo, ledger, &w) {
            Ok(rec) => admitted(tool, repo, ledger, rec),
            Err((n, e)) => Target::PassThrough(Box::new(Record::failed(&n, tool, &e))),
        },
        Input::Record(r) if r.has_error() => Target::PassThrough(r),
        Input::Record(r) if r.name.is_empty() && r.path.is_none() => {
            return Err(Malformed { line, message: "record has neither name nor path".into() })
        }
        Input::Record(r) => admitted(tool, repo, ledger, *r),
    })
}
