//! The private git store of a confined worktree, and publishing what a confined run committed.
//!
//! A confined command must be able to commit on its own branch, yet never move another ref,
//! remove or overwrite an object of the shared store, or change config and hooks. Landlock
//! cannot carve that out of a writable `.git`, so a confined run gets a store of its own, kept
//! in `<common dir>/wt/confine/<name>/` and mounted (in its mount namespace only) over the
//! shared one:
//!
//! - `objects/` over `<common>/objects`: new objects land here. Its `info/alternates` names
//!   `real-objects/`, where the namespace binds the shared store read-only (the shared path
//!   itself is shadowed there), and the shared store's own path, which is what it resolves to
//!   outside the namespace (git skips an alternate that is the store itself).
//! - `refs/` over `<common>/refs/heads/<dir of the branch>`: a copy of that directory's loose
//!   refs taken at the start; the run may move any of them, but only its own branch is ever
//!   published. `logs/` likewise over the reflogs.
//! - `tmp/`: the mount point of the run's private tmpfs (TMPDIR).
//! - `meta.json`: the branch and the commit it pointed at when the run started (`base`).
//!
//! **Publishing** moves the work into the shared repository only after checking it: every
//! object the private store holds is copied out through `beneath` (no link followed, no FIFO
//! opened: the store is the agent's to write) into an area of wt's own, packed there and
//! checked there by `git index-pack --strict`, which names each object by the hash of its
//! content (a planted file whose content is not its name cannot enter the shared store under
//! that name) and fscks it; only a pack that passed moves into the shared store; then
//! the branch moves with a compare-and-swap from `base` (a branch someone else moved meanwhile
//! is never overwritten: that is an error that names both commits). The private store is never
//! an alternate of the shared one. With nothing new (no objects, the branch where it started)
//! publishing reads two small files and one directory, and starts no git.
//!
//! Refs other than branches (`refs/stash`, tags, notes, remotes) stay read-only: `git stash`
//! fails inside a confined run rather than keeping work that would never be published.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::git;
use crate::proc::lock::FileLock;

/// The store of worktree `name`: `<common>/wt/confine/<name>`.
pub fn store_dir(common: &Path, name: &str) -> PathBuf {
    common.join("wt").join("confine").join(name)
}

/// What a run needs to mount its private store.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub dir: PathBuf,
    /// (private dir, where it is mounted in the namespace, writable)
    pub binds: Vec<(PathBuf, PathBuf, bool)>,
    /// The mount point of the private tmpfs.
    pub tmp: PathBuf,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Meta {
    /// `wt/agent-1`; absent for a detached worktree (only objects are published).
    branch: Option<String>,
    /// The commit the branch pointed at when the private copy was taken.
    base: Option<String>,
    /// The worktree's admin dir (`.git/worktrees/<name>`), from git's registration.
    #[serde(default)]
    admin: Option<PathBuf>,
    /// What its `config.worktree` held when the run started (wt makes an empty one when there
    /// is none, so that the run cannot create it): anything else found there later was
    /// planted, and is put back.
    #[serde(default)]
    config_worktree: Option<String>,
}

/// What publishing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// Nothing new since the last publish (or no store).
    Unchanged,
    /// Objects were imported; `moved` is `(branch, from, to)` when the branch moved.
    Done { objects: usize, moved: Option<(String, String, String)> },
}

/// Sets up the store of worktree `name` on `branch` for a confined run: publishes what an
/// earlier run left, then copies the branch (and its directory's other loose refs) into it.
///
/// `admin` is the worktree's admin dir, from git's registration: its `config.worktree` is made
/// (empty) when missing, so that the run, which sees it read-only, cannot create one with a
/// `core.fsmonitor` for later, and what it holds is noted to be checked at every publish.
pub fn prepare(common: &Path, name: &str, branch: Option<&str>, admin: Option<&Path>) -> Result<Prepared, Error> {
    crate::ledger::name::validate(name)?;
    // The branch names directories to mount over: each of its components a valid ref name.
    if let Some(b) = branch.filter(|b| b.split('/').any(|c| crate::ledger::name::validate(c).is_err())) {
        return Err(Error::failed("bad-name", format!("'{b}' is not a branch name wt can confine")));
    }
    let dir = store_dir(common, name);
    // wt's own directories; what is inside `objects`, `refs` and `logs` is the run's (they are
    // mounted writable in its namespace), so it is only reached through `beneath`.
    for sub in ["objects", "real-objects", "refs", "logs", "tmp"] {
        mkdir(&dir.join(sub))?;
    }
    let _lock = lock(&dir)?;
    // What an earlier run left is published first. If it cannot be (its branch was moved
    // outside, or it broke its private ref), that run's record or the tool that tried said so,
    // and its objects are in the shared store already: this run starts afresh from the real
    // branch rather than being stuck behind it.
    if let Err(e) = publish_locked(common, &dir) {
        tracing::warn!("{name}: an earlier confined run was not published: {e}");
    }
    crate::proc::failpoint::hit("confine-prepare-published");
    let alternates = format!("{}\n{}\n", dir.join("real-objects").display(), common.join("objects").display());
    let objects = beneath(&dir.join("objects"))?;
    let agents = |what: &str, e: std::io::Error| Error::io(dir.join("objects").join(what).display(), e);
    objects.ensure_dir("pack").map_err(|e| agents("pack", e))?;
    let info = objects.ensure_dir("info").map_err(|e| agents("info", e))?;
    info.write("alternates", alternates.as_bytes()).map_err(|e| agents("info/alternates", e))?;
    let mut binds = vec![
        (dir.join("objects"), common.join("objects"), true),
        (common.join("objects"), dir.join("real-objects"), false),
    ];
    let config_worktree = admin.map(worktree_config).transpose()?;
    let mut meta = Meta { admin: admin.map(Path::to_path_buf), config_worktree, ..Meta::default() };
    if let Some(branch) = branch {
        let parent = Path::new(branch).parent().unwrap_or(Path::new(""));
        let (refs_dst, logs_dst) =
            (common.join("refs/heads").join(parent), common.join("logs/refs/heads").join(parent));
        mkdir(&logs_dst)?;
        mkdir(&refs_dst)?;
        let leaf = Path::new(branch).file_name().unwrap_or_default().to_string_lossy().into_owned();
        let refs = beneath(&dir.join("refs"))?;
        mirror(&refs_dst, &refs, Some(&leaf))?;
        let base = start_point(common, &dir, branch, &refs, &leaf)?;
        mirror(&logs_dst, &beneath(&dir.join("logs"))?, None)?;
        binds.push((dir.join("refs"), refs_dst, true));
        binds.push((dir.join("logs"), logs_dst, true));
        meta.branch = Some(branch.to_string());
        meta.base = Some(base);
    }
    write(&dir.join("meta.json"), serde_json::to_string(&meta).expect("meta serializes"))?;
    Ok(Prepared { tmp: dir.join("tmp"), dir, binds })
}

