//! Removing a build directory so that a kill half way never leaves a half-deleted one that
//! looks whole (a `node_modules` missing half its packages, which `npm` would trust): it is
//! first renamed, in one atomic step, out of the worktree into wt's trash, `<root>/.wt-trash/`
//! beside the worktrees (`<pid>.<n>.<worktree>`), then deleted there. A run killed after the
//! rename leaves only the trash entry, whose process is gone; the next `--gc` deletes it.
//!
//! The rename is done from the very directory that was opened, component by component without
//! following a link (`fs::beneath`), so an agent that swaps a parent for a link meanwhile moves
//! nothing outside its worktree. A build dir on another file system than the trash cannot be
//! renamed there; it is left as it is, and the record says so.
//!
//! Whether the worktree is in use is asked again just before the rename (a build may have
//! started since `--gc` looked), and after it: a process whose working directory, executable or
//! open file is in the moved dir has it put back, whole, before anything is deleted. What
//! starts in the instant between that look and the delete is not seen.

use std::io;
use std::path::{Component, Path, PathBuf};

use wt_common::fs::beneath::Dir;

pub use wt_common::ledger::root_layout::TRASH_DIR as DIR;

/// What became of a build dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Removed,
    /// Left in place (or put back): why it is in use.
    InUse(String),
}

#[derive(Debug)]
pub struct Trash {
    path: PathBuf,
    /// As /proc names it (links resolved), to find a process using a moved dir.
    real: PathBuf,
    dir: Dir,
    n: u64,
}

impl Trash {
    /// Opens (making) the trash under the worktrees' root, and deletes what killed runs left.
    pub fn open(root: &Path) -> io::Result<Trash> {
        let path = root.join(DIR);
        match std::fs::create_dir(&path) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        let real = std::fs::canonicalize(&path)?;
        let trash = Trash { dir: Dir::open(&path)?, path, real, n: 0 };
        trash.sweep();
        Ok(trash)
    }

    /// Deletes the entries whose process is gone; says on stderr which could not be.
    fn sweep(&self) {
        for (name, _) in self.dir.entries().unwrap_or_default() {
            let pid = name.split('.').next().and_then(|p| p.parse::<i32>().ok());
            if pid.is_some_and(|pid| !wt_common::proc::process::is_alive(pid)) {
                if let Err(e) = self.dir.remove_tree(&name) {
                    eprintln!(
                        "wt-create: gc: cannot delete {} ({e}); delete it by hand",
                        self.path.join(&name).display()
                    );
                }
            }
        }
    }

    /// Moves `rel` (a directory relative to `worktree`) into the trash, then deletes it; unless
    /// `in_use` (asked just before the move) or a process using the moved dir says it is in use.
    pub fn remove(
        &mut self,
        worktree: &Path,
        label: &str,
        rel: &Path,
        in_use: impl FnOnce() -> Option<String>,
    ) -> io::Result<Outcome> {
        let mut parent = Dir::open(worktree)?;
        let parts: Vec<&str> = rel
            .components()
            .map(|c| match c {
                Component::Normal(s) => s.to_str().ok_or_else(|| io::Error::other("a name not in UTF-8")),
                _ => Err(io::Error::other(format!("{} is not a plain relative path", rel.display()))),
            })
            .collect::<io::Result<_>>()?;
        let (last, dirs) = parts.split_last().ok_or_else(|| io::Error::other("an empty path"))?;
        for d in dirs {
            parent = parent.dir(d)?;
        }
        if parent.kind_of(last) != Some(wt_common::fs::beneath::Kind::Dir) {
            return Err(io::Error::other(format!("{} is no longer a directory", rel.display())));
        }
        if let Some(why) = in_use() {
            return Ok(Outcome::InUse(why));
        }
        self.n += 1;
        let name = format!("{}.{}.{}", std::process::id(), self.n, label.replace('/', "_"));
        parent.move_to(last, &self.dir, &name)?;
        wt_common::proc::failpoint::hit("gc-moved-to-trash");
        if let Some(why) = super::busy::Busy::user_of(&self.real.join(&name)) {
            return match self.dir.move_to(&name, &parent, last) {
                Ok(()) => Ok(Outcome::InUse(format!("{why} (put back)"))),
                Err(e) => {
                    // Its place was taken meanwhile: kept in the trash under a name the sweep
                    // does not delete.
                    let kept = format!("kept.{name}");
                    let _ = self.dir.rename(&name, &kept);
                    Err(io::Error::other(format!(
                        "{why}, and it could not be put back ({e}): it is kept in {}",
                        self.path.join(kept).display()
                    )))
                }
            };
        }
        self.dir.remove_tree(&name).map_err(|e| {
            io::Error::other(format!(
                "moved out of the worktree, but not all deleted ({e}): what is left is in {}",
                self.path.join(&name).display()
            ))
        })?;
        Ok(Outcome::Removed)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
