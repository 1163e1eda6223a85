//! inotify (through `notify`) over every watched worktree, one watch per directory that git
//! does not ignore. Events are sorted to their worktree on notify's thread, filtered by the
//! worktree's ignore rules, and passed on as messages; watches for new directories and reloads
//! of changed `.gitignore` files happen on the main loop's thread.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, RwLock};

use notify::event::{EventKind, ModifyKind};
use notify::{RecursiveMode, Watcher as _};
use wt_common::Error;

use crate::rules::{scan, scan_under, Rules};
use crate::session::Msg;

/// The worktrees being watched, as notify's thread sees them.
#[derive(Debug, Default)]
struct Roots {
    /// (worktree id, root, rules); a removed worktree's slot is `None`.
    list: Vec<Option<(PathBuf, Rules)>>,
}

/// The watcher of a whole session.
pub struct Watcher {
    inner: notify::INotifyWatcher,
    roots: Arc<RwLock<Roots>>,
    exclude: Option<PathBuf>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

/// What a file-system event means to the loop. Each path is only noticed here; whether git
/// sees a change there is decided once it has settled (`noticed::matters`).
#[derive(Debug)]
pub enum Change {
    /// A path not (yet) known to be ignored was touched in worktree `id`.
    File { id: usize, path: PathBuf, is_dir: bool },
    /// A directory appeared (made, or renamed into place): watch it and what is in it.
    Dir { id: usize, path: PathBuf },
    /// A `.gitignore` changed: reload the rules.
    Rules { id: usize, path: PathBuf },
    /// The kernel's queue overflowed: every worktree may have changed.
    Rescan,
}

impl Watcher {
    pub fn new(tx: Sender<Msg>, exclude: Option<PathBuf>) -> Result<Watcher, Error> {
        let roots = Arc::new(RwLock::new(Roots::default()));
        let seen = Arc::clone(&roots);
        let handler = move |res: notify::Result<notify::Event>| {
            let msgs = match res {
                Ok(event) => classify(&seen, &event),
                Err(e) => vec![Msg::WatchFailed(watch_error(&e))],
            };
            for m in msgs {
                let _ = tx.send(m);
            }
        };
        let inner = notify::INotifyWatcher::new(handler, notify::Config::default())
            .map_err(|e| watch_error(&e).with_kind(wt_common::ErrorKind::Environment))?;
        Ok(Watcher { inner, roots, exclude })
    }

    /// Starts watching a worktree; its id is its place in the session.
    pub fn add(&mut self, id: usize, root: &Path) -> Result<(), Error> {
        let (dirs, rules) = scan(root, self.exclude.as_deref());
        {
            let mut r = self.roots.write().expect("roots");
            if r.list.len() <= id {
                r.list.resize_with(id + 1, || None);
            }
            r.list[id] = Some((root.to_path_buf(), rules));
        }
        self.watch_dirs(&dirs)
    }

    /// Watches a new directory of worktree `id` and every directory under it git does not
    /// ignore, taking in their `.gitignore` files as it goes (read before anything in their
    /// directory is judged).
    pub fn add_dir(&mut self, id: usize, dir: &Path) -> Result<(), Error> {
        let root = {
            let r = self.roots.read().expect("roots");
            match r.list.get(id).and_then(Option::as_ref) {
                Some((root, rules)) if !rules.ignores(dir, true) => root.clone(),
                _ => return Ok(()),
            }
        };
        let (dirs, scanned) = scan_under(&root, dir, self.exclude.as_deref());
        if let Some(Some((_, rules))) = self.roots.write().expect("roots").list.get_mut(id) {
            rules.merge(dir, scanned);
        }
        self.watch_dirs(&dirs)
    }

    /// Reloads a worktree's ignore rules (a `.gitignore` changed).
    pub fn reload(&mut self, id: usize) -> Result<(), Error> {
        let root = self.root(id);
        match root {
            Some(root) => self.add(id, &root),
            None => Ok(()),
        }
    }

    pub fn root(&self, id: usize) -> Option<PathBuf> {
        self.roots.read().expect("roots").list.get(id).and_then(Option::as_ref).map(|(r, _)| r.clone())
    }

    /// Stops watching worktree `id`.
    pub fn remove(&mut self, id: usize) {
        let root = {
            let mut r = self.roots.write().expect("roots");
            r.list.get_mut(id).and_then(Option::take).map(|(root, _)| root)
        };
        if let Some(root) = root {
            let (dirs, _) = scan(&root, self.exclude.as_deref());
            for d in dirs {
                let _ = self.inner.unwatch(&d);
            }
        }
    }

    fn watch_dirs(&mut self, dirs: &[PathBuf]) -> Result<(), Error> {
        for d in dirs {
            match self.inner.watch(d, RecursiveMode::NonRecursive) {
                Ok(()) => {}
                Err(e) if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) => return Err(watch_error(&e)),
                Err(e) if matches!(e.kind, notify::ErrorKind::PathNotFound) => {} // gone meanwhile
                Err(e) => return Err(watch_error(&e)),
            }
        }
        Ok(())
    }
}

/// One notify event as messages to the loop, for each worktree it touches.
fn classify(roots: &RwLock<Roots>, event: &notify::Event) -> Vec<Msg> {
    if event.need_rescan() {
        return vec![Msg::Fs(Change::Rescan)];
    }
    if matches!(event.kind, EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_))) && !is_attrib(event) {
        return Vec::new();
    }
    let r = roots.read().expect("roots");
    let mut out = Vec::new();
    for path in &event.paths {
        let Some((id, rules)) = owner(&r, path) else { continue };
        let is_dir = matches!(
            event.kind,
            EventKind::Create(notify::event::CreateKind::Folder) | EventKind::Remove(notify::event::RemoveKind::Folder)
        ) || std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
        if rules.ignores(path, is_dir) {
            continue;
        }
        if path.file_name().is_some_and(|n| n == ".gitignore") {
            out.push(Msg::Fs(Change::Rules { id, path: path.clone() }));
        } else if is_dir && matches!(event.kind, EventKind::Create(_) | EventKind::Modify(ModifyKind::Name(_))) {
            out.push(Msg::Fs(Change::Dir { id, path: path.clone() }));
        }
        out.push(Msg::Fs(Change::File { id, path: path.clone(), is_dir }));
    }
    out
}

/// A change of mode (chmod +x) matters; a change of access time does not.
fn is_attrib(event: &notify::Event) -> bool {
    matches!(
        event.kind,
        EventKind::Modify(ModifyKind::Metadata(
            notify::event::MetadataKind::Permissions | notify::event::MetadataKind::Any
        ))
    )
}

/// The worktree a path is in: the one with the longest root that is its prefix.
fn owner<'r>(roots: &'r Roots, path: &Path) -> Option<(usize, &'r Rules)> {
    roots
        .list
        .iter()
        .enumerate()
        .filter_map(|(i, slot)| slot.as_ref().map(|(root, rules)| (i, root, rules)))
        .filter(|(_, root, _)| path.starts_with(root))
        .max_by_key(|(_, root, _)| root.components().count())
        .map(|(i, _, rules)| (i, rules))
}

/// A watch that could not be set, said so a person can fix it.
fn watch_error(e: &notify::Error) -> Error {
    if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) {
        let now = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches").unwrap_or_default();
        return Error::env(
            "watch-limit",
            format!(
                "the inotify watch limit is reached (fs.inotify.max_user_watches = {}); raise it, e.g. `sudo sysctl fs.inotify.max_user_watches=524288`",
                now.trim()
            ),
        );
    }
    Error::env("watch-failed", format!("cannot watch: {e}"))
}