/// The commit a new run starts from: the shared branch, once the private copy agrees with it.
///
/// Another confined run of the same worktree may still be going (the agent's pane, beside the
/// test rounds and re-runs wt-watch starts) and may have committed since the publish above.
/// Its commit is published, never overwritten: a run started beside a pane wrote the shared
/// tip over the private ref, and the agent's fresh commit was gone from its branch. The private
/// ref is reset to the shared branch only when it has no ref yet, or when what it holds cannot
/// be published (the branch was moved outside, which that publish says), as before.
fn start_point(
    common: &Path,
    dir: &Path,
    branch: &str,
    refs: &crate::fs::beneath::Dir,
    leaf: &str,
) -> Result<String, Error> {
    // A pane that commits without pause could keep this going: after a few rounds the private
    // branch is left ahead of the shared one (the run's start is `shared`, so the next publish
    // moves the branch on), never put back.
    let mut shared = resolve(common, branch)?;
    for _ in 0..4 {
        match private_tip(dir, branch) {
            Ok(private) if private == shared => return Ok(shared),
            Ok(_) => match publish_locked(common, dir) {
                Ok(Published::Done { moved: Some(_), .. }) => {
                    shared = resolve(common, branch)?;
                    continue;
                }
                Ok(_) => {}
                // Stopped half way: nothing was judged, and the private branch stays as it is.
                Err(e) if e.code == INTERRUPTED => return Err(e),
                Err(e) => tracing::warn!(
                    "{branch}: the private branch was not published, and starts again from {shared}: {e}"
                ),
            },
            Err(_) => {}
        }
        // No private ref yet, or one that cannot be published (the branch was moved outside):
        // the run starts from the shared branch.
        refs.write(leaf, format!("{shared}\n").as_bytes()).map_err(|e| Error::io(dir.join("refs").display(), e))?;
        return Ok(shared);
    }
    Ok(shared)
}

/// Publishes what the confined runs of worktree `name` made: see the module's documentation.
/// Without a store (the worktree never ran confined), nothing happens.
pub fn publish(common: &Path, name: &str) -> Result<Published, Error> {
    if crate::ledger::name::validate(name).is_err() {
        return Ok(Published::Unchanged);
    }
    let dir = store_dir(common, name);
    if !dir.join("meta.json").is_file() {
        return Ok(Published::Unchanged);
    }
    let _lock = lock(&dir)?;
    publish_locked(common, &dir)
}

/// Publishes every store of the repository (before reading branch heads); returns the
/// failures, by worktree name.
pub fn publish_all(common: &Path) -> Vec<(String, Error)> {
    let mut failed = Vec::new();
    for entry in std::fs::read_dir(common.join("wt").join("confine")).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Err(e) = publish(common, &name) {
            failed.push((name, e));
        }
    }
    failed
}

/// Removes the store of a worktree that is gone. Callers publish first (and a forced removal
/// may go on when that fails: what the store holds then goes with the worktree).
pub fn remove(common: &Path, name: &str) -> Result<(), Error> {
    if crate::ledger::name::validate(name).is_err() {
        return Ok(());
    }
    let dir = store_dir(common, name);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(dir.display(), e)),
        _ => Ok(()),
    }
}

/// The most one publish copies out of a private store; more is refused (and nothing kept).
const MAX_IMPORT: u64 = 4 << 30;

/// A ref file is a hash and a newline.
const MAX_REF: u64 = 200;

/// The most `meta.json` is read of (a branch, two hashes, a path and a small config).
const MAX_META: u64 = 64 << 10;

