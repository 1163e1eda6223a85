//! The ledger: what the tools have handed out in one repository (worktrees they manage, indices,
//! port blocks, databases), in `<git common dir>/wt/ledger.json`.
//!
//! It is changed only under an exclusive `flock` on `ledger.lock` (a separate file, since the
//! ledger itself is replaced by rename), written to a temp file and renamed into place, so
//! readers without the lock always see a whole ledger and a killed writer leaves the old one.
//! A ledger that cannot be parsed is never overwritten: the tools stop and say how to recover.
//!
//! ```json
//! {"v":1,"worktrees":{"agent-1":{"path":"/abs/repo.wt/agent-1","branch":"wt/agent-1",
//!   "base":"main","base_commit":"<40 hex>","branch_created":true}}}
//! ```

pub mod kept_db;
pub mod lease;
pub mod machine_ports;
pub mod name;
pub mod outcome;
pub mod repos;
pub mod root_layout;
pub mod secret_files;
pub mod shared_dirs;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::fs::write_atomic_private;
use crate::proc::lock::{default_timeout, FileLock};

/// The names of the worktrees the tools manage in the repository whose state directory is
/// `state_dir`, in name order; none when there is no ledger yet.
pub fn worktree_names(state_dir: &Path) -> Result<Vec<String>, Error> {
    Ok(LedgerFile::new(state_dir).read()?.worktrees.keys().cloned().collect())
}

/// Everything the tools have handed out in one repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    #[serde(default = "one")]
    pub v: u32,
    /// Managed worktrees by name.
    #[serde(default)]
    pub worktrees: BTreeMap<String, Entry>,
    /// Sections written by newer versions, kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn one() -> u32 {
    1
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger { v: 1, worktrees: BTreeMap::new(), extra: Map::new() }
    }
}

/// One managed worktree and what it holds. Read by a hand-written `Deserialize` (below), not
/// serde's derived one: with the flattened `extra`, serde buffers every entry before reading
/// it, which was most of parsing a ledger of 500 leases.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub path: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_commit: Option<String>,
    /// True when wt-create made the branch (so `--remove` deletes it); false when adopted.
    #[serde(default)]
    pub branch_created: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// Leases owned by other tools (ports, database, …), kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EntryVisitor)
    }
}

/// The fields of `Entry` by name; any other key goes to `extra` as it is.
struct EntryVisitor;

impl<'de> serde::de::Visitor<'de> for EntryVisitor {
    type Value = Entry;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a worktree entry (an object with a \"path\")")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
        use serde::de::Error as _;
        let mut entry = Entry::new(PathBuf::new());
        let mut path = None;
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if let Some(field) = FIELDS.iter().find(|f| **f == key) {
                if !seen.insert(*field) {
                    return Err(A::Error::duplicate_field(field));
                }
            }
            match key.as_str() {
                "path" => path = Some(map.next_value()?),
                "branch" => entry.branch = map.next_value()?,
                "base" => entry.base = map.next_value()?,
                "base_commit" => entry.base_commit = map.next_value()?,
                "branch_created" => entry.branch_created = map.next_value()?,
                "index" => entry.index = map.next_value()?,
                _ => {
                    let value = map.next_value()?;
                    entry.extra.insert(key, value);
                }
            }
        }
        entry.path = path.ok_or_else(|| A::Error::missing_field("path"))?;
        Ok(entry)
    }
}

const FIELDS: [&str; 6] = ["path", "branch", "base", "base_commit", "branch_created", "index"];

impl Entry {
    pub fn new(path: PathBuf) -> Self {
        Entry {
            path,
            branch: None,
            base: None,
            base_commit: None,
            branch_created: false,
            index: None,
            extra: Map::new(),
        }
    }
}

