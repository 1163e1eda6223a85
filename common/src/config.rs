//! `wt.toml` at the repository root: per-tool defaults in sections (`[create]`, `[env]`,
//! `[run]`, `[watch]`, `[merge]`, `[governor]`). Flags win over it. Unknown keys are errors, so a typo is
//! reported instead of silently ignored.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::Error;

pub const FILE_NAME: &str = "wt.toml";

/// The sections wt.toml may have, one per tool, `[hosts.NAME]` and `[agents.NAME]` (wt-run's
/// agent profiles). Any other is a typo (`[crate]`), reported
/// like a misspelled key rather than silently ignored.
pub const SECTIONS: &[&str] = &["create", "env", "run", "watch", "merge", "hosts", "agents", "governor"];

/// Reads section `section` of `<root>/wt.toml` into `T`; `T::default()` when there is no file
/// or no such section. wt.toml comes with the repository (a merge can change it), so it is read
/// as `fs::untrusted` says: a regular file of at most 1 MiB, not through a symbolic link.
pub fn section<T: DeserializeOwned + Default>(root: Option<&Path>, section: &str) -> Result<T, Error> {
    let Some(path) = root.map(|r| r.join(FILE_NAME)) else { return Ok(T::default()) };
    // A merged branch can make wt.toml a link to /dev/zero, a huge file, a FIFO: refused at
    // once, in one line, never read whole or waited on.
    let text = match crate::fs::read_untrusted(&path, crate::fs::untrusted::CONFIG_MAX) {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(T::default()),
        Err(refused) => return Err(Error::usage("bad-config", format!("{refused} (replace it)"))),
    };
    let bad = |e: &dyn std::fmt::Display| {
        Error::usage("bad-config", format!("{}: {} (fix or remove it)", path.display(), one_line(&e.to_string())))
    };
    let mut table: toml::Table = text.parse().map_err(|e| bad(&e))?;
    if let Some(unknown) = table.keys().find(|k| !SECTIONS.contains(&k.as_str())) {
        let msg = format!("unknown section [{unknown}]; the sections are [{}]", SECTIONS.join("], ["));
        return Err(bad(&msg));
    }
    match table.remove(section) {
        None => Ok(T::default()),
        Some(value) => value.try_into().map_err(|e| bad(&format!("[{section}] {e}"))),
    }
}

/// A TOML error as one line: toml's messages span several (the line, a caret, the reason).
fn one_line(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && *l != "|").collect();
    lines.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Create {
        prefix: Option<String>,
    }

    fn read(text: &str) -> Result<Create, Error> {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join(FILE_NAME), text).unwrap();
        section(Some(t.path()), "create")
    }

    #[test]
    fn a_misspelled_section_is_an_error_in_one_line() {
        let e = read("[crate]\nprefix = \"bot\"\n").unwrap_err();
        assert_eq!(e.code, "bad-config");
        assert!(e.message.contains("[crate]") && e.message.contains("[create]"), "{}", e.message);
        assert!(!e.message.contains('\n'));
    }

    #[test]
    fn a_link_a_fifo_or_a_huge_file_is_refused_in_one_line() {
        let t = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/zero", t.path().join(FILE_NAME)).unwrap();
        let e = section::<Create>(Some(t.path()), "create").unwrap_err();
        assert_eq!(e.code, "bad-config");
        assert!(e.message.contains("wt.toml") && e.message.contains("1 MiB") && !e.message.contains('\n'), "{e}");
    }

    #[test]
    fn toml_syntax_errors_are_one_line() {
        let e = read("[create]\nprefix = = 1\n").unwrap_err();
        assert!(!e.message.contains('\n'), "{}", e.message);
        assert_eq!(read("[create]\nprefix = \"bot\"\n[merge]\n").unwrap().prefix.as_deref(), Some("bot"));
    }
}
