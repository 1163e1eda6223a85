//! Shared dependency directories (`--share DIR`): each named gitignored directory of the main
//! worktree (`node_modules`, `.venv`, …) is placed into a worktree as a real directory of real
//! files, at near-zero disk: the files come from a content-addressed store under the git common
//! dir (`wt/store/`) as hard links or reflinks.
//!
//! A directory is built beside its final place under a temp name and swapped in with one
//! rename (an exchange, when it is re-shared), so a killed share leaves the old directory or the
//! new one, whole, plus a temp directory that the next share of that worktree removes.

pub mod cache;
pub mod gc;
pub mod inplace;
pub mod lockfiles;
pub mod method;
pub mod mtime;
pub mod pnpm;
pub mod repoint;
pub mod rewrite;
pub mod status;
pub mod store;
pub mod tree;

use std::collections::BTreeSet;
use std::fs;
use std::io::IsTerminal;
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde_json::{json, Value};
use wt_common::git::repo::Repo;
use wt_common::proc::lock::{default_timeout, FileLock};
use wt_common::record::progress::Counter;
use wt_common::{git, proc::failpoint, Error};

use method::Method;
pub use method::ShareMode;
use store::Store;

/// The word `--share pnpm` uses to ask for pnpm's settings rather than a directory.
pub const PNPM: &str = "pnpm";

/// What to share into the worktrees of this run.
#[derive(Debug)]
pub struct Sharing {
    /// Directories relative to the worktree root.
    pub dirs: Vec<PathBuf>,
    /// `--share pnpm`: write pnpm's one-store settings into each worktree.
    pub pnpm: bool,
    pub mode: ShareMode,
    /// `--share` was given on the command line: existing worktrees named are shared again.
    pub reshare_existing: bool,
    main: PathBuf,
    state_dir: PathBuf,
    store: OnceLock<Result<Store, Error>>,
    /// Worktrees are shared in parallel threads; their cache writes take turns.
    cache_writes: Mutex<()>,
    progress: Counter,
}

/// Where the words come from: the command line (strict) or `[create] share` in wt.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Flag,
    Config,
}

impl Sharing {
    /// Checks the directories before anything is made: each must be a relative path to a real
    /// directory of the main worktree that git ignores. `None`: nothing to share.
    pub fn new(repo: &Repo, words: &[String], origin: Origin, mode: ShareMode) -> Result<Option<Sharing>, Error> {
        if words.is_empty() {
            return Ok(None);
        }
        let Some(main) = repo.main_worktree.clone() else {
            return Err(Error::usage(
                "no-main-worktree",
                "--share copies directories of the main worktree, and a bare repository has none",
            ));
        };
        let mut dirs = Vec::new();
        let mut pnpm = false;
        for word in words {
            if word == PNPM {
                pnpm = true;
                continue;
            }
            let dir = relative_dir(word)?;
            match check_dir(&main, &repo.common_dir, &dir) {
                Ok(()) => dirs.push(dir),
                Err(e) if origin == Origin::Config => {
                    eprintln!("wt-create: not sharing {} ([create] share in wt.toml): {}", dir.display(), e.message)
                }
                Err(e) => return Err(e),
            }
        }
        dirs.sort();
        dirs.dedup();
        if !pnpm && pnpm::in_use(&main) {
            eprintln!("wt-create: {}", pnpm::advice(&repo.state_dir()));
        }
        Ok(Some(Sharing {
            dirs,
            pnpm,
            mode,
            reshare_existing: origin == Origin::Flag,
            main,
            state_dir: repo.state_dir(),
            store: OnceLock::new(),
            cache_writes: Mutex::new(()),
            progress: Counter::new("sharing", "files"),
        }))
    }

    fn store(&self) -> Result<&Store, Error> {
        self.store.get_or_init(|| Store::open(&self.state_dir, false)).as_ref().map_err(Clone::clone)
    }

    /// Shares every directory into the worktree `name` at `worktree`; the value goes into the
    /// record's `share` key. A directory whose lock files differ is skipped with a warning.
    pub fn share_into(&self, name: &str, worktree: &Path) -> Result<Value, Error> {
        let locks = self.state_dir.join("share");
        fs::create_dir_all(&locks).map_err(|e| Error::io(locks.display(), e))?;
        let _lock = FileLock::acquire(&locks.join(format!("{name}.lock")), default_timeout())?;
        let (mut dirs, mut shared) = (Vec::new(), Vec::new());
        for dir in &self.dirs {
            let result = match lockfiles::compare(&self.main, worktree, dir) {
                lockfiles::Verdict::Differs(file) => {
                    let reason = format!("{file} differs from the main worktree's");
                    eprintln!(
                        "wt-create: {name}: not sharing {}: {reason} (its dependencies differ; install them in the worktree)",
                        dir.display()
                    );
                    json!({"dir": dir, "status": "skipped", "reason": reason})
                }
                verdict => {
                    shared.push(dir.clone());
                    let mut v = self.share_dir(name, worktree, dir)?;
                    match verdict {
                        lockfiles::Verdict::Locked(files) | lockfiles::Verdict::Manifests(files) => {
                            v["compared"] = json!(files)
                        }
                        _ => {
                            let warning = unproven_warning(dir);
                            eprintln!("wt-create: {name}: {warning}");
                            v["warning"] = json!(warning);
                        }
                    }
                    v
                }
            };
            dirs.push(result);
        }
        self.progress.finish();
        remember(&wt_common::ledger::shared_dirs::file(&self.state_dir, name), &shared)?;
        let mut value = json!({"dirs": dirs});
        if self.pnpm {
            let added =
                pnpm::apply(&self.state_dir, worktree).map_err(|e| Error::io(worktree.join(".npmrc").display(), e))?;
            value["pnpm"] = json!({"npmrc": worktree.join(".npmrc"), "added": added});
        }
        Ok(value)
    }