impl Ledger {
    /// What makes a ledger unusable though it parses (a hand edit, a newer wt): another
    /// version, an index or a port held twice, a port block outside 1-65535. Acting on it would
    /// hand the same port or database to two worktrees, so it is refused, never rewritten.
    fn inconsistency(&self) -> Option<String> {
        if self.v != 1 {
            return Some(format!("has version {}, which this wt does not know (a newer wt wrote it?)", self.v));
        }
        let mut indices = BTreeMap::new();
        let mut blocks: Vec<(&str, crate::ledger::lease::PortBlock)> = Vec::new();
        for (name, entry) in &self.worktrees {
            if let Some(other) = entry.index.and_then(|i| indices.insert(i, name)) {
                return Some(format!("gives index {} to both '{other}' and '{name}'", entry.index.unwrap_or_default()));
            }
            if let Some(block) = crate::ledger::lease::block_of(entry) {
                if block.size == 0 || block.start == 0 || u32::from(block.start) + u32::from(block.size) - 1 > 65535 {
                    return Some(format!("has an invalid port block for '{name}'"));
                }
                blocks.push((name, block));
            }
        }
        // Sorted by start, two blocks overlap only if some block overlaps the next one: linear
        // after the sort, where comparing every pair grew with the square of the leases.
        blocks.sort_by_key(|(_, b)| b.start);
        blocks.windows(2).find(|w| w[1].1.overlaps(w[0].1.start, w[0].1.size)).map(|w| {
            let (a, b) = if w[0].0 < w[1].0 { (w[0].0, w[1].0) } else { (w[1].0, w[0].0) };
            format!("gives overlapping port blocks to '{a}' and '{b}'")
        })
    }

    /// The name of the entry at `path`, if any.
    pub fn name_of_path(&self, path: &Path) -> Option<&str> {
        self.worktrees.iter().find(|(_, e)| e.path == path).map(|(n, _)| n.as_str())
    }
}

/// The ledger file of one state directory.
#[derive(Debug, Clone)]
pub struct LedgerFile {
    path: PathBuf,
    lock: PathBuf,
    /// The last ledger parsed, with the bytes it was parsed from: a read that finds the same
    /// bytes need not parse again. The bytes decide, not the file's identity (inode, size,
    /// times): an inode number freed by the rename that replaced one version can come back for
    /// a later one with the same size within one tick of the clock, and a change made under the
    /// lock to the older version it was taken for would undo what was written in between.
    cache: Arc<Mutex<Option<WithBytes>>>,
}

/// A ledger with the bytes it was read from.
type WithBytes = (Arc<Vec<u8>>, Arc<Ledger>);