fn publish_locked(common: &Path, dir: &Path) -> Result<Published, Error> {
    // Not the confined run's to write (only its `objects/`, `refs/`, `logs/` and `tmp/` are
    // mounted), but in the common dir, which an unconfined agent can write: read as an
    // untrusted file, and its admin dir taken only if it is the worktree's own.
    let meta_file = dir.join("meta.json");
    let text = match crate::fs::untrusted::read_untrusted(&meta_file, MAX_META) {
        Ok(Some(text)) => text,
        Ok(None) => return Ok(Published::Unchanged),
        Err(refused) => return Err(Error::failed("tampered-worktree", refused.to_string())),
    };
    let mut meta: Meta = serde_json::from_str(&text).unwrap_or_default();
    let checked = meta.admin.clone().filter(|admin| !verified(dir, admin, false));
    if let Some(admin) = checked {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let listed = match ledger_of(common).read() {
            Ok(ledger) => match ledger.worktrees.get(name) {
                Some(entry) => Some(entry.path.clone()),
                // A worktree the ledger does not list has no admin dir of its own to check.
                None => {
                    meta.admin = None;
                    return publish_checked(common, dir, meta);
                }
            },
            // Not this user's to read (a run as another user): the admin dir must be one of
            // the repository's worktrees, as git registered it.
            Err(_) => None,
        };
        if !is_admin_dir_of(common, &admin, listed.as_deref()) {
            return Err(Error::failed(
                "tampered-worktree",
                format!(
                    "{} names {} as the admin dir of worktree '{name}', which it is not; nothing was published (remove the file if the worktree never ran confined)",
                    meta_file.display(),
                    admin.display()
                ),
            ));
        }
        verified(dir, &admin, true);
    }
    publish_checked(common, dir, meta)
}

/// Whether this process found `admin` to be the admin dir of the store at `dir` already (a
/// look at every store, or a wt-watch publishing one again and again, would otherwise read the
/// ledger each time); with `note`, notes that it did.
fn verified(dir: &Path, admin: &Path, note: bool) -> bool {
    static VERIFIED: Mutex<BTreeSet<(PathBuf, PathBuf)>> = Mutex::new(BTreeSet::new());
    let mut known = VERIFIED.lock().unwrap_or_else(|p| p.into_inner());
    let key = (dir.to_path_buf(), admin.to_path_buf());
    match note {
        true => known.insert(key),
        false => known.contains(&key),
    }
}

/// The ledger of the repository at `common`, one reader a process (its cache parses a ledger
/// once for as long as its bytes stay the same).
fn ledger_of(common: &Path) -> Arc<crate::ledger::LedgerFile> {
    static FILES: Mutex<BTreeMap<PathBuf, Arc<crate::ledger::LedgerFile>>> = Mutex::new(BTreeMap::new());
    let mut files = FILES.lock().unwrap_or_else(|p| p.into_inner());
    let state = common.join("wt");
    Arc::clone(files.entry(state.clone()).or_insert_with(|| Arc::new(crate::ledger::LedgerFile::new(&state))))
}

/// Publishes with `meta` read and its admin dir checked.
fn publish_checked(common: &Path, dir: &Path, meta: Meta) -> Result<Published, Error> {
    // The tip first, then the objects: git writes a commit's objects before it moves the
    // branch, so every object the tip needs is listed below. Listed first, a commit made in
    // between (by a run still going, in a pane) had its tip read but its objects left behind,
    // and the branch could not move to it.
    let tip = match &meta.branch {
        Some(branch) => Some(private_tip(dir, branch)?),
        None => None,
    };
    let objects = crate::fs::beneath::Dir::open(&dir.join("objects")).map_err(|e| refused("objects", &e))?;
    let found = private_objects(&objects)?;
    let moved = tip.is_some() && tip != meta.base;
    if found.is_empty() && !moved {
        check_admin(common, dir, &meta)?;
        return Ok(Published::Unchanged);
    }
    let count = if found.is_empty() {
        0
    } else {
        match import(common, dir, &found) {
            Ok(n) => n,
            // Stopped by a signal (a run cancelled while it started): nothing was judged, the
            // next publish imports them. Only git's own "no" refuses the agent's objects.
            Err(e) if e.code == INTERRUPTED => return Err(e),
            Err(e) => return Err(refuse(dir, &meta, &found, e)),
        }
    };
    let mut result = None;
    if let (Some(branch), Some(tip), Some(base)) = (&meta.branch, &tip, &meta.base) {
        if moved {
            update_branch(common, branch, tip, base)?;
            let meta = Meta { base: Some(tip.clone()), ..meta.clone() };
            write(&dir.join("meta.json"), serde_json::to_string(&meta).expect("meta serializes"))?;
            result = Some((branch.clone(), base.clone(), tip.clone()));
        }
    }
    // Imported: the shared store has them now (the run still sees them through real-objects).
    // Removed from the very directories that were read, whatever their paths lead to now.
    for (holder, name) in &found.files {
        let _ = holder.remove(name);
    }
    check_admin(common, dir, &meta)?;
    Ok(Published::Done { objects: count, moved: result })
}

/// Whether `admin` is git's admin dir (`<common>/worktrees/<x>`) of the worktree at
/// `worktree` (where the ledger lists it): its `gitdir`, git's registration, names that
/// worktree's `.git`. Without `worktree`, of any worktree whose `.git` names it back.
fn is_admin_dir_of(common: &Path, admin: &Path, worktree: Option<&Path>) -> bool {
    let plain = |x: &std::ffi::OsStr| Path::new(x).components().all(|c| matches!(c, std::path::Component::Normal(_)));
    if admin.parent() != Some(common.join("worktrees").as_path()) || !admin.file_name().is_some_and(plain) {
        return false;
    }
    // git 2.48 and later may write these relative to the file's own directory.
    let pointed = |file: &Path, prefix: &str| {
        let text = crate::fs::read_small(file).text()?;
        let target = text.strip_prefix(prefix)?.trim_end_matches('\n');
        let dir = file.parent()?;
        (!target.is_empty()).then(|| crate::fs::lexical(&dir.join(target)))
    };
    let real = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let Some(dot_git) = pointed(&admin.join("gitdir"), "") else { return false };
    match worktree {
        Some(worktree) => real(&dot_git) == real(&worktree.join(".git")),
        None => pointed(&dot_git, "gitdir: ").is_some_and(|back| real(&back) == real(admin)),
    }
}