    fn share_dir(&self, name: &str, worktree: &Path, dir: &Path) -> Result<Value, Error> {
        let source = self.main.join(dir);
        let dest = worktree.join(dir);
        let parent = dest.parent().unwrap_or(worktree).to_path_buf();
        real_dirs_below(worktree, dir)?;
        fs::create_dir_all(&parent).map_err(|e| Error::io(parent.display(), e))?;
        let tmp_prefix = format!(".{}.wt-share-", dir.file_name().unwrap_or_default().to_string_lossy());
        sweep(&parent, &tmp_prefix);
        let tmp = parent.join(format!("{tmp_prefix}{}", std::process::id()));
        let store = self.store()?;
        let in_place = inplace::reason(&source);
        let method = self.method(store, &parent, in_place.is_some(), dir)?;
        let cache_file = cache::path_for(store.root(), &source);
        let known = if in_place.is_none() { cache::load(&cache_file) } else { Default::default() };
        let build = tree::Build {
            source: &source,
            main: &self.main,
            worktree,
            method,
            store: in_place.is_none().then_some(store),
            progress: &self.progress,
            known: &known,
        };
        let built = tree::build(&build, &tmp);
        let tree::Built { counts, known: now, changed } = match built {
            Ok(b) => b,
            Err(e) => {
                let _ = wt_common::fs::remove_any(&tmp);
                return Err(Error::failed("share-failed", format!("sharing {} into {name}: {e}", dir.display())));
            }
        };
        failpoint::hit("share-before-swap");
        swap_in(&tmp, &dest).map_err(|e| Error::io(dest.display(), e))?;
        if in_place.is_none() && changed {
            let _turn = self.cache_writes.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = cache::save(&cache_file, &now) {
                tracing::warn!("cannot save the share cache {}: {e}", cache_file.display());
            }
        }
        if std::io::stderr().is_terminal() {
            eprintln!("wt-create: {name}: shared {} ({} files, {})", dir.display(), counts.files, method.as_str());
        }
        let mut v = json!({"dir": dir, "status": "shared", "method": method.as_str()});
        if let (Value::Object(m), Ok(Value::Object(c))) = (&mut v, serde_json::to_value(counts)) {
            m.extend(c);
        }
        if let Some(reason) = in_place {
            v["note"] = json!(format!("{reason}: {}, not hard-linked", method.as_str()));
        }
        Ok(v)
    }

    /// The method for one directory: the asked-for mode, except that directories rewritten in
    /// place are never hard-linked.
    fn method(&self, store: &Store, dest_parent: &Path, in_place: bool, dir: &Path) -> Result<Method, Error> {
        let resolved = method::resolve(self.mode, &store.tmp_dir(), dest_parent)
            .map_err(|m| Error::failed("reflink-unsupported", m))?;
        if in_place && resolved == Method::Hardlink {
            let clone = method::reflinks_work(&store.tmp_dir(), dest_parent);
            let method = if clone { Method::Reflink } else { Method::Copy };
            eprintln!(
                "wt-create: {}: {}, so it is {} rather than hard-linked",
                dir.display(),
                inplace::reason(&self.main.join(dir)).unwrap_or("its files are rewritten in place"),
                if clone { "cloned (reflink)" } else { "copied" }
            );
            return Ok(method);
        }
        Ok(resolved)
    }
}

/// Shared although nothing shows the worktree wants the same dependencies.
fn unproven_warning(dir: &Path) -> String {
    format!(
        "shared {} without proof that this worktree wants the same dependencies: there is no lock file \
         (package-lock.json, uv.lock, …) or manifest (package.json, pyproject.toml, requirements.txt, …) \
         beside it or above it to compare; commit one so that wt can check",
        dir.display()
    )
}

/// A `--share` word as a path inside the worktree: relative, no `..`, not empty.
fn relative_dir(word: &str) -> Result<PathBuf, Error> {
    let path = PathBuf::from(word.trim_end_matches('/'));
    let normal = path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    let cleaned: PathBuf = path.components().filter(|c| matches!(c, Component::Normal(_))).collect();
    if !normal || cleaned.as_os_str().is_empty() || word.contains('\n') {
        return Err(Error::usage(
            "bad-share-dir",
            format!(
                "--share {word:?}: give a directory relative to the repository root, such as node_modules or .venv"
            ),
        ));
    }
    Ok(cleaned)
}

