//! Whether git's hooks are in their default place, `<common dir>/hooks`, known without starting
//! git: true when none of the config files git reads can set `core.hooksPath`. Every file that
//! mentions `hookspath` (in any case) or includes another file, and every way of passing config
//! through the environment, sends the question to git (`git rev-parse --git-path hooks`). That
//! saves a git process on every `wt-create`, which looks for a post-checkout hook to run.

use std::path::{Path, PathBuf};

/// Variables through which config reaches git without a file we read.
const CONFIG_VARS: &[&str] = &["GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT", "GIT_CONFIG"];

/// True only when git certainly looks for hooks in `<common dir>/hooks`.
pub fn is_default(common: &Path) -> bool {
    if CONFIG_VARS.iter().any(|v| std::env::var_os(v).is_some()) {
        return false;
    }
    // Read as untrusted files (the repository's are an agent's to write): a link, a FIFO or
    // a file over the cap sends the question to git.
    let max = crate::fs::untrusted::GIT_CONFIG_MAX;
    config_files(common).iter().all(|file| match crate::fs::untrusted::read_untrusted_bytes(file, max) {
        Ok(Some(bytes)) => {
            let text = String::from_utf8_lossy(&bytes).to_ascii_lowercase();
            !text.contains("hookspath") && !text.contains("include")
        }
        Ok(None) => true,
        Err(_) => false,
    })
}

/// The files git reads config from, as git finds them (config.c, `do_git_config_sequence`):
/// system, global (both XDG and `~/.gitconfig`), the repository's, and the main worktree's.
/// The system file's place is fixed when git is built (`$(prefix)/etc/gitconfig`, or
/// `/etc/gitconfig` for a prefix of `/usr`), so both places are read.
fn config_files(common: &Path) -> Vec<PathBuf> {
    let env = |v: &str| std::env::var_os(v).filter(|s| !s.is_empty()).map(PathBuf::from);
    let mut files = Vec::new();
    let no_system = std::env::var("GIT_CONFIG_NOSYSTEM").is_ok_and(|v| is_true(&v));
    if !no_system {
        match env("GIT_CONFIG_SYSTEM") {
            Some(f) => files.push(f),
            None => {
                files.push(PathBuf::from("/etc/gitconfig"));
                files.extend(git_prefixes().into_iter().map(|p| p.join("etc/gitconfig")));
            }
        }
    }
    match env("GIT_CONFIG_GLOBAL") {
        Some(f) => files.push(f),
        None => {
            let home = env("HOME");
            files.extend(
                env("XDG_CONFIG_HOME")
                    .or_else(|| home.as_ref().map(|h| h.join(".config")))
                    .map(|d| d.join("git/config")),
            );
            files.extend(home.map(|h| h.join(".gitconfig")));
        }
    }
    files.push(common.join("config"));
    files.push(common.join("config.worktree"));
    files
}

/// The directories git may have been installed under: the `git` that wt runs
/// (`git::program`), less its `bin/git`, as found and with links resolved (a link in
/// `/usr/local/bin` to a build elsewhere, a package manager's tree).
fn git_prefixes() -> Vec<PathBuf> {
    let git = PathBuf::from(crate::git::program()); // bare `git` (none found): no prefix
    let prefix = |g: &Path| g.parent().and_then(Path::parent).map(Path::to_path_buf);
    let mut found: Vec<PathBuf> = prefix(&git).into_iter().collect();
    if let Some(resolved) = git.canonicalize().ok().as_deref().and_then(prefix) {
        if !found.contains(&resolved) {
            found.push(resolved);
        }
    }
    found
}

/// git's boolean words for "true".
fn is_true(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}