/// A refused import is refused once: the objects leave the private store (the copy that was
/// checked is kept in `<store>/refused/`, replacing an earlier one, for a person to look at),
/// the private branch goes back to where it started, and the worktree's index, which may name
/// them, is set aside (`index.refused`): outside the run nothing may name an object the shared
/// store lacks, or `git gc` fails for the whole repository. The next publish finds nothing to
/// retry, and the disk holds at most one refused set.
fn refuse(dir: &Path, meta: &Meta, found: &Found, e: Error) -> Error {
    for (holder, name) in &found.files {
        let _ = holder.remove(name);
    }
    if let (Some(branch), Some(base), Ok(refs)) = (&meta.branch, &meta.base, beneath(&dir.join("refs"))) {
        let leaf = Path::new(branch).file_name().unwrap_or_default().to_string_lossy();
        let _ = refs.write(&leaf, format!("{base}\n").as_bytes());
    }
    if let Some(Ok(admin)) = meta.admin.as_deref().map(beneath) {
        let _ = admin.rename("index", "index.refused");
    }
    let kept = dir.join("refused");
    Error::failed(
        &e.code,
        format!(
            "{}; the run's objects were taken out of its store (the checked copy is in {}), its branch stays where it was, and the worktree's index was set aside (`git reset` in the worktree makes a new one)",
            e.message,
            kept.display()
        ),
    )
}

/// The run's admin dir as wt left it (read and repaired through `beneath`: the run writes
/// it, and a pane may still be running):
/// - `config.worktree` holds what it held when the run started (planted, or edited where the
///   sandbox could not stop it, git would run what it sets): put back;
/// - `HEAD` is a regular file naming no missing object, `index` a regular file naming no
///   missing object, `locked` a regular file (a FIFO there hangs every git that lists the
///   worktrees; a missing object makes `git gc` and `git repack` fail for the whole
///   repository): `HEAD` points at the branch again, the index is set aside (`index.refused`),
///   `locked` goes.
///
/// Any of these is the error `tampered-worktree`, once: the next publish finds the admin dir
/// as wt left it. The index is checked (two git processes) only when it changed since the
/// last check.
fn check_admin(common: &Path, dir: &Path, meta: &Meta) -> Result<(), Error> {
    use crate::fs::beneath::Kind;
    let Some(admin_path) = &meta.admin else { return Ok(()) };
    let Ok(admin) = crate::fs::beneath::Dir::open(admin_path) else { return Ok(()) };
    let mut fixed = Vec::new();
    let shown = |name: &str| admin_path.join(name).display().to_string();
    let now = admin.read("config.worktree", 4096).and_then(|b| String::from_utf8(b).ok());
    if now != meta.config_worktree {
        let _ = admin.remove_tree("config.worktree");
        if let Some(old) = &meta.config_worktree {
            admin.write("config.worktree", old.as_bytes()).map_err(|e| Error::io(shown("config.worktree"), e))?;
        }
        fixed.push(format!("{} was changed (git would run what it sets); wt put it back", shown("config.worktree")));
    }
    let head = admin.read("HEAD", 4096).and_then(|b| String::from_utf8(b).ok());
    let head_bad = match &head {
        None => admin.kind_of("HEAD").is_some(),
        Some(text) => {
            let hash = text.trim_end();
            is_hash(hash) && !object_exists(common, hash) && !private_has(dir, hash)
        }
    };
    if head_bad {
        let target = match (&meta.branch, &meta.base) {
            (Some(branch), _) => format!("ref: refs/heads/{branch}\n"),
            (None, Some(base)) => format!("{base}\n"),
            (None, None) => String::new(),
        };
        if !target.is_empty() {
            admin
                .remove_tree("HEAD")
                .and_then(|()| admin.write("HEAD", target.as_bytes()))
                .map_err(|e| Error::io(shown("HEAD"), e))?;
            fixed.push(format!(
                "{} was not a plain HEAD naming an object the repository has (git gc would fail or hang for the whole repository); it points at the branch again",
                shown("HEAD")
            ));
        }
    }
    if matches!(admin.kind_of("locked"), Some(Kind::Dir | Kind::Other)) {
        let _ = admin.remove_tree("locked");
        fixed.push(format!("{} was not a plain file (git worktree list would hang on it); removed", shown("locked")));
    }
    match admin.kind_of("index") {
        Some(Kind::Dir | Kind::Other) => {
            let _ = admin.rename("index", "index.refused");
            fixed.push(format!(
                "{} was not a plain file (git would hang on it); set aside as index.refused",
                shown("index")
            ));
        }
        Some(Kind::File) => {
            if let Some(missing) = index_names_missing(common, dir, &admin)? {
                let _ = admin.rename("index", "index.refused");
                fixed.push(format!(
                    "{} named object {missing}, which the repository does not have (git gc would fail for the whole repository); set aside as index.refused (`git reset` in the worktree makes a new one)",
                    shown("index")
                ));
            }
        }
        None => {}
    }
    if fixed.is_empty() {
        return Ok(());
    }
    Err(Error::failed(
        "tampered-worktree",
        format!(
            "the confined run's admin dir: {}; look at what the agent did before merging its work",
            fixed.join("; ")
        ),
    ))
}

