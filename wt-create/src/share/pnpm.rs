//! pnpm has a content-addressed store of its own. With these settings every worktree's
//! `pnpm install` uses one store, on the repository's file system, and links from it.

use std::path::{Path, PathBuf};

use wt_common::fs::read_untrusted;
use wt_common::fs::untrusted::{CONFIG_MAX, SETTINGS_MAX};

/// Whether the repository uses pnpm (its lock file, or `packageManager` in package.json).
pub fn in_use(main: &Path) -> bool {
    main.join("pnpm-lock.yaml").is_file()
        || read_untrusted(&main.join("package.json"), SETTINGS_MAX)
            .is_ok_and(|t| t.is_some_and(|t| t.contains("\"pnpm@")))
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
    // The worktree's own .npmrc: the agent's, so read as files it could have placed are.
    let mut text = read_untrusted(&path, CONFIG_MAX).map_err(std::io::Error::other)?.unwrap_or_default();
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
