//! `--rust-cache sccache` (`[env] rust_cache = "sccache"`): the worktree's env sends rustc
//! through sccache, whose local cache every worktree of the user shares. Where the file system
//! has no reflinks to clone the main worktree's `target/` (see docs/rust-target.md), this is
//! what keeps a new Rust worktree's first build from being a cold one: every dependency the
//! main worktree (or any other) compiled is a cache hit.

use std::ffi::OsString;
use std::path::PathBuf;

use serde_json::{json, Map, Value};

/// A compiler cache the worktrees share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RustCache {
    Sccache,
}

impl RustCache {
    fn program(self) -> &'static str {
        match self {
            RustCache::Sccache => "sccache",
        }
    }
}

/// The variables to add to the env (`RUSTC_WRAPPER`, by absolute path, so that no file in the
/// worktree can stand in for it), and the `env.rust_cache` object of the record; when the
/// program is not on `path`, no variable and a note saying how to install it.
pub fn apply(cache: RustCache, path: Option<OsString>, vars: &mut Map<String, Value>) -> Value {
    let program = cache.program();
    match find_absolute(path, program) {
        Some(found) => {
            vars.insert("RUSTC_WRAPPER".into(), json!(found));
            json!({"wrapper": program, "path": found})
        }
        None => json!({
            "wrapper": program,
            "note": format!(
                "{program} is not on PATH, so builds run without a shared cache: \
                 `pip install {program}` or `cargo install {program} --locked`, then run wt-env again"
            ),
        }),
    }
}

/// The first `name` on `path` in an absolute directory (a relative entry, such as an empty one
/// meaning the current directory, would resolve inside whichever worktree runs the build).
fn find_absolute(path: Option<OsString>, name: &str) -> Option<PathBuf> {
    std::env::split_paths(&path?)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| wt_common::git::runnable(candidate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_path_entries_are_passed_over() {
        let dir = std::env::temp_dir().join(format!("wt-env-rust-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("sccache");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let path = std::env::join_paths([std::path::Path::new(""), "relative/bin".as_ref(), &dir]).unwrap();
        let found = find_absolute(Some(path), "sccache");
        let only_relative = find_absolute(Some(std::env::join_paths(["", "."]).unwrap()), "sccache");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found, Some(bin));
        assert_eq!(only_relative, None);
    }
}
