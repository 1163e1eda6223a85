//! Finding a pane's program before it is spawned, so a typo gets the same one-line `not-found`
//! a batch run gives, instead of the PTY library's message with the whole PATH in it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::handle::Failure;

/// Checks that `program` can be run from `cwd` with `path` (the pane's PATH, else ours).
pub fn find(program: &str, cwd: &Path, path: Option<&str>) -> Result<(), Failure> {
    let runnable = |p: &Path| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.contains('/') {
        let p = cwd.join(program);
        return match p.exists() {
            false => Err(not_found(program)),
            true if runnable(&p) => Ok(()),
            true => Err(("not-executable", format!("{program} cannot be run (is it executable?)"))),
        };
    }
    let ours = std::env::var("PATH").unwrap_or_default();
    let found =
        path.unwrap_or(&ours).split(':').filter(|d| !d.is_empty()).any(|d| runnable(&cwd.join(d).join(program)));
    if found {
        Ok(())
    } else {
        Err(not_found(program))
    }
}

fn not_found(program: &str) -> Failure {
    ("not-found", format!("command not found: {program} (check the name and PATH)"))
}
