//! The worktree's environment: the variables, a dotenv file git ignores, `export` lines, and
//! the repository's `info/exclude` entries that keep those files out of `git status`.

use std::path::Path;

use serde_json::{Map, Value};
use wt_common::git::repo::Repo;
use wt_common::{Error, Record};

use wt_common::ledger::lease::{DbLease, PortBlock};

/// Checks `--ports` names: they become `WT_PORT_<NAME>` variables.
pub fn validate_port_names(names: &[String], block: u16) -> Result<(), Error> {
    if names.len() > usize::from(block) {
        return Err(Error::usage(
            "too-many-ports",
            format!("--ports names {} ports but a block has {block}; raise --block", names.len()),
        ));
    }
    for n in names {
        if n.is_empty()
            || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || n.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(Error::usage(
                "bad-port-name",
                format!("--ports name '{n}' must be letters, digits and '_' (it becomes WT_PORT_{})", n.to_uppercase()),
            ));
        }
    }
    Ok(())
}

/// `KEY="value"` lines, the dotenv syntax docker compose, python-dotenv and dotenvy all read.
pub fn dotenv_text(vars: &Map<String, Value>) -> String {
    let mut out = String::from("# Written by wt-env; rewritten on every run.\n");
    for (k, v) in vars {
        let v = v.as_str().unwrap_or_default();
        let escaped = v.replace('\\', "\\\\").replace('"', "\\\"").replace('$', "\\$").replace('\n', "\\n");
        out += &format!("{k}=\"{escaped}\"\n");
    }
    out
}

/// `export KEY='value'` lines for `eval "$(wt-env --export …)"`.
pub fn export_text(vars: &Map<String, Value>) -> String {
    vars.iter()
        .map(|(k, v)| format!("export {k}='{}'\n", v.as_str().unwrap_or_default().replace('\'', r"'\''")))
        .collect()
}

/// Writes `text` to `worktree/rel` whole (temp file and rename), readable by its owner only,
/// never through a symbolic link the agent planted in its worktree, and makes git ignore it.
pub fn write_ignored(repo: &Repo, worktree: &Path, rel: &str, text: &str) -> Result<std::path::PathBuf, Error> {
    // Private, and noted, so that confined agents in other worktrees get it covered: it names
    // this worktree's database password.
    wt_common::ledger::secret_files::note(&repo.ensure_state_dir()?, Path::new(rel))?;
    let path = wt_common::fs::inside::write_private(worktree, Path::new(rel), text.as_bytes())?;
    wt_common::git::ignore::exclude(repo, rel)?;
    // The temp file it is written through, should a killed wt-env leave one, is ignored too
    // (so `git add -A` never commits it), and swept by the next write.
    let temps = Path::new(rel).with_file_name(wt_common::fs::temp_pattern(&path));
    wt_common::git::ignore::exclude(repo, &temps.to_string_lossy())?;
    Ok(path)
}

/// The note for the agent (`--brief`): the boundaries it should keep, which `wt-run --confine`
/// enforces.
pub fn brief_text(rec: &Record, block: &PortBlock, db: Option<&DbLease>, env_file: Option<&Path>) -> String {
    let path = rec.path.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    let mut t = format!(
        "# Worktree {name}\n\nYou are working in the git worktree `{path}` on branch `{branch}`.\n\
         Other agents work in other worktrees of the same repository at the same time.\n\n\
         ## Boundaries\n\n\
         - Change files only inside `{path}`. Do not touch the main worktree or other worktrees.\n\
         - Use only ports {first}-{last}: `$PORT` is {first}.",
        name = rec.name,
        branch = rec.branch.as_deref().unwrap_or("(detached)"),
        first = block.start,
        last = block.end(),
    );
    for (i, n) in block.names.iter().enumerate() {
        t += &format!(" `$WT_PORT_{}` is {}.", n.to_uppercase(), block.start + i as u16);
    }
    t += "\n";
    match db {
        Some(db) => t += &format!("- Use only your own database: `$DATABASE_URL` is `{}`.\n", db.url),
        None => t += "- No database is leased to this worktree.\n",
    }
    if let Some(f) = env_file {
        t += &format!(
            "- Your environment is in `{}` (dotenv syntax); load it before running servers or tests.\n",
            f.display()
        );
    }
    t += "\nThis file was written by wt-env and is ignored by git.\n";
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_and_export_quote_what_shells_would_expand() {
        let mut v = Map::new();
        v.insert("A".into(), "it's $HOME \"x\"\nnext".into());
        assert_eq!(dotenv_text(&v).lines().nth(1).unwrap(), r#"A="it's \$HOME \"x\"\nnext""#);
        assert_eq!(export_text(&v), "export A='it'\\''s $HOME \"x\"\nnext'\n");
    }

    #[test]
    fn port_names_must_make_variable_names() {
        assert!(validate_port_names(&["web".into(), "api_2".into()], 10).is_ok());
        assert_eq!(validate_port_names(&["we-b".into()], 10).unwrap_err().code, "bad-port-name");
        assert_eq!(validate_port_names(&["a".into(), "b".into()], 1).unwrap_err().code, "too-many-ports");
    }
}
