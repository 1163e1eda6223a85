//! A shared directory moved with its worktree: the files `--share` rewrote to name the
//! worktree's path (a virtualenv's script shebangs, `activate`, `pyvenv.cfg`, an editable
//! install's `.pth`: see `rewrite`) and absolute symlinks into it name the place the directory
//! was made for. A pooled worktree is made at `<root>/.pool/<id>` and renamed by the claim; its
//! `.venv` then ran the pool's Python path, which the refill soon gave to another worktree or
//! nobody (an editable package could not be imported). This rewrites them to the new path.
//!
//! Only what `--share` made the worktree's own is read: regular files with one link (the
//! rewritten copies; files linked from the store are shared and never name a worktree's path)
//! and symlinks. Nothing is followed. Each file is replaced by a rename, so a kill leaves each
//! one old or new, and running it again finishes the rest (it is idempotent: a file that no
//! longer names `from` is left alone).

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::rewrite;

/// The largest file looked into: the rewritten files are scripts and small text files.
const MAX: u64 = 1 << 20;

/// Rewrites, under `dir`, every occurrence of `from` (at a path boundary) to `to`; returns how
/// many files and links it changed.
pub fn repoint(dir: &Path, from: &Path, to: &Path) -> io::Result<usize> {
    let (from_b, to_b) = (from.as_os_str().as_encoded_bytes(), to.as_os_str().as_encoded_bytes());
    let mut changed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let meta = fs::symlink_metadata(&path)?;
            let kind = meta.file_type();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_symlink() {
                let target = fs::read_link(&path)?;
                let moved = rewrite::symlink_target(&target, from, to);
                if moved != target {
                    let tmp = path.with_file_name(format!(".{}.wt-repoint", entry.file_name().to_string_lossy()));
                    let _ = fs::remove_file(&tmp);
                    std::os::unix::fs::symlink(&moved, &tmp)?;
                    fs::rename(&tmp, &path)?;
                    changed += 1;
                }
            } else if kind.is_file() && meta.nlink() == 1 && meta.len() <= MAX {
                let bytes = fs::read(&path)?;
                if !rewrite::contains_path(&bytes, from_b) {
                    continue;
                }
                let out = rewrite::replace_path(&bytes, from_b, to_b);
                let tmp = path.with_file_name(format!(".{}.wt-repoint", entry.file_name().to_string_lossy()));
                let _ = fs::remove_file(&tmp);
                let mode = meta.mode() & 0o7777;
                let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
                io::Write::write_all(&mut f, &out)?;
                f.set_permissions(fs::Permissions::from_mode(mode))?;
                // The times of the original, as `--share` keeps them (build tools compare them).
                let times = fs::FileTimes::new().set_modified(meta.modified()?).set_accessed(meta.accessed()?);
                f.set_times(times)?;
                drop(f);
                fs::rename(&tmp, &path)?;
                changed += 1;
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_scripts_and_links_that_name_the_old_place_and_nothing_else() {
        let t = tempfile::tempdir().unwrap();
        let (old, new) = (t.path().join("pool/p1"), t.path().join("agent-1"));
        let venv = new.join(".venv");
        fs::create_dir_all(venv.join("bin")).unwrap();
        let shebang = format!("#!{}/.venv/bin/python\nprint(1)\n", old.display());
        fs::write(venv.join("bin/pip"), &shebang).unwrap();
        fs::set_permissions(venv.join("bin/pip"), fs::Permissions::from_mode(0o755)).unwrap();
        // A file linked from elsewhere (the store) is shared: never rewritten.
        let shared = t.path().join("store-file");
        fs::write(&shared, &shebang).unwrap();
        fs::hard_link(&shared, venv.join("bin/shared")).unwrap();
        std::os::unix::fs::symlink(old.join(".venv/bin/pip"), venv.join("bin/abs")).unwrap();
        std::os::unix::fs::symlink("pip", venv.join("bin/rel")).unwrap();
        fs::write(venv.join("other"), format!("{}x/y", old.display())).unwrap();
        assert_eq!(repoint(&venv, &old, &new).unwrap(), 2);
        let pip = fs::read_to_string(venv.join("bin/pip")).unwrap();
        assert_eq!(pip, format!("#!{}/.venv/bin/python\nprint(1)\n", new.display()));
        assert_eq!(fs::metadata(venv.join("bin/pip")).unwrap().mode() & 0o777, 0o755);
        assert_eq!(fs::read_to_string(&shared).unwrap(), shebang, "a linked file is not touched");
        assert_eq!(fs::read_link(venv.join("bin/abs")).unwrap(), new.join(".venv/bin/pip"));
        assert_eq!(fs::read_link(venv.join("bin/rel")).unwrap(), Path::new("pip"));
        assert!(fs::read_to_string(venv.join("other")).unwrap().contains("p1x/y"), "not at a path boundary");
        assert_eq!(repoint(&venv, &old, &new).unwrap(), 0, "again: nothing left to do");
    }
}
