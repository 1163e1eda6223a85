//! Build directories: what a worktree can rebuild (`cargo build`, `npm ci`, a cache the tool
//! refills), as opposed to its checkout and its work. A directory counts as one only when its
//! name is on the list (the defaults below, extended by `[create] build_dirs`), git ignores it
//! as a whole, and no file in it is tracked: `build/` holding committed files is the project's
//! source.

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::git::worktree_check::Registered;
use crate::{git, Error};

/// The names looked for when the config adds none.
pub const DEFAULT: &[&str] = &[
    "target",
    "node_modules",
    ".venv",
    "venv",
    "dist",
    "build",
    ".next",
    ".nuxt",
    ".turbo",
    ".parcel-cache",
    ".pytest_cache",
    ".mypy_cache",
    "__pycache__",
    ".gradle",
    ".tox",
    "coverage",
];

/// The default names and `extra` (from `[create] build_dirs`), each once. A directory is
/// matched by its name, so an entry must be one: not empty, no `/`, not `.` or `..` (such an
/// entry would never match, or match everything), else the error `bad-build-dir`.
pub fn names(extra: &[String]) -> Result<Vec<String>, Error> {
    let mut all: Vec<String> = DEFAULT.iter().map(|s| s.to_string()).collect();
    for e in extra {
        if e.is_empty() || e == "." || e == ".." || e.contains('/') || e.contains('\0') {
            return Err(Error::usage(
                "bad-build-dir",
                format!("[create] build_dirs: '{e}' is not a directory name; write one name, such as \"out\" (no '/', not '.' or '..'), in wt.toml"),
            ));
        }
        if !all.contains(e) {
            all.push(e.clone());
        }
    }
    Ok(all)
}

/// Of `candidates` (directories relative to the worktree), those git ignores as a whole and
/// that hold no tracked file: `git ls-files --others --ignored --directory` names such a
/// directory itself (`target/`), and names the files instead when one in it is tracked or not
/// ignored. One git process, whatever the number of candidates, run as `git::in_worktree` runs
/// it (nothing the agent planted runs), with literal pathspecs (a directory named `*` is that
/// name) and no optional locks (the agent's index is not written).
///
/// git reads every `.gitignore` on the way, and one the agent made a FIFO would make it wait
/// for ever: each is first looked at without following a link, and anything but a regular file
/// (or none) is the error `gitignore-not-a-file`; git itself runs within `git::read_timeout()`
/// (`git-stuck`). Either way nothing in the worktree is confirmed.
pub fn rebuildable(reg: &Registered, candidates: &[PathBuf]) -> Result<HashSet<PathBuf>, Error> {
    if candidates.is_empty() {
        return Ok(HashSet::new());
    }
    for c in candidates {
        gitignores_are_files(&reg.path, c)?;
    }
    let listed: HashSet<PathBuf> =
        ignored(reg, &[], candidates)?.into_iter().filter(|i| i.whole_dir).map(|i| i.rel).collect();
    Ok(candidates.iter().filter(|c| listed.contains(*c)).cloned().collect())
}

/// A path git ignores, as `ignored` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// Relative to the worktree, without the trailing `/` git gives a directory.
    pub rel: PathBuf,
    /// Git named the directory as a whole (nothing in it is tracked or not ignored).
    pub whole_dir: bool,
}

/// The untracked ignored paths of the worktree at `reg` (`git ls-files --others --ignored
/// --exclude-standard --directory`, plus `flags`), within `paths` when any are given (literal
/// pathspecs): run as `git::in_worktree` runs git (nothing the agent planted runs), with no
/// optional locks (the agent's index is not written), within `git::read_timeout()`.
pub fn ignored(reg: &Registered, flags: &[&str], paths: &[PathBuf]) -> Result<Vec<Ignored>, Error> {
    let mut cmd = git::in_worktree(reg);
    cmd.env("GIT_OPTIONAL_LOCKS", "0").env("GIT_LITERAL_PATHSPECS", "1").args([
        "ls-files",
        "-z",
        "--others",
        "--ignored",
        "--exclude-standard",
        "--directory",
    ]);
    cmd.args(flags).arg("--").args(paths);
    let out = git::output_within(&mut cmd, git::read_timeout(), &reg.path)?;
    if !out.status.success() {
        return Err(Error::failed("git-failed", git::failure_message(&cmd, &out)));
    }
    Ok(split(&out.stdout)
        .map(|p| match whole_dir(&p) {
            Some(rel) => Ignored { rel, whole_dir: true },
            None => Ignored { rel: p, whole_dir: false },
        })
        .collect())
}

/// The `.gitignore` of the worktree and of each directory down to `rel` (and in it): each a
/// regular file or absent, looked at without following a link.
fn gitignores_are_files(worktree: &Path, rel: &Path) -> Result<(), Error> {
    let mut dir = worktree.to_path_buf();
    let mut dirs = vec![dir.clone()];
    for part in rel.components() {
        dir.push(part);
        dirs.push(dir.clone());
    }
    for d in dirs {
        let f = d.join(".gitignore");
        match std::fs::symlink_metadata(&f) {
            Ok(m) if !m.file_type().is_file() => {
                return Err(Error::failed(
                    "gitignore-not-a-file",
                    format!("{} is not a regular file (git would read it, and may wait for ever on a FIFO); its build dirs are not counted as rebuildable until it is", f.display()),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

fn split(out: &[u8]) -> impl Iterator<Item = PathBuf> + '_ {
    out.split(|b| *b == 0).filter(|s| !s.is_empty()).map(|s| PathBuf::from(std::ffi::OsStr::from_bytes(s)))
}

/// `target/` (a directory listed whole) as `target`; a file's path is `None`.
fn whole_dir(p: &Path) -> Option<PathBuf> {
    let bytes = p.as_os_str().as_bytes();
    bytes.strip_suffix(b"/").map(|d| PathBuf::from(std::ffi::OsStr::from_bytes(d)))
}

/// How to get a removed build directory of worktree `worktree` back, for the record.
pub fn how_to_rebuild(worktree: &str, rel: &Path, shared: bool) -> String {
    let name = rel.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if shared {
        return format!(
            "wt-create --share {} {worktree} (linked again from the store), or the project's install command",
            rel.display()
        );
    }
    match name.as_str() {
        "target" => "cargo build (or the project's build)".into(),
        "node_modules" => "npm ci (or the project's package manager's install)".into(),
        ".venv" | "venv" => format!("python3 -m venv {} and the project's pip install", rel.display()),
        "__pycache__" | ".pytest_cache" | ".mypy_cache" | ".parcel-cache" | ".turbo" | ".gradle" | ".tox" => {
            "nothing: the tool refills its cache on its next run".into()
        }
        _ => "the project's build command".into(),
    }
}
