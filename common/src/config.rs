//! `wt.toml` at the repository root: per-tool defaults in sections (`[create]`, `[env]`,
//! `[run]`, `[watch]`, `[merge]`). Flags win over it. Unknown keys are errors, so a typo is
//! reported instead of silently ignored.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::Error;

pub const FILE_NAME: &str = "wt.toml";

/// Reads section `section` of `<root>/wt.toml` into `T`; `T::default()` when there is no file
/// or no such section.
pub fn section<T: DeserializeOwned + Default>(root: Option<&Path>, section: &str) -> Result<T, Error> {
    let Some(path) = root.map(|r| r.join(FILE_NAME)) else { return Ok(T::default()) };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(T::default()),
        Err(e) => return Err(Error::usage("bad-config", format!("cannot read {}: {e}", path.display()))),
    };
    let bad = |e: &dyn std::fmt::Display| {
        let msg = e.to_string().replace('\n', " ");
        Error::usage("bad-config", format!("{}: {} (fix or remove it)", path.display(), msg.trim()))
    };
    let mut table: toml::Table = text.parse().map_err(|e| bad(&e))?;
    match table.remove(section) {
        None => Ok(T::default()),
        Some(value) => value.try_into().map_err(|e| bad(&format!("[{section}] {e}"))),
    }
}