/// The largest index checked; a bigger one is taken as it is (a repository with millions of
/// files: its index is the person's, not something a run grows to that size unnoticed).
const MAX_INDEX: u64 = 256 << 20;

/// An object the worktree's index names that neither store has, if any. The index is copied
/// (through `beneath`, capped) into wt's own area and read there by git; it is checked only
/// when it changed since the last check (its inode, size and modification time are noted in
/// `<store>/index-checked`).
fn index_names_missing(common: &Path, dir: &Path, admin: &crate::fs::beneath::Dir) -> Result<Option<String>, Error> {
    let Ok((file, size)) = admin.file("index") else { return Ok(None) };
    if size > MAX_INDEX {
        return Ok(None);
    }
    let st = rustix::fs::fstat(&file).map_err(|e| Error::io("index", e.into()))?;
    let key = format!("{} {} {}.{}", st.st_ino, st.st_size, st.st_mtime, st.st_mtime_nsec);
    let noted = dir.join("index-checked");
    if crate::fs::read_small(&noted).text().is_some_and(|k| k == key) {
        return Ok(None);
    }
    let copy = dir.join("index-copy");
    let _ = std::fs::remove_file(&copy);
    admin.copy_file("index", &copy, MAX_INDEX).map_err(|e| Error::io("index", e))?;
    let missing = (|| {
        let mut ls = hardened(common);
        ls.args(["ls-files", "-s", "-z"]).env("GIT_INDEX_FILE", &copy).stdout(Stdio::piped()).stderr(Stdio::null());
        let out = ls.output().map_err(|e| Error::io("git ls-files", e))?;
        match finished(out.status) {
            Finished::Yes => {}
            // git cannot read it: nothing in it can be named to `gc` either way; set aside.
            Finished::Failed => return Ok(Some("(an index git cannot read)".to_string())),
            Finished::Stopped => return Err(stopped("git ls-files")),
        }
        let names: Vec<String> = out
            .stdout
            .split(|b| *b == 0)
            .filter_map(|entry| {
                let text = std::str::from_utf8(entry).ok()?;
                let mut fields = text.split_whitespace();
                let (mode, hash) = (fields.next()?, fields.next()?);
                (mode != "160000" && is_hash(hash)).then(|| hash.to_string())
            })
            .collect();
        Ok(absent(common, &names)?.into_iter().find(|h| !private_has(dir, h)))
    })();
    let _ = std::fs::remove_file(&copy);
    let missing = missing?;
    if missing.is_none() {
        let _ = crate::fs::write_replace(&noted, key.as_bytes());
    }
    Ok(missing)
}

/// Which of `names` the shared store lacks (`git cat-file --batch-check`).
fn absent(common: &Path, names: &[String]) -> Result<Vec<String>, Error> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut cmd = hardened(common);
    cmd.args(["cat-file", "--batch-check"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().map_err(|e| Error::io("git cat-file", e))?;
    let list: String = names.iter().map(|h| format!("{h}\n")).collect();
    let mut stdin = child.stdin.take().expect("piped");
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, list.as_bytes()));
    let out = child.wait_with_output().map_err(|e| Error::io("git cat-file", e))?;
    let _ = writer.join();
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().filter_map(|l| l.strip_suffix(" missing")).map(String::from).collect())
}

/// Whether the private store `dir` holds `hash` as a loose object (read through `beneath`).
fn private_has(dir: &Path, hash: &str) -> bool {
    let Ok(objects) = crate::fs::beneath::Dir::open(&dir.join("objects")) else { return false };
    objects.dir(&hash[..2]).and_then(|sub| sub.file(&hash[2..])).is_ok()
}

/// Whether the shared store has object `hash`. A git that did not finish (a signal ended it)
/// answers yes: nothing is set right on a question nobody answered.
fn object_exists(common: &Path, hash: &str) -> bool {
    let mut cmd = hardened(common);
    cmd.args(["cat-file", "-e", hash]).stdout(Stdio::null()).stderr(Stdio::null());
    cmd.status().is_ok_and(|s| finished(s) != Finished::Failed)
}

/// How a git that judges the agent's files ended. A confined run is started in a process
/// group that wt-watch ends with a signal when the agent changes something (a re-run or a
/// round made stale): a git killed there said nothing of the file it read. Taken as "git
/// cannot read it", the agent's index was set aside as tampered with while the agent was
/// committing, and every later round saw the whole checkout as uncommitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finished {
    Yes,
    /// It ran to its end and said no.
    Failed,
    /// A signal ended it: no answer.
    Stopped,
}

fn finished(status: std::process::ExitStatus) -> Finished {
    match status.code() {
        Some(0) => Finished::Yes,
        Some(_) => Finished::Failed,
        None => Finished::Stopped,
    }
}

/// The code of a publish that a signal stopped half way (nothing changed, nothing refused).
const INTERRUPTED: &str = "publish-interrupted";

fn stopped(what: &str) -> Error {
    Error::failed(
        INTERRUPTED,
        format!("{what} was ended by a signal while it checked the confined run's admin dir; nothing was changed, the next publish checks again"),
    )
}

/// The content of the admin dir's `config.worktree`, made empty when there is none. One that
/// is not a small plain file (a link, a FIFO, a huge file) is refused: wt cannot tell what git
/// would read there.
fn worktree_config(admin: &Path) -> Result<String, Error> {
    let file = admin.join("config.worktree");
    match crate::fs::read_small(&file) {
        crate::fs::Small::Text(t) => Ok(t),
        crate::fs::Small::Missing => {
            beneath(admin)?.write("config.worktree", b"").map_err(|e| Error::io(file.display(), e))?;
            Ok(String::new())
        }
        _ => Err(Error::failed(
            "tampered-worktree",
            format!(
                "{} is not a small plain file; remove it (or repair the worktree) before confining",
                file.display()
            ),
        )),
    }
}

