//! `--agent-hooks`: registers `wt-run pane notify --from-hook …` in the agent's project-level
//! hook settings inside the worktree, so the agent itself reports its state:
//! Claude Code's `.claude/settings.local.json` and Codex's `.codex/hooks.json`. Merged into
//! what is there: the user's hooks stay as they are, and a second install replaces only our
//! own entries (those whose command runs `pane notify --from-hook`). The files are git-ignored
//! like the env file, and go with the worktree. Claude Code's `WorktreeCreate` is never
//! registered (a hook there replaces how Claude Code creates worktrees).
//!
//! The worktree is the agent's to write, so what is there is untrusted: a settings file that
//! is not a JSON object is refused (never overwritten), and so is a path that goes through a
//! symbolic link (which could point at the user's own settings elsewhere).

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use wt_common::fs::untrusted::SETTINGS_MAX;
use wt_common::git::repo::Repo;
use wt_common::Error;

/// What marks a hook entry as ours.
const MARK: &str = "pane notify --from-hook";

/// The settings file of each agent, and the events registered there.
pub const TARGETS: &[(&str, &str, &[&str])] = &[
    (
        "claude",
        ".claude/settings.local.json",
        &["UserPromptSubmit", "PreToolUse", "PostToolUse", "PermissionRequest", "Stop", "StopFailure", "SessionEnd"],
    ),
    ("codex", ".codex/hooks.json", &["UserPromptSubmit", "PreToolUse", "PostToolUse", "PermissionRequest", "Stop"]),
];

/// Writes both agents' hook settings into `worktree`; returns the files written.
pub fn install(repo: &Repo, worktree: &Path, exe: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut written = Vec::new();
    for (agent, rel, events) in TARGETS {
        let path = worktree.join(rel);
        // Reading through a link could copy another file's settings here.
        refuse_links(worktree, rel)?;
        // Read without a link anywhere below the worktree, never waiting on a FIFO, at most
        // 4 MiB: a FIFO there hung wt-run, and SIGTERM with it.
        let existing = match wt_common::fs::read_untrusted_in(worktree, Path::new(rel), SETTINGS_MAX) {
            Ok(Some(text)) if text.trim().is_empty() => Value::Object(Map::new()),
            Ok(Some(text)) => serde_json::from_str(&text).map_err(|e| not_settings(&path, &e.to_string()))?,
            Ok(None) => Value::Object(Map::new()),
            Err(refused) => {
                return Err(Error::failed(
                    "bad-settings",
                    format!("{refused} (it is left as it is; replace it or leave out --agent-hooks)"),
                ))
            }
        };
        let command = format!("{} {MARK} {agent}", shell_quote(&exe.display().to_string()));
        let merged = merge(existing, events, &command).map_err(|why| not_settings(&path, why))?;
        wt_common::git::ignore::exclude(repo, rel)?;
        let mut text = serde_json::to_string_pretty(&merged).expect("settings serialize");
        text.push('\n');
        // Written without following a link, even one planted since the check above.
        written.push(wt_common::fs::inside::write(worktree, Path::new(rel), text.as_bytes())?);
    }
    Ok(written)
}

/// `settings` with our command registered for each of `events`, every other hook kept.
pub fn merge(mut settings: Value, events: &[&str], command: &str) -> Result<Value, &'static str> {
    let root = settings.as_object_mut().ok_or("it is not a JSON object")?;
    let hooks = root.entry("hooks").or_insert_with(|| json!({}));
    let hooks = hooks.as_object_mut().ok_or("its \"hooks\" is not an object")?;
    for event in events {
        let groups = hooks.entry(*event).or_insert_with(|| json!([]));
        let groups = groups.as_array_mut().ok_or("one of its hook events is not a list")?;
        groups.retain(|g| !is_ours(g));
        let mut group = json!({"hooks": [{"type": "command", "command": command, "timeout": 10}]});
        if ["PreToolUse", "PostToolUse", "PermissionRequest"].contains(event) {
            group["matcher"] = json!("*");
        }
        groups.push(group);
    }
    Ok(settings)
}

/// A matcher group all of whose hooks are our command.
fn is_ours(group: &Value) -> bool {
    let hooks = group.get("hooks").and_then(Value::as_array);
    hooks.is_some_and(|h| {
        !h.is_empty() && h.iter().all(|x| x.get("command").and_then(Value::as_str).is_some_and(|c| c.contains(MARK)))
    })
}

fn refuse_links(worktree: &Path, rel: &str) -> Result<(), Error> {
    let mut at = worktree.to_path_buf();
    for part in Path::new(rel).components() {
        at.push(part);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(Error::failed(
                "unsafe-path",
                format!(
                    "{} is a symbolic link; --agent-hooks reads and writes only real files in the worktree, of at most {} \
                     (remove the link)",
                    at.display(),
                    wt_common::record::size::human(SETTINGS_MAX)
                ),
            ));
        }
    }
    Ok(())
}

fn not_settings(path: &Path, why: &str) -> Error {
    Error::failed(
        "bad-settings",
        format!("{}: {why}; fix it (it is left as it is) or leave out --agent-hooks", path.display()),
    )
}

fn shell_quote(s: &str) -> String {
    if s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_keeps_the_users_hooks_and_replaces_only_ours() {
        let user = json!({"model": "opus", "hooks": {"PreToolUse": [
            {"matcher": "Bash", "hooks": [{"type": "command", "command": "./guard.sh"}]}]}});
        let once = merge(user, &["PreToolUse", "Stop"], "wt-run pane notify --from-hook claude").unwrap();
        let twice = merge(once.clone(), &["PreToolUse", "Stop"], "/new/wt-run pane notify --from-hook claude").unwrap();
        assert_eq!(twice["model"], "opus");
        let pre = twice["hooks"]["PreToolUse"].as_array().unwrap();
        assert_eq!(pre.len(), 2, "{twice}");
        assert_eq!(pre[0]["hooks"][0]["command"], "./guard.sh");
        assert_eq!(pre[1]["hooks"][0]["command"], "/new/wt-run pane notify --from-hook claude");
        assert_eq!(twice["hooks"]["Stop"].as_array().unwrap().len(), 1);
        assert!(twice["hooks"].get("WorktreeCreate").is_none());
        assert!(merge(json!([1]), &["Stop"], "x").is_err());
        assert!(merge(json!({"hooks": {"Stop": {}}}), &["Stop"], "x").is_err());
    }

    #[test]
    fn worktree_create_is_never_registered() {
        for (_, _, events) in TARGETS {
            assert!(!events.contains(&"WorktreeCreate"));
        }
    }
}
