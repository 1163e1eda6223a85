//! What wt keeps in the worktree root (`<repo>.wt/` by default, or `[create] root`) beside the
//! worktrees: names no worktree can take (a worktree name is a valid ref name, and no ref name
//! component starts with a dot).

/// The pool of warm worktrees: `<root>/.pool/<id>`, registered with git, not in the ledger
/// (wt-create's `pool`).
pub const POOL_DIR: &str = ".pool";

/// Build directories on their way out: `<root>/.wt-trash/<pid>.<n>.<worktree>`, renamed there
/// in one step, then deleted (wt-create's `budget::trash`).
pub const TRASH_DIR: &str = ".wt-trash";
