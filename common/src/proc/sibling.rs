//! The other wt tools, found beside the running one. wt-merge provisions its verification
//! worktree with wt-create and wt-env themselves (the same code path as an agent's worktree),
//! as a pipeline would, without importing their libraries: the tools are installed together
//! (`make install`), so the one beside this executable is the matching version; `PATH` is the
//! fallback for a tool installed elsewhere.

use std::path::PathBuf;

use crate::Error;

/// The path of the wt tool `name` (`wt-create`): beside this executable when it is there and
/// runnable, else the first on `PATH`.
pub fn tool(name: &str) -> Result<PathBuf, Error> {
    let beside = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|d| d.join(name)));
    if let Some(path) = beside.filter(|p| crate::git::runnable(p)) {
        return Ok(path);
    }
    crate::git::find_on_path(std::env::var_os("PATH"), name).ok_or_else(|| {
        Error::env(
            "tool-missing",
            format!(
                "{name} is neither beside this program nor on PATH; install the six wt tools together (make install)"
            ),
        )
    })
}