impl LedgerFile {
    pub fn new(state_dir: &Path) -> Self {
        LedgerFile {
            path: state_dir.join("ledger.json"),
            lock: state_dir.join("ledger.lock"),
            cache: Arc::new(Mutex::new(None)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A snapshot, without the lock: always a whole ledger, thanks to write-then-rename.
    /// Shared with the cache, not copied: at 500 worktrees a copy cost as much as a parse.
    pub fn read(&self) -> Result<Arc<Ledger>, Error> {
        Ok(self.read_with_bytes()?.map(|(_, ledger)| ledger).unwrap_or_default())
    }

    /// The ledger and the bytes of the file it came from (`None`: there is no ledger). It is
    /// parsed only when the cache does not hold those bytes already.
    fn read_with_bytes(&self) -> Result<Option<WithBytes>, Error> {
        let Some(file) = self.open()? else { return Ok(None) };
        let bytes = self.bytes_of(&file)?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((cached, ledger)) = cache.as_ref().filter(|(b, _)| **b == bytes) {
            return Ok(Some((Arc::clone(cached), Arc::clone(ledger))));
        }
        let ledger = Arc::new(self.parse(&bytes)?);
        let bytes = Arc::new(bytes);
        *cache = Some((Arc::clone(&bytes), Arc::clone(&ledger)));
        Ok(Some((bytes, ledger)))
    }

    /// The ledger file, open for reading; `None` when there is none. It is in the common dir,
    /// which an unconfined agent can write: never opened through a link or blocking on a FIFO,
    /// never read past `LEDGER_MAX`.
    fn open(&self) -> Result<Option<std::fs::File>, Error> {
        use crate::fs::untrusted::{open_untrusted, LEDGER_MAX};
        match open_untrusted(&self.path, LEDGER_MAX) {
            Ok(opened) => Ok(opened.map(|(file, _)| file)),
            Err(refused) => Err(Error::env("ledger-unreadable", format!("{refused}; move it aside to start afresh"))),
        }
    }

    fn bytes_of(&self, file: &std::fs::File) -> Result<Vec<u8>, Error> {
        use std::io::Read;
        let max = crate::fs::untrusted::LEDGER_MAX;
        let mut bytes = Vec::new();
        (&mut &*file).take(max + 1).read_to_end(&mut bytes).map_err(|e| self.unreadable(e))?;
        if bytes.len() as u64 > max {
            return Err(self.unreadable(std::io::Error::other("it grew past its cap while read")));
        }
        Ok(bytes)
    }

    fn unreadable(&self, e: std::io::Error) -> Error {
        Error::env("ledger-unreadable", format!("cannot read {}: {e}", self.path.display()))
    }

    fn unwritable(&self, e: std::io::Error) -> Error {
        Error::env("ledger-write", format!("cannot write {}: {e}", self.path.display()))
    }

    /// The state directory, made if missing.
    fn ensure_dir(&self) -> Result<(), Error> {
        match self.path.parent() {
            Some(dir) => std::fs::create_dir_all(dir)
                .map_err(|e| Error::env("state-dir", format!("cannot create {}: {e}", dir.display()))),
            None => Ok(()),
        }
    }

    fn parse(&self, text: &[u8]) -> Result<Ledger, Error> {
        let refuse = |why: String| {
            let p = self.path.display();
            Error::env(
                "ledger-corrupt",
                format!("the ledger {p} {why} and was left as it is; repair it, or move it aside with `mv {p} {p}.bad` to start an empty one (its leases are then forgotten)"),
            )
        };
        let ledger: Ledger = serde_json::from_slice(text).map_err(|e| refuse(format!("cannot be parsed ({e})")))?;
        ledger.inconsistency().map_or(Ok(ledger), |why| Err(refuse(why)))
    }

    /// A change that would leave the ledger handing out an index or a port twice is a bug in
    /// wt: it fails, and the ledger stays as it was, rather than be written and refused by every
    /// later run (`inconsistency`).
    fn refuse_inconsistent(&self, ledger: &Ledger) -> Result<(), Error> {
        match ledger.inconsistency() {
            None => Ok(()),
            Some(why) => Err(Error::env(
                "ledger-conflict",
                format!(
                    "a change to the ledger {} was refused: it {why} (a bug in wt: please report it); nothing was changed",
                    self.path.display()
                ),
            )),
        }
    }

    /// Reads, changes and writes the ledger under its exclusive lock. Nothing is written when
    /// `change` fails or leaves the ledger as it was.
    pub fn update<T>(&self, change: impl FnOnce(&mut Ledger) -> Result<T, Error>) -> Result<T, Error> {
        let _lock = self.lock()?;
        self.update_locked(change)
    }

    /// `update`, then `then` with what the change returned, still under the ledger's lock and
    /// after the new ledger is written: for what must follow the ledger, never precede it (the
    /// machine's port registry frees a block only once the ledger no longer holds it).
    pub fn update_then<T>(
        &self,
        change: impl FnOnce(&mut Ledger) -> Result<T, Error>,
        then: impl FnOnce(&T),
    ) -> Result<T, Error> {
        let _lock = self.lock()?;
        let out = self.update_locked(change)?;
        then(&out);
        Ok(out)
    }

    /// Holds the ledger's lock without changing the ledger, for as long as the lock lives: for
    /// `--purge`, which deletes the state directory (the lock file with it) and must not find
    /// a lease taken between its last look and the deletion. Nothing in this process may change
    /// the ledger meanwhile (a second lock of the same file would wait for this one).
    pub fn hold(&self) -> Result<FileLock, Error> {
        self.lock()
    }

    fn lock(&self) -> Result<FileLock, Error> {
        self.ensure_dir()?;
        FileLock::acquire(&self.lock, default_timeout())
    }

    /// Makes `change` to the ledger as it is now and writes the result, synced, beside it,
    /// without the lock and without putting it in place: nobody sees the change yet. `commit`
    /// puts it in place later with one rename, if the ledger is still the one it was made
    /// from. The sync, most of what a write costs, is paid while the caller waits for
    /// something else (wt-create: for git to check the files out).
    pub fn stage(&self, change: impl FnOnce(&mut Ledger) -> Result<(), Error>) -> Result<Staged, Error> {
        let (base, before) = match self.read_with_bytes()? {
            Some((bytes, ledger)) => (Some(Vec::clone(&bytes)), ledger),
            None => (None, Arc::default()),
        };
        let mut ledger = Ledger::clone(&before);
        change(&mut ledger)?;
        self.refuse_inconsistent(&ledger)?;
        let (tmp, bytes) = match ledger == *before {
            true => (None, Vec::new()),
            false => {
                self.ensure_dir()?;
                let bytes = Self::bytes(&ledger);
                (Some(crate::fs::write_synced_aside(&self.path, &bytes).map_err(|e| self.unwritable(e))?), bytes)
            }
        };
        Ok(Staged { tmp, base, ledger, bytes })
    }

    /// Puts a staged change in place: by one rename if the ledger still holds exactly the bytes
    /// it was made from, else by making `change` again, as `update` does (another tool wrote
    /// the ledger meanwhile). Bytes, not the file's identity, decide: an inode number can come
    /// back with the same size and time.
    pub fn commit(
        &self,
        mut staged: Staged,
        change: impl FnOnce(&mut Ledger) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let _lock = self.lock()?;
        let current = match self.open().and_then(|file| file.map(|f| self.bytes_of(&f)).transpose()) {
            Ok(bytes) => bytes,
            Err(_) => return self.update_locked(change),
        };
        if current != staged.base {
            return self.update_locked(change);
        }
        let Some(tmp) = staged.tmp.take() else { return Ok(()) };
        crate::proc::failpoint::hit("before-rename");
        if std::fs::rename(&tmp, &self.path).is_err() {
            // The staged file is gone (or cannot be moved): make the change the usual way.
            let _ = std::fs::remove_file(&tmp);
            return self.update_locked(change);
        }
        self.remember(std::mem::take(&mut staged.bytes), std::mem::take(&mut staged.ledger));
        Ok(())
    }

    /// The newest version, just written: the next read need not parse it.
    fn remember(&self, bytes: Vec<u8>, ledger: Ledger) {
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some((Arc::new(bytes), Arc::new(ledger)));
    }

    fn bytes(ledger: &Ledger) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(ledger).expect("a ledger always serializes");
        bytes.push(b'\n');
        bytes
    }

    fn update_locked<T>(&self, change: impl FnOnce(&mut Ledger) -> Result<T, Error>) -> Result<T, Error> {
        // Read under the lock (parsed again only when its bytes are not the ones read before),
        // then changed in a copy and compared with what was read.
        let before = self.read()?;
        let mut ledger = Ledger::clone(&before);
        crate::proc::failpoint::hit("ledger-locked");
        let out = change(&mut ledger)?;
        if ledger != *before {
            self.refuse_inconsistent(&ledger)?;
            let bytes = Self::bytes(&ledger);
            crate::proc::failpoint::hit("before-ledger-write");
            write_atomic_private(&self.path, &bytes).map_err(|e| self.unwritable(e))?;
            self.remember(bytes, ledger);
        }
        Ok(out)
    }
}

/// A change to the ledger written and synced beside it, not yet in place
/// (`LedgerFile::stage`). Dropped without `commit`, its temp file goes.
#[derive(Debug)]
pub struct Staged {
    tmp: Option<PathBuf>,
    /// The bytes of the ledger it was made from (`None`: there was no ledger).
    base: Option<Vec<u8>>,
    ledger: Ledger,
    /// What the temp file holds.
    bytes: Vec<u8>,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_round_trips_and_keeps_unknown_sections() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(
            t.path().join("ledger.json"),
            r#"{"v":1,"future":{"x":1},"worktrees":{"a":{"path":"/p","ports":{"web":3}}}}"#,
        )
        .unwrap();
        let lf = LedgerFile::new(t.path());
        lf.update(|l| {
            l.worktrees.insert("b".into(), Entry::new("/q".into()));
            Ok(())
        })
        .unwrap();
        let l = lf.read().unwrap();
        assert_eq!(l.extra["future"]["x"], 1);
        assert_eq!(l.worktrees["a"].extra["ports"]["web"], 3);
        assert_eq!(l.worktrees["b"].path, Path::new("/q"));
    }

    /// The hand-written reader takes what serde's derived one took: every field by name, any
    /// other key kept in `extra` in its order, a missing `path` or a field given twice refused.
    #[test]
    fn an_entry_reads_its_fields_and_keeps_the_rest() {
        let text = r#"{"ports":{"start":20000,"size":10},"path":"/p","branch":"wt/a","base":"main",
            "base_commit":"abc","branch_created":true,"index":3,"database":{"name":"d"},"z":null}"#;
        let e: Entry = serde_json::from_str(text).unwrap();
        assert_eq!(e.path, Path::new("/p"));
        assert_eq!(
            (e.branch.as_deref(), e.base.as_deref(), e.base_commit.as_deref()),
            (Some("wt/a"), Some("main"), Some("abc"))
        );
        assert!(e.branch_created);
        assert_eq!(e.index, Some(3));
        assert_eq!(e.extra.keys().collect::<Vec<_>>(), ["ports", "database", "z"]);
        assert_eq!(e.extra["ports"]["start"], 20000);
        let again: Entry = serde_json::from_slice(&serde_json::to_vec(&e).unwrap()).unwrap();
        assert_eq!(again, e, "round trip");
        let bare: Entry = serde_json::from_str(r#"{"path":"/q","branch":null}"#).unwrap();
        assert_eq!(bare, Entry::new("/q".into()));
        for bad in [r#"{"branch":"x"}"#, r#"{"path":"/p","path":"/q"}"#, r#"{"path":"/p","index":"3"}"#, "[]"] {
            assert!(serde_json::from_str::<Entry>(bad).is_err(), "{bad}");
        }
    }

    fn names(lf: &LedgerFile) -> Vec<String> {
        lf.read().unwrap().worktrees.keys().cloned().collect()
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut f: Vec<String> =
            std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        f.sort();
        f
    }

    #[test]
    fn a_staged_change_shows_only_once_committed_and_survives_a_write_in_between() {
        let t = tempfile::tempdir().unwrap();
        let lf = LedgerFile::new(t.path());
        let add = |name: &str| {
            let name = name.to_string();
            move |l: &mut Ledger| {
                l.worktrees.insert(name.clone(), Entry::new(format!("/{name}").into()));
                Ok(())
            }
        };
        // No ledger yet: staged aside, not in place.
        let staged = lf.stage(add("a")).unwrap();
        assert!(names(&lf).is_empty(), "nobody sees a staged change");
        lf.commit(staged, add("a")).unwrap();
        assert_eq!(names(&lf), ["a"]);
        assert_eq!(files(t.path()), ["ledger.json", "ledger.lock"], "no temp file left");
        // Another writer between stage and commit: the change is made again on its ledger.
        let staged = lf.stage(add("b")).unwrap();
        LedgerFile::new(t.path()).update(add("c")).unwrap();
        lf.commit(staged, add("b")).unwrap();
        assert_eq!(names(&lf), ["a", "b", "c"], "neither change is lost");
        assert_eq!(names(&LedgerFile::new(t.path())), ["a", "b", "c"], "as a fresh reader sees it");
        assert_eq!(files(t.path()), ["ledger.json", "ledger.lock"], "no temp file left");
        // Dropped without a commit: nothing changes, nothing is left.
        drop(lf.stage(add("d")).unwrap());
        assert_eq!(names(&lf), ["a", "b", "c"]);
        assert_eq!(files(t.path()), ["ledger.json", "ledger.lock"]);
    }

    #[test]
    fn refuses_to_overwrite_a_ledger_it_cannot_parse() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("ledger.json");
        std::fs::write(&p, "{not json").unwrap();
        let lf = LedgerFile::new(t.path());
        let err = lf.update(|l| {
            l.worktrees.insert("b".into(), Entry::new("/q".into()));
            Ok(())
        });
        let err = err.unwrap_err();
        assert_eq!(err.code, "ledger-corrupt");
        assert!(err.message.contains("mv "), "says how to recover: {}", err.message);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{not json");
    }

    #[test]
    fn refuses_a_ledger_that_parses_but_would_hand_out_twice() {
        let cases = [
            (r#"{"v":2,"worktrees":{}}"#, "version 2"),
            (r#"{"v":1,"worktrees":{"a":{"path":"/a","index":1},"b":{"path":"/b","index":1}}}"#, "index 1"),
            (
                r#"{"v":1,"worktrees":{"a":{"path":"/a","ports":{"start":20000,"size":10}},"b":{"path":"/b","ports":{"start":20005,"size":10}}}}"#,
                "overlapping",
            ),
            (
                r#"{"v":1,"worktrees":{"m":{"path":"/m","ports":{"start":20200,"size":5}},"z":{"path":"/z","ports":{"start":20000,"size":100}},"a":{"path":"/a","ports":{"start":20090,"size":5}}}}"#,
                "to 'a' and 'z'",
            ),
            (r#"{"v":1,"worktrees":{"a":{"path":"/a","ports":{"start":65530,"size":10}}}}"#, "invalid port block"),
            (r#"{"v":1,"worktrees":{"a":{"path":"/a","ports":{"start":20000,"size":0}}}}"#, "invalid port block"),
        ];
        for (text, why) in cases {
            let t = tempfile::tempdir().unwrap();
            let p = t.path().join("ledger.json");
            std::fs::write(&p, text).unwrap();
            let lf = LedgerFile::new(t.path());
            let err = lf.update(|l| {
                l.worktrees.insert("c".into(), Entry::new("/c".into()));
                Ok(())
            });
            let err = err.unwrap_err();
            assert_eq!((err.code.as_str(), err.kind), ("ledger-corrupt", crate::ErrorKind::Environment), "{text}");
            assert!(err.message.contains(why) && err.message.contains("mv "), "{}", err.message);
            assert_eq!(std::fs::read_to_string(&p).unwrap(), text, "left as it is");
        }
    }

    #[test]
    fn a_failed_change_writes_nothing() {
        let t = tempfile::tempdir().unwrap();
        let lf = LedgerFile::new(t.path());
        let r: Result<(), Error> = lf.update(|l| {
            l.worktrees.insert("b".into(), Entry::new("/q".into()));
            Err(Error::failed("nope", "no"))
        });
        assert!(r.is_err());
        assert!(!lf.path().exists());
    }

    #[test]
    fn a_change_that_would_hand_out_a_port_twice_is_refused_by_update_and_stage() {
        let t = tempfile::tempdir().unwrap();
        let lf = LedgerFile::new(t.path());
        fn with_block(name: &'static str, start: u16) -> impl FnOnce(&mut Ledger) -> Result<(), Error> {
            move |l| {
                let mut e = Entry::new(format!("/{name}").into());
                let block = crate::ledger::lease::PortBlock { start, size: 10, names: vec![] };
                crate::ledger::lease::set_block(&mut e, Some(&block));
                l.worktrees.insert(name.into(), e);
                Ok(())
            }
        }
        lf.update(with_block("a", 30000)).unwrap();
        let before = std::fs::read(lf.path()).unwrap();
        for err in [lf.update(with_block("b", 30005)).unwrap_err(), lf.stage(with_block("b", 30009)).unwrap_err()] {
            assert_eq!(err.code, "ledger-conflict");
            assert!(err.message.contains("overlapping port blocks to 'a' and 'b'"), "{}", err.message);
        }
        assert_eq!(std::fs::read(lf.path()).unwrap(), before, "nothing written");
        assert_eq!(files(t.path()), ["ledger.json", "ledger.lock"], "no staged file left");
        lf.update(with_block("b", 30010)).unwrap();
    }

    #[test]
    fn a_read_parses_again_whenever_the_bytes_differ() {
        let t = tempfile::tempdir().unwrap();
        let lf = LedgerFile::new(t.path());
        lf.update(|l| {
            l.worktrees.insert("a".into(), Entry::new("/a".into()));
            Ok(())
        })
        .unwrap();
        assert!(lf.read().unwrap().worktrees.contains_key("a"));
        // Rewritten in place (same inode, same size): only the bytes tell the versions apart.
        let text = std::fs::read_to_string(lf.path()).unwrap().replace("\"a\"", "\"b\"").replace("/a", "/b");
        std::io::Write::write_all(
            &mut std::fs::OpenOptions::new().write(true).open(lf.path()).unwrap(),
            text.as_bytes(),
        )
        .unwrap();
        let names: Vec<String> = lf.read().unwrap().worktrees.keys().cloned().collect();
        assert_eq!(names, ["b"]);
    }
}