/// What a private store holds: its loose objects' names, its packs' names (without `.pack`),
/// and every file to remove once imported, with the directory it was found in.
#[derive(Default)]
struct Found {
    loose: Vec<(String, std::rc::Rc<crate::fs::beneath::Dir>, String)>,
    packs: Vec<String>,
    pack_dir: Option<std::rc::Rc<crate::fs::beneath::Dir>>,
    files: Vec<(std::rc::Rc<crate::fs::beneath::Dir>, String)>,
}

impl Found {
    fn is_empty(&self) -> bool {
        self.loose.is_empty() && self.packs.is_empty()
    }
}

fn refused(what: &str, e: &std::io::Error) -> Error {
    Error::failed("publish-failed", format!("the confined run's private store: {what}: {e}; it was not published"))
}

/// The private branch's commit: a loose ref file with a hash, nothing else (not a symbolic
/// ref, not a link, not a FIFO).
fn private_tip(dir: &Path, branch: &str) -> Result<String, Error> {
    let leaf = Path::new(branch).file_name().unwrap_or_default().to_string_lossy().into_owned();
    let bad = |why: &str| {
        Error::failed("publish-failed", format!("the confined run's branch {branch} {why}; it was not published"))
    };
    let refs = crate::fs::beneath::Dir::open(&dir.join("refs")).map_err(|_| bad("has no ref directory"))?;
    let (file, size) = refs.file(&leaf).map_err(|_| bad("is not a plain ref file"))?;
    if size > MAX_REF {
        return Err(bad("is not a plain ref file"));
    }
    let mut text = String::new();
    file.take(MAX_REF).read_to_string(&mut text).map_err(|_| bad("cannot be read"))?;
    let hash = text.trim_end();
    if !is_hash(hash) {
        return Err(bad("is not a commit hash"));
    }
    Ok(hash.to_string())
}

fn is_hash(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The loose objects and packs of the private store, listed through `beneath` (no link is
/// followed, no FIFO opened). Names that are not object names are ignored (git ignores them
/// too), and so is anything that is not a plain file or directory.
fn private_objects(objects: &crate::fs::beneath::Dir) -> Result<Found, Error> {
    use crate::fs::beneath::Kind;
    let mut found = Found::default();
    for (name, kind) in objects.entries().map_err(|e| refused("objects", &e))? {
        if kind != Kind::Dir {
            continue;
        }
        if name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            let Ok(sub) = objects.dir(&name) else { continue };
            let sub = std::rc::Rc::new(sub);
            for (rest, kind) in sub.entries().map_err(|e| refused(&name, &e))? {
                if kind == Kind::File && is_hash(&format!("{name}{rest}")) {
                    found.loose.push((format!("{name}{rest}"), std::rc::Rc::clone(&sub), rest.clone()));
                    found.files.push((std::rc::Rc::clone(&sub), rest));
                }
            }
        } else if name == "pack" {
            let Ok(pack) = objects.dir(&name) else { continue };
            let pack = std::rc::Rc::new(pack);
            let entries = pack.entries().map_err(|e| refused("pack", &e))?;
            let files: Vec<&String> = entries.iter().filter(|(_, k)| *k == Kind::File).map(|(n, _)| n).collect();
            for file in &files {
                let Some(stem) = file.strip_suffix(".pack") else { continue };
                if files.iter().any(|f| **f == format!("{stem}.idx")) {
                    found.packs.push(stem.to_string());
                    found.files.push((std::rc::Rc::clone(&pack), format!("{stem}.pack")));
                    found.files.push((std::rc::Rc::clone(&pack), format!("{stem}.idx")));
                }
            }
            found.pack_dir = Some(pack);
        }
    }
    Ok(found)
}

/// Moves the private objects into the shared store, crossing only as a checked byte stream:
/// they are copied (through `beneath`, at most `MAX_IMPORT` bytes) into an area of wt's own
/// beside the store (`importing/`, which the run cannot see), `pack-objects` makes one pack of
/// them all there, `index-pack --strict` checks it there, and only a pack that passed is moved
/// into the shared store. A refused one leaves nothing behind: no temp file in the shared
/// store, and the area is removed. Returns how many objects went in.
fn import(common: &Path, dir: &Path, found: &Found) -> Result<usize, Error> {
    let area = dir.join("importing");
    // What a publish killed half-way left.
    let _ = std::fs::remove_dir_all(&area);
    let copied = (|| {
        let objects = area.join("objects");
        std::fs::create_dir_all(objects.join("pack")).map_err(|e| Error::io(objects.display(), e))?;
        let mut budget = MAX_IMPORT;
        let mut take = |from: &crate::fs::beneath::Dir, name: &str, to: &Path| -> Result<(), Error> {
            let n = from.copy_file(name, to, budget).map_err(|e| refused(name, &e))?;
            budget -= n;
            Ok(())
        };
        let mut names = Vec::new();
        for (hash, sub, rest) in &found.loose {
            let to = objects.join(&hash[..2]);
            std::fs::create_dir_all(&to).map_err(|e| Error::io(to.display(), e))?;
            take(sub, rest, &to.join(rest))?;
            names.push(hash.clone());
        }
        if let Some(pack) = &found.pack_dir {
            for stem in &found.packs {
                for ext in ["pack", "idx"] {
                    take(pack, &format!("{stem}.{ext}"), &objects.join("pack").join(format!("{stem}.{ext}")))?;
                }
                names.extend(pack_members(common, &objects.join("pack").join(format!("{stem}.idx")))?);
            }
        }
        let pack = area.join("import.pack");
        pack_objects(common, &objects, &names, &pack)?;
        let hash = index_pack(common, &pack)?;
        // Into the shared store: the pack, then its index (which makes it visible).
        let shared = common.join("objects").join("pack");
        for ext in ["pack", "rev", "idx"] {
            let from = area.join(format!("import.{ext}"));
            if ext == "rev" && !from.exists() {
                continue;
            }
            let to = shared.join(format!("pack-{hash}.{ext}"));
            std::fs::rename(&from, &to).map_err(|e| Error::io(to.display(), e))?;
        }
        Ok(names.len())
    })();
    if copied.as_ref().is_err_and(|e: &Error| e.code != INTERRUPTED) {
        // The checked copy, for a person to look at; an earlier one goes (one set at most).
        let kept = dir.join("refused");
        let _ = std::fs::remove_dir_all(&kept);
        let _ = std::fs::rename(area.join("objects"), &kept);
    }
    let _ = std::fs::remove_dir_all(&area);
    copied
}

/// One pack of `names`, read from the copied objects (and the shared store for what they
/// refer to), written to `to`.
fn pack_objects(common: &Path, objects: &Path, names: &[String], to: &Path) -> Result<(), Error> {
    let out = std::fs::File::create(to).map_err(|e| Error::io(to.display(), e))?;
    let mut pack = hardened(common);
    pack.args(["pack-objects", "--stdout", "-q"])
        .env("GIT_OBJECT_DIRECTORY", objects)
        .env("GIT_ALTERNATE_OBJECT_DIRECTORIES", common.join("objects"))
        .stdin(Stdio::piped())
        .stdout(Stdio::from(out))
        .stderr(Stdio::piped());
    let mut child = pack.spawn().map_err(|e| Error::env("git-missing", format!("cannot run git: {e}")))?;
    let list: String = names.iter().map(|h| format!("{h}\n")).collect();
    let mut stdin = child.stdin.take().expect("piped");
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, list.as_bytes()));
    let out = child.wait_with_output().map_err(|e| Error::io("git pack-objects", e))?;
    let _ = writer.join();
    match finished(out.status) {
        Finished::Yes => Ok(()),
        Finished::Stopped => Err(stopped("git pack-objects")),
        Finished::Failed => {
            let msg = String::from_utf8_lossy(&out.stderr);
            Err(Error::failed(
                "publish-failed",
                format!("the confined run's objects cannot be read: {}", git_reason(&msg)),
            ))
        }
    }
}

