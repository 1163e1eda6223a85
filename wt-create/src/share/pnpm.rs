//! pnpm has a content-addressed store of its own. With these settings every worktree's
//! `pnpm install` uses one store, on the repository's file system, and links from it.

use std::fs;
use std::path::{Path, PathBuf};

/// Whether the repository uses pnpm (its lock file, or `packageManager` in package.json).
pub fn in_use(main: &Path) -> bool {
    main.join("pnpm-lock.yaml").is_file()
        || fs::read_to_string(main.join("package.json")).is_ok_and(|t| t.contains("\"pnpm@"))
}

/// The `.npmrc` settings: one store for every worktree, files linked from it.
pub fn settings(state_dir: &Path) -> Vec<(&'static str, String)> {
    let store: PathBuf = state_dir.join("pnpm-store");
    vec![("store-dir", store.display().to_string()), ("package-import-method", "clone-or-copy".into())]
}

/// The advice printed when the repository uses pnpm and `--share pnpm` was not given.
pub fn advice(state_dir: &Path) -> String {
    let lines: Vec<String> = settings(state_dir).iter().map(|(k, v)| format!("  {k}={v}")).collect();
    format!(
        "this repository uses pnpm; these .npmrc settings make every worktree's `pnpm install` use one store \
         (add `--share pnpm` to write them into each worktree's .npmrc):\n{}\n\
         pnpm's global virtual store (enable-global-virtual-store=true) would share node_modules/.pnpm too, \
         but today it breaks Turbopack and some ESM packages; wt does not set it",
        lines.join("\n")
    )
}

/// Adds the settings the worktree's `.npmrc` does not have yet; returns the keys added.
pub fn apply(state_dir: &Path, worktree: &Path) -> std::io::Result<Vec<&'static str>> {
    let path = worktree.join(".npmrc");
    let mut text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let has = |text: &str, key: &str| text.lines().any(|l| l.split('=').next().is_some_and(|k| k.trim() == key));
    let mut added = Vec::new();
    for (key, value) in settings(state_dir) {
        if !has(&text, key) {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!("{key}={value}\n"));
            added.push(key);
        }
    }
    if !added.is_empty() {
        wt_common::fs::write_atomic(&path, text.as_bytes())?;
    }
    Ok(added)
}