/// The directory exists in the main worktree (as a directory, not a symlink) and git ignores it.
/// Refused, the message gives the line that makes git ignore it, and where it goes.
fn check_dir(main: &Path, common_dir: &Path, dir: &Path) -> Result<(), Error> {
    let path = main.join(dir);
    let is_dir = fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
    if !is_dir {
        return Err(Error::usage(
            "share-missing",
            format!(
                "{} is not a directory in the main worktree {} (install the dependencies there first)",
                dir.display(),
                main.display()
            ),
        ));
    }
    let mut cmd = git::command(main);
    cmd.args(["check-ignore", "-q", "--"]).arg(dir);
    let ignored = cmd.status().map_err(|e| Error::env("git-missing", format!("cannot run git: {e}")))?;
    if !ignored.success() {
        let tracked = git::run(main, ["ls-files", "--", &format!(":(literal){}", dir.display())]).unwrap_or_default();
        if !tracked.trim().is_empty() {
            return Err(Error::usage(
                "share-not-ignored",
                format!(
                    "{} holds files git tracks; only directories git ignores (node_modules, .venv, …) can be shared",
                    dir.display()
                ),
            ));
        }
        return Err(Error::usage("share-not-ignored", not_ignored_message(main, common_dir, dir)));
    }
    Ok(())
}

/// `--share DIR` of a directory git does not ignore: the line to add, and the two places it
/// can go (`.gitignore` for everyone who clones, `info/exclude` for this clone only).
fn not_ignored_message(main: &Path, common_dir: &Path, dir: &Path) -> String {
    let line = format!("/{}/", dir.display());
    let exclude = common_dir.join("info/exclude");
    let exclude = exclude.strip_prefix(main).map(Path::to_path_buf).unwrap_or(exclude);
    format!(
        "{} is not ignored by git, and only ignored directories (node_modules, .venv, …) can be shared; \
         add the line `{line}` to .gitignore (for everyone), or to {} (this clone only), then run again",
        dir.display(),
        exclude.display()
    )
}

/// The directories between the worktree and `dir` must be real directories: the worktree is
/// the agent's to change, and a symlink there (`packages -> /home/you`) would make wt build,
/// swap and delete trees outside it.
fn real_dirs_below(worktree: &Path, dir: &Path) -> Result<(), Error> {
    let mut path = worktree.to_path_buf();
    for part in dir.parent().into_iter().flat_map(Path::components) {
        path.push(part);
        match fs::symlink_metadata(&path) {
            Ok(m) if !m.is_dir() => {
                return Err(Error::failed(
                    "share-failed",
                    format!(
                        "{} is not a directory (a symlink?); wt shares only into real directories of the worktree",
                        path.display()
                    ),
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()), // made below
            Err(e) => return Err(Error::io(path.display(), e)),
        }
    }
    Ok(())
}

/// Removes temp directories of earlier shares that were killed (the caller holds the
/// worktree's share lock, so none of them is in use).
fn sweep(parent: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            tracing::info!("removing {}, left by a share that was killed", entry.path().display());
            let _ = wt_common::fs::remove_any(&entry.path());
        }
    }
}

/// Puts the built tree `tmp` at `dest` in one step: a rename, or an exchange with the tree that
/// is there (which is then removed).
fn swap_in(tmp: &Path, dest: &Path) -> std::io::Result<()> {
    if fs::symlink_metadata(dest).is_err() {
        return fs::rename(tmp, dest);
    }
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    renameat_with(CWD, tmp, CWD, dest, RenameFlags::EXCHANGE)?;
    failpoint::hit("share-after-swap");
    wt_common::fs::remove_any(tmp)
}

/// The directories shared into a worktree, for `--share-status`.
fn remember(file: &Path, dirs: &[PathBuf]) -> Result<(), Error> {
    let before: BTreeSet<PathBuf> = wt_common::ledger::shared_dirs::read(file).into_iter().collect();
    let mut all = before.clone();
    all.extend(dirs.iter().cloned());
    if all == before {
        return Ok(());
    }
    let bytes = serde_json::to_vec(&all).expect("paths serialize");
    wt_common::fs::write_atomic(file, &bytes).map_err(|e| Error::io(file.display(), e))
}

/// `--share DIR NAME` where NAME exists: shares again (after the main worktree's dependencies
/// changed) and puts the outcome in the record.
pub fn into_adopted(ctx: &crate::context::Context, rec: &mut wt_common::Record) {
    let Some(sharing) = ctx.share.as_ref().filter(|s| s.reshare_existing) else { return };
    if rec.has_error() || rec.created != Some(false) {
        return;
    }
    let Some(path) = rec.path.clone() else { return };
    match sharing.share_into(&rec.name, &path) {
        Ok(v) => rec.set_key("share", v),
        Err(e) => rec.set_error(crate::context::TOOL, &e),
    }
}