/// The object names a pack index lists (`git show-index`).
fn pack_members(common: &Path, idx: &Path) -> Result<Vec<String>, Error> {
    let file = std::fs::File::open(idx).map_err(|e| Error::io(idx.display(), e))?;
    let mut cmd = hardened(common);
    cmd.arg("show-index").stdin(Stdio::from(file)).stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = cmd.spawn().and_then(|c| c.wait_with_output()).map_err(|e| Error::io("git show-index", e))?;
    if finished(out.status) == Finished::Stopped {
        return Err(stopped("git show-index"));
    }
    if !out.status.success() {
        return Err(Error::failed("publish-failed", format!("{} is not a pack index", idx.display())));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().filter_map(|l| l.split_whitespace().nth(1)).filter(|h| is_hash(h)).map(String::from).collect())
}

/// `git index-pack --strict --fsck-objects` of the pack file `pack` (its index is written
/// beside it), in the shared repository so that links to its objects are checked; the pack's
/// hash.
fn index_pack(common: &Path, pack: &Path) -> Result<String, Error> {
    let mut cmd = hardened(common);
    cmd.args(["index-pack", "--strict", "--fsck-objects"]).arg(pack).stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = cmd.spawn().and_then(|c| c.wait_with_output()).map_err(|e| Error::io("git index-pack", e))?;
    let hash = String::from_utf8_lossy(&out.stdout).split_whitespace().last().unwrap_or_default().to_string();
    if out.status.success() && is_hash(&hash) {
        return Ok(hash);
    }
    if finished(out.status) == Finished::Stopped {
        return Err(stopped("git index-pack"));
    }
    let msg = String::from_utf8_lossy(&out.stderr);
    Err(Error::failed(
        "publish-failed",
        format!("the confined run's objects were refused by git fsck: {}", git_reason(&msg)),
    ))
}

/// The one line of git's complaint that says why: its `fatal:` line, else its last `error:`
/// line (which names the object), else the last line.
fn git_reason(stderr: &str) -> &str {
    let lines = || stderr.lines().map(str::trim).filter(|l| !l.is_empty());
    lines()
        .find(|l| l.starts_with("fatal:"))
        .or_else(|| lines().rfind(|l| l.starts_with("error:")))
        .or_else(|| lines().next_back())
        .unwrap_or("git gave no reason")
}

/// Moves `branch` from `base` to `tip`, only if it is still at `base`.
fn update_branch(common: &Path, branch: &str, tip: &str, base: &str) -> Result<(), Error> {
    let refname = format!("refs/heads/{branch}");
    let mut cmd = hardened(common);
    cmd.args(["update-ref", "-m", "wt-run: publish confined run", &refname, tip, base]);
    let out = git::raw_output(&mut cmd)?;
    if out.status.success() {
        return Ok(());
    }
    let now = resolve(common, branch).unwrap_or_else(|_| "(deleted)".into());
    if now == tip {
        return Ok(()); // someone published it by hand
    }
    if now != base {
        return Err(Error::failed(
            "branch-moved",
            format!(
                "{branch} moved outside the confined run (from {base} to {now}); its commit {tip} was not published over it: merge or reset it by hand (`git branch -f {branch} {tip}`)"
            ),
        ));
    }
    Err(Error::failed("publish-failed", git::failure_message(&cmd, &out)))
}

/// git in the shared repository, with nothing a worktree could have planted in effect.
fn hardened(common: &Path) -> std::process::Command {
    let mut cmd = git::command(common);
    cmd.env("GIT_DIR", common).args(["-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null"]);
    cmd
}

/// The commit `refs/heads/<branch>` points at: read from its loose file or `packed-refs`
/// when it is a plain hash there (no git to start), else asked of git. Only wt and people
/// write the shared refs, so a hash found there is taken as it is.
fn resolve(common: &Path, branch: &str) -> Result<String, Error> {
    let refname = format!("refs/heads/{branch}");
    // Never through a link, a FIFO or past the cap (else git is asked).
    let loose = crate::fs::read_small(&common.join(&refname)).text();
    let packed = || {
        let packed = common.join("packed-refs");
        let text = crate::fs::read_untrusted(&packed, crate::fs::untrusted::PACKED_REFS_MAX).ok()??;
        let line = text.lines().find(|l| l.split_once(' ').is_some_and(|(_, name)| name == refname))?;
        Some(line.split(' ').next()?.to_string())
    };
    match loose.map(|l| l.trim_end().to_string()).or_else(packed) {
        Some(hash) if is_hash(&hash) => return Ok(hash),
        _ => {}
    }
    let mut cmd = hardened(common);
    cmd.args(["rev-parse", "--verify", "-q", &format!("refs/heads/{branch}^{{commit}}")]);
    let out = git::output(&mut cmd)
        .map_err(|_| Error::failed("no-such-branch", format!("branch {branch} does not exist")))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Makes `to` (the run's directory, opened through `beneath`) a copy of the loose ref files
/// (recursively) of `from` (the shared one), in place (a run that has it mounted keeps seeing
/// the same directory) and writing only what differs, so that in the usual case (nothing moved
/// since the last run) it only reads. `own` (the run's branch) is left for the caller. Every
/// name in `to` is reached from the directory it is in, never through a link: a run still
/// going in a pane may swap a directory for a link to anywhere while this runs.
fn mirror(from: &Path, to: &crate::fs::beneath::Dir, own: Option<&str>) -> Result<(), Error> {
    let failed = |e: std::io::Error| Error::io(from.display(), e);
    let mut wanted = Vec::new();
    for entry in std::fs::read_dir(from).into_iter().flatten().flatten() {
        let (Ok(kind), name) = (entry.file_type(), entry.file_name().to_string_lossy().into_owned()) else { continue };
        if Some(name.as_str()) == own {
            wanted.push(name);
            continue;
        }
        if kind.is_dir() {
            let sub = to.ensure_dir(&name).map_err(failed)?;
            mirror(&entry.path(), &sub, None)?;
        } else if kind.is_file() {
            // A ref file is a hash and a newline: a bigger one is no ref to mirror.
            let read = crate::fs::untrusted::read_untrusted_bytes(&entry.path(), MAX_REF);
            let Ok(Some(bytes)) = read else { continue };
            to.write(&name, &bytes).map_err(failed)?;
        }
        wanted.push(name);
    }
    for (name, _) in to.entries().map_err(failed)? {
        if !wanted.contains(&name) {
            let _ = to.remove_tree(&name);
        }
    }
    Ok(())
}

/// A directory of the store whose contents the run writes, opened through `beneath`.
fn beneath(path: &Path) -> Result<crate::fs::beneath::Dir, Error> {
    crate::fs::beneath::Dir::open(path).map_err(|e| Error::io(path.display(), e))
}

fn mkdir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))
}

/// Replaces a file of the store (or of the run's admin dir) unless it already holds `text`
/// (not synced: the store is scratch state, and a lost write only means the next run copies
/// the branch again). Never through a link: a temp file made new, renamed over the path.
fn write(path: &Path, text: impl AsRef<[u8]>) -> Result<(), Error> {
    let text = text.as_ref();
    // Read without following a link or waiting on a FIFO: the run can write some of these
    // directories (its refs, its admin dir) while wt writes them.
    if crate::fs::read_small(path).text().is_some_and(|old| old.as_bytes() == text) {
        return Ok(());
    }
    crate::fs::write_replace(path, text).map_err(|e| Error::io(path.display(), e))
}

fn lock(dir: &Path) -> Result<FileLock, Error> {
    FileLock::acquire(&dir.join("lock"), crate::proc::lock::default_timeout())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A git that a signal ended has not answered: never "cannot read" (which sets the agent's
    /// index aside), never "the object is missing" (which resets its HEAD).
    #[test]
    fn a_git_ended_by_a_signal_has_not_answered() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        child.kill().unwrap();
        assert_eq!(finished(child.wait().unwrap()), Finished::Stopped);
        let said_no = std::process::Command::new("sh").args(["-c", "exit 128"]).status().unwrap();
        assert_eq!(finished(said_no), Finished::Failed);
        let said_yes = std::process::Command::new("true").status().unwrap();
        assert_eq!(finished(said_yes), Finished::Yes);
    }
}
